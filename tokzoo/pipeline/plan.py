"""Units of work: one input shard -> one output shard per modality.

For tar inputs an input shard is one tar; for every other reader it is a fixed-size chunk of the
reader's (sorted) samples. Tars may be object-store URLs (``s3://bucket/raw/shard-{000000..000999}.tar``,
read through :mod:`tokzoo.storage`). With no input, the built-in procedural scenes are written once into
``OUT/_source/`` as tars (deterministic bytes) and read from there, so ``tokzoo show`` can find them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from tokzoo.errors import ConfigError, InputError
from tokzoo.io import RawSample, Reader, TarReader, open_reader
from tokzoo.io.safety import MAX_FILE_BYTES
from tokzoo.io.writes import remove_inside, rename_inside, write_file
from tokzoo.storage import as_path, is_url
from tokzoo.tokens.layout import SOURCE, json_bytes, read_json


@dataclass
class Unit:
    index: int
    source: str
    raws: Iterable[RawSample]


def scenes_source(
    out: Path, n: int, seed: int, size: int, samples_per_shard: int, workers: int, progress: bool = False
) -> Path:
    """``OUT/_source`` holding scenes ``0..n-1``; written once (through a temporary folder), reused after.
    ``progress``: a bar on stderr while rendering."""
    from tqdm import tqdm

    from tokzoo.datasets.scenes import write_scene_shards

    target = out / SOURCE
    params = {"scenes": n, "seed": seed, "size": size, "samples_per_shard": samples_per_shard}
    if (target / "scenes.json").is_file():
        if read_json(target / "scenes.json") != params:
            raise ConfigError(
                f"{target} holds scenes {read_json(target / 'scenes.json')}, this run asks for {params}; "
                "pass --overwrite to start over"
            )
        return target
    partial = out / f"{SOURCE}-partial"
    remove_inside(out, partial)
    remove_inside(out, target)
    with tqdm(total=n, unit="scene", desc="rendering scenes", disable=not progress, dynamic_ncols=True) as bar:
        write_scene_shards(
            partial, n, seed=seed, size=size, samples_per_shard=samples_per_shard, workers=workers, progress=bar.update
        )
    write_file(out, partial / "scenes.json", json_bytes(params))
    rename_inside(out, partial, target)
    return target


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
