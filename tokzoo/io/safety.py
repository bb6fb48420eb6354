"""Guards applied before anything is decoded: regular files read with a size cap, pixel limits, ``.npy``
headers, JSON size and nesting.

Each guard raises a typed :mod:`tokzoo.errors` error naming the source, never allocates memory
proportional to what a file *claims* before checking the claim, and never unpickles. :func:`read_file`
is the one way tokzoo reads an input file: regular files only (a FIFO would block, ``/dev/zero`` never
ends), at most ``max_bytes``.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import warnings
from functools import lru_cache

import numpy as np
from PIL import Image, UnidentifiedImageError

from tokzoo.errors import ConfigError, CorruptFileError, DtypeError, EmptyFileError, ImageTooLargeError, InputError

MAX_PIXELS = 64_000_000
"""Default pixel limit (width * height) above which an image is refused before decoding."""

MAX_JSON_BYTES = 16 * 1024 * 1024
"""Default size limit of a JSON file."""

MAX_FILE_BYTES = 256 * 1024 * 1024
"""Default size limit of one input file or tar member (``--max-member-bytes``): 256 MiB, as much as a float32
depth map of the 64-megapixel image limit, far above any compressed image a sample holds."""

NPY_MAGIC = b"\x93NUMPY"


def check_limit(value: object, name: str) -> int:
    """A size limit given by a user: a positive int, else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive number of bytes, got {value!r}")
    return value


def open_regular(path: str | os.PathLike, source: str | None = None) -> int:
    """``os.open`` for reading a path that must be a regular file (not a FIFO, device, socket or folder: those
    are refused from ``stat`` before opening, and again from ``fstat``); never blocks. Returns the descriptor;
    raises InputError naming the file otherwise."""
    source = str(path) if source is None else source
    try:
        _require_regular(os.stat(path).st_mode, source)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputError(source, f"cannot open ({exc.strerror or exc})") from None
    try:
        _require_regular(os.fstat(fd).st_mode, source)
    except InputError:
        os.close(fd)
        raise
    return fd


def _require_regular(mode: int, source: str) -> None:
    if not stat.S_ISREG(mode):
        raise InputError(source, f"not a regular file ({file_kind(mode)}); only regular files are read")


def file_kind(mode: int) -> str:
    """'FIFO', 'character device', ... for an ``st_mode``."""
    for test, name in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISDIR, "folder"),
        (stat.S_ISREG, "regular file"),
    ):
        if test(mode):
            return name
    return "special file"


