"""Connecting to a Ray cluster for one job, and what each node and actor did."""

from __future__ import annotations

import os
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..errors import ConfigError
from . import require_ray

FORWARDED = ("TOKZOO_", "FSSPEC_")
"""Environment variables of the driver passed to every worker: tokzoo's own (test hooks) and fsspec's
``FSSPEC_<PROTOCOL>_<OPTION>`` settings (e.g. ``FSSPEC_S3_ENDPOINT_URL``), so workers open URLs as the driver does."""


@contextmanager
def connected(address: str | None):
    """Ray connected for the block: to ``address``; else to ``RAY_ADDRESS``; else a Ray started on this machine.
    A Ray this process had already initialised is used as it is and left running."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED)}
    address = address or os.environ.get("RAY_ADDRESS") or None
    check_reachable(address)
    ray.init(
        address=address,
        include_dashboard=False,
        runtime_env={"env_vars": env} if env else None,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()


CONNECT_TIMEOUT_S = 10.0
"""How long ``--address`` may take to accept a TCP connection before the job is refused (ray.init retries a
missing cluster for minutes)."""


def check_reachable(address: str | None, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """ConfigError (one line) unless ``HOST:PORT`` / ``ray://HOST:PORT`` accepts a TCP connection within ``timeout``
    seconds; None, ``auto`` and ``local`` are left to Ray."""
    import socket

    if not address or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--address {address!r}: expected HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise ConfigError(
            f"--address {address}: no Ray cluster answers there within {timeout:.0f} s "
            f"({error.strerror or type(error).__name__})"
        ) from None


def startup_line(startup: float, actors: int, samples: int, seconds: float) -> str:
    """The job's first summary line: start-up (connect, create the actors, load their models), then the rate."""
    return (
        f"ray: {startup:.1f} s to connect and start {actors} actor(s) with their models, then {samples} samples "
        f"in {seconds:.1f} s ({samples / max(seconds, 1e-9):.1f} samples/s)"
    )


def where() -> dict:
    """This worker's node (ip and id) and process id."""
    import ray

    context = ray.get_runtime_context()
    return {"ip": ray.util.get_node_ip_address(), "node": context.get_node_id()[:8], "pid": os.getpid()}


def use_cpus(actors: int) -> None:
    """In a CPU actor: torch threads = this node's cores / the job's actors (at least 1), instead of the single
    thread Ray's ``num_cpus=1`` implies, so one actor per node encodes with the cores the local engine's main
    process would use. Decode tasks run on the CPUs Ray has left."""
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, actors)))


def restarted() -> bool:
    """In an actor: whether Ray restarted it after its process died."""
    import ray

    return bool(ray.get_runtime_context().was_current_actor_reconstructed)


@dataclass
class NodeReport:
    """Per node: shards prepared (decode + crops) and their CPU task seconds; per actor: shards, samples, seconds,
    model loads per process it ran in, and whether Ray restarted it (its process died: models loaded again)."""

    prepared: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0.0]))
    actors: dict = field(default_factory=dict)

    def add(self, prepare: dict, actor: int, work: dict, samples: int) -> None:
        node = (prepare["ip"], prepare["node"])
        self.prepared[node][0] += 1
        self.prepared[node][1] += samples
        self.prepared[node][2] += prepare["seconds"]
        entry = self.actors.setdefault(
            actor, {"node": (work["ip"], work["node"]), "shards": 0, "samples": 0, "seconds": 0.0, "pids": {}}
        )
        entry["node"] = (work["ip"], work["node"])
        entry["shards"] += 1
        entry["samples"] += samples
        entry["seconds"] += work["seconds"]
        entry["pids"][work["pid"]] = work["loads"]
        entry["restarted"] = entry.get("restarted", False) or work.get("restarted", False)

    def lines(self, what: str) -> list[str]:
        out = [
            f"node {ip} ({node}): prepared {shards} shards, {samples} samples in {seconds:.1f} s of CPU tasks"
            for (ip, node), (shards, samples, seconds) in sorted(self.prepared.items())
        ]
        for index, entry in sorted(self.actors.items()):
            ip, node = entry["node"]
            loads = sum(entry["pids"].values())
            out.append(
                f"{what} actor {index} on node {ip} ({node}): {entry['shards']} shards, {entry['samples']} "
                f"samples in {entry['seconds']:.1f} s, {loads} model load(s) in {len(entry['pids'])} process(es)"
                + (", restarted after a process died" if entry["restarted"] else "")
            )
        return out

    def loads(self) -> dict[int, int]:
        """Model loads per actor (summed over its processes)."""
        return {index: sum(entry["pids"].values()) for index, entry in self.actors.items()}
