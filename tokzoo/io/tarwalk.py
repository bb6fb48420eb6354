"""One safe tar reader: members listed from their headers, every declared size checked before anything is read.

:func:`walk_tar` yields each member of an uncompressed, gzip, bzip2 or xz tar with a ``read()`` for its bytes.
It parses ustar, pax (``path``, ``size``) and GNU long-name headers itself instead of :mod:`tarfile`,
because it must hold where tarfile does not: every header moves the position forward by at least one
block (a negative or looping pax ``size`` cannot send it back), pax and long-name data are capped at
:data:`MAX_HEADER_BYTES`, sizes are non-negative, a member's data must lie inside the file (checked
against its length before reading, so a sparse file's declared gigabytes are never read), and the
archive must end on an end-of-archive block (a tar cut short is damage, not a shorter tar). Any
problem raises :class:`~tokzoo.errors.CorruptFileError` naming the tar and the byte offset.

Readers refuse members over their ``max_member_bytes`` before calling ``read()``; GNU sparse members
(``member.sparse``) are reported, never expanded. Compressed streams are read forward only: a member
is read before the next header, and skipping more than ``max_skip`` bytes of one is refused.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from tokzoo.errors import CorruptFileError, EmptyFileError, InputError
from tokzoo.io.safety import open_regular

BLOCK = 512
MAX_HEADER_BYTES = 1 << 20
"""Largest pax or GNU long-name header accepted (webdataset and tarfile write a few hundred bytes)."""

_COMPRESSED = {b"\x1f\x8b": lambda f: gzip.GzipFile(fileobj=f), b"BZh": bz2.BZ2File, b"\xfd7zXZ\x00": lzma.LZMAFile}
_REGULAR, _CONTIGUOUS, _SPARSE = (b"0", b"\0"), b"7", b"S"
_NO_DATA = (b"1", b"2", b"3", b"4", b"5", b"6")  # links, devices, directories, FIFOs: their size field is ignored
_STREAM_ERRORS = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError)


@dataclass(frozen=True)
class TarMember:
    """One member: ``name`` (pax / GNU long name applied), data ``offset`` in the (decompressed) archive, ``size``,
    ``start`` (offset of its first header, pax included), ``regular`` (file data), ``sparse`` (GNU sparse), and the
    pax keywords that applied to it."""

    name: str
    offset: int
    size: int
    start: int
    regular: bool
    sparse: bool = False
    pax_keys: frozenset = field(default_factory=frozenset)


class _Pread:
    """Random access to a regular file by offset (no shared position)."""

    def __init__(self, fd: int, length: int, source: str):
        self.fd, self.length, self.source = fd, length, source

    def read_at(self, offset: int, n: int) -> bytes:
        try:
            return os.pread(self.fd, n, offset)
        except OSError as exc:  # EIO, or a read() called after the walk ended and closed the file
            raise InputError(self.source, f"cannot read ({exc.strerror or exc})") from None


class _Forward:
    """A decompressed stream read forward only; ``read_at`` skips ahead at most ``max_skip`` bytes."""

    length = None

    def __init__(self, stream: BinaryIO, source: str, max_skip: int):
        self.stream, self.source, self.max_skip, self.position = stream, source, max_skip, 0

    def read_at(self, offset: int, n: int) -> bytes:
        if offset < self.position:
            raise CorruptFileError(self.source, f"member at byte {offset} read after the stream moved on")
        try:
            if offset - self.position > self.max_skip:
                raise CorruptFileError(
                    self.source,
                    f"a member before byte {offset} is too large to skip in a "
                    f"compressed stream (over {self.max_skip} bytes)",
                )
            while self.position < offset:
                skipped = self.stream.read(min(offset - self.position, 1 << 20))
                if not skipped:
                    return b""
                self.position += len(skipped)
            data = self.stream.read(n)
        except _STREAM_ERRORS as exc:
            raise CorruptFileError(self.source, f"compressed data does not decode ({exc})") from None
        self.position += len(data)
        return data


def walk_tar(
    path: str | Path | BinaryIO, max_skip: int, source: str | None = None
) -> Iterator[tuple[TarMember, Callable[[], bytes]]]:
    """``(member, read)`` for every member of the tar at ``path``, in stored order; ``read()`` returns its data.

    ``path`` may also be a readable binary file object (e.g. an object-store file; read forward only).
    Compressed tars are decompressed as a stream (``read`` only before the next member is asked for). Raises
    CorruptFileError on damage (after yielding the members before it), InputError when ``path`` cannot be read.
    """
    if hasattr(path, "read"):
        yield from _walk_stream(path, source or str(getattr(path, "name", "<tar stream>")), max_skip)
        return
    source = str(path) if source is None else source
    fd = open_regular(path, source)
    try:
        length = os.fstat(fd).st_size
        if length == 0:
            raise EmptyFileError(source, "file is empty (0 bytes)")
        if not any(os.pread(fd, len(magic), 0) == magic for magic in _COMPRESSED):
            yield from _walk(_Pread(fd, length, source), source)
            return
        with os.fdopen(os.dup(fd), "rb") as raw:
            yield from _walk_stream(raw, source, max_skip)
    finally:
        os.close(fd)


def _walk_stream(raw: BinaryIO, source: str, max_skip: int) -> Iterator[tuple[TarMember, Callable[[], bytes]]]:
    head = _Forward(raw, source, 0).read_at(0, 6)
    opener = next((o for magic, o in _COMPRESSED.items() if head.startswith(magic)), None)
    stream = _Prefixed(head, raw)
    if opener is None:
        yield from _walk(_Forward(stream, source, max_skip), source)
        return
    with opener(stream) as decompressed:
        yield from _walk(_Forward(decompressed, source, max_skip), source)


class _Prefixed:
    """A forward-only file: ``head`` (bytes already read) and then the rest of ``raw``."""

    def __init__(self, head: bytes, raw: BinaryIO):
        self.head, self.raw = head, raw

    def read(self, n: int = -1) -> bytes:
        if not self.head:
            return self.raw.read(n)
        if n is None or n < 0:
            data, self.head = self.head + self.raw.read(), b""
            return data
        data, self.head = self.head[:n], self.head[n:]
        return data + (self.raw.read(n - len(data)) if len(data) < n else b"")

    def readable(self) -> bool:
        return True


def _walk(src: _Pread | _Forward, source: str) -> Iterator[tuple[TarMember, Callable[[], bytes]]]:
    offset, start, pax, long_name = 0, 0, {}, None
    while True:
        block = src.read_at(offset, BLOCK)
        if len(block) < BLOCK:
            where = "no end-of-archive block" if not block else f"header at byte {offset} cut short"
            raise CorruptFileError(
                source, f"truncated tar ({where})" if offset else "not a tar archive (under 512 bytes)"
            )
        if not block.strip(b"\0"):
            if pax or long_name is not None:
                raise CorruptFileError(source, f"extended header at byte {start} is followed by the end of the archive")
            return
        if not _checksum_ok(block):
            raise CorruptFileError(
                source, f"bad tar header checksum at byte {offset}" + ("" if offset else " (not a tar archive?)")
            )
        kind, data, size = block[156:157], offset + BLOCK, _number(block[124:136], source, offset)
        end = data + _padded(size)
        if kind in (b"x", b"g", b"L", b"K"):
            if size > MAX_HEADER_BYTES:
                raise CorruptFileError(
                    source, f"extended header at byte {offset} declares {size} bytes (limit {MAX_HEADER_BYTES})"
                )
            content = _exact(src, data, size, source)
            if kind == b"x":
                pax.update(_pax_records(content, source, offset))
            elif kind == b"L":
                long_name = content.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            offset = end
            continue
        name = long_name if long_name is not None else _ustar_name(block)
        if "path" in pax:
            name = pax["path"]
        if "size" in pax:
            size = _pax_size(pax["size"], source, offset)
            end = data + _padded(size)
        no_data = kind in _NO_DATA or (kind in _REGULAR and name.endswith("/"))
        if no_data:
            end = data
        if src.length is not None and data + size > src.length and not no_data:
            raise CorruptFileError(
                source,
                f"member {name!r} at byte {offset} declares {size} bytes, past the end of "
                f"the file ({src.length} bytes): truncated or tampered",
            )
        sparse = kind == _SPARSE or any(k.startswith("GNU.sparse.") for k in pax)
        member = TarMember(
            name.rstrip("/") if no_data else name,
            data,
            size,
            start,
            not no_data and (kind in _REGULAR or kind == _CONTIGUOUS or sparse),
            sparse,
            frozenset(pax),
        )
        yield member, (lambda m=member: _exact(src, m.offset, m.size, source))
        offset = start = end
        pax, long_name = {}, None


def _exact(src, offset: int, size: int, source: str) -> bytes:
    data = src.read_at(offset, size)
    if len(data) != size:
        raise CorruptFileError(source, f"truncated tar: {size} bytes declared at byte {offset}, {len(data)} there")
    return data


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _checksum_ok(block: bytes) -> bool:
    digits = block[148:156].split(b"\0", 1)[0].strip()
    if not digits or not all(48 <= c <= 55 for c in digits):
        return False
    unsigned = 256 + sum(block[:148]) + sum(block[156:])
    signed = unsigned - 2 * sum(c for c in block[:148] + block[156:] if c > 127)
    return int(digits, 8) in (unsigned, signed)


def _number(field: bytes, source: str, offset: int) -> int:
    """A header's numeric field: octal (NUL / space padded) or GNU base-256; negative values are refused."""
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    if field[:1] == b"\xff":
        raise CorruptFileError(source, f"tar header at byte {offset} declares a negative size")
    digits = field.split(b"\0", 1)[0].strip()
    if digits and not all(48 <= c <= 55 for c in digits):
        raise CorruptFileError(source, f"tar header at byte {offset} has a size field that is not octal")
    return int(digits or b"0", 8)


