"""Worker side: decode, crop and normalise chunks of samples, in worker processes or inline.

:func:`prepare_chunk` turns ``(raw sample, stored crops, known error)`` items into :class:`Prepared`:
the crop settings (stored ones when given, else made from ``(seed, key, source size)``) and, per
modality, the sample's crops resized to that modality's size, stacked ``(n_crops, ...)``. Where the job
has the modality's codec, the crops of all the chunk's samples are checked against its contract and
normalised (``codec.to_model``) in one call, retried sample by sample when it refuses, so the main
process only runs the model. Set-valued codecs (``set_codecs``: sam_instances, human_pose; one call takes
one image's items) normalise crop by crop instead, into a list of float32 (N_i, C, ...) arrays, N_i >= 0.
It never raises for bad data: a sample comes back with ``error`` set (precedence: decode, then crop,
then normalisation errors).

:class:`OrderedPool` maps it over chunks with a bounded number in flight and yields results in input
order, so output does not depend on the number of workers; inline it runs with one torch thread, as
workers do. Where workers are forked, normalised crops come back through :class:`Slots` (shared
memory, one region per chunk in flight) instead of being pickled through a pipe. Everything is also
spawn-safe (top-level functions, the job passed to each worker once through the pool initializer).
"""

from __future__ import annotations

import math
import mmap
import multiprocessing
import signal
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import torch

from tokzoo.crops import apply_crop, make_crop_settings
from tokzoo.errors import InvalidValueError, TokzooError
from tokzoo.failures import image_problem
from tokzoo.io import RawSample, decode_sample

CHUNK = 32
"""Samples per task sent to a worker (and per normalisation call there): large enough that a task's
fixed cost (pickling, pipes, the pool's threads, one ``to_model`` call) is small per sample."""


@dataclass(frozen=True)
class WorkerJob:
    """What every worker needs: per-modality output size (None: not cropped), the crop recipe, and the
    codecs of the modalities whose crops are normalised here (``set_codecs``: one crop per call)."""

    sizes: dict[str, tuple[int, int] | None]
    n_crops: int
    seed: int
    crop_recipe: dict
    options: dict[str, dict] = field(default_factory=dict)
    codecs: dict = field(default_factory=dict)
    set_codecs: dict = field(default_factory=dict)
    min_image_size: int = 0  # samples whose pixel frame is smaller (shorter side) fail (tokzoo.failures)
    max_aspect_ratio: float = math.inf  # ... or more elongated (longer side / shorter side)


@dataclass
class Prepared:
    """One sample: ``values[modality]`` is an array ``(n_crops, ...)`` (normalised where the job has the codec)
    or a list of per-crop values (for a set codec: normalised, float32 (N_i, C, ...)); empty when ``error`` is set."""

    key: str
    sources: dict[str, str]
    crops: np.ndarray | None = None
    values: dict[str, np.ndarray | list] = field(default_factory=dict)
    error: str | None = None


