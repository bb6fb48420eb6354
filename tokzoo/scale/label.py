"""``tokzoo pseudo-label --engine ray``: decoding as Ray CPU tasks, the labelers in actors, commits on the driver.

Per unit a CPU task decodes its samples (:meth:`~tokzoo.pipeline.pseudo_label.LabelPlan.decode`), a
:class:`Labelers` actor (every labeler of the job, loaded once) labels them in the local engine's batches and builds
the shard's tar and table (:func:`~tokzoo.pipeline.pseudo_label.label_shard`), and the driver writes them with
:meth:`~tokzoo.pipeline.pseudo_label.LabelWork.commit` (tar, table, then the stats marker): OUT is the local
engine's, byte for byte.
"""

from __future__ import annotations

import itertools
import time

from tqdm import tqdm

from tokzoo.errors import ConfigError
from tokzoo.pipeline.pseudo_label import LabelJob, LabelPlan, LabelWork, label_shard, plan_labelers

from .cluster import NodeReport, connected, restarted, startup_line, use_cpus, where
from .scheduler import RETRIES, cpu_count, distribute, start_actors
from .tokenize import kill_once


def decode_shard(plan: LabelPlan, unit) -> dict:
    """CPU task: the unit's ``(raw, decoded sample)`` pairs, in input order."""
    started = time.perf_counter()
    results = plan.decode(unit)
    kill_once("prepare")
    return {"results": results, "where": {**where(), "seconds": time.perf_counter() - started}}


class Labelers:
    """Actor: the job's labelers, created once (on this actor's GPU when it has one), labelling whole shards."""

    def __init__(self, job: LabelJob, device: str, actors: int):
        if not device.startswith("cuda"):
            use_cpus(actors)
        self.error = None
        try:
            self.labelers = plan_labelers(job.modalities, job.labelers, device, job.batch_size, job.labeler_options)
        except ConfigError as error:
            self.error = str(error)
        except RuntimeError as error:  # torch.cuda.OutOfMemoryError is one
            if "out of memory" not in str(error).lower():
                raise
            self.error = (
                f"the labelers of {', '.join(job.modalities)} do not fit one actor's GPU "
                f"({str(error).splitlines()[0]}); use GPUs with more memory or smaller models"
            )
        self.loads, self.restarted = 1, restarted()

    def ready(self) -> str | None:
        return self.error

    def label(self, decoded: dict) -> dict:
        started = time.perf_counter()
        kill_once("encode")
        payload = label_shard(self.labelers, decoded["results"])
        me = {**where(), "seconds": time.perf_counter() - started, "loads": self.loads, "restarted": self.restarted}
        return {"payload": payload, "prepare": decoded["where"], "encode": me}


def run_ray(work: LabelWork, engine) -> tuple[int, list[str]]:
    """``engine`` (a :class:`~tokzoo.scale.engine.RayEngine`) running
    :func:`tokzoo.pipeline.pseudo_label.pseudo_label`'s shards; returns (shards written, per-node lines)."""
    job, plan, units_total = work.job, work.plan, work.units_total
    todo = plan.todo(work.units)
    first = next(todo, None)
    if first is None:  # every shard is complete: no cluster needed
        return 0, []
    began = time.perf_counter()
    with connected(engine.address) as ray:
        actors = start_actors(ray, Labelers, engine, lambda on_gpu, count: (job, "cuda" if on_gpu else "cpu", count))
        count = len(actors)
        ready = time.perf_counter()
        decode = ray.remote(decode_shard).options(num_cpus=1, max_retries=RETRIES)
        plan_ref, report, started = ray.put(plan), NodeReport(), {}

        def submit(unit):
            started[unit.index] = time.perf_counter()
            return decode.remote(plan_ref, unit)

        def commit(unit, result, actor: int) -> int:
            payload = result["payload"]
            work.commit(unit, payload, time.perf_counter() - started.pop(unit.index))
            report.add(result["prepare"], actor, result["encode"], len(payload.records))
            return len(payload.records)

        with tqdm(
            total=work.total, unit="sample", desc="pseudo-label", disable=not job.progress, dynamic_ncols=True
        ) as bar:
            written, samples = distribute(
                ray,
                itertools.chain([first], todo),
                submit,
                lambda actor, unit, ref: actor.label.remote(ref),
                commit,
                actors,
                max(2, cpu_count(ray) + 2 * count),
                bar,
                unseen=None if units_total is None else lambda: units_total - plan.shards,
            )
        return written, [
            startup_line(ready - began, count, samples, time.perf_counter() - ready),
            *report.lines("labeler"),
        ]