def _pax_size(value: str, source: str, offset: int) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 20:
        raise CorruptFileError(
            source, f"pax size {value[:30]!r} of the member at byte {offset} is not a non-negative integer"
        )
    return int(value)


def _pax_records(content: bytes, source: str, offset: int) -> dict[str, str]:
    """``"<length> <keyword>=<value>\\n"`` records; each length must cover its record and stay inside the header."""
    records, position = {}, 0
    while position < len(content) and content[position:].strip(b"\0"):
        space = content.find(b" ", position, position + 21)
        digits = content[position:space] if space > position else b""
        if not digits.isdigit():
            raise CorruptFileError(source, f"pax header at byte {offset}: record at {position} has no valid length")
        length = int(digits)
        record = content[space + 1 : position + length]
        if (
            length <= len(digits) + 1
            or position + length > len(content)
            or not record.endswith(b"\n")
            or b"=" not in record
        ):
            raise CorruptFileError(
                source,
                f"pax header at byte {offset}: record at {position} declares length {length}, which does not fit it",
            )
        keyword, _, value = record[:-1].partition(b"=")
        records[keyword.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


def _ustar_name(block: bytes) -> str:
    name = block[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    if block[257:263] == b"ustar\0":  # POSIX ustar: a prefix holds the leading folders
        prefix = block[345:500].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        return f"{prefix}/{name}" if prefix else name
    return name
