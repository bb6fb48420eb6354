"""Batches of token ids from a token dataset folder (``OUT/<modality>/shard-*.tar``), for trainers.

``make_loader(root, ["rgb", "depth"], batch_size=256, num_workers=4)`` over a folder written by ``tokzoo tokenize``
(layout in docs/ARCHITECTURE.md). Shards are memory-mapped and read as numpy views (:mod:`.shards`); the split
across ranks and workers is in :mod:`.plan`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from tokzoo.errors import ConfigError, InputError, InvalidValueError, ShapeError, TokzooError
from tokzoo.indices import item_counts

from .foreign import find_layout
from .layout import CROPS, MANIFEST, read_manifest
from .plan import epoch_pieces, random_crops, resampled_pieces
from .shards import Shard, count_members, open_shard, pad_items

Batch = dict  # modality -> int64 (B, *token_shape); "__key__" -> list[str]; "__crop__" -> int64 (B,);
# "__mask__" -> {set-valued modality: bool (B, N_max)}


class TokenDataset(IterableDataset):
    """Zipped modalities of a token dataset, yielded as ready batches (use ``DataLoader(batch_size=None)``).

    Each batch: ``{modality: LongTensor (B, *token_shape), "__key__": list[str], "__crop__": LongTensor (B,)}``,
    B = ``batch_size`` except a consumer's last batch (dropped with ``drop_last``). One crop index per sample
    serves every modality: ``crop="random"`` draws it per epoch from ``seed``, an int fixes it (0 = centre).

    Split: ``rank`` / ``world_size`` (default: torch.distributed when it is initialised at construction,
    else 0 / 1) times DataLoader workers. Exact epochs (``resampled=False``) give each sample to exactly
    one consumer, cutting the epoch's sample order into contiguous ranges (see :mod:`tokzoo.tokens.plan`);
    call :meth:`set_epoch` before each epoch to reshuffle and redraw crops. ``resampled=True`` is an
    endless seeded stream per consumer.

    Every shard's modalities must hold the same keys in the same order and the same crop counts; with
    ``require_complete`` a shard must have its ``.stats.json`` completion marker in every modality.
    Listing ``"crops"`` among the modalities yields each sample's chosen crop box, int64 (B, 5).

    Layouts a plug-in registered (:mod:`.foreign`; ml-4m's pre-tokenized ones: ``ROOT/crop_settings`` beside
    ``ROOT/tok_depth@224/...``) are read too, through the plug-in's reader.

    Set-valued modalities (sam_instances, human_pose: ``"pad_id"`` in OUT's manifest.json) hold N >= 0
    items per crop; their batches are int64 (B, N_max, *item_shape), N_max the batch's largest N (0 when
    no sample has an item), each row's missing items filled with ``pad_id`` (= vocab_size);
    ``batch["__mask__"][modality]`` is bool (B, N_max), True for real items (the key is present when a listed
    modality is set-valued). ``dataset.pad_ids[modality]`` gives the pad id (None elsewhere).
    """

    def __init__(
        self,
        root: str | Path,
        modalities: Sequence[str],
        batch_size: int,
        *,
        shuffle: bool = True,
        crop: int | str = "random",
        resampled: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = False,
        require_complete: bool = True,
    ):
        if isinstance(modalities, str) or not modalities:
            raise ConfigError(f"modalities must be a non-empty list of names, got {modalities!r}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        if crop != "random" and not (isinstance(crop, int) and crop >= 0):
            raise ConfigError(f"crop must be 'random' or a crop index >= 0, got {crop!r}")
        self.root, self.modalities, self.batch_size = Path(root), list(modalities), batch_size
        self.shuffle, self.crop, self.resampled, self.seed, self.drop_last = shuffle, crop, resampled, seed, drop_last
        self.rank, self.world_size = _distributed(rank, world_size)
        self.epoch = 0
        layout = find_layout(self.root)
        self.foreign = layout.reader(self.root, self.modalities) if layout else None
        if self.foreign is not None:  # another tool's layout: its plug-in finds and opens the shards
            self.shards, self.counts = self.foreign.shards, self.foreign.counts
            self.pad_ids, self.id_limits = dict.fromkeys(self.modalities), self.foreign.id_limits()
            return
        self.shards = _find_shards(self.root, self.modalities, require_complete)
        self.pad_ids, self.id_limits = _manifest_ids(self.root, self.modalities)
        self.counts = [_checked_count(self.root / self.modalities[0] / name) for name in self.shards]

    @property
    def num_samples(self) -> int:
        """Samples in one exact epoch, over all ranks."""
        return sum(self.counts)

    def set_epoch(self, epoch: int) -> None:
        """Pick the epoch whose shuffle and crops the next iteration uses (call it before creating iterators)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        consumer, n_consumers = self.rank * workers + worker, self.world_size * workers
        if self.resampled:
            pieces = resampled_pieces(self.counts, consumer, self.seed, self.epoch)
            crop_rng = np.random.default_rng([self.seed, self.epoch, consumer, 3])
        else:
            pieces = epoch_pieces(self.counts, consumer, n_consumers, self.seed, self.epoch, self.shuffle)
            crop_rng = None
        batches = self._batches(pieces, crop_rng)
        return _failures_as_batches(batches) if info else batches

    def _batches(self, pieces, crop_rng) -> Iterator[Batch]:
        parts, filled = [], 0
        for shard_id, samples in pieces:
            shards = self._open(shard_id)
            n_crops = shards[0].n_crops
            if isinstance(self.crop, int):
                if (n_crops[samples] <= self.crop).any():
                    raise ShapeError(
                        shards[0].path, f"crop {self.crop} requested, some samples have {n_crops[samples].min()} crops"
                    )
                crops = np.full(len(samples), self.crop, np.int64)
            elif crop_rng is None:
                crops = random_crops(n_crops, self.seed, self.epoch, shard_id)[samples]
            else:
                crops = crop_rng.integers(0, n_crops[samples])
            start = 0
            while start < len(samples):
                take = min(self.batch_size - filled, len(samples) - start)
                parts.append(
                    _gather(
                        shards, samples[start : start + take], crops[start : start + take], self.pad_ids, self.id_limits
                    )
                )
                filled, start = filled + take, start + take
                if filled == self.batch_size:
                    yield self._collate(parts)
                    parts, filled = [], 0
        if parts and not self.drop_last:
            yield self._collate(parts)

    def read_samples(
        self, pieces: Sequence[tuple[int, np.ndarray, np.ndarray]], opened: dict[int, list[Shard]] | None = None
    ) -> tuple[Batch, int]:
        """Random access for trainers that choose their own rows: ``pieces`` = [(shard id, sample indices (k,),
        crop indices (k,))] -> (one batch of those samples in that order, bytes of tokens read from the shards).

        ``opened``: a dict the caller keeps to reuse opened (memory-mapped, validated) shards between calls.
        """
        parts, read = [], 0
        for shard_id, samples, crops in pieces:
            shards = opened.get(shard_id) if opened is not None else None
            if shards is None:
                shards = self._open(shard_id)
                if opened is not None:
                    opened[shard_id] = shards
            parts.append(_gather(shards, np.asarray(samples), np.asarray(crops), self.pad_ids, self.id_limits))
            read += sum(t.nbytes for t in parts[-1][0])
        return self._collate(parts), read

    def shard_crops(self, shard_id: int, opened: dict[int, list[Shard]] | None = None) -> np.ndarray:
        """(n,) int64 crop counts of a shard's samples."""
        shards = (opened or {}).get(shard_id) or self._open(shard_id)
        if opened is not None:
            opened[shard_id] = shards
        return shards[0].n_crops

    def _open(self, shard_id: int) -> list[Shard]:
        name = self.shards[shard_id]
        shards = [
            self.foreign.open(m, name) if self.foreign else open_shard(self.root / m / name) for m in self.modalities
        ]
        first = shards[0]
        if len(first) != self.counts[shard_id]:
            raise InputError(
                first.path, f"{len(first)} members, but {self.counts[shard_id]} were counted when the loader was made"
            )
        for modality, shard in zip(self.modalities[1:], shards[1:]):
            _check_same_keys(first, shard, self.modalities[0], modality)
            if not np.array_equal(first.n_crops, shard.n_crops):
                i = int(np.flatnonzero(first.n_crops != shard.n_crops)[0])
                raise ShapeError(
                    shard.path,
                    f"sample {_key(first.names[i])!r} has {shard.n_crops[i]} crops in {modality!r}, "
                    f"{first.n_crops[i]} in {self.modalities[0]!r}",
                )
        return shards

    def _collate(self, parts: list[tuple[list[np.ndarray], np.ndarray, np.ndarray]]) -> Batch:
        batch: Batch = {}
        masks = {}
        for j, modality in enumerate(self.modalities):
            arrays = [p[0][j] for p in parts]
            pad_id = self.pad_ids[modality]
            if pad_id is not None:
                tokens = pad_items(arrays, pad_id, self.root / modality)
                counts = item_counts(tokens, pad_id, tokens.ndim - 2)
                tokens = tokens[:, : counts.max(initial=0)]  # no all-pad columns
                masks[modality] = torch.from_numpy(np.arange(tokens.shape[1]) < counts[:, None])
            else:
                tokens = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
            batch[modality] = torch.from_numpy(tokens.astype(np.int64))
        batch["__key__"] = [_key(n) for p in parts for n in p[1]]
        batch["__crop__"] = torch.from_numpy(np.concatenate([p[2] for p in parts]))
        if masks:
            batch["__mask__"] = masks
        return batch


