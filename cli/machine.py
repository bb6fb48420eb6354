"""``--threads`` and ``--device`` with the same defaults in every command that trains or evaluates.

The thread default comes from the machine: the CPUs this process may use, less those other processes keep busy
(the 1-minute load average), at least 1. torch's own default (every core) made a 30-step ``fm train`` on a busy
2-core machine 3.7x slower than one thread (58.7 s vs 15.8 s).
"""

from __future__ import annotations

import os

import click


def default_threads() -> int:
    """CPUs available to this process minus the machine's 1-minute load (rounded), clamped to [1, CPUs]."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cpus, cpus - round(busy)))


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


threads_option = click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads (default: the CPUs not kept busy by other processes, from the load average; "
    "CPU runs are bit-reproducible for the same seed and thread count).",
)
"""``--threads`` alone (default: :func:`default_threads`), for commands that run on the CPU only."""


def machine_options(command):
    """``--threads`` (default: :func:`default_threads`) and ``--device`` (default: cuda when present, else cpu)."""
    command = click.option(
        "--device",
        default=None,
        help="torch device, e.g. cpu, cuda (default: cuda when present, with bf16 autocast; else cpu).",
    )(command)
    return threads_option(command)


def apply_threads(threads: int | None) -> int:
    """Set torch's CPU threads to ``threads`` or, when None, the machine's default; returns the count."""
    import torch

    chosen = threads or default_threads()
    torch.set_num_threads(chosen)
    return chosen


def threads_note(threads: int | None, chosen: int) -> str:
    """How the thread count was chosen, for a run's closing line (after it, so a refused run still prints one line)."""
    if threads is not None:
        return f"threads: {chosen}"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return f"threads: {chosen}, this machine's idle CPUs at load {load:.1f} (--threads N to choose)"
