"""Files inside a compiled Qt resource bundle (``.rcc``, format versions 1-3), read without Qt.

Layout: a 20-byte header (``qres``, version, then the offsets of the tree, the data and the names; version 3 adds
feature flags), a tree of 14-byte nodes (22 from version 2: a last-modified time follows), UTF-16 names prefixed
by their length and hash, and data blocks prefixed by their length. A compressed block starts with its
uncompressed length and holds a zlib stream; zstd blocks (flag 4) are skipped. Used to reach the photographs that
GCompris ships (tokzoo.datasets.photos). Hostile bytes raise ResourceError: every offset is bounds-checked, a node
is visited once, and no file inflates beyond ``max_file_bytes``.
"""

from __future__ import annotations

import struct
import zlib

COMPRESSED, DIRECTORY, COMPRESSED_ZSTD = 1, 2, 4
MAX_FILE_BYTES = 64 << 20
"""Default cap on one file's (inflated) size."""


class ResourceError(ValueError):
    """The bytes are not a Qt resource bundle this reader understands."""


def resource_files(blob: bytes, max_file_bytes: int = MAX_FILE_BYTES, wanted=None):
    """Yield (path, bytes) of every file in the bundle ``blob`` (of those whose path ``wanted(path)`` accepts: the
    others are never read or inflated), paths joined with ``/``. ResourceError for bytes
    that are not a bundle, offsets outside it, a tree that revisits a node, a damaged zlib stream, or a file larger
    than ``max_file_bytes`` (declared or inflated)."""
    if len(blob) < 20 or blob[:4] != b"qres":
        raise ResourceError("not a Qt resource bundle (no qres header)")
    version, tree, data, names = struct.unpack(">4I", blob[4:20])
    if version not in (1, 2, 3):
        raise ResourceError(f"unsupported Qt resource version {version}")
    node_size = 14 if version == 1 else 22
    n_nodes = max(0, (len(blob) - tree) // node_size)

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

    stack, visited = [(0, "")], set()
    while stack:
        node, prefix = stack.pop()
        if node in visited:
            raise ResourceError("resource tree visits a node twice")
        visited.add(node)
        (flags,) = unpack(">H", tree + node * node_size + 4)
        path = f"{prefix}/{name(node)}" if node else ""
        if flags & DIRECTORY:
            count, first = unpack(">II", tree + node * node_size + 6)
            if first + count > n_nodes:
                raise ResourceError(f"{path or '/'}: children outside the bundle")
            stack.extend((child, path) for child in range(first + count - 1, first - 1, -1))
            continue
        if flags & COMPRESSED_ZSTD or (wanted is not None and not wanted(path.lstrip("/"))):
            continue
        (offset,) = unpack(">I", tree + node * node_size + 10)
        (size,) = unpack(">I", data + offset)
        start = data + offset + 4
        if start + size > len(blob):
            raise ResourceError(f"{path}: data outside the bundle")
        content = blob[start : start + size]
        if flags & COMPRESSED:
            content = _inflate(path, content, max_file_bytes)
        elif size > max_file_bytes:
            raise ResourceError(f"{path}: {size} bytes, over the {max_file_bytes}-byte limit")
        yield path.lstrip("/"), content


def _inflate(path: str, block: bytes, max_file_bytes: int) -> bytes:
    """The zlib stream after a block's 4-byte declared length, refused when larger than declared or the limit."""
    if len(block) < 4:
        raise ResourceError(f"{path}: compressed block too short")
    (declared,) = struct.unpack(">I", block[:4])
    if declared > max_file_bytes:
        raise ResourceError(f"{path}: {declared} bytes, over the {max_file_bytes}-byte limit")
    inflater = zlib.decompressobj()
    try:
        content = inflater.decompress(block[4:], declared + 1)
    except zlib.error as error:
        raise ResourceError(f"{path}: {error}") from None
    if len(content) != declared:
        raise ResourceError(f"{path}: inflates to another size than its declared {declared} bytes")
    return content
