"""The built-in input: with no ``--input``, the procedural scenes are written once into ``OUT/_source/`` as tars
(deterministic bytes) and read from there like any input (:mod:`tokzoo.tokens.sources`), so ``tokzoo show``
can find them."""

from __future__ import annotations

from pathlib import Path

from tokzoo.errors import ConfigError
from tokzoo.io.writes import remove_inside, rename_inside, write_file
from tokzoo.tokens.layout import SOURCE, json_bytes, read_json


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
