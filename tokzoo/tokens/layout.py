"""Names, readers and writers' formats of the token dataset layout (docs/ARCHITECTURE.md, "Token dataset layout").

```
OUT/manifest.json
OUT/crops/shard-000000.tar                 <key>.npy int32 (n_crops, 5)
OUT/<modality>/shard-000000.tar            <key>.npy (n_crops, *token_shape)
OUT/<modality>/shard-000000.samples.jsonl  one line per input sample
OUT/<modality>/shard-000000.stats.json     written last = completion marker
```
Pipeline-private entries start with ``_``: ``_source/`` (generated scenes), ``_commit/`` (journals of
shard commits in progress). ``tokzoo pseudo-label`` keeps the same tables, markers and manifest name in its
status folder (``table_path(out, ".pseudo-label", i)``).
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Iterator

import numpy as np

from tokzoo.errors import ConfigError, CorruptFileError, InputError
from tokzoo.io.safety import MAX_FILE_BYTES, MAX_JSON_BYTES, load_npy, read_file
from tokzoo.io.tar import member_problem
from tokzoo.io.tarwalk import walk_tar
from tokzoo.io.writes import is_plain_name
from tokzoo.storage import as_path

MANIFEST = "manifest.json"
CROPS = "crops"
LABELLED = ".pseudo-label"
"""The status folder ``tokzoo pseudo-label`` writes beside its shards (tables, markers, manifest as here)."""
SOURCE = "_source"
JOURNALS = "_commit"


def shard_name(index: int) -> str:
    return f"shard-{index:06d}"


def tar_path(out: Path, folder: str, index: int) -> Path:
    return out / folder / f"{shard_name(index)}.tar"


def table_path(out: Path, modality: str, index: int) -> Path:
    return out / modality / f"{shard_name(index)}.samples.jsonl"


def table_paths(out: Path, folder: str) -> list[Path]:
    """Every ``*.samples.jsonl`` table of ``folder`` (complete shards or not), sorted."""
    return sorted((as_path(out) / folder).glob("shard-*.samples.jsonl"))


def stats_path(out: Path, modality: str, index: int) -> Path:
    return out / modality / f"{shard_name(index)}.stats.json"


OVERWRITE_HINT = "pass --overwrite to start over"


def read_json(path: Path, hint: str = OVERWRITE_HINT):
    """A JSON file of OUT's state; ConfigError "``path``: not valid JSON (...); ``hint``" when it is damaged. A local
    file must be a regular one of at most MAX_JSON_BYTES (:func:`tokzoo.io.safety.read_file`)."""
    path = as_path(path)
    try:
        data = read_file(path, MAX_JSON_BYTES) if isinstance(path, Path) else path.read_bytes()
        return json.loads(data.decode("utf-8"))
    except InputError as error:
        raise ConfigError(f"{path}: {error.reason}; {hint}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ConfigError(f"{path}: not valid JSON ({str(error)[:120]}); {hint}") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror or error}); {hint}") from None


def json_bytes(value) -> bytes:
    """Deterministic JSON: sorted keys, two-space indent, trailing newline."""
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


_ENTRY_FIELDS = {
    "tokenizer": str,
    "name": str,
    "content_hash": str,
    "untrained": bool,
    "vocab_size": int,
    "token_shape": list,
    "dtype": str,
    "input": str,
    "complete": bool,
}


def read_manifest(out: Path) -> dict | None:
    """OUT's manifest, checked field by field (a damaged one is a ConfigError saying what is wrong), or None."""
    path = as_path(out) / MANIFEST
    if not path.is_file():
        return None
    manifest = read_json(path)
    problem = _manifest_problem(manifest)
    if problem is not None:
        raise ConfigError(f"{path}: not a tokzoo manifest ({problem}); {OVERWRITE_HINT}")
    return manifest


