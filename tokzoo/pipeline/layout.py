"""Names and readers of the token dataset layout (docs/ARCHITECTURE.md, "Token dataset layout").

```
OUT/manifest.json
OUT/crops/shard-000000.tar                 <key>.npy int32 (n_crops, 5)
OUT/<modality>/shard-000000.tar            <key>.npy (n_crops, *token_shape)
OUT/<modality>/shard-000000.samples.jsonl  one line per input sample
OUT/<modality>/shard-000000.stats.json     written last = completion marker
```
Pipeline-private entries start with ``_``: ``_source/`` (generated scenes), ``_commit/`` (journals of
shard commits in progress).
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Iterator

import numpy as np

from tokzoo.errors import CorruptFileError
from tokzoo.io.safety import MAX_FILE_BYTES, load_npy
from tokzoo.io.tar import member_problem
from tokzoo.io.tarwalk import walk_tar
from tokzoo.storage import as_path

MANIFEST = "manifest.json"
CROPS = "crops"
SOURCE = "_source"
JOURNALS = "_commit"


def shard_name(index: int) -> str:
    return f"shard-{index:06d}"


def tar_path(out: Path, folder: str, index: int) -> Path:
    return out / folder / f"{shard_name(index)}.tar"


def table_path(out: Path, modality: str, index: int) -> Path:
    return out / modality / f"{shard_name(index)}.samples.jsonl"


def stats_path(out: Path, modality: str, index: int) -> Path:
    return out / modality / f"{shard_name(index)}.stats.json"


def read_json(path: Path):
    return json.loads(as_path(path).read_text())


def json_bytes(value) -> bytes:
    """Deterministic JSON: sorted keys, two-space indent, trailing newline."""
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def read_manifest(out: Path) -> dict | None:
    path = as_path(out) / MANIFEST
    return read_json(path) if path.is_file() else None


def read_table(path: Path) -> list[dict]:
    """Records of a ``*.samples.jsonl``: key, source, status, error."""
    return [json.loads(line) for line in as_path(path).read_text().splitlines() if line]


def table_bytes(records: list[dict]) -> bytes:
    """One ``json.dumps`` line per record, fields key, source, status, error in that order."""
    return "".join(f'{{"key": {_json(r["key"])}, "source": {_json(r["source"])}, "status": {_json(r["status"])}, '
                   f'"error": {_json(r["error"])}}}\n' for r in records).encode()


def _json(value) -> str:
    """``json.dumps(value)``, quicker for the strings and None of a table."""
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    return "null" if value is None else json.dumps(value)


def read_tar(path: Path) -> Iterator[tuple[str, bytes]]:
    """``(key, bytes)`` for each ``<key>.npy`` member of a shard, in stored order, through the safe tar walker:
    damage, members over the size limit and repeated keys raise CorruptFileError naming the shard."""
    path = as_path(path)
    if isinstance(path, Path):
        yield from _npy_members(walk_tar(path, max_skip=0), path)
        return
    with path.open("rb") as file:
        yield from _npy_members(walk_tar(file, MAX_FILE_BYTES, str(path)), path)


def _npy_members(members, path) -> Iterator[tuple[str, bytes]]:
    seen = set()
    for member, read in members:
        if member.regular and member.name.endswith(".npy"):
            key = member.name[: -len(".npy")]
            problem = member_problem(member, MAX_FILE_BYTES) or ("duplicate key" if key in seen else None)
            if problem is not None:
                raise CorruptFileError(path, f"member {member.name!r}: {problem}")
            seen.add(key)
            yield key, read()


def read_npy_tar(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """``(key, array)`` for each ``<key>.npy`` member of a shard, in stored order (never unpickled)."""
    for key, data in read_tar(path):
        yield key, load_npy(data, f"{path}:{key}.npy")


def complete_shards(out: Path, modality: str) -> list[int]:
    """Indices of the shards of ``modality`` whose stats.json (the completion marker) exists."""
    return sorted(int(p.name[len("shard-"):-len(".stats.json")]) for p in (as_path(out) / modality).glob("shard-*.stats.json"))
