"""One modality's token shard as a numpy view, without decoding member by member.

A shard is a tar of ``<key>.npy`` members. Pipeline shards hold members of one dtype and shape,
so each member's unit (a pax header identical for all members, if any; the tar header; the npy
bytes) repeats at a regular stride: the tar is memory-mapped, every tar header (size, type,
checksum, name), pax header and npy header (byte-identical to the first one) is checked with
vectorised comparisons, and the tokens become one strided view ``(n_samples, n_crops, *token_shape)``
in the stored dtype. Shards that break the stride (long names, members of different shapes) are
listed with the safe tar walker (:mod:`tokzoo.io.tarwalk`) and each member's npy header is validated on
its own. Object and non-integer dtypes, duplicate keys, members over :data:`MAX_MEMBER_BYTES` and
truncated shards are refused with a typed error naming the shard (nothing is ever unpickled, and nothing
is read into memory in proportion to what a header declares).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format
from numpy.lib.stride_tricks import as_strided

from tokzoo.errors import CorruptFileError, DtypeError, EmptyFileError, InputError, ShapeError
from tokzoo.io.tarwalk import BLOCK, TarMember, walk_tar

MAX_MEMBER_BYTES = 256 * 1024 * 1024
"""Largest member (one sample's tokens) a shard may hold; also the most a shard's members are stacked into."""

MAX_MEMBERS = 10_000_000
"""Most members one shard may hold (the pipeline writes ``--samples-per-shard``, 256 by default)."""

_NPY_HEADER_BYTES = 65536 + 16
"""Bytes of a member read to parse its .npy header (numpy's own header limit is 10,000 bytes)."""

_UNITS_PER_CHECK = 65536
"""Members whose headers are validated per vectorised step of the fast path (bounds its memory)."""
_CHECKSUM = slice(148, 156)


@dataclass
class Shard:
    """Tokens of one modality in one shard.

    ``names``: (n,) bytes member names (``b"<key>.npy"``). ``tokens``: (n, n_crops, *token_shape)
    view in the stored integer dtype, or, when members differ in shape, a list of n arrays
    (n_crops_i, *token_shape_i). ``n_crops``: (n,) int64.
    """

    path: Path
    names: np.ndarray
    tokens: np.ndarray | list[np.ndarray]
    n_crops: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def gather(self, index: np.ndarray, crops: np.ndarray, pad_id: int | None = None) -> np.ndarray:
        """Tokens of samples ``index`` at crops ``crops`` (both (B,) int) -> (B, *token_shape), stored dtype.

        ``pad_id``: a set-valued modality (members (n_crops, N, *item_shape), N varying): the picked crops are
        padded to their largest N with ``pad_id`` -> (B, N_max, *item_shape).
        """
        if isinstance(self.tokens, np.ndarray):
            return self.tokens[index, crops]
        picked = [self.tokens[i][c] for i, c in zip(index, crops)]
        if pad_id is not None:
            return pad_items([p[None] for p in picked], pad_id, self.path)
        if len({p.shape for p in picked}) > 1:
            raise ShapeError(
                self.path, f"members differ in token shape ({picked[0].shape} vs others), cannot batch them"
            )
        return np.stack(picked)


def pad_items(parts: list[np.ndarray], pad_id: int, source="tokens") -> np.ndarray:
    """Arrays (B_i, N_i, *item_shape) -> one (sum B_i, max N_i, *item_shape), rows N_i.. of part i = ``pad_id``."""
    if len({p.shape[2:] for p in parts}) > 1:
        raise ShapeError(source, f"items differ in token shape ({parts[0].shape[2:]} vs others), cannot batch them")
    out = np.full(
        (sum(len(p) for p in parts), max(p.shape[1] for p in parts), *parts[0].shape[2:]),
        pad_id,
        np.result_type(*parts),
    )
    row = 0
    for part in parts:
        out[row : row + len(part), : part.shape[1]] = part
        row += len(part)
    return out


def open_shard(path: str | Path) -> Shard:
    """Memory-map and validate ``path``; raises a typed :class:`InputError` naming the shard and the reason."""
    path = Path(path)
    layout = _first_member(path)  # headers only: a member declaring gigabytes is refused before mapping
    buf = _map(path)
    if layout == _EMPTY:
        return Shard(path, np.array([], dtype="S1"), [], np.zeros(0, np.int64))
    shard = _open_strided(buf, path, layout) if layout else None
    return shard if shard is not None else _open_listed(buf, path)


def count_members(path: str | Path) -> int:
    """Member count of a shard from O(log n) header probes; shards that break the stride are listed instead.

    ``open_shard`` re-checks the count, so a probe fooled by an irregular shard fails loudly, not silently.
    """
    path = Path(path)
    layout = _first_member(path)
    buf = _map(path)
    if layout == _EMPTY:
        return 0
    n = _probe_count(buf, layout) if layout else None
    return n if n is not None else len(_list_members(buf, path))


def _map(path: Path) -> np.ndarray:
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise InputError(path, f"cannot read shard ({e.strerror})") from None
    if size == 0:
        raise EmptyFileError(path, "shard has zero bytes")
    if size < 2 * BLOCK:
        raise CorruptFileError(path, f"truncated tar ({size} bytes)")
    try:
        return np.memmap(path, dtype=np.uint8, mode="r")
    except OSError as e:  # e.g. ENOMEM: no address space left for a (sparse, tampered) file this large
        raise InputError(path, f"cannot memory-map the shard's {size} bytes ({e.strerror or e})") from None


@dataclass(frozen=True)
class _Layout:
    """Where member i lives if the shard is regular: its unit starts at i * stride (pax header, if any, first),
    its ustar header at i * stride + header, its npy bytes (``size`` of them) right after that header."""

    header: int
    size: int
    stride: int


_EMPTY = _Layout(0, 0, 0)
_HARMLESS_PAX = {"mtime", "atime", "ctime", "uid", "gid", "uname", "gname"}  # cannot rename or resize a member


def _first_member(path: Path) -> _Layout | None:
    """Layout implied by the first member; ``_EMPTY`` for an empty archive, None if no stride can hold."""
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise InputError(path, f"cannot read shard ({e.strerror})") from None
    if size == 0:
        raise EmptyFileError(path, "shard has zero bytes")
    info = next((member for member, _ in walk_tar(path, max_skip=0)), None)
    if info is None:
        return _EMPTY
    if info.size > MAX_MEMBER_BYTES:
        raise CorruptFileError(
            path,
            f"member {info.name!r} declares {info.size} bytes, over the limit of "
            f"{MAX_MEMBER_BYTES} for one sample's tokens",
        )
    if not info.regular or info.sparse or info.start != 0 or info.pax_keys - _HARMLESS_PAX:
        return None
    return _Layout(info.offset - BLOCK, info.size, info.offset + -(-info.size // BLOCK) * BLOCK)


def _probe_count(buf: np.ndarray, layout: _Layout) -> int | None:
    """Index of the first empty unit (binary search), if the unit before it holds a valid header.

    In a regular shard every block at i * stride starts a member until the end-of-archive zeros.
    """
    stride = layout.stride
    lo, hi = 1, len(buf) // stride + 1  # unit 0 is a member; a block past the end of the file counts as empty
    while lo < hi:
        mid = (lo + hi) // 2
        block = buf[mid * stride : mid * stride + BLOCK]
        if len(block) == BLOCK and block.any():
            lo = mid + 1
        else:
            hi = mid
    at = (lo - 1) * stride + layout.header
    last = np.asarray(buf[at : at + BLOCK])
    ok = (
        len(last) == BLOCK
        and _checksum_ok(last[None])[0]
        and bytes(last[124:136]) == bytes(buf[layout.header + 124 : layout.header + 136])
    )
    return lo if ok and lo * stride + BLOCK <= len(buf) else None


_LOW_BYTES = np.uint64(0x00FF00FF00FF00FF)


def _checksum_ok(headers: np.ndarray) -> np.ndarray:
    """(m, 512) uint8 headers -> (m,) bool: stored octal checksum equals the byte sum with its field as spaces."""
    headers = np.ascontiguousarray(headers)
    field = headers[:, _CHECKSUM].astype(np.int64)
    stored = np.zeros(len(headers), np.int64)
    for j in range(field.shape[1]):  # octal digits, possibly padded with spaces / NULs
        digit = (field[:, j] >= 48) & (field[:, j] <= 55)
        stored = np.where(digit, stored * 8 + field[:, j] - 48, stored)
    words = headers.view(np.uint64)  # byte sums 8 at a time: pairwise into 16-bit lanes, then lanes summed
    pairs = (words & _LOW_BYTES) + ((words >> np.uint64(8)) & _LOW_BYTES)
    byte_sum = ((pairs * np.uint64(0x0001000100010001)) >> np.uint64(48)).sum(axis=1, dtype=np.int64)
    return stored == byte_sum - field.sum(axis=1) + 8 * 32


def _open_strided(buf: np.ndarray, path: Path, layout: _Layout) -> Shard | None:
    """The fast path; None when the shard does not follow one stride (the caller lists it instead).

    Headers are compared in steps of :data:`_UNITS_PER_CHECK` members, so memory stays bounded whatever
    member count a tampered (e.g. sparse) file suggests, and the first irregular step ends the fast path.
    """
    stride, size = layout.stride, layout.size
    n = _probe_count(buf, layout)
    if n is None:
        return None
    if size > MAX_MEMBER_BYTES or n > MAX_MEMBERS:
        raise CorruptFileError(
            path, f"{n} members of {size} bytes: over the limits of {MAX_MEMBERS} members of {MAX_MEMBER_BYTES} bytes"
        )
    first = np.asarray(buf[layout.header : layout.header + BLOCK])
    if not (int(first[156]) in (ord("0"), 0) and bytes(first[257:262]) == b"ustar"):
        return None
    data, pax = layout.header + BLOCK, np.asarray(buf[: layout.header])
    head = bytes(buf[data : data + min(size, _NPY_HEADER_BYTES)])
    dtype, shape, fortran, header_len = _npy_header(head, path, first[:100].tobytes().rstrip(b"\0"), size)
    if fortran:
        return None
    names = []
    for lo in range(0, n, _UNITS_PER_CHECK):
        count = min(_UNITS_PER_CHECK, n - lo)
        if not _regular_units(buf[lo * stride :], layout, count, pax, first, head[:header_len]):
            return None
        names.append(
            np.asarray(as_strided(buf[lo * stride + layout.header :], shape=(count, 100), strides=(stride, 1)))
        )
    names = np.ascontiguousarray(np.concatenate(names)).view("S100").ravel()
    _check_names(names, path)
    tokens = np.ndarray(
        (n, *shape), dtype, buffer=buf, offset=data + header_len, strides=(stride, *_c_strides(shape, dtype.itemsize))
    )
    return Shard(path, names, tokens, np.full(n, shape[0], np.int64))


def _regular_units(
    buf: np.ndarray, layout: _Layout, count: int, pax: np.ndarray, first: np.ndarray, npy_header: bytes
) -> bool:
    """Whether the ``count`` units from the start of ``buf`` repeat the first unit: its pax header ``pax`` (checked
    harmless), a ustar header of the same size and type as ``first`` with a valid checksum, the same npy header."""
    stride = layout.stride
    if layout.header:
        units = as_strided(buf, shape=(count, layout.header), strides=(stride, 1))
        if not (units == pax).all():
            return False
    headers = np.ascontiguousarray(as_strided(buf[layout.header :], shape=(count, BLOCK), strides=(stride, 1)))
    same = (headers[:, 124:136] == first[124:136]).all(axis=1) & (headers[:, 156] == first[156])
    same &= (headers[:, 257:263] == first[257:263]).all(axis=1) & ~headers[:, 345:500].any(axis=1)
    if not (same.all() and _checksum_ok(headers).all()):
        return False
    members = as_strided(buf[layout.header + BLOCK :], shape=(count, len(npy_header)), strides=(stride, 1))
    return bool((members == np.frombuffer(npy_header, np.uint8)).all())


def _list_members(buf: np.ndarray, path: Path) -> list[TarMember]:
    """Members via the safe tar walker (:mod:`tokzoo.io.tarwalk`): damage, truncation (no end-of-archive block),
    non-regular or sparse members and members over :data:`MAX_MEMBER_BYTES` raise CorruptFileError."""
    members = []
    for member, _ in walk_tar(path, max_skip=0):
        if not member.regular or member.sparse:
            raise CorruptFileError(path, f"member {member.name!r} is not a regular file")
        if member.size > MAX_MEMBER_BYTES:
            raise CorruptFileError(
                path,
                f"member {member.name!r} declares {member.size} bytes, over the limit of "
                f"{MAX_MEMBER_BYTES} for one sample's tokens",
            )
        members.append(member)
        if len(members) > MAX_MEMBERS:
            raise CorruptFileError(path, f"more than {MAX_MEMBERS} members")
    return members


def _open_listed(buf: np.ndarray, path: Path) -> Shard:
    members = _list_members(buf, path)
    names = np.array([m.name.encode("utf-8", "surrogateescape") for m in members], dtype="S")
    _check_names(names, path)
    tokens = []
    for m, name in zip(members, names):
        head = bytes(buf[m.offset : m.offset + min(m.size, _NPY_HEADER_BYTES)])
        dtype, shape, fortran, header_len = _npy_header(head, path, name, m.size)
        tokens.append(np.ndarray(shape, dtype, buffer=buf, offset=m.offset + header_len, order="F" if fortran else "C"))
    if len({(t.shape, t.dtype) for t in tokens}) == 1 and sum(t.nbytes for t in tokens) <= MAX_MEMBER_BYTES:
        tokens = np.stack(tokens)  # a copy: only when small; larger shards stay a list of memory-mapped views
    return Shard(path, names, tokens, np.array([len(t) for t in tokens], np.int64))


def _check_names(names: np.ndarray, path: Path) -> None:
    """Every (NUL-padded) name must be ``<key>.npy`` with a non-empty, dot-free key, and no key may repeat."""
    chars = names.view(np.uint8).reshape(len(names), -1)
    filled = chars != 0
    length = np.where(filled.all(axis=1), chars.shape[1], filled.argmin(axis=1))
    ok = (filled.sum(axis=1) == length) & (length > 4) & ((chars == ord(".")).sum(axis=1) == 1)
    tail = chars[np.arange(len(names))[:, None], np.maximum(length, 4)[:, None] - 4 + np.arange(4)]
    ok &= (tail == np.frombuffer(b".npy", np.uint8)).all(axis=1)
    if not ok.all():
        raise CorruptFileError(path, f"member {names[~ok][0].decode(errors='replace')!r} is not named <key>.npy")
    unique, counts = np.unique(names, return_counts=True)
    if len(unique) != len(names):
        raise CorruptFileError(path, f"duplicate key {unique[counts > 1][0][:-4].decode(errors='replace')!r}")


def _npy_header(head: bytes, path: Path, name: bytes, size: int) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """Validate one member's npy header from its first bytes ``head`` against the member's ``size``
    -> (dtype, shape, fortran_order, header length in bytes)."""
    where = f"member {name.decode(errors='replace')!r}"
    stream = io.BytesIO(head)
    try:
        version = npy_format.read_magic(stream)
        read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran, dtype = read(stream)
    except Exception as e:  # numpy parses the header with ast / tokenize: any failure means a malformed header
        raise CorruptFileError(path, f"{where}: bad .npy header ({type(e).__name__}: {str(e)[:200]})") from None
    if dtype.hasobject or not np.issubdtype(dtype, np.integer):
        raise DtypeError(path, f"{where}: token ids must be a plain integer dtype, got {dtype}")
    if len(shape) < 1 or shape[0] < 1 or min(shape) < 0:
        raise ShapeError(path, f"{where}: expected (n_crops >= 1, *token_shape), got shape {shape}")
    header_len = stream.tell()
    expected = header_len + math.prod(shape) * dtype.itemsize
    if size != expected:
        raise CorruptFileError(path, f"{where}: {size} bytes, its .npy header implies {expected}")
    return dtype, shape, fortran, header_len


def _c_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    strides, step = [], itemsize
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))
