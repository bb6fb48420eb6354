"""The all-or-nothing commit of one shard's files (their bytes: :mod:`tokzoo.tokens.tars`).

A shard's files (tars, tables, stats; in several folders when a later modality removes keys from
earlier ones) are first written under ``<name>.tmp``. The commit writes a journal listing them
(``OUT/_commit/shard-N.json``, itself renamed into place: that rename is the commit point), then
renames each file into place, stats last, and deletes the journal. :func:`recover` replays
journals left by a killed run and deletes unjournaled ``.tmp`` files, so a rerun continues from
either the state before the shard or the state after it, never a mix.

Durability is against process death (SIGKILL), not power loss: nothing is fsynced. OUT may be an
object-store URL (:mod:`tokzoo.storage`): there each rename is a server-side copy and a delete, which
a replayed journal repeats harmlessly, and the stats (completion markers) still appear last.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

from tokzoo.errors import OutputError, TokzooError, UnsafeOutputError
from tokzoo.failures import count_reasons
from tokzoo.io.writes import create_file, rename_inside
from tokzoo.storage import as_path
from tokzoo.tokens.layout import (
    CROPS,
    JOURNALS,
    json_bytes,
    read_stats,
    read_tar,
    shard_name,
    stats_path,
    table_bytes,
    table_path,
    tar_path,
)
from tokzoo.tokens.tars import npy_bytes, tar_bytes

from .modalities import RunModality
from .shard import ShardBuilder
from .state import journal_entries

CRASH_ENV = "TOKZOO_TEST_CRASH_AFTER_RENAMES"
"""Test hook: SIGKILL this process right after that many commit renames (resume tests)."""

_renames = 0


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _rename(source: Path, target: Path, root: Path) -> None:
    global _renames
    if isinstance(source, Path):
        rename_inside(root, source, target)  # never through a link below OUT
    else:
        source.replace(target)  # on an object store: copy, then delete
    _renames += 1
    if os.environ.get(CRASH_ENV) and _renames >= int(os.environ[CRASH_ENV]):
        os.kill(os.getpid(), signal.SIGKILL)


def write_atomic(path: Path, data: bytes, root: Path | None = None) -> None:
    """Write ``data`` to ``path`` inside the output ``root`` (default: its folder) through a temporary name."""
    root = path.parent if root is None else root
    _write(_tmp(path), data, root)
    _rename(_tmp(path), path, root)


def _write(path: Path, data: bytes, root: Path) -> None:
    """Write ``data`` to ``path`` inside ``root`` (tokzoo.io.writes: parent folders made, no link followed); an OS
    error (full disk, quota, file size limit, permissions) is a TokzooError naming the file: what was committed
    stays, the next run drops the partial file and goes on."""
    try:
        if isinstance(path, Path):
            create_file(root, path, data)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    except UnsafeOutputError:
        raise
    except (OutputError, OSError) as error:
        where = getattr(error, "filename", None) or path
        reason = error.reason if isinstance(error, OutputError) else f"cannot write ({error.strerror or error})"
        raise TokzooError(
            f"{where}: {reason}; finished shards are kept: "
            "free space (or fix the cause) and rerun the same command to go on"
        ) from None


class ShardCommit:
    """Stage files of shard ``index`` (in commit order: stats last), then :meth:`commit` them together."""

    def __init__(self, out: Path, index: int):
        self.out, self.index, self.paths = as_path(out), index, []

    def stage(self, path: Path, data: bytes) -> None:
        _write(_tmp(path), data, self.out)
        self.paths.append(path)

    def commit(self) -> None:
        journal = self.out / JOURNALS / f"{shard_name(self.index)}.json"
        write_atomic(journal, json_bytes([p.relative_to(self.out).as_posix() for p in self.paths]), self.out)
        _replay(self.out, journal)


def _replay(out: Path, journal: Path) -> None:
    for relative in journal_entries(out, journal):  # only files of the journal's shard inside OUT
        if _tmp(out / relative).exists():
            _rename(_tmp(out / relative), out / relative, out)
    journal.unlink()


def recover(out: Path) -> None:
    """Finish the commits a killed run started; drop files it staged but never committed."""
    for journal in sorted((out / JOURNALS).glob("shard-*.json")):
        _replay(out, journal)
    for leftover in out.glob("*/*.tmp"):
        if not leftover.parent.is_symlink():  # never delete through a link out of OUT (check_entries refuses those)
            leftover.unlink()
    for leftover in out.glob("*.tmp"):
        leftover.unlink()


def commit_shard(out: Path, shard: ShardBuilder, source: str, seconds: float) -> None:
    """Write the shard's crops, the new modalities' tars, tables and stats, and (when samples that
    were ok now fail) the old modalities' shards without them, in one commit."""
    state, index = shard.state, shard.state.index
    failed = {s.key: s.error for s in shard.samples if s.error is not None}
    ok = [s for s in shard.samples if s.error is None]
    dropped = [key for key in state.crops if key in failed]
    commit, stats = ShardCommit(out, index), []
    if not state.done or dropped:
        commit.stage(tar_path(out, CROPS, index), tar_bytes([(s.key, npy_bytes(s.crops)) for s in ok]))
    for spec in shard.specs:
        data = tar_bytes([(s.key, npy_bytes(shard.tokens[spec.modality][s.key])) for s in ok])
        commit.stage(tar_path(out, spec.modality, index), data)
        records = [_record(s.key, s.sources.get(spec.stored), s.error) for s in shard.samples]
        commit.stage(table_path(out, spec.modality, index), table_bytes(records))
        stats.append((spec.modality, _stats(records, len(data), source, seconds, _tokenizer(spec))))
    for modality in state.done if dropped else []:
        data = tar_bytes([(k, b) for k, b in read_tar(tar_path(out, modality, index)) if k not in failed])
        commit.stage(tar_path(out, modality, index), data)
        records = [_record(r["key"], r["source"], failed.get(r["key"], r["error"])) for r in state.tables[modality]]
        commit.stage(table_path(out, modality, index), table_bytes(records))
        old = read_stats(out, modality, index)
        stats.append((modality, _stats(records, len(data), old["input"], old["seconds"], old["tokenizer"])))
    for modality, value in stats:
        commit.stage(stats_path(out, modality, index), json_bytes(value))
    commit.commit()


def _record(key: str, source: str | None, error: str | None) -> dict:
    return {"key": key, "source": source, "status": "failed" if error else "ok", "error": error}


def _tokenizer(spec: RunModality) -> dict:
    return {"name": spec.tokenizer.name, "reference": spec.reference, "content_hash": spec.content_hash}


def _stats(records: list[dict], size: int, source: str, seconds: float, tokenizer: dict) -> dict:
    keys = [r["key"] for r in records if r["status"] == "ok"]
    return {
        "count": len(records),
        "ok": len(keys),
        "failed": len(records) - len(keys),
        "bytes": size,
        "failed_by_reason": count_reasons(records),
        "seconds": round(seconds, 3),
        "input": source,
        "tokenizer": tokenizer,
        "keys_hash": hashlib.sha256("\n".join(keys).encode()).hexdigest(),
    }
