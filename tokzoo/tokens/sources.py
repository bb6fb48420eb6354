"""The raw samples a token dataset is made from: ``open_input`` reads a manifest entry's ``input`` (a folder,
tars, an object-store URL, or the dataset's own ``_source`` of rendered scenes) and ``units`` cuts a reader
into the units the jobs shard by. The tokenize and pseudo-label jobs, fm's evaluation and the browser read
sources through here."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from tokzoo.errors import InputError
from tokzoo.io import RawSample, Reader, TarReader, open_reader
from tokzoo.io.safety import MAX_FILE_BYTES
from tokzoo.storage import as_path, is_url

from .layout import SOURCE


@dataclass
class Unit:
    index: int
    source: str
    raws: Iterable[RawSample]


def open_input(source: str | Path, modalities: Sequence[str], max_member_bytes: int = MAX_FILE_BYTES) -> Reader:
    """A reader over ``source`` (``_source`` of scenes: its tars) for ``modalities``; files and tar members over
    ``max_member_bytes`` are not read (that modality of the sample fails)."""
    path = Path(source)
    if path.name == SOURCE and path.is_dir():
        return TarReader(sorted(str(p) for p in path.glob("shard-*.tar")), list(modalities), max_member_bytes)
    if is_url(source) and not (str(source).endswith(".tar") or ("{" in str(source) and ".." in str(source))):
        tars = [str(p) for p in as_path(str(source)).glob("*.tar")]  # a URL "folder": the tars in it
        if not tars:
            raise InputError(
                str(source),
                "no .tar objects under this URL; give a .tar URL, a brace pattern "
                "(shard-{000000..000999}.tar) or a prefix holding tars",
            )
        return TarReader(tars, list(modalities), max_member_bytes)
    return open_reader(str(source), list(modalities), max_member_bytes=max_member_bytes)


def units(reader: Reader, samples_per_shard: int) -> Iterator[Unit]:
    """The reader's samples cut into units, in order; tar units open their tar only when iterated."""
    if isinstance(reader, TarReader):
        for index, shard in enumerate(reader.shards):
            yield Unit(index, shard, _LazyTar(shard, reader.modalities, reader.max_member_bytes))
        return
    raws = iter(reader.raw())
    for index in itertools.count():
        chunk = list(itertools.islice(raws, samples_per_shard))
        if not chunk:
            return
        yield Unit(index, f"samples {index * samples_per_shard}..{index * samples_per_shard + len(chunk) - 1}", chunk)


class _LazyTar:
    def __init__(self, shard: str, modalities: Sequence[str], max_member_bytes: int = MAX_FILE_BYTES):
        self.shard, self.modalities, self.max_member_bytes = shard, modalities, max_member_bytes

    def __iter__(self) -> Iterator[RawSample]:
        if is_url(self.shard):
            from tokzoo.storage.tars import remote_tar_samples

            return remote_tar_samples(self.shard, self.modalities, self.max_member_bytes)
        return TarReader(self.shard, list(self.modalities), self.max_member_bytes).raw()