def make_loader(
    root: str | Path,
    modalities: Sequence[str],
    batch_size: int,
    *,
    num_workers: int = 0,
    shuffle: bool = True,
    crop: int | str = "random",
    resampled: bool = False,
    seed: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
    drop_last: bool = False,
    require_complete: bool = True,
    **loader_kwargs,
) -> DataLoader:
    """A ``DataLoader(batch_size=None)`` over a :class:`TokenDataset`, which does the batching.

    Call ``loader.dataset.set_epoch(e)`` before each epoch; it reaches workers that are started per epoch,
    so do not pass ``persistent_workers=True`` with random crops or shuffling in exact epochs.
    """
    dataset = TokenDataset(
        root,
        modalities,
        batch_size,
        shuffle=shuffle,
        crop=crop,
        resampled=resampled,
        seed=seed,
        rank=rank,
        world_size=world_size,
        drop_last=drop_last,
        require_complete=require_complete,
    )
    return TokenLoader(dataset, batch_size=None, num_workers=num_workers, **loader_kwargs)


class WorkerFailure:
    """A TokzooError raised in a DataLoader worker, sent as a batch: torch would re-raise it as a RuntimeError
    holding the worker's traceback (it cannot rebuild a two-argument InputError)."""

    def __init__(self, error: TokzooError):
        self.cls = type(error)
        self.args = (error.source, error.reason) if isinstance(error, InputError) else (str(error),)

    def reraise(self):
        raise self.cls(*self.args)


