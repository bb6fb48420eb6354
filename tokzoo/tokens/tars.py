"""The bytes of a shard: ``np.save`` members in a tar, deterministic (what :mod:`.shards` reads back)."""

from __future__ import annotations

import io
import tarfile
from functools import lru_cache

import numpy as np


def npy_bytes(array: np.ndarray) -> bytes:
    """``np.save`` bytes of ``array`` (C order); the header is made once per dtype and shape."""
    array = np.ascontiguousarray(array)
    return _npy_header(array.dtype, array.shape) + array.tobytes()


@lru_cache(maxsize=64)
def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(shape, dtype), allow_pickle=False)
    return buffer.getvalue()[: buffer.tell() - int(np.prod(shape, dtype=np.int64)) * dtype.itemsize]


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """``<key>.npy`` members in the given order, mtime 0, uid/gid 0, fixed user/group names and mode: the bytes
    ``webdataset.TarWriter(encoder=False, mtime=0.0, user="tokzoo", group="tokzoo", mode=0o444)`` writes."""
    parts, size = [], 0
    for key, data in members:
        header = _member_header(key + ".npy", len(data))
        parts += [header, data, bytes(-len(data) % tarfile.BLOCKSIZE)]
        size += len(header) + len(data) + len(parts[-1])
    end = 2 * tarfile.BLOCKSIZE
    parts.append(bytes(end + (-(size + end) % tarfile.RECORDSIZE)))
    return b"".join(parts)


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = size, 0.0, 0o444, "tokzoo", "tokzoo"
    return info


@lru_cache(maxsize=1)
def _header_template() -> tuple[bytes, bytes, int]:
    """The pax block every member shares (it holds only ``mtime=0.0``), the ustar block without name, size and
    checksum, and its checksum base: the sum of its bytes with the checksum field counted as 8 spaces."""
    data = _tar_info("", 0).tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
    block = bytearray(data[-tarfile.BLOCKSIZE :])
    block[124:136], block[148:156] = bytes(12), bytes(8)
    return data[: -tarfile.BLOCKSIZE], bytes(block), sum(block) + 8 * ord(" ")


def _member_header(name: str, size: int) -> bytes:
    """``TarInfo.tobuf`` of member ``name``, filled into a template where the name needs no pax record."""
    if not (name.isascii() and len(name) <= tarfile.LENGTH_NAME and size < 8**11):
        return _tar_info(name, size).tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
    pax, template, base = _header_template()
    block = bytearray(template)
    name_field, size_field = name.encode("ascii"), b"%011o\0" % size
    block[: len(name_field)], block[124:136] = name_field, size_field
    block[148:156] = b"%06o\0 " % (base + sum(name_field) + sum(size_field))
    return pax + bytes(block)