class Slots:
    """Anonymous shared memory (inherited by forked workers): ``count`` slots, each holding up to
    ``capacity[modality]`` bytes per modality, for the normalised crops of one chunk."""

    def __init__(self, count: int, capacity: dict[str, int]):
        self.offsets, stride = {}, 0
        for modality, size in capacity.items():
            self.offsets[modality] = (stride, size)
            stride += -(-size // 64) * 64
        self.stride = stride
        self.buffer = mmap.mmap(-1, max(1, stride * count))

    def put(self, slot: int, modality: str, arrays: list[np.ndarray]) -> tuple | None:
        """Copy ``arrays`` (one dtype and item shape) one after the other into ``slot``; returns the handle
        :meth:`take` needs, or None when they do not fit."""
        dtype, shape = arrays[0].dtype, arrays[0].shape[1:]
        start, size = self.offsets.get(modality, (0, 0))
        lengths = [len(a) for a in arrays]
        if (
            dtype.hasobject
            or any(a.dtype != dtype or a.shape[1:] != shape for a in arrays)
            or sum(a.nbytes for a in arrays) > size
        ):
            return None
        view = self._view(slot, start, dtype, (sum(lengths), *shape))
        row = 0
        for array in arrays:
            view[row : row + len(array)] = array
            row += len(array)
        return dtype.str, shape, lengths

    def take(self, slot: int, modality: str, handle: tuple) -> list[np.ndarray]:
        """Private copies of the arrays :meth:`put` left in ``slot``."""
        dtype, shape, lengths = handle
        rows = self._view(slot, self.offsets[modality][0], np.dtype(dtype), (sum(lengths), *shape)).copy()
        return np.split(rows, np.cumsum(lengths)[:-1])

    def _view(self, slot: int, start: int, dtype: np.dtype, shape: tuple) -> np.ndarray:
        return np.ndarray(shape, dtype, buffer=self.buffer, offset=slot * self.stride + start)


_JOB: WorkerJob | None = None
_SLOTS: Slots | None = None


def init_worker(job: WorkerJob, threads: int | None = 1, slots: Slots | None = None) -> None:
    global _JOB, _SLOTS
    _JOB, _SLOTS = job, slots
    if threads is not None:
        torch.set_num_threads(threads)


def init_pool_worker(job: WorkerJob, slots: Slots | None = None) -> None:
    """:func:`init_worker` in a pool process, which leaves Ctrl-C to the main process: that one stops the pool,
    instead of every worker printing a KeyboardInterrupt traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    init_worker(job, slots=slots)


def prepare_chunk(
    chunk: list[tuple[RawSample, np.ndarray | None, str | None]], slot: int | None = None
) -> tuple[list[Prepared], dict[str, tuple]]:
    """``(raw, stored crops or None, known error or None)`` items -> :class:`Prepared`, same order, and the
    handles of the normalised values left in ``slot`` of the worker's :class:`Slots` (see :func:`take_shared`)."""
    prepared = [_decode_and_crop(raw, crops, known_error) for raw, crops, known_error in chunk]
    for modality, codec in _JOB.codecs.items():
        _normalise(modality, codec, [p for p in prepared if p.error is None and modality in p.values])
    for modality, codec in _JOB.set_codecs.items():
        for p in prepared:
            if p.error is None and modality in p.values:
                _normalise_items(modality, codec, p)
    shared = {}
    if _SLOTS is not None and slot is not None:
        ok = [p for p in prepared if p.error is None]
        for modality in _JOB.codecs:
            values = [p.values.get(modality) for p in ok]
            if ok and all(isinstance(v, np.ndarray) for v in values):
                handle = _SLOTS.put(slot, modality, values)
                if handle is not None:
                    shared[modality] = handle
                    for p in ok:
                        del p.values[modality]
    return prepared, shared


def take_shared(prepared: list[Prepared], shared: dict[str, tuple], slots: Slots | None, slot: int) -> list[Prepared]:
    """Main side of :func:`prepare_chunk`: give the ok samples their values back from ``slot``."""
    ok = [p for p in prepared if p.error is None]
    for modality, handle in shared.items():
        for p, value in zip(ok, slots.take(slot, modality, handle)):
            p.values[modality] = value
    return prepared


def _decode_and_crop(raw: RawSample, crops: np.ndarray | None, known_error: str | None) -> Prepared:
    """Decode one sample and cut its crops; ``known_error`` skips the work."""
    prepared = Prepared(raw.key, {m: ref.source for m, ref in raw.files.items()})
    if known_error is not None:
        prepared.error = known_error
        return prepared
    sample = decode_sample(raw, _JOB.options)
    if sample.errors:
        prepared.error = "; ".join(f"{m}: {message}" for m, message in sample.errors.items())
        return prepared
    modality = None
    try:
        frame = _source_size(sample.values, sample.sources)
        pixels = any(_JOB.sizes.get(m) for m in sample.values)  # else (1, 1) stands for "nothing to crop"
        problem = image_problem(*frame, _JOB.min_image_size, _JOB.max_aspect_ratio) if pixels else None
        if problem is not None:
            prepared.error = problem
            return prepared
        prepared.crops = (
            crops
            if crops is not None
            else make_crop_settings(*frame, _JOB.n_crops, _JOB.seed, raw.key, **_JOB.crop_recipe)
        )
        for modality, value in sample.values.items():
            size = _JOB.sizes[modality]
            crops_of_value = [
                apply_crop({modality: value}, row, size)[modality] if size else value for row in prepared.crops
            ]
            prepared.values[modality] = np.stack(crops_of_value) if modality in _JOB.codecs else crops_of_value
    except TokzooError as error:
        where = f"{modality}: {sample.sources[modality]}: " if modality else ""
        prepared.error, prepared.values = f"{where}{error}", {}
    return prepared


def _normalise(modality: str, codec, samples: list[Prepared]) -> None:
    """``codec.to_model`` over the crops of all ``samples`` at once; sample by sample when that is refused
    (or their shapes differ), so that only the offending samples fail."""
    if not samples:
        return
    values = [s.values[modality] for s in samples]
    if len(samples) > 1 and len({v.shape[1:] for v in values}) > 1:
        for sample in samples:
            _normalise(modality, codec, [sample])
        return
    try:
        rows = codec.to_model(np.concatenate(values) if len(values) > 1 else values[0]).numpy()
    except TokzooError as error:
        if len(samples) > 1:
            for sample in samples:
                _normalise(modality, codec, [sample])
            return
        sample = samples[0]
        sample.error, sample.values = f"{modality}: {sample.sources[modality]}: {error}", {}
        return
    start = 0
    for sample in samples:
        count = len(sample.values[modality])
        sample.values[modality], start = rows[start : start + count], start + count


def _normalise_items(modality: str, codec, sample: Prepared) -> None:
    """A set codec's ``to_model`` on each crop of ``sample`` (one image's items per call) -> list of float32
    (N_i, C, ...); a crop without items gives N_i = 0. A refusal fails the sample."""
    try:
        sample.values[modality] = [codec.to_model(crop).numpy() for crop in sample.values[modality]]
    except TokzooError as error:
        sample.error, sample.values = f"{modality}: {sample.sources[modality]}: {error}", {}


def _frame(value, source: str) -> tuple[int, int] | None:
    """(H, W) of the pixel frame of a value to crop: an array's first two axes, a pose dict's height and
    width (None when it has neither)."""
    if not isinstance(value, dict):
        return np.shape(value)[:2]
    frame = (value.get("height"), value.get("width"))
    if frame == (None, None):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 1 for v in frame):
        raise InvalidValueError(source, f"height and width must be numbers >= 1, got {frame[0]!r}, {frame[1]!r}")
    return round(frame[0]), round(frame[1])


