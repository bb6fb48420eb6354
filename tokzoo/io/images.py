"""PIL images to numpy arrays and back, for every image-stored modality.

Colour (``rgb``): any PIL mode becomes uint8 (H, W, 3) after EXIF orientation is applied.
Alpha (RGBA, LA, PA, P with transparency) is composited on black: ``rgb * alpha / 255``.
16-bit and 32-bit integer gray (I;16, I) are scaled to 8 bits (``v / 257``, rounded); 1-bit
becomes 0 / 255; CMYK and YCbCr go through PIL's converter (no ICC colour management).

Single-channel (depth, labels, edges): the stored integers, uint8 / uint16 / int32 (H, W), with
no scaling; the caller gives them units.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from tokzoo.errors import DtypeError, InputError, ShapeError, UnsupportedFormatError
from tokzoo.io.writes import write_output

_PIL_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_GRAY_INT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


def orient(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag (rotation / mirror) so pixels are upright; unreadable EXIF is ignored."""
    try:
        return ImageOps.exif_transpose(img)
    except (OSError, ValueError, SyntaxError):  # unreadable EXIF: keep the pixels as stored
        return img


def pil_to_rgb(img: Image.Image, source: str) -> np.ndarray:
    """Any PIL mode -> uint8 (H, W, 3); alpha composited on black (see module docstring)."""
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in _ALPHA_MODES:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint16)
        return ((rgba[..., :3] * rgba[..., 3:] + 127) // 255).astype(np.uint8)
    if mode in _GRAY_INT_MODES:
        gray = np.asarray(img).astype(np.int64)
        if gray.min() < 0 or gray.max() > 65535:
            raise UnsupportedFormatError(source, f"gray image of mode {mode} has values outside 0..65535")
        gray8 = ((gray + 128) // 257).astype(np.uint8)
        return np.repeat(gray8[..., None], 3, axis=2)
    if mode == "F":
        raise UnsupportedFormatError(source, "float images (PIL mode F) have no defined colour range for rgb")
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def pil_to_channel(img: Image.Image, source: str) -> np.ndarray:
    """Single-channel PIL image -> its stored integers (H, W): uint8 for L / P / 1, uint16 for I;16, int32 for I."""
    if img.mode in ("L", "P"):
        return np.asarray(img, dtype=np.uint8)
    if img.mode == "1":
        return np.asarray(img, dtype=np.uint8)  # 0 / 1
    if img.mode in _GRAY_INT_MODES:
        arr = np.asarray(img)
        return arr.astype(np.uint16) if arr.dtype.kind == "u" else arr.astype(np.int32)
    raise ShapeError(source, f"expected a single-channel image (L, P, 1, I;16, I), got PIL mode {img.mode}")


def pil_to_rgb8_exact(img: Image.Image, source: str) -> np.ndarray:
    """Three-channel 8-bit image -> uint8 (H, W, 3) without compositing or colour conversion (for normals)."""
    if img.mode != "RGB":
        raise ShapeError(source, f"expected an 8-bit RGB image, got PIL mode {img.mode}")
    return np.asarray(img, dtype=np.uint8)


def encode_image(arr: np.ndarray, ext: str, source: str = "<array>") -> bytes:
    """uint8 (H, W) / (H, W, 3) or uint16 (H, W) -> encoded bytes; JPEG at quality 95, others lossless."""
    fmt = _PIL_FORMATS.get(ext.lower())
    if fmt is None:
        raise UnsupportedFormatError(source, f"cannot write images as {ext!r}; use one of {sorted(_PIL_FORMATS)}")
    if arr.dtype == np.uint16 and (arr.ndim != 2 or fmt != "PNG"):
        raise DtypeError(source, "uint16 images can only be written as single-channel PNG")
    if arr.dtype not in (np.uint8, np.uint16):
        raise DtypeError(source, f"cannot encode dtype {arr.dtype} as an image")
    buf = io.BytesIO()
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "WEBP":
        options["lossless"] = True
        options.pop("quality")
    try:
        Image.fromarray(np.ascontiguousarray(arr)).save(buf, format=fmt, **options)
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(source, f"cannot encode as {fmt} ({exc})") from None
    return buf.getvalue()


def save_png(picture: np.ndarray, path: str | os.PathLike) -> Path:
    """Write ``picture`` to ``path`` in the format its extension names (PNG when none), never through a link."""
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format=Image.registered_extensions().get(Path(path).suffix.lower(), "PNG"))
    return write_output(path, buffer.getvalue())
