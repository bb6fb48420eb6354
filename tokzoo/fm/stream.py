"""Global batches for the trainer: token datasets mixed by weight, each process reading only its own rows.

Each dataset is an endless sequence of samples: epoch e is a permutation of all its samples seeded by
(seed, e), each sample at a crop drawn from (seed, e, shard) (``crop="random"``) or at a fixed crop. A
global batch of B samples takes ``counts ~ Multinomial(B, weights)`` samples from the datasets (drawn from
(seed, step), so every process draws the same counts), dataset after dataset: dataset d fills rows
``[c_0 + ... + c_{d-1}, ... + c_d)`` with its next ``c_d`` samples. Process r of W owns rows
``[r B/W, (r+1) B/W)`` and reads just the samples of those rows from the shards (memory-mapped, gathered by
index), so W processes together read what one process would, each 1/W of it.

Samples of a dataset lacking a modality get it as missing (all-invalid); the masking gives it no budget.
The position in the data is the number of samples taken from each dataset (``consumed``): resuming from it
continues the same sequence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tokzoo.errors import ConfigError, InputError, ShapeError
from tokzoo.tokens.loader import TokenDataset
from tokzoo.tokens.plan import random_crops
from tokzoo.tokens.spec import (
    ModalitySpec,
    check_same_vocabularies,
    dataset_manifest,
    dataset_parts,
    specs_from_manifest,
)

from .masking import MaskedBatch, concat_batches, flatten_batch


class DatasetStream:
    """One token dataset as an endless seeded sequence of samples; :meth:`read` fetches positions of it.

    ``root`` may join folders with "," (:func:`~tokzoo.tokens.spec.dataset_parts`): each modality is read from
    the folder that holds it, the folders' samples checked key by key.
    """

    def __init__(
        self, root: str | Path, modalities: list[str], seed: int, *, shuffle: bool = True, crop: int | str = "random"
    ):
        self.root, self.modalities, self.seed, self.shuffle, self.crop = root, list(modalities), seed, shuffle, crop
        self.parts = []
        for part in dataset_parts(root):
            held = [m for m in modalities if m in dataset_manifest(part)["modalities"]]
            if held:
                self.parts.append(TokenDataset(part, held, 1, shuffle=False, crop=0, seed=seed, rank=0, world_size=1))
        if not self.parts:
            raise InputError(root, f"holds none of the modalities {', '.join(modalities)}")
        counts = np.asarray(self.parts[0].counts, np.int64)
        for part in self.parts[1:]:
            if part.counts != self.parts[0].counts:
                raise InputError(
                    part.root, f"its shards hold other sample counts than {self.parts[0].root}: not the same samples"
                )
        self.dataset = self.parts[0]
        self.size = int(counts.sum())
        if not self.size:
            raise InputError(root, "the token dataset holds no samples")
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.opened: list[dict] = [{} for _ in self.parts]
        self.bytes_read = 0
        self._orders: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            if len(self._orders) > 2:
                self._orders.clear()
            rng = np.random.default_rng([self.seed, epoch, 5])
            self._orders[epoch] = rng.permutation(self.size) if self.shuffle else np.arange(self.size)
        return self._orders[epoch]

    def read(self, positions: np.ndarray) -> dict:
        """Samples at stream ``positions`` (k,) -> a loader batch (modality -> int64 (k, ...), "__key__")."""
        positions = np.asarray(positions, np.int64)
        if not len(positions):
            raise ValueError("DatasetStream.read: no positions")
        epochs = positions // self.size
        flat = np.empty_like(positions)
        for e in np.unique(epochs):
            here = epochs == e
            flat[here] = self._order(int(e))[positions[here] % self.size]
        shard = np.searchsorted(self.offsets, flat, side="right") - 1
        sample = flat - self.offsets[shard]
        order = np.lexsort((sample, shard, epochs))  # read shard by shard, then restore the rows' order
        group = epochs[order] * len(self.offsets) + shard[order]
        bounds = np.flatnonzero(np.diff(group)) + 1
        pieces = []
        for rows in np.split(order, bounds):
            e, s = int(epochs[rows[0]]), int(shard[rows[0]])
            n_crops = self.dataset.shard_crops(s, self.opened[0])
            crops = (
                random_crops(n_crops, self.seed, e, s)[sample[rows]]
                if self.crop == "random"
                else np.full(len(rows), self.crop, np.int64)
            )
            for part, opened in zip(self.parts, self.opened):
                if (part.shard_crops(s, opened)[sample[rows]] <= crops).any():
                    raise ShapeError(
                        part.root / part.shards[s], f"crop {int(crops.max())} requested, some samples have fewer crops"
                    )
            pieces.append((s, sample[rows], crops, rows))
        batch, masks = {}, {}
        for part, opened in zip(self.parts, self.opened):
            got, read = part.read_samples([p[:3] for p in pieces], opened)
            if "__key__" in batch and got["__key__"] != batch["__key__"]:
                raise InputError(part.root, f"holds other samples than {self.parts[0].root} (keys differ)")
            masks.update(got.pop("__mask__", {}))  # set-valued modalities' item masks, of every folder
            batch.update(got)
            self.bytes_read += read
        back = np.argsort(np.concatenate([p[3] for p in pieces]))
        out = {k: v[back] for k, v in batch.items() if k != "__key__"}
        out["__key__"] = [batch["__key__"][i] for i in back]
        if masks:
            out["__mask__"] = {m: mask[back] for m, mask in masks.items()}
        return out


def ordered_batches(root: str | Path, modalities: list[str], batch_size: int, crop: int = 0):
    """Loader batches of every sample of ``root`` (folders joined by "," too) in stored order, at ``crop``."""
    stream = DatasetStream(root, modalities, 0, shuffle=False, crop=crop)
    for start in range(0, stream.size, batch_size):
        yield stream.read(np.arange(start, min(stream.size, start + batch_size)))


def mixture_specs(roots: list[str | Path], modalities: list[str], max_items: int) -> list[ModalitySpec]:
    """The model's specs of ``modalities``, each from the first dataset holding it; one dataset must hold all,
    a mixture each at least once; vocabularies must agree across datasets (ConfigError / InputError, one line)."""
    if len(roots) == 1:
        return specs_from_manifest(roots[0], modalities, max_items)
    held = [[m for m in modalities if m in dataset_manifest(r)["modalities"]] for r in roots]
    specs = {}
    for root, names in zip(roots, held):
        found = specs_from_manifest(root, names, max_items)
        check_same_vocabularies(list(specs.values()), found, root)
        specs.update((s.name, s) for s in found if s.name not in specs)
    missing = [m for m in modalities if m not in specs]
    if missing:
        raise ConfigError(f"data: no dataset of the mixture holds modality {missing[0]!r}")
    return [specs[m] for m in modalities]


class MixtureStream:
    """This process's rows of every global batch (module docstring)."""

    def __init__(
        self,
        sources: list[tuple[str | Path, float]],
        specs: list[ModalitySpec],
        batch_size: int,
        seed: int,
        *,
        rank: int = 0,
        world: int = 1,
        consumed: list[int] | None = None,
    ):
        if batch_size % world:
            raise ConfigError(f"train.batch_size {batch_size} is not divisible by the {world} processes")
        weights = np.array([w for _, w in sources], np.float64)
        if (weights < 0).any() or weights.sum() <= 0:
            raise ConfigError("data.weights: the mixture needs non-negative weights, at least one positive")
        self.weights = weights / weights.sum()
        names = [s.name for s in specs]
        self.streams = [
            DatasetStream(root, [m for m in names if m in dataset_manifest(root)["modalities"]], seed + i)
            for i, (root, _) in enumerate(sources)
        ]
        self.specs, self.batch_size, self.seed, self.rank, self.world = specs, batch_size, seed, rank, world
        self.consumed = list(consumed) if consumed is not None else [0] * len(sources)
        if len(self.consumed) != len(sources):
            raise ConfigError(
                f"the run's data position names {len(self.consumed)} datasets, the mixture has {len(sources)}"
            )

    @property
    def bytes_read(self) -> int:
        return sum(s.bytes_read for s in self.streams)

    def plan(self, step: int) -> tuple[list[np.ndarray], np.ndarray]:
        """Which stream positions of each dataset this process reads at ``step`` (advancing ``consumed``), and
        its global row numbers (B / W,)."""
        counts = np.random.default_rng([self.seed, step, 7]).multinomial(self.batch_size, self.weights)
        share = self.batch_size // self.world
        lo, hi = self.rank * share, (self.rank + 1) * share
        positions, first = [], 0
        for d, c in enumerate(counts):
            a, b = max(lo, first), min(hi, first + int(c))
            positions.append(self.consumed[d] + np.arange(a - first, b - first) if a < b else np.zeros(0, np.int64))
            self.consumed[d] += int(c)
            first += int(c)
        return positions, np.arange(lo, hi)

    def read(self, positions: list[np.ndarray]) -> MaskedBatch:
        """The planned samples, flattened for the model, datasets in order (= this process's rows in order)."""
        parts = [flatten_batch(stream.read(p), self.specs) for stream, p in zip(self.streams, positions) if len(p)]
        return concat_batches(parts)