def _manifest_problem(manifest) -> str | None:
    if not isinstance(manifest, dict):
        return f"a {type(manifest).__name__}, not an object"
    for field, kind in (("crops", dict), ("samples_per_shard", int), ("modalities", dict)):
        if not isinstance(manifest.get(field), kind):
            return f"{field!r} missing or not a {kind.__name__}"
    for modality, entry in manifest["modalities"].items():
        if not is_plain_name(modality) or modality in (CROPS, MANIFEST) or modality.startswith("_"):
            return f"modality {modality[:80]!r} is no plain folder name (letters, digits, _ . @ + = -; no '..')"
        if not isinstance(entry, dict):
            return f"modality {modality!r} is not an object"
        wrong = [f for f, kind in _ENTRY_FIELDS.items() if f in entry and not isinstance(entry[f], kind)]
        missing = [f for f in ("tokenizer", "content_hash", "vocab_size", "token_shape", "complete") if f not in entry]
        if wrong or missing:
            return (
                f"modality {modality!r}: field {(wrong or missing)[0]!r} {'has the wrong type' if wrong else 'missing'}"
            )
    return None


def require_manifest(out: Path) -> dict:
    """OUT's manifest (:func:`read_manifest`); a one-line ConfigError when there is none."""
    manifest = read_manifest(out)
    if manifest is None:
        raise ConfigError(
            f"{out}: no {MANIFEST}; not a token dataset written by `tokzoo tokenize` "
            f"(nor a labelled one: no {LABELLED}/{MANIFEST})"
        )
    return manifest


def read_stats(out: Path, modality: str, index: int) -> dict:
    """``stats.json`` of a shard with its counts checked (non-negative ints, ok + failed = count)."""
    return read_counts(stats_path(out, modality, index), rebuild_hint(out, modality, index))


def read_counts(path: Path, hint: str = OVERWRITE_HINT) -> dict:
    """A ``stats.json`` completion marker (tokenize or pseudo-label) with its counts checked; ConfigError + ``hint``."""
    stats = read_json(path, hint)
    if (
        not isinstance(stats, dict)
        or not all(_count(stats.get(f)) for f in _COUNTS)
        or stats["ok"] + stats["failed"] != stats["count"]
    ):
        raise ConfigError(
            f"{path}: not a shard's stats (count, ok, failed, bytes: non-negative integers, "
            f"ok + failed = count); {hint}"
        )
    return stats


_COUNTS = ("count", "ok", "failed", "bytes")


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def rebuild_hint(out: Path, modality: str, index: int) -> str:
    return f"delete {out / modality / shard_name(index)}.* to rebuild that shard, or {OVERWRITE_HINT}"


def read_table(path: Path) -> list[dict]:
    """Records of a ``*.samples.jsonl``: key, source, status, error (ConfigError naming the line when damaged)."""
    path = as_path(path)
    hint = f"delete {path.parent / path.name.split('.')[0]}.* to rebuild that shard, or {OVERWRITE_HINT}"
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot be read ({getattr(error, 'strerror', None) or error}); {hint}") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as error:
            raise ConfigError(f"{path}: line {number} is not valid JSON ({str(error)[:80]}); {hint}") from None
        if not (
            isinstance(record, dict) and isinstance(record.get("key"), str) and record.get("status") in ("ok", "failed")
        ):
            raise ConfigError(f"{path}: line {number} is not a sample record (key, status ok|failed); {hint}")
        records.append(record)
    return records


def table_bytes(records: list[dict]) -> bytes:
    """One ``json.dumps`` line per record, fields key, source, status, error in that order."""
    return "".join(
        f'{{"key": {_json(r["key"])}, "source": {_json(r["source"])}, "status": {_json(r["status"])}, '
        f'"error": {_json(r["error"])}}}\n'
        for r in records
    ).encode()


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
    names = (p.name[len("shard-") : -len(".stats.json")] for p in (as_path(out) / modality).glob("shard-*.stats.json"))
    return sorted(int(n) for n in names if len(n) == 6 and n.isdigit())  # a stray shard-x.stats.json is no shard
