"""Webdataset-style tar shards: members ``[dir/]<key>.<modality>.<ext>``, a sample's members contiguous.

Only members of requested modalities are read, and bytes are handed to the modality's own reader
(never pickle). An uncompressed tar file of plain members (what webdataset and tarfile write) is
indexed from its headers by :func:`tar_index` and its members read with ``pread``; anything else
(compression, links, GNU long names, damage) is read with :mod:`tarfile`. The key is everything before the
first dot of the member's name (with its directory), made safe with
:func:`~tokzoo.io.keys.key_from_stem`. An unreadable or truncated shard yields one sample whose
``errors["sample"]`` says so, after the complete samples before the damage; a repeated key
(across shards, or a sample's members split apart) is an error on the repeat.
"""

from __future__ import annotations

import os
import re
import tarfile
from pathlib import Path
from typing import Callable, Iterator, Sequence

from tokzoo.io.formats import MODALITIES
from tokzoo.io.keys import key_from_stem
from tokzoo.io.samples import SAMPLE_ERROR, FileRef, RawSample, Reader, check_modalities


def expand_urls(urls: str | Sequence[str]) -> list[str]:
    """A path, a brace pattern (``s-{000..003}.tar``) or a list of them -> list of shard paths."""
    import braceexpand

    patterns = [urls] if isinstance(urls, (str, Path)) else list(urls)
    return [u for p in patterns for u in braceexpand.braceexpand(str(p))]


def split_member(name: str) -> tuple[str, str, str] | None:
    """``"d/k.depth.npy"`` -> ``("d/k", "depth", ".npy")``; None when there is no ``.<modality>.<ext>`` part."""
    head, _, base = name.removeprefix("./").rpartition("/")
    stem, dot, rest = base.partition(".")
    modality, dot2, ext = rest.partition(".")
    if not (stem and dot and dot2 and modality and ext):
        return None
    return (f"{head}/{stem}" if head else stem), modality, "." + ext.lower()


class TarReader(Reader):
    """Samples from webdataset tars, in shard order then member order.

    ``modalities=None`` reads every member whose modality is known and reports nothing missing;
    with a list, members of other modalities are skipped and a missing one is an error entry.
    """

    def __init__(self, urls: str | Sequence[str], modalities: Sequence[str] | None = None):
        self.shards = expand_urls(urls)
        self._required = modalities is not None
        self.modalities = check_modalities(modalities if modalities is not None else MODALITIES, str(urls))
        self._sources: dict[str, str] = {}

    def __len__(self) -> int:
        """Samples in all shards, counted from the tar headers (no member's data is read)."""
        return sum(self._count(shard) for shard in self.shards)

    def _count(self, shard: str) -> int:
        count, current = 0, None
        try:
            for name, _ in _members(shard):
                parts = split_member(name)
                if parts is not None and parts[1] in self.modalities and parts[0] != current:
                    count, current = count + 1, parts[0]
        except (tarfile.TarError, OSError, EOFError):
            pass  # reading reports the damage; the count is for progress bars only
        return count

    def source_of(self, key: str) -> str:
        """``shard.tar:key`` for keys met so far (tars are streamed, so only after they were read)."""
        return self._sources[key]

    def raw(self) -> Iterator[RawSample]:
        self._sources = {}
        for shard in self.shards:
            yield from self._read_shard(shard)

    def _finish(self, shard: str, raw_key: str, files: dict[str, FileRef]) -> RawSample:
        key = key_from_stem(raw_key)
        errors = {}
        if key in self._sources:
            errors[SAMPLE_ERROR] = (
                f"{shard}:{raw_key}: duplicate key (also in {self._sources[key]}); keys must be unique "
                "and a sample's members contiguous"
            )
        else:
            self._sources[key] = f"{shard}:{raw_key}"
        if self._required:
            errors.update({m: f"{shard}:{raw_key}: missing (no .{m}.* member)" for m in self.modalities if m not in files})
        return RawSample(key, files, errors)

    def _read_shard(self, shard: str) -> Iterator[RawSample]:
        current, files = None, {}
        try:
            for name, read in _members(shard):
                parts = split_member(name)
                if parts is None or parts[1] not in self.modalities:
                    continue
                raw_key, modality, ext = parts
                if raw_key != current:
                    if current is not None:
                        yield self._finish(shard, current, files)
                    current, files = raw_key, {}
                files[modality] = FileRef(f"{shard}:{name}", ext, data=read())
        except (tarfile.TarError, OSError, EOFError) as exc:
            if current is not None:  # the sample being read when the damage hit is incomplete
                message = f"{shard}:{current}: shard broke while reading this sample ({exc})"
                yield RawSample(key_from_stem(current), {}, {SAMPLE_ERROR: message})
                current = None
            yield RawSample(key_from_stem(Path(shard).name), {}, {SAMPLE_ERROR: f"{shard}: unreadable tar ({exc})"})
        if current is not None:
            yield self._finish(shard, current, files)