def _source_size(values: dict, sources: dict) -> tuple[int, int]:
    """(H, W) shared by the sample's cropped values; raises when they disagree. A pose dict without its
    width/height takes the frame of the other values, alone the frame its codec assumes (``frame_size``).
    With nothing to crop (structured values, vectors, feature maps) it is (1, 1): every crop row then
    covers the whole sample."""
    cropped = [m for m in values if _JOB.sizes.get(m)]
    sizes = {m: frame for m in cropped if (frame := _frame(values[m], sources[m])) is not None}
    if not sizes:
        frames = [_JOB.set_codecs[m].frame_size for m in cropped if m in _JOB.set_codecs]
        return next((tuple(f) for f in frames if f), (1, 1))
    if len(set(sizes.values())) > 1:
        raise TokzooError(
            "modalities differ in size: " + ", ".join(f"{m} {h}x{w} ({sources[m]})" for m, (h, w) in sizes.items())
        )
    return next(iter(sizes.values()))


@contextmanager
def _one_thread():
    """Inline preparation uses one torch thread, as a worker does, so results do not depend on where it runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class OrderedPool:
    """``map(tagged)``: :func:`prepare_chunk` over ``(tag, chunk)`` pairs -> ``(tag, prepared)`` in input order,
    at most ``ahead`` chunks in flight.

    ``workers=0`` runs inline in this process. ``shared``: bytes per chunk per modality to reserve in
    :class:`Slots` for normalised crops (forked workers only; what does not fit is pickled).
    """

    def __init__(self, job: WorkerJob, workers: int, ahead: int | None = None, shared: dict[str, int] | None = None):
        self.workers = workers
        self.ahead = ahead or 2 * workers + 2
        self.slots = None
        if workers:
            fork = "fork" in multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if fork else "spawn")
            # Chunk i gets slot i % ahead: the slot of chunk i - ahead, whose result was taken (copied out) before
            # chunk i is sent, as at most ``ahead`` chunks are in flight.
            self.slots = Slots(self.ahead, shared) if fork and shared else None
            self.pool = context.Pool(workers, initializer=init_pool_worker, initargs=(job, self.slots))
        else:
            self.pool = None
            init_worker(job, threads=None)

    def map(self, tagged: Iterable[tuple[object, list]]) -> Iterator[tuple[object, list[Prepared]]]:
        if self.pool is None:
            for tag, chunk in tagged:
                with _one_thread():
                    prepared, _ = prepare_chunk(chunk)
                yield tag, prepared
            return
        pending = deque()
        for index, (tag, chunk) in enumerate(tagged):
            slot = index % self.ahead if self.slots else None
            pending.append((tag, slot, self.pool.apply_async(prepare_chunk, (chunk, slot))))
            if len(pending) >= self.ahead:
                yield self._result(*pending.popleft())
        while pending:
            yield self._result(*pending.popleft())

    def _result(self, tag, slot, result) -> tuple[object, list[Prepared]]:
        prepared, shared = result.get()
        return tag, take_shared(prepared, shared, self.slots, slot)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
        self.slots = None  # unmapped once no array viewing it is left (closing it could leave a view dangling)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
