"""Which samples a consumer (one DataLoader worker of one rank) reads, in which order, at which crop.

Exact epochs: the epoch's sample order is the shards in order (or a seeded permutation of them),
each shard's samples in order (or a seeded permutation). That sequence of N samples is cut into
``n_consumers`` contiguous ranges ``[c*N//K, (c+1)*N//K)``, so each sample is read exactly once, the
consumers' sample counts differ by at most one whatever the shard count (a shard may be shared by
neighbouring consumers), and most consumers read whole shards front to back. Each consumer ends
with its own partial batch (unless ``drop_last``); since counts differ by one sample, DDP ranks may
still differ by one batch per worker, so trainers that need equal step counts on every rank should
use the resampled stream with a fixed number of steps.

Resampled: each consumer draws shards with replacement (weighted by sample count) from its own
generator seeded by (seed, epoch, consumer) and reads each drawn shard in a random order; endless.

Crops: with ``crop="random"`` a shard's crop indices are drawn from (seed, epoch, shard) in exact
epochs, so they do not depend on how the samples were split; one index per sample serves every
modality.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

Piece = tuple[int, np.ndarray]  # (shard id, (k,) int64 sample indices within the shard)


def epoch_pieces(
    counts: list[int], consumer: int, n_consumers: int, seed: int, epoch: int, shuffle: bool
) -> Iterator[Piece]:
    """This consumer's share of one exact epoch, as runs of samples within one shard each."""
    order = np.random.default_rng([seed, epoch]).permutation(len(counts)) if shuffle else np.arange(len(counts))
    total = sum(counts)
    lo, hi = consumer * total // n_consumers, (consumer + 1) * total // n_consumers
    start = 0
    for shard in order:
        n = counts[shard]
        first, last = max(lo, start) - start, min(hi, start + n) - start
        if first < last:
            samples = np.random.default_rng([seed, epoch, shard, 1]).permutation(n) if shuffle else np.arange(n)
            yield int(shard), samples[first:last]
        start += n
        if start >= hi:
            return


def resampled_pieces(counts: list[int], consumer: int, seed: int, epoch: int) -> Iterator[Piece]:
    """Endless shards drawn with replacement, weighted by size, each read in a random order."""
    weights = np.asarray(counts, np.float64)
    if not weights.sum():
        return
    rng = np.random.default_rng([seed, epoch, consumer, 2])
    while True:
        shard = int(rng.choice(len(counts), p=weights / weights.sum()))
        yield shard, rng.permutation(counts[shard])


def random_crops(n_crops: np.ndarray, seed: int, epoch: int, shard: int) -> np.ndarray:
    """(n,) crop counts of a shard's samples -> (n,) int64 crop indices, fixed by (seed, epoch, shard)."""
    return np.random.default_rng([seed, epoch, shard, 0]).integers(0, n_crops).astype(np.int64)