def _members(shard: str) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """``(name, read)`` of each regular file in ``shard``, in stored order; ``read()`` gives its bytes."""
    index = tar_index(shard) if Path(shard).is_file() else None
    if index is not None:
        with open(shard, "rb") as file:
            for name, offset, size in index:
                yield name, lambda offset=offset, size=size: os.pread(file.fileno(), size, offset)
        return
    # a regular file is read with seeks (one read per member), anything else as a stream
    with tarfile.open(shard, mode="r:*" if Path(shard).is_file() else "r|*") as tar:
        for member in tar:
            if member.isfile():
                yield member.name, lambda member=member: tar.extractfile(member).read()


_REGULAR, _DIRECTORY, _PAX = (b"0", b"\0", b"7"), b"5", b"x"
_PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")
_PAX_KEYS = {"path", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname", "mode"}
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def tar_index(path: str | Path) -> list[tuple[str, int, int]] | None:
    """``(name, data offset, size)`` of each regular file of an uncompressed tar, read from its headers as
    :mod:`tarfile` reads them (ustar prefix, pax path and size, V7 directories); None when the tar holds
    anything else (compression, links, GNU or binary pax fields, a bad checksum, truncation): read it with
    :mod:`tarfile` then. Parsing headers here costs a fraction of ``tarfile``'s."""
    try:
        with open(path, "rb") as file:
            end = os.fstat(file.fileno()).st_size
            if file.read(6).startswith(_COMPRESSED):
                return None
            entries, offset, pax = [], 0, None
            while True:
                file.seek(offset)
                block = file.read(tarfile.BLOCKSIZE)
                if offset and pax is None and (not block or block.count(0) == tarfile.BLOCKSIZE):
                    return entries  # end of the archive
                if len(block) < tarfile.BLOCKSIZE:
                    return None
                stored, size = _octal(block[148:156]), _octal(block[124:136])
                if stored is None or size is None or stored != 256 + sum(block[:148]) + sum(block[156:]):
                    return None
                kind, data = block[156:157], offset + tarfile.BLOCKSIZE
                name = block[:100].split(b"\0")[0].decode(tarfile.ENCODING, "surrogateescape")
                prefix = block[345:500].split(b"\0")[0].decode(tarfile.ENCODING, "surrogateescape")
                if kind == b"\0" and name.endswith("/"):
                    kind = _DIRECTORY
                if kind == _PAX and pax is None:  # records for the next member
                    pax = _pax(file.read(size)) if data + size <= end else None
                    if pax is None:
                        return None
                    offset = data + _padded(size)
                elif kind in _REGULAR:
                    size = int(pax["size"]) if pax and "size" in pax else size
                    offset = data + _padded(size)
                    if offset > end:
                        return None
                    name = f"{prefix}/{name}" if prefix else name
                    entries.append((pax["path"].rstrip("/") if pax and "path" in pax else name, data, size))
                    pax = None
                elif kind == _DIRECTORY:
                    offset, pax = data, None
                else:
                    return None
    except (OSError, ValueError):
        return None


def _padded(size: int) -> int:
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def _octal(field: bytes) -> int | None:
    digits = field.split(b"\0")[0].strip()
    return int(digits or b"0", 8) if digits.isdigit() or not digits else None


def _pax(records: bytes) -> dict[str, str] | None:
    """The records of a pax extended header; None when it holds anything but UTF-8 values of known keys."""
    found, position = {}, 0
    while match := _PAX_RECORD.match(records, position):
        length, keyword = int(match.group(1)), match.group(2).decode("utf-8")
        if length == 0 or keyword not in _PAX_KEYS:
            return None
        found[keyword] = records[match.end(2) + 1:match.start(1) + length - 1].decode("utf-8")
        position += length
    return found if not records[position:].strip(b"\0") else None
