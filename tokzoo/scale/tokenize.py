"""``tokzoo tokenize --engine ray``: decode + crops as Ray CPU tasks, encoders in actors, commits on the driver.

Per unit the driver reads what OUT holds (:class:`~tokzoo.pipeline.shard.ShardState`), a CPU task runs the
local worker code over the unit in the local engine's chunks (:func:`prepare_shard`), an :class:`Encoder`
actor encodes the prepared samples with :class:`~tokzoo.pipeline.shard.ShardBuilder` (same batches as locally),
and the driver commits the tokens with :func:`~tokzoo.pipeline.writer.commit_shard`. Every byte of OUT is
therefore made by the code that makes it locally.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from dataclasses import dataclass

from tqdm import tqdm

from tokzoo.errors import ConfigError
from tokzoo.pipeline.modalities import load_specs
from tokzoo.pipeline.run import Plan, ShardWork
from tokzoo.pipeline.shard import ShardBuilder, ShardState
from tokzoo.pipeline.worker import CHUNK, WorkerJob, init_worker, prepare_chunk

from .cluster import NodeReport, connected, restarted, startup_line, use_cpus, where
from .gpu import check_fits, tensor_bytes
from .scheduler import RETRIES, cpu_count, distribute, start_actors

KILL_ENV = "TOKZOO_TEST_KILL_ONCE"
"""Test hook: ``prepare:PATH`` or ``encode:PATH``: the first such task (or actor call) that finds file PATH deletes
it and SIGKILLs its own process (worker-death tests; Ray must run it again)."""


def kill_once(stage: str) -> None:
    hook = os.environ.get(KILL_ENV, "")
    wanted, _, path = hook.partition(":")
    if wanted == stage and path:
        try:
            os.remove(path)
        except FileNotFoundError:
            return
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Unit:
    """A unit of work as shipped to a CPU task: what OUT holds for it and the unit itself (a lazy tar: its path)."""

    state: ShardState
    unit: object


def prepare_shard(job: WorkerJob, unit: Unit) -> dict:
    """CPU task: the unit's samples decoded, cropped and normalised, in the local engine's chunks of ``CHUNK``."""
    started = time.perf_counter()
    init_worker(job, threads=1)
    items = Plan.items(unit.state, unit.unit)
    prepared = []
    while chunk := list(itertools.islice(items, CHUNK)):
        prepared += prepare_chunk(chunk)[0]
        kill_once("prepare")
    return {"prepared": prepared, "where": {**where(), "seconds": time.perf_counter() - started}}


class Encoder:
    """Actor: the job's tokenizers, loaded once (on this actor's GPU when it has one), encoding whole shards."""

    def __init__(
        self,
        modalities: list[str],
        tokenizers: dict[str, str],
        untrained: bool,
        size,
        hashes: dict,
        device: str | None,
        actors: int,
    ):
        import torch

        if not (device and device.startswith("cuda")):
            use_cpus(actors)
        self.error = None
        try:
            specs = load_specs(modalities, tokenizers, untrained, None, size)
            changed = [s.modality for s in specs if s.content_hash != hashes[s.modality]]
            if changed:
                raise ConfigError(
                    f"tokenizer of {changed[0]} differs on a worker node from the driver's "
                    f"({tokenizers.get(changed[0], changed[0])}); install the same one on every node"
                )
            if device and device.startswith("cuda"):
                memory = torch.cuda.get_device_properties(torch.device(device)).total_memory
                for spec in specs:
                    check_fits(f"tokenizer {spec.reference!r} ({spec.modality})", tensor_bytes(spec.tokenizer), memory)
                for spec in specs:
                    if hasattr(spec.tokenizer, "to"):
                        spec.tokenizer.to(device)
            self.specs = {spec.modality: spec for spec in specs}
        except ConfigError as error:
            self.error = str(error)
        self.loads = 1
        self.restarted = restarted()

    def ready(self) -> str | None:
        """None, or why the models could not be loaded (one line)."""
        return self.error

    def encode(self, prepared: dict, index: int, todo: list[str], batch_size: int) -> dict:
        started = time.perf_counter()
        shard = ShardBuilder(ShardState(index, []), [self.specs[m] for m in todo], batch_size)
        shard.add(prepared["prepared"])
        kill_once("encode")
        shard.finish()
        me = {**where(), "seconds": time.perf_counter() - started, "loads": self.loads, "restarted": self.restarted}
        return {"samples": shard.samples, "tokens": shard.tokens, "prepare": prepared["where"], "encode": me}


def run_ray(work: ShardWork, engine) -> tuple[int, list[str]]:
    """``engine`` (a :class:`~tokzoo.scale.engine.RayEngine`) running :func:`tokzoo.pipeline.tokenize`'s shards;
    returns (shards written, per-node summary lines)."""
    job, todo = work.job, work.plan.todo(work.units)
    first = next(todo, None)
    if first is None:  # every shard is complete: no cluster needed
        return 0, []
    began = time.perf_counter()
    with connected(engine.address) as ray:
        hashes = {spec.modality: spec.content_hash for spec in work.specs}
        tokenizers = {spec.modality: spec.reference for spec in work.specs}
        actors = start_actors(
            ray,
            Encoder,
            engine,
            lambda on_gpu, count: (  # --gpus decides: no GPU -> the actor's CPU
                work.requested,
                tokenizers,
                job.untrained,
                job.size,
                hashes,
                "cuda" if on_gpu else None,
                count,
            ),
        )
        count = len(actors)
        ready = time.perf_counter()
        prepare = ray.remote(prepare_shard).options(num_cpus=1, max_retries=RETRIES)
        worker_job = ray.put(work.worker_job)
        report, started = NodeReport(), {}

        def submit(pair):
            state, unit = pair
            started[state.index] = time.perf_counter()
            return prepare.remote(worker_job, Unit(state, unit))

        def process(actor, pair, ref):
            state, _ = pair
            return actor.encode.remote(ref, state.index, [s.modality for s in work.specs_for(state)], job.batch_size)

        def commit(pair, result, actor: int) -> int:
            state, _ = pair
            shard = ShardBuilder(state, work.specs_for(state), job.batch_size)
            shard.samples, shard.tokens = result["samples"], result["tokens"]
            work.commit(shard, time.perf_counter() - started.pop(state.index))
            report.add(result["prepare"], actor, result["encode"], len(shard.samples))
            return len(shard.samples)

        total_units, ahead = work.units_total, max(2, cpu_count(ray) + 2 * count)
        with tqdm(
            total=work.total,
            unit="sample",
            smoothing=0.1,
            desc="tokenize",
            disable=not job.progress,
            dynamic_ncols=True,
        ) as bar:
            written, samples = distribute(
                ray,
                itertools.chain([first], todo),
                submit,
                process,
                commit,
                actors,
                ahead,
                bar,
                unseen=None if total_units is None else lambda: total_units - work.plan.shards,
            )
        return written, [
            startup_line(ready - began, count, samples, time.perf_counter() - ready),
            *report.lines("encoder"),
        ]
