"""Files inside a compiled Qt resource bundle (``.rcc``, format versions 1-3), read without Qt.

Layout: a 20-byte header (``qres``, version, then the offsets of the tree, the data and the names; version 3 adds
feature flags), a tree of 14-byte nodes (22 from version 2: a last-modified time follows), UTF-16 names prefixed
by their length and hash, and data blocks prefixed by their length. A compressed block starts with its
uncompressed length and holds a zlib stream; zstd blocks (flag 4) are skipped. Used to reach the photographs that
GCompris ships (tokzoo.datasets.photos).
"""

from __future__ import annotations

import struct
import zlib

COMPRESSED, DIRECTORY, COMPRESSED_ZSTD = 1, 2, 4
MAX_NODES = 1 << 20
"""A tree larger than this is taken as corrupt."""


class ResourceError(ValueError):
    """The bytes are not a Qt resource bundle this reader understands."""


def resource_files(blob: bytes):
    """Yield (path, bytes) of every file in the bundle ``blob``, paths joined with ``/``. ResourceError for bytes
    that are not a bundle or whose offsets point outside it."""
    if len(blob) < 20 or blob[:4] != b"qres":
        raise ResourceError("not a Qt resource bundle (no qres header)")
    version, tree, data, names = struct.unpack(">4I", blob[4:20])
    if version not in (1, 2, 3):
        raise ResourceError(f"unsupported Qt resource version {version}")
    node_size = 14 if version == 1 else 22

    def unpack(fmt: str, offset: int):
        size = struct.calcsize(fmt)
        if offset < 0 or offset + size > len(blob):
            raise ResourceError("offset outside the bundle")
        return struct.unpack(fmt, blob[offset : offset + size])

    def name(node: int) -> str:
        (offset,) = unpack(">I", tree + node * node_size)
        (length,) = unpack(">H", names + offset)
        start = names + offset + 6
        if start + 2 * length > len(blob):
            raise ResourceError("name outside the bundle")
        return blob[start : start + 2 * length].decode("utf-16-be", errors="replace")

    stack, seen = [(0, "")], 0
    while stack:
        node, prefix = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise ResourceError("resource tree too large")
        (flags,) = unpack(">H", tree + node * node_size + 4)
        path = f"{prefix}/{name(node)}" if node else ""
        if flags & DIRECTORY:
            count, first = unpack(">II", tree + node * node_size + 6)
            stack.extend((child, path) for child in range(first + count - 1, first - 1, -1))
            continue
        if flags & COMPRESSED_ZSTD:
            continue
        (offset,) = unpack(">I", tree + node * node_size + 10)
        (size,) = unpack(">I", data + offset)
        content = blob[data + offset + 4 : data + offset + 4 + size]
        if flags & COMPRESSED:
            try:
                content = zlib.decompress(content[4:])
            except zlib.error as error:
                raise ResourceError(f"{path}: {error}") from None
        yield path.lstrip("/"), content
