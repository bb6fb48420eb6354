"""Input tars on object storage: each one is copied to a local temporary file, then read as a local tar.

Reading a local copy keeps one tar reader (:class:`tokzoo.io.TarReader`, with its size and damage checks)
for every input; the copy keeps the object's file name, and every source and error message names the URL,
so outputs do not depend on where the tar was read. An object that cannot be fetched reads as a missing
local tar would: one failed sample saying why, not a stopped job.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Sequence

from tokzoo.io import RawSample, TarReader

from . import ObjectPath


def remote_tar_samples(url: str, modalities: Sequence[str], max_member_bytes: int) -> Iterator[RawSample]:
    """Raw samples of the tar at ``url`` (fsspec), as :meth:`TarReader.raw` gives them for a local tar."""
    folder = Path(tempfile.mkdtemp(prefix="tokzoo-shard-"))
    local = folder / url.rstrip("/").rsplit("/", 1)[-1]
    try:
        try:
            remote = ObjectPath.from_url(url)
            remote.fs.get_file(remote.path, str(local))
        except (OSError, ValueError):
            local.unlink(missing_ok=True)  # read as absent: the reader reports it like a missing local tar
        for raw in TarReader(str(local), list(modalities), max_member_bytes).raw():
            yield _renamed(raw, str(local), url)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _renamed(raw: RawSample, local: str, url: str) -> RawSample:
    files = {m: replace(ref, source=ref.source.replace(local, url)) for m, ref in raw.files.items()}
    return RawSample(raw.key, files, {m: e.replace(local, url) for m, e in raw.errors.items()})
