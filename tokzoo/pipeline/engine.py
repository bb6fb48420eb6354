"""Engines: what turns a sharded job's missing units into committed shards.

A job (:func:`tokzoo.pipeline.tokenize`, :func:`tokzoo.pipeline.pseudo_label.pseudo_label`) does everything up
to the shard loop itself (claim OUT, load and check the models, write the manifest), then hands a work object
(:class:`~tokzoo.pipeline.run.ShardWork`, :class:`~tokzoo.pipeline.pseudo_label.LabelWork`) to the engine its
caller chose, as img2dataset's distributors are handed a per-shard job. The caller picks the engine (the CLI:
``--engine local|ray``); a job never imports one. :class:`LocalEngine` runs here; ``tokzoo.scale.RayEngine``
across a Ray cluster. Every engine commits each shard through the work object, so OUT is the same bytes.
"""

from __future__ import annotations

import time
from typing import Protocol

from tqdm import tqdm

from .shard import ShardBuilder
from .worker import CHUNK, OrderedPool


class Engine(Protocol):
    remote: bool
    """True when the models run on the engine's workers: the job loads them on the CPU only to check them."""

    def tokenize(self, work) -> tuple[int, list[str]]:
        """Make and commit every missing shard of ``work`` (a ShardWork); (shards written, per-node lines)."""

    def pseudo_label(self, work) -> tuple[int, list[str]]:
        """Label and commit every missing shard of ``work`` (a LabelWork); (shards written, per-node lines)."""


class LocalEngine:
    """This machine: worker processes prepare the samples, this process runs the models and commits."""

    remote = False

    def tokenize(self, work) -> tuple[int, list[str]]:
        job, written = work.job, 0
        # Keep two encoder batches prepared ahead, so workers never wait for the encoder to take a chunk.
        ahead = max(2 * job.workers + 2, 2 * -(-job.batch_size // CHUNK))
        with (
            OrderedPool(work.worker_job, job.workers, ahead, work.shared) as pool,
            tqdm(
                total=work.total,
                unit="sample",
                smoothing=0.1,
                desc="tokenize",
                disable=not job.progress,
                dynamic_ncols=True,
            ) as bar,
        ):
            shard, started = None, time.perf_counter()
            for (state, last), prepared in pool.map(work.plan.chunks(work.units)):
                if shard is None:
                    shard = ShardBuilder(state, work.specs_for(state), job.batch_size)
                shard.add(prepared)
                bar.update(len(prepared))
                if last:
                    work.commit(shard.finish(), time.perf_counter() - started)
                    shard, started, written = None, time.perf_counter(), written + 1
        return written, []

    def pseudo_label(self, work) -> tuple[int, list[str]]:
        """Decode, label and commit shard after shard in this process."""
        written, started = 0, time.perf_counter()
        with tqdm(
            total=work.total, unit="sample", desc="pseudo-label", disable=not work.job.progress, dynamic_ncols=True
        ) as bar:
            for unit in work.plan.todo(work.units):
                payload = work.label(unit)
                work.commit(unit, payload, time.perf_counter() - started)
                bar.update(len(payload.records))
                written, started = written + 1, time.perf_counter()
        return written, []
