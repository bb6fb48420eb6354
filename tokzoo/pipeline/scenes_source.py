"""The built-in input: with no ``--input``, the procedural scenes are written once into ``OUT/_source/`` as tars
(deterministic bytes) and read from there like any input (:mod:`tokzoo.tokens.sources`), so ``tokzoo show``
can find them."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from tokzoo.errors import ConfigError
from tokzoo.io.writes import remove_inside, rename_inside, write_file
from tokzoo.tokens.layout import SOURCE, json_bytes, read_json

SCENES_FORMAT = 2
"""What a scene sample of ``_source`` holds, recorded in ``scenes.json`` as ``format``: 2 adds ``captions.txt``
to format 1 (the same pixel, pose and camera members; format 1's ``scenes.json`` has no ``format``)."""
ADDED = {2: "captions"}
"""Format -> the stored value it added: a source of an older format serves every run that reads none of them."""


def scenes_source(
    out: Path,
    n: int,
    seed: int,
    size: int,
    samples_per_shard: int,
    workers: int,
    progress: bool = False,
    reads: Sequence[str] = (),
) -> Path:
    """``OUT/_source`` holding scenes ``0..n-1``; written once (through a temporary folder), reused after by runs
    reading stored values ``reads`` it holds. ``progress``: a bar on stderr while rendering."""
    from tqdm import tqdm

    from tokzoo.datasets.scenes import write_scene_shards

    target = out / SOURCE
    params = {"scenes": n, "seed": seed, "size": size, "samples_per_shard": samples_per_shard}
    if (target / "scenes.json").is_file():
        held = dict(read_json(target / "scenes.json"))
        version = held.pop("format", 1)
        if held != params:
            raise ConfigError(
                f"{target} holds scenes {held}, this run asks for {params}; pass --overwrite to start over"
            )
        if version > SCENES_FORMAT:
            raise ConfigError(
                f"{target}: scenes of format {version}, written by a newer tokzoo (this one writes format "
                f"{SCENES_FORMAT}); pass --overwrite to start over"
            )
        lacking = [ADDED[v] for v in range(version + 1, SCENES_FORMAT + 1) if ADDED[v] in reads]
        if lacking:
            raise ConfigError(
                f"{target}: scenes of format {version}, written by an older tokzoo without {lacking[0]}, which "
                "this run reads; pass --overwrite to render them again"
            )
        return target
    partial = out / f"{SOURCE}-partial"
    remove_inside(out, partial)
    remove_inside(out, target)
    with tqdm(total=n, unit="scene", desc="rendering scenes", disable=not progress, dynamic_ncols=True) as bar:
        write_scene_shards(
            partial, n, seed=seed, size=size, samples_per_shard=samples_per_shard, workers=workers, progress=bar.update
        )
    write_file(out, partial / "scenes.json", json_bytes({**params, "format": SCENES_FORMAT}))
    rename_inside(out, partial, target)
    return target
