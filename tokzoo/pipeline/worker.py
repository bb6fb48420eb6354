"""Worker side: decode and crop samples, in worker processes or inline.

:func:`prepare` turns one :class:`~tokzoo.io.RawSample` into a :class:`Prepared`: the crop
settings (stored ones when given, else made from ``(seed, key, source size)``) and, per modality,
the crops resized to that modality's size and, where the job has the modality's codec, checked against
its contract and normalised (``codec.to_model``), so the main process only runs the model. It never
raises for bad data: the sample comes back with ``error`` set. :class:`OrderedPool` maps it over
chunks of samples with a bounded number in flight and yields results in input order, so output
does not depend on the number of workers. Workers are forked where the platform can (no second
import of torch); everything is also spawn-safe (top-level functions, the job passed to each
worker once through the pool initializer).
"""

from __future__ import annotations

import multiprocessing
import signal
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from tokzoo.crops import apply_crop, make_crop_settings
from tokzoo.errors import TokzooError
from tokzoo.io import RawSample, decode_sample


@dataclass(frozen=True)
class WorkerJob:
    """What every worker needs: per-modality output size (None: not cropped), the crop recipe, and the
    codecs of the modalities whose crops are normalised here."""

    sizes: dict[str, tuple[int, int] | None]
    n_crops: int
    seed: int
    crop_recipe: dict
    options: dict[str, dict] = field(default_factory=dict)
    codecs: dict = field(default_factory=dict)


@dataclass
class Prepared:
    key: str
    sources: dict[str, str]
    crops: np.ndarray | None = None
    values: dict[str, list] = field(default_factory=dict)
    error: str | None = None


_JOB: WorkerJob | None = None


def init_worker(job: WorkerJob, threads: int | None = 1) -> None:
    global _JOB
    _JOB = job
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def init_pool_worker(job: WorkerJob) -> None:
    """:func:`init_worker` in a pool process, which leaves Ctrl-C to the main process: that one stops the pool,
    instead of every worker printing a KeyboardInterrupt traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    init_worker(job)


def prepare_chunk(chunk: list[tuple[RawSample, np.ndarray | None, str | None]]) -> list[Prepared]:
    """``(raw, stored crops or None, known error or None)`` items -> :class:`Prepared`, same order."""
    return [prepare(raw, crops, known_error) for raw, crops, known_error in chunk]


def prepare(raw: RawSample, crops: np.ndarray | None, known_error: str | None = None) -> Prepared:
    """Decode, crop and check one sample for the worker job; ``known_error`` skips the work."""
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
        prepared.crops = crops if crops is not None else make_crop_settings(
            *_source_size(sample.values, sample.sources), _JOB.n_crops, _JOB.seed, raw.key,
            **_JOB.crop_recipe)
        for modality, value in sample.values.items():
            size = _JOB.sizes[modality]
            crops_of_value = [apply_crop({modality: value}, row, size)[modality] if size else value
                              for row in prepared.crops]
            codec = _JOB.codecs.get(modality)
            prepared.values[modality] = list(codec.to_model(np.stack(crops_of_value)).numpy()) if codec else crops_of_value
    except TokzooError as error:
        where = f"{modality}: {sample.sources[modality]}: " if modality else ""
        prepared.error, prepared.values = f"{where}{error}", {}
    return prepared


def _source_size(values: dict, sources: dict) -> tuple[int, int]:
    """(H, W) shared by the sample's cropped values; raises when they disagree. With nothing to crop
    (structured values, vectors, feature maps) it is (1, 1): every crop row then covers the whole sample."""
    sizes = {m: np.shape(v)[:2] for m, v in values.items() if _JOB.sizes.get(m)}
    if not sizes:
        return 1, 1
    if len(set(sizes.values())) > 1:
        raise TokzooError("modalities differ in size: " + ", ".join(f"{m} {h}x{w} ({sources[m]})" for m, (h, w) in sizes.items()))
    return next(iter(sizes.values()))


class OrderedPool:
    """``map(tagged)``: :func:`prepare_chunk` over ``(tag, chunk)`` pairs -> ``(tag, results)`` in input order,
    at most ``ahead`` chunks in flight.

    ``workers=0`` runs inline in this process.
    """

    def __init__(self, job: WorkerJob, workers: int, ahead: int | None = None):
        self.workers = workers
        self.ahead = ahead or 2 * workers + 2
        if workers:
            context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
            self.pool = context.Pool(workers, initializer=init_pool_worker, initargs=(job,))
        else:
            self.pool = None
            init_worker(job, threads=None)

    def map(self, tagged: Iterable[tuple[object, list]]) -> Iterator[tuple[object, list[Prepared]]]:
        if self.pool is None:
            for tag, chunk in tagged:
                yield tag, prepare_chunk(chunk)
            return
        pending = deque()
        for tag, chunk in tagged:
            pending.append((tag, self.pool.apply_async(prepare_chunk, (chunk,))))
            if len(pending) >= self.ahead:
                tag, result = pending.popleft()
                yield tag, result.get()
        while pending:
            tag, result = pending.popleft()
            yield tag, result.get()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