def _failures_as_batches(batches: Iterator[Batch]) -> Iterator[Batch | WorkerFailure]:
    try:
        yield from batches
    except TokzooError as error:
        yield WorkerFailure(error)


class TokenLoader(DataLoader):
    """The DataLoader of :func:`make_loader`: a typed error in a worker is raised here as itself (one line)."""

    def __iter__(self):
        for batch in super().__iter__():
            if isinstance(batch, WorkerFailure):
                batch.reraise()
            yield batch


def _gather(
    shards: list[Shard],
    samples: np.ndarray,
    crops: np.ndarray,
    pad_ids: dict[str, int | None],
    id_limits: dict[str, int | None] | None = None,
):
    tokens = [s.gather(samples, crops, pad_id) for s, pad_id in zip(shards, pad_ids.values())]
    for shard, ids, limit in zip(shards, tokens, (id_limits or {}).values()):
        if limit is not None and ids.size and (int(ids.max()) >= limit or int(ids.min()) < 0):
            raise InvalidValueError(
                shard.path,
                f"token ids in [{int(ids.min())}, {int(ids.max())}], outside the "
                f"[0, {limit}) the manifest's vocabulary allows: tampered or foreign",
            )
    return tokens, shards[0].names[samples], crops


def _manifest_ids(root: Path, modalities: list[str]) -> tuple[dict[str, int | None], dict[str, int | None]]:
    """Per modality: its ``pad_id`` from OUT's manifest.json (set-valued modalities, else None) and the bound its
    ids must stay under (vocab_size, + 1 with a pad id); all None when there is no manifest (folders not
    written by ``tokzoo tokenize``). A damaged manifest is a one-line error naming it (:func:`.layout.read_manifest`)."""
    manifest = read_manifest(root)
    if manifest is None:
        return dict.fromkeys(modalities), dict.fromkeys(modalities)
    path = root / MANIFEST
    pads, limits = {}, {}
    for m in modalities:
        entry = manifest["modalities"].get(m, {})  # read_manifest checked that entries are objects
        pad, vocab = entry.get("pad_id"), entry.get("vocab_size")
        if not all(v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0) for v in (pad, vocab)):
            raise InputError(path, f"not a tokzoo manifest (modality {m!r}: pad_id / vocab_size are not ids)")
        pads[m] = pad
        limits[m] = None if vocab is None else vocab + (pad is not None)
    return pads, limits