def read_file(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES, source: str | None = None) -> bytes:
    """The bytes of the regular file at ``path`` (symlinks followed), refusing FIFOs, devices, sockets and
    folders, and files over ``max_bytes`` (checked from ``fstat`` before reading, and again while reading)."""
    source = str(path) if source is None else source
    fd = open_regular(path, source)
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise InputError(source, f"file is {size} bytes, over the limit of {max_bytes} (--max-member-bytes)")
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(source, f"cannot read file ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise InputError(source, f"file grew past the limit of {max_bytes} bytes while being read")
    return data


def check_not_empty(data: bytes, source: str) -> None:
    """Raise :class:`EmptyFileError` for zero bytes."""
    if len(data) == 0:
        raise EmptyFileError(source, "file is empty (0 bytes)")


def open_image(data: bytes, source: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode image bytes with the size checked from the header first.

    Returns a fully loaded PIL image (EXIF orientation not yet applied). Raises
    :class:`ImageTooLargeError` when width * height > ``max_pixels`` (checked before any pixel is
    decoded; PIL's own DecompressionBombError/Warning map to the same error) and
    :class:`CorruptFileError` for bytes that are not a complete image.
    """
    check_not_empty(data, source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise ImageTooLargeError(
                    source, f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}"
                )
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(source, f"refused by PIL's decompression-bomb guard ({exc})") from None
    except UnidentifiedImageError:
        raise CorruptFileError(source, "bytes are not an image PIL can identify") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptFileError(source, f"image does not decode ({exc})") from None
    return img


def load_npy(data: bytes, source: str) -> np.ndarray:
    """Parse ``.npy`` bytes without pickle, checking the header against the payload size first.

    Raises :class:`CorruptFileError` for bytes that are not ``.npy`` (pickles included) or whose
    header claims more data than the file holds, and :class:`DtypeError` for object arrays.
    """
    check_not_empty(data, source)
    if not data.startswith(NPY_MAGIC):
        kind = "pickled data" if data[:1] == b"\x80" else "bytes"
        raise CorruptFileError(source, f"not a .npy file ({kind} without the NUMPY magic; pickles are never loaded)")
    try:
        shape, fortran_order, dtype, offset = _npy_header(data[: _npy_header_end(data)])
    except Exception as exc:  # numpy parses the header with ast / tokenize: any failure means a malformed header
        raise CorruptFileError(source, f"bad .npy header ({type(exc).__name__}: {str(exc)[:200]})") from None
    if dtype.hasobject:
        raise DtypeError(source, f"object arrays are refused (dtype {dtype}); pickles are never loaded")
    if any(n < 0 for n in shape):
        raise CorruptFileError(source, f"bad .npy header (negative size in shape {shape})")
    count = math.prod(shape)  # Python ints: a hostile shape cannot overflow into a small or negative count
    needed = count * dtype.itemsize
    available = len(data) - offset
    if needed > available:
        raise CorruptFileError(source, f".npy header declares {needed} bytes of data but the file holds {available}")
    if dtype.itemsize == 0 and count:
        raise DtypeError(source, f"dtype {dtype} has zero-byte items")
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    # a writeable copy in the header's memory order, as np.load gives
    return flat.reshape(shape[::-1]).T.copy(order="F") if fortran_order else flat.reshape(shape).copy()


def _npy_header_end(data: bytes) -> int:
    """Offset of the array data: magic (6) + version (2) + header length (2 for v1, 4 after) + header."""
    if data[6:7] == b"\x01":
        return 10 + int.from_bytes(data[8:10], "little")
    return 12 + int.from_bytes(data[8:12], "little")


@lru_cache(maxsize=256)
def _npy_header(prefix: bytes) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """``(shape, fortran_order, dtype, data offset)`` of a .npy file starting with ``prefix``; cached, since the
    files of one dataset share a few headers and parsing one (``ast.literal_eval``) costs more than a small array."""
    fp = io.BytesIO(prefix)
    version = np.lib.format.read_magic(fp)
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise ValueError(f"unknown format version {version}")
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(fp)
    return shape, fortran_order, dtype, fp.tell()


def load_json(data: bytes, source: str, max_bytes: int = MAX_JSON_BYTES) -> object:
    """Parse UTF-8 JSON bytes no larger than ``max_bytes``."""
    check_not_empty(data, source)
    if len(data) > max_bytes:
        raise CorruptFileError(source, f"JSON is {len(data)} bytes, over the limit of {max_bytes}")
    try:
        return json.loads(data.decode("utf-8"), parse_int=_json_int)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, and _json_int's refusal
        raise CorruptFileError(source, f"not valid UTF-8 JSON ({exc})") from None
    except RecursionError:
        raise CorruptFileError(source, "JSON nests too deeply to parse") from None


def _json_int(text: str) -> int:
    """JSON integers of at most 20 digits (int64 range and a little more): longer ones only cost time and overflow."""
    if len(text.lstrip("-")) > 20:
        raise ValueError(f"integer of {len(text.lstrip('-'))} digits")
    return int(text)


MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_VALUES = 100_000
"""A YAML recipe's size on disk, and the values it may expand to (aliases re-use nodes: a 1 kB file can name 10^9)."""


def read_yaml_file(path: str | os.PathLike, max_bytes: int = MAX_CONFIG_BYTES):
    """The YAML document at ``path`` (``yaml.safe_load``): a regular UTF-8 file of at most ``max_bytes`` expanding to
    at most ``MAX_CONFIG_VALUES`` values; ConfigError in one line naming the file otherwise."""
    import yaml

    try:
        raw = yaml.safe_load(read_file(path, max_bytes).decode("utf-8"))
    except InputError as error:  # missing, a FIFO, a device, over the size limit
        raise ConfigError(str(error)) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{line}") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nests too deeply") from None
    except ValueError as error:  # int() of a number of over 4,300 digits
        raise ConfigError(f"{path}: a number is refused ({str(error).split(':')[0][:100]})") from None
    if _count_values(raw, MAX_CONFIG_VALUES) > MAX_CONFIG_VALUES:
        raise ConfigError(f"{path}: expands to over {MAX_CONFIG_VALUES} values (YAML aliases of aliases?); refused")
    return raw


def read_json_file(path: str | os.PathLike, error: type[Exception] = ConfigError, max_bytes: int = MAX_JSON_BYTES):
    """The JSON document at ``path``: a regular file of at most ``max_bytes``; ``error`` (a TokzooError class) with one
    line naming the file otherwise."""
    try:
        return load_json(read_file(path, max_bytes), str(path), max_bytes)
    except InputError as problem:
        raise error(str(problem)) from None


def _count_values(node, budget: int) -> int:
    """Values in ``node`` counting every alias use, stopping once past ``budget``."""
    count, stack = 0, [node]
    while stack and count <= budget:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return count
