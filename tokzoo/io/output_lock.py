"""One run at a time per output folder: an advisory lock on the folder itself, held while a run writes it.

A second ``tokenize``, ``pseudo-label`` or ``scenes`` run into the same OUT waits (saying so on stderr) until the first one ends,
then resumes from what it left: without the lock, its start-up clean-up (drop the staged ``*.tmp`` files a killed
run left) removes the first run's staged files mid-commit. ``flock`` on the folder's descriptor: released when the
run ends or its process dies, never left behind. Object-store outputs (``s3://...``) are not locked: one writer
per prefix is the caller's to keep.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not serialised there
    fcntl = None


class OutputLock:
    """Held from construction until :meth:`release` (or the end of a ``with`` block)."""

    def __init__(self, folder: Path, note=None):
        self.fd = None
        if fcntl is None or not isinstance(folder, Path):
            return
        self.fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            (note or _stderr)(f"{folder}: another tokzoo run is writing it; waiting for it to finish")
            fcntl.flock(self.fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the lock
            self.fd = None

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_then_check(folder: Path, check: Callable[[], None]) -> OutputLock:
    """The folder's lock, taken before ``check`` runs (another run's commit may be under way), and released again
    when ``check`` raises; the caller releases it when its run ends."""
    lock = OutputLock(folder)
    try:
        check()
    except BaseException:
        lock.release()
        raise
    return lock


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
