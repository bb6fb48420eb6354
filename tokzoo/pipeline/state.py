"""Checking what a run finds in OUT before trusting it: completion markers against their shards, commit journals,
and OUT's own entries. Damage is a one-line ConfigError saying what is wrong and how to recover, or a rebuild.

A shard of a modality counts as complete only when its ``stats.json`` parses with consistent counts, its tar has
the size the stats record and lists exactly the table's ok keys in order, and (checked once per shard) the crops
tar holds valid crop rows for the same keys. A damaged shard of a modality this run tokenizes is rebuilt: its
files are removed (marker first) and it is tokenized again; one of another modality is refused with the
``--modality`` that rebuilds it. Journals may only name ``<folder>/shard-N.<tar|samples.jsonl|stats.json>``
files of their own shard inside OUT; OUT's entries may not be symlinks (tokzoo writes only inside OUT).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from tokzoo.errors import ConfigError, InputError, TokzooWarning
from tokzoo.io import values
from tokzoo.io.tarwalk import walk_tar
from tokzoo.tokens.layout import (
    CROPS,
    OVERWRITE_HINT,
    read_counts,
    read_json,
    read_npy_tar,
    read_stats,
    read_table,
    shard_name,
    stats_path,
    table_path,
    tar_path,
)

_JOURNAL_ENTRY = re.compile(r"[A-Za-z0-9_-]+/(shard-\d{6})\.(tar|samples\.jsonl|stats\.json)")


def labelled_shard_done(status: Path, index: int) -> bool:
    """Whether pseudo-label's shard ``index`` is complete: its marker (in ``status``) parses, the tar beside
    ``status`` has the recorded size and the table the recorded count. A damaged one loses its marker (so the
    run labels it again), with a line on stderr."""
    marker = stats_path(status.parent, status.name, index)
    if not marker.is_file():
        return False
    tar, table = status.parent / f"{shard_name(index)}.tar", table_path(status.parent, status.name, index)
    try:
        stats = read_counts(marker)
        size = tar.stat().st_size if isinstance(tar, Path) and tar.is_file() else stats["bytes"]
        problem = (
            f"{tar}: {size} bytes, its stats.json says {stats['bytes']}"
            if size != stats["bytes"]
            else f"{table}: not {stats['count']} records"
            if len(read_table(table)) != stats["count"]
            else None
        )
    except ConfigError as error:
        problem = str(error).split(f"; {OVERWRITE_HINT}")[0]
    if problem is None:
        return True
    marker.unlink()
    warnings.warn(f"{problem}; labelling shard {index} again", TokzooWarning, stacklevel=2)
    return False


def shard_damage(out: Path, modality: str, index: int) -> str | None:
    """Why the complete-marked shard ``index`` of ``modality`` cannot be trusted, or None when it is intact."""
    try:
        stats = read_stats(out, modality, index)
        table = read_table(table_path(out, modality, index))
        tar = tar_path(out, modality, index)
        if not isinstance(tar, Path):  # an object store (tokzoo.storage): no cheap header walk; counts only
            return None if len(table) == stats["count"] else f"{table_path(out, modality, index)}: records != count"
        size = tar.stat().st_size if tar.is_file() else None
        if size != stats["bytes"]:
            return f"{tar}: {'missing' if size is None else f'{size} bytes'}, its stats.json says {stats['bytes']}"
        if len(table) != stats["count"]:
            return f"{table_path(out, modality, index)}: {len(table)} records, its stats.json says {stats['count']}"
        keys = [m.name for m, _ in walk_tar(tar, max_skip=0)]
        expected = [f"{r['key']}.npy" for r in table if r["status"] == "ok"]
        if keys != expected:
            return f"{tar}: its members are not the ok samples of its table ({len(keys)} vs {len(expected)})"
    except (ConfigError, InputError) as error:
        return str(error).split("; delete ")[0].split(f"; {OVERWRITE_HINT}")[0]
    return None


def crops_damage(out: Path, index: int, keys: list[str]) -> tuple[str | None, dict]:
    """(why the crops tar of shard ``index`` cannot be trusted or None, its crop rows by key)."""
    path = tar_path(out, CROPS, index)
    try:
        crops = {key: values.crops(array, f"{path}:{key}.npy") for key, array in read_npy_tar(path)}
    except InputError as error:
        return str(error), {}
    if list(crops) != keys:
        return f"{path}: holds {len(crops)} samples' crops, the complete modalities {len(keys)}", {}
    return None, crops


def check_done(out: Path, index: int, done: list[str], requested: list[str]) -> tuple[list[str], dict]:
    """(the modalities of shard ``index`` that are complete and intact, the shard's stored crops).

    Damaged shards of requested modalities are removed (stats first) so the run rebuilds them, with a line on
    stderr; damage elsewhere is a ConfigError naming the file and the ``--modality`` that rebuilds it.
    """
    damage = {m: reason for m in done if (reason := shard_damage(out, m, index))}
    intact = [m for m in done if m not in damage]
    crops = {}
    if intact:
        keys = [r["key"] for r in read_table(table_path(out, intact[0], index)) if r["status"] == "ok"]
        problem, crops = crops_damage(out, index, keys)
        if problem is not None:
            damage.update({m: problem for m in intact})
            intact, crops = [], {}
    if not damage:
        return done, crops
    others = [m for m in damage if m not in requested]
    if others:
        raise ConfigError(
            f"{damage[others[0]]}; rerun with --modality {','.join(damage)} to rebuild shard {index}, "
            f"or {OVERWRITE_HINT}"
        )
    for modality in damage:
        for path in (
            stats_path(out, modality, index),
            tar_path(out, modality, index),
            table_path(out, modality, index),
        ):
            path.unlink(missing_ok=True)
    if not intact:
        tar_path(out, CROPS, index).unlink(missing_ok=True)
    warnings.warn(
        f"{next(iter(damage.values()))}; rebuilding shard {index} of {', '.join(damage)}", TokzooWarning, stacklevel=2
    )
    return intact, crops


def journal_entries(out: Path, journal: Path) -> list[str]:
    """The files (relative to OUT) a commit journal moves into place, each checked to be one of its shard's files
    inside OUT; ConfigError naming the journal otherwise."""
    hint = f"delete {journal} and rerun (its shard is then checked and rebuilt if incomplete), or {OVERWRITE_HINT}"
    entries = read_json(journal, hint)
    shard = journal.name.removesuffix(".json")
    bad = (
        next(
            (
                e
                for e in entries
                if not isinstance(e, str) or not (m := _JOURNAL_ENTRY.fullmatch(e)) or m.group(1) != shard
            ),
            None,
        )
        if isinstance(entries, list)
        else entries
    )
    if bad is not None or not isinstance(entries, list):
        raise ConfigError(
            f"{journal}: not a commit journal of {shard} (entry {str(bad)[:80]!r} is not a file of that "
            f"shard inside {out}); {hint}"
        )
    return entries


def check_entries(out: Path, overwrite: bool) -> None:
    """Refuse symlinks among OUT's entries (writing through one would write outside OUT); with ``overwrite`` they
    are removed (the link, never its target)."""
    for entry in sorted(out.iterdir()) if isinstance(out, Path) and out.is_dir() else []:
        if entry.is_symlink():
            if overwrite:
                entry.unlink()
                continue
            raise ConfigError(
                f"{entry}: a symlink (to {entry.resolve()}) inside OUT; tokzoo writes only inside OUT: "
                f"remove it, or {OVERWRITE_HINT}"
            )
