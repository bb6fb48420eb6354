"""What a browsable dataset holds, shard by shard, without reading any sample's data up front.

Two kinds:

- ``tokens``: a token dataset written by ``tokzoo tokenize`` (``OUT/manifest.json``): per shard, the samples'
  status tables of every modality, their tokens and crop rows, and (through the manifest's ``input``) their
  sources, read unit by unit exactly as the pipeline cut them.
- ``raw``: raw samples before tokenization: ``tokzoo pseudo-label`` output (tars + ``.pseudo-label/`` status
  tables) or anything :func:`tokzoo.io.open_reader` reads (tars, modality folders), sources only.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tokzoo.errors import ConfigError, TokzooError
from tokzoo.io import RawSample, TarReader, open_reader
from tokzoo.io.safety import read_json_file
from tokzoo.tokens.layout import (
    CROPS,
    LABELLED,
    MANIFEST,
    complete_shards,
    read_manifest,
    read_npy_tar,
    read_table,
    shard_name,
    stats_path,
    table_path,
    tar_path,
)
from tokzoo.tokens.sources import open_input, units

RAW_SHARD_SIZE = 256
"""Samples per listing unit when a raw input has no shards of its own (folders)."""


@dataclass
class Record:
    """One input sample as the status tables list it. ``errors``: modality (or ``sample``) -> reason."""

    key: str
    source: str | None
    status: str
    errors: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"key": self.key, "source": self.source, "status": self.status, "errors": self.errors}


def source_group(source: str | None) -> str:
    """The input a sample came from, for the source filter: its tar (``a.tar:key.rgb.png`` -> ``a.tar``),
    else its folder; ``-`` when unknown."""
    if not source:
        return "-"
    if ".tar:" in source:
        return source.split(".tar:", 1)[0] + ".tar"
    return str(Path(source).parent)


def listing_hash(records: list[Record]) -> str:
    """Content hash of a chunk's records: a cached chunk is reused only for the same samples and statuses."""
    text = json.dumps([r.as_json() for r in records], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class CatalogShard:
    """One shard's records; ``sources()`` its raw samples by key (read when called)."""

    index: int
    records: list[Record]
    sources: object  # () -> input -> key -> RawSample
    fingerprint: str = ""  # raw shards: changes with their files


class TokenCatalog:
    """A token dataset: the shards complete in every modality and in crops."""

    kind = "tokens"

    def __init__(self, root: Path, manifest: dict):
        self.root, self.manifest = root, manifest
        self.entries: dict[str, dict] = manifest["modalities"]
        self.modalities = list(self.entries)
        complete = [set(complete_shards(root, m)) for m in self.modalities]
        self.shard_indices = sorted(set.intersection(*complete)) if complete else []
        self.incomplete = sorted(set.union(*complete) - set(self.shard_indices)) if complete else []

    def fingerprint(self, modality: str) -> str:
        """Changes when the modality's tokenizer, crop size or input changes (its images are then redrawn)."""
        entry = self.entries[modality]
        text = json.dumps([entry["content_hash"], entry["size"], entry["input"], entry["token_shape"]])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def boxes_fingerprint(self) -> str:
        """Changes when the crop settings or the inputs change (the crop-box pictures are then redrawn)."""
        text = json.dumps(
            [self.manifest.get("crops"), sorted({e["input"] for e in self.entries.values()})], sort_keys=True
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def stored(self, modality: str) -> str:
        """The raw (tokzoo.io) modality holding ``modality``'s sources (``pose`` for human_pose)."""
        from tokzoo.modalities import MODALITIES

        return getattr(MODALITIES.get(modality), "stored_as", None) or modality

    def shards(self) -> Iterator[CatalogShard]:
        cursors = {}
        for modality, entry in self.entries.items():
            cursors.setdefault(entry["input"], []).append(self.stored(modality))
        cursors = {
            source: _UnitCursor(source, stored, self.manifest.get("samples_per_shard"))
            for source, stored in cursors.items()
        }
        for index in self.shard_indices:
            yield CatalogShard(index, self._records(index), _Sources(cursors, index))

    def _records(self, index: int) -> list[Record]:
        merged: dict[str, Record] = {}
        for modality in self.modalities:
            for row in read_table(table_path(self.root, modality, index)):
                record = merged.setdefault(row["key"], Record(row["key"], row["source"], "ok"))
                if row["status"] != "ok":
                    record.status = "failed"
                    reason = row["error"] or "failed"
                    if reason not in record.errors.values():  # every table repeats the culprit's reason
                        record.errors[self._culprit(reason, modality)] = reason
        return list(merged.values())

    def _culprit(self, reason: str, modality: str) -> str:
        """The modality a failure reason names first (``"depth: file.npy: ..."``), else the table's."""
        named = reason.split(":", 1)[0]
        return next((m for m in self.modalities if named in (m, self.stored(m))), modality)

    def tokens(self, modality: str, index: int) -> dict:
        """key -> int array (n_crops, *token_shape) of the shard's ok samples."""
        return dict(read_npy_tar(tar_path(self.root, modality, index)))

    def crops(self, index: int) -> dict:
        """key -> int32 (n_crops, 5) crop rows of the shard's ok samples."""
        return dict(read_npy_tar(tar_path(self.root, CROPS, index)))


class _UnitCursor:
    """The pipeline's units of one input, walked forward once; ``take(index)`` returns unit ``index``'s raws."""

    def __init__(self, source: str, modalities: list[str], samples_per_shard: int | None):
        self.error = None
        try:
            self._units = units(open_input(source, modalities), samples_per_shard or RAW_SHARD_SIZE)
        except TokzooError as error:
            self._units, self.error = iter(()), f"sources unavailable: {error}"
        self._current = None

    def take(self, index: int) -> dict[str, RawSample]:
        while self._current is None or self._current.index < index:
            self._current = next(self._units, None)
            if self._current is None:
                return {}
        if self._current.index != index:
            return {}
        try:
            return {raw.key: raw for raw in self._current.raws}
        except (TokzooError, OSError) as error:
            self.error = f"sources unavailable: {error}"
            return {}


class _Sources:
    def __init__(self, cursors: dict[str, _UnitCursor], index: int):
        self.cursors, self.index = cursors, index

    def __call__(self) -> dict[str, dict[str, RawSample]]:
        """input -> key -> raw sample."""
        return {source: cursor.take(self.index) for source, cursor in self.cursors.items()}


class RawCatalog:
    """Raw samples: pseudo-label output (its status tables list failures) or any reader's shards."""

    kind = "raw"

    def __init__(self, root: Path):
        self.root = root
        status = root / LABELLED
        self.manifest = read_json_file(status / MANIFEST) if (status / MANIFEST).is_file() else None
        self.modalities: list[str] = []  # filled while shards are read (every known modality present)
        self.incomplete: list[int] = []
        if self.manifest is not None:
            self.shard_indices = complete_shards(root, LABELLED)
        else:
            try:
                self._reader = _open_raw(root)
            except TokzooError as error:
                raise ConfigError(
                    f"{root}: neither a token dataset (no manifest.json) nor readable raw samples ({error})"
                ) from error
            self.shard_indices = None

    def fingerprint(self, index: int) -> str:
        """Changes when a shard's files change (size or modification time)."""
        paths = (
            [self.root / f"{shard_name(index)}.tar", stats_path(self.root, LABELLED, index)]
            if self.manifest is not None
            else []
        )
        stamps = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in paths if p.exists()]
        return hashlib.sha256(json.dumps(stamps).encode()).hexdigest()[:16]

    def shards(self) -> Iterator[CatalogShard]:
        if self.manifest is not None:
            for index in self.shard_indices:
                yield self._labelled_shard(index)
            return
        for index, raws in self._raw_units():
            records = [
                Record(raw.key, _first_source(raw), "failed" if raw.errors else "ok", dict(raw.errors)) for raw in raws
            ]
            yield CatalogShard(index, records, lambda raws=raws: {"": {raw.key: raw for raw in raws}}, _stamp(raws))

    def _raw_units(self) -> Iterator[tuple[int, list[RawSample]]]:
        """One unit per tar (every known modality it holds, none required), else RAW_SHARD_SIZE samples."""
        if isinstance(self._reader, TarReader):
            for index, shard in enumerate(self._reader.shards):
                yield index, list(TarReader(shard).raw())
            return
        for unit in units(self._reader, RAW_SHARD_SIZE):
            yield unit.index, list(unit.raws)

    def _labelled_shard(self, index: int) -> CatalogShard:
        rows = read_table(table_path(self.root, LABELLED, index))
        records = [
            Record(r["key"], r["source"], r["status"], {"sample": r["error"]} if r["status"] != "ok" else {})
            for r in rows
        ]
        tar = self.root / f"{shard_name(index)}.tar"

        def sources():
            try:
                return {"": {raw.key: raw for raw in TarReader(str(tar)).raw()}}
            except (TokzooError, OSError):
                return {"": {}}

        return CatalogShard(index, records, sources, self.fingerprint(index))


def _stamp(raws: list[RawSample]) -> str:
    """Size and modification time of every file behind ``raws`` (a tar counted once), hashed."""
    paths = sorted(
        {
            (ref.path or ref.source.split(".tar:", 1)[0] + ".tar")
            for raw in raws
            for ref in raw.files.values()
            if ref.path or ".tar:" in ref.source
        }
    )
    stamps = [(p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths if os.path.exists(p)]
    return hashlib.sha256(json.dumps(stamps).encode()).hexdigest()[:16]


def _first_source(raw: RawSample) -> str | None:
    return next((ref.source for ref in raw.files.values()), None)


def open_dataset(root: Path) -> TokenCatalog | RawCatalog:
    """The token dataset at ``root`` (it has a manifest.json), else its raw samples."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: not a directory")
    manifest = read_manifest(root)
    if manifest is not None:
        if not manifest.get("modalities"):
            raise ConfigError(f"{root / MANIFEST}: lists no modalities; nothing to browse")
        return TokenCatalog(root, manifest)
    return RawCatalog(root)


def _open_raw(root: Path):
    """A reader over raw samples at ``root``; a plain folder holding images is read as rgb (a folder of photos)."""
    from tokzoo.io import EXTENSIONS

    try:
        return open_reader(str(root))
    except ConfigError:
        if not root.is_dir() or not any(p.suffix.lower() in EXTENSIONS["rgb"] for p in root.rglob("*")):
            raise
        return open_reader(str(root), ["rgb"])
