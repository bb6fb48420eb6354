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

import io
import json
import tarfile
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Iterator

import numpy as np

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
    """``(key, bytes)`` for each ``<key>.npy`` member of a shard, in stored order."""
    with as_path(path).open("rb") as file, tarfile.open(fileobj=file) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".npy"):
                yield member.name[: -len(".npy")], tar.extractfile(member).read()


def read_npy_tar(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """``(key, array)`` for each ``<key>.npy`` member of a shard, in stored order."""
    for key, data in read_tar(path):
        yield key, np.load(io.BytesIO(data), allow_pickle=False)


def complete_shards(out: Path, modality: str) -> list[int]:
    """Indices of the shards of ``modality`` whose stats.json (the completion marker) exists."""
    return sorted(int(p.name[len("shard-"):-len(".stats.json")]) for p in (as_path(out) / modality).glob("shard-*.stats.json"))