def _checked_count(path: Path) -> int:
    """Members of a shard, checked against the ``ok`` count its ``.stats.json`` records when there is one (a
    completion marker is never trusted over a shard that is shorter or longer)."""
    count = count_members(path)
    stats = path.with_suffix(".stats.json")
    if stats.is_file():
        try:
            recorded = json.loads(stats.read_bytes().decode("utf-8"))
        except (OSError, ValueError, RecursionError):
            raise InputError(stats, "unreadable completion marker (not JSON)") from None
        if not isinstance(recorded, dict):
            raise InputError(stats, "unreadable completion marker (not a JSON object)")
        if "ok" in recorded and recorded["ok"] != count:  # the pipeline's markers count ok samples = members
            raise InputError(
                path, f"{count} members, its .stats.json records {recorded['ok']!r} ok samples: truncated or tampered"
            )
    return count


def _key(name: bytes) -> str:
    return name[:-4].decode()


def _check_same_keys(first: Shard, other: Shard, first_modality: str, modality: str) -> None:
    if np.array_equal(first.names, other.names):
        return
    if len(first) != len(other):
        raise InputError(
            other.path, f"{len(other)} samples in {modality!r}, {len(first)} in {first_modality!r}: keys differ"
        )
    i = int(np.flatnonzero(first.names != other.names)[0])
    raise InputError(
        other.path,
        f"sample {i} is {_key(other.names[i])!r} in {modality!r} but {_key(first.names[i])!r} "
        f"in {first_modality!r}: modalities must hold the same keys in the same order",
    )


def _distributed(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None or world_size is None:
        initialised = torch.distributed.is_available() and torch.distributed.is_initialized()
        rank = rank if rank is not None else (torch.distributed.get_rank() if initialised else 0)
        world_size = (
            world_size if world_size is not None else (torch.distributed.get_world_size() if initialised else 1)
        )
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank must lie in [0, world_size), got rank={rank}, world_size={world_size}")
    return rank, world_size


def _find_shards(root: Path, modalities: list[str], require_complete: bool) -> list[str]:
    """Shard file names present in every modality folder (sorted); raises when the folders disagree."""
    names = {}
    for modality in modalities:
        folder = root / modality
        if not folder.is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
            raise InputError(folder, f"no such modality folder (found: {', '.join(found) or 'none'})")
        names[modality] = sorted(p.name for p in folder.glob("*.tar"))
        if not names[modality]:
            raise InputError(folder, "no .tar shards")
    first = modalities[0]
    for modality in modalities[1:]:
        for name in sorted(set(names[first]) ^ set(names[modality]))[:1]:
            absent, present = (modality, first) if name in names[first] else (first, modality)
            raise InputError(root / absent / name, f"shard missing (present in {present!r})")
    if require_complete:
        # The crops folder has no marker of its own: the pipeline renames its tar into place in the same
        # commit as the modalities' shards, so a crops tar that exists is complete.
        for name in names[first]:
            for modality in (m for m in modalities if m != CROPS):
                tar = root / modality / name
                if not tar.with_suffix(".stats.json").exists():
                    raise InputError(tar, "incomplete shard: no .stats.json completion marker (still being written?)")
    return names[first]
