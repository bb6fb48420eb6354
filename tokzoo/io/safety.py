"""Guards applied before anything is decoded: pixel limits, ``.npy`` headers, JSON size.

Each guard raises a typed :mod:`tokzoo.errors` error naming the source, never allocates memory
proportional to what a file *claims* before checking the claim, and never unpickles.
"""

from __future__ import annotations

import io
import json
import warnings
from functools import lru_cache

import numpy as np
from PIL import Image, UnidentifiedImageError

from tokzoo.errors import CorruptFileError, DtypeError, EmptyFileError, ImageTooLargeError

MAX_PIXELS = 64_000_000
"""Default pixel limit (width * height) above which an image is refused before decoding."""

MAX_JSON_BYTES = 16 * 1024 * 1024
"""Default size limit of a JSON file."""

NPY_MAGIC = b"\x93NUMPY"


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
        shape, fortran_order, dtype, offset = _npy_header(data[:_npy_header_end(data)])
    except (ValueError, EOFError) as exc:
        raise CorruptFileError(source, f"bad .npy header ({exc})") from None
    if dtype.hasobject:
        raise DtypeError(source, f"object arrays are refused (dtype {dtype}); pickles are never loaded")
    count = int(np.prod(shape, dtype=np.int64))
    needed = count * dtype.itemsize
    available = len(data) - offset
    if needed > available:
        raise CorruptFileError(source, f".npy header declares {needed} bytes of data but the file holds {available}")
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
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(source, f"not valid UTF-8 JSON ({exc})") from None
