"""Guards applied before anything is decoded: pixel limits, ``.npy`` headers, JSON size.

Each guard raises a typed :mod:`tokzoo.errors` error naming the source, never allocates memory
proportional to what a file *claims* before checking the claim, and never unpickles.
"""

from __future__ import annotations

import io
import json
import warnings

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
    fp = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(fp)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(fp)
    except (ValueError, EOFError) as exc:
        raise CorruptFileError(source, f"bad .npy header ({exc})") from None
    if dtype.hasobject:
        raise DtypeError(source, f"object arrays are refused (dtype {dtype}); pickles are never loaded")
    needed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    available = len(data) - fp.tell()
    if needed > available:
        raise CorruptFileError(source, f".npy header declares {needed} bytes of data but the file holds {available}")
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise CorruptFileError(source, f".npy does not load ({exc})") from None


def load_json(data: bytes, source: str, max_bytes: int = MAX_JSON_BYTES) -> object:
    """Parse UTF-8 JSON bytes no larger than ``max_bytes``."""
    check_not_empty(data, source)
    if len(data) > max_bytes:
        raise CorruptFileError(source, f"JSON is {len(data)} bytes, over the limit of {max_bytes}")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(source, f"not valid UTF-8 JSON ({exc})") from None
