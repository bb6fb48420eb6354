"""The distributor loop shared by the tokenize and pseudo-label engines.

Units come from the job's plan one at a time. Each one gets a CPU task (``prepare``); when its result is ready
(it stays in the object store, the driver never fetches it) it goes to the least busy actor (``process``, at most
``per_actor`` calls queued on each), and the actor's small result is handed to ``commit`` on the driver. Shards
finish in any order; each is committed whole, so the order does not change OUT. Bounded: at most ``ahead``
prepared shards exist at once.

Faults: a CPU task whose worker dies is run again by Ray (``max_retries``); an actor whose process dies is
restarted (reloading its models) and its pending calls are retried (``max_restarts``, ``max_task_retries``).
A shard is committed only from a complete result, so a retry can neither duplicate nor drop samples. An error
raised by tokzoo code in a task or actor (an input that changed since OUT was written) is re-raised here as
itself.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterable, Iterator

from tqdm import tqdm

from tokzoo.errors import ConfigError, TokzooError

RETRIES = 4
"""Times Ray runs a CPU task again, or restarts an actor / retries its call, after its process died."""


def cpu_count(ray) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def check_cpus(ray, cpu_actors: int) -> None:
    """Refuse actors that would take every CPU of the cluster (one each), leaving none for decoding."""
    cpus = cpu_count(ray)
    if cpu_actors >= cpus:
        raise ConfigError(
            f"--actors {cpu_actors} on CPUs would take all {cpus} CPUs of the Ray cluster, leaving "
            "none for decoding; use fewer actors, or --gpus"
        )


def start_actors(ray, actor_type: type, engine, make_args: Callable[[bool, int], tuple]) -> list:
    """``engine.actors`` (default: one per ``engine.gpus``, at least one) actors of ``actor_type``, each built with
    ``make_args(on_gpu, count)``, waited for until their models are loaded; ConfigError when the cluster lacks
    the GPUs or CPUs, or an actor reports a problem (its ``ready()`` answer)."""
    gpus = engine.gpus
    if gpus and ray.cluster_resources().get("GPU", 0) < gpus:
        raise ConfigError(f"--gpus {gpus}: the Ray cluster has {ray.cluster_resources().get('GPU', 0):g} GPUs")
    count = engine.actors or max(1, gpus)
    check_cpus(ray, 0 if gpus else count)
    actor_class = ray.remote(actor_type).options(
        num_cpus=1, num_gpus=1 if gpus else 0, max_restarts=RETRIES, max_task_retries=RETRIES
    )
    actors = [actor_class.remote(*make_args(bool(gpus), count)) for _ in range(count)]
    problems = [p for p in ray.get([actor.ready.remote() for actor in actors]) if p]
    if problems:
        raise ConfigError(problems[0])
    return actors


def unwrap(error: Exception) -> Exception:
    """The TokzooError a Ray task raised, else ``error``."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, TokzooError) else error


def distribute(
    ray,
    units: Iterable,
    prepare: Callable,
    process: Callable,
    commit: Callable[[object, object, int], int],
    actors: list,
    ahead: int,
    bar: tqdm,
    per_actor: int = 2,
    unseen: Callable[[], int] | None = None,
) -> tuple[int, int]:
    """Run every unit through ``prepare(unit) -> ref`` and ``process(actor, unit, ref) -> ref``, then
    ``commit(unit, result, actor index) -> samples``; returns (units committed, their samples). ``bar`` counts
    samples; without a total it gets an estimate: samples per shard so far x shards left (in flight, and
    ``unseen()`` not yet read)."""
    source: Iterator = iter(units)
    preparing, ready, working = {}, deque(), {}
    busy = [0] * len(actors)
    committed = samples = seen = 0
    exhausted = False
    estimate = bar.total is None and unseen is not None
    while True:
        while not exhausted and len(preparing) + len(ready) + len(working) < ahead:
            unit = next(source, None)
            if unit is None:
                exhausted = True
                break
            seen += 1
            preparing[prepare(unit)] = unit
        while ready and min(busy) < per_actor:
            index = busy.index(min(busy))
            unit, ref = ready.popleft()
            working[process(actors[index], unit, ref)] = (unit, index)
            busy[index] += 1
        if not preparing and not working:
            return committed, samples
        done, _ = ray.wait([*preparing, *working], num_returns=1)
        for ref in done:
            if ref in preparing:
                ready.append((preparing.pop(ref), ref))
                continue
            unit, index = working.pop(ref)
            busy[index] -= 1
            try:
                result = ray.get(ref)
            except Exception as error:  # noqa: BLE001 - a tokzoo error comes back as itself
                raise unwrap(error) from None
            count = commit(unit, result, index)
            committed, samples = committed + 1, samples + count
            if estimate:
                bar.total = samples + round(samples / committed * (unseen() + seen - committed))
            bar.update(count)
