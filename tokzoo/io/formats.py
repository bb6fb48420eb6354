"""Modality files <-> in-memory values (the contract in docs/ARCHITECTURE.md).

Each stored value declares its file format and extensions where it is defined (``tokzoo.modalities.STORED``);
this module owns the formats. By modality (extension -> meaning):

| modality | read | write | stored meaning |
|---|---|---|---|
| rgb | .jpg .jpeg .png .webp .bmp .tif .tiff | same | any PIL mode, EXIF orientation applied (see ``tokzoo.io.images``) |
| depth | .png, .npy | same | PNG: 16-bit gray, metres = value / ``scale`` (default 1000, millimetres), 0 = invalid; npy: float metres, 0 / NaN / +-inf / negative = invalid |
| normals | .png, .npy | same | PNG: 8-bit RGB, v = p / 255 * 2 - 1, renormalised, vectors shorter than 0.5 (e.g. grey 128) = invalid; npy: float (H, W, 3) |
| semseg | .png, .npy | same | uint8 / uint16 / palette ids; the file's ``ignore_index`` (default 255) becomes 255 |
| sam_instances (old name: instances) | .png, .npy | same | uint16 ids, 0 = none |
| edges | .png, .npy | same | {0, 1} or 0..255 (>= 128 is an edge); written as 0 / 255 |
| crops | .npy | .npy | int (n_crops, 5) |
| dense_features, global_feature | .npy | .npy | float (h, w, C) / (D,), finite, stored as float32 |
| pose, camera, palette, metadata, boxes | .json | .json | UTF-8 JSON object |
| captions | .txt | .txt | UTF-8 text, surrounding whitespace removed; written with one trailing newline |
| audio | .wav .flac .mp3 .ogg | .wav .flac | mono float32 resampled to ``sample_rate`` (default 16000) |

Options (keyword arguments, only where they apply): ``max_file_bytes`` (files read from a path, default
:data:`~tokzoo.io.safety.MAX_FILE_BYTES`), ``max_pixels`` (image modalities), ``scale`` (depth PNG),
``ignore_index`` (semseg), ``max_json_bytes`` (JSON), ``sample_rate`` (audio).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from tokzoo.errors import (
    ConfigError,
    CorruptFileError,
    DtypeError,
    EmptyFileError,
    InvalidValueError,
    UnsupportedFormatError,
)
from tokzoo.io import values as V
from tokzoo.io.audio import SAMPLE_RATE, check_audio, read_audio, write_audio
from tokzoo.io.images import encode_image, orient, pil_to_channel, pil_to_rgb, pil_to_rgb8_exact
from tokzoo.io.safety import (
    MAX_FILE_BYTES,
    MAX_JSON_BYTES,
    MAX_PIXELS,
    NPY_MAGIC,
    load_json,
    load_npy,
    open_image,
    read_file,
)
from tokzoo.modalities import STORED
from tokzoo.vocabulary import canonical

DEPTH_SCALE = 1000.0
"""Default depth PNG scale: stored value / scale = metres (millimetres)."""

_JSON_CHECKS: dict[str, Callable[[object, str], dict]] = {"pose": V.pose, "camera": V.camera, "json": V.json_object}
_ARRAY_CHECKS: dict[str, Callable[[object, str], np.ndarray]] = {
    "image": V.rgb,
    "depth": V.depth,
    "normals": V.normals,
    "instances": V.instances,
    "edges": V.edges,
    "crops": V.crops,
}
FORMATS = (*_ARRAY_CHECKS, "semseg", "features", *_JSON_CHECKS, "text", "audio")
"""The file formats a stored value may declare (``StoredValue.file_format``): the decoder and contract check of
its values (``features``: float arrays of the modality's ``sample_ndim``)."""
_WRITABLE = {"audio": (".wav", ".flac")}
"""Formats that write fewer extensions than they read."""


class _Extensions(Mapping):
    """Readable extensions per stored name, read from the registry when asked (a value registered later is in)."""

    def __getitem__(self, name: str) -> tuple[str, ...]:
        return STORED[name].extensions

    def __iter__(self):
        return iter(STORED)

    def __len__(self) -> int:
        return len(STORED)


EXTENSIONS: Mapping[str, tuple[str, ...]] = _Extensions()
"""Readable extensions per stored name (``StoredValue.extensions``)."""

MODALITIES = STORED.keys()
"""Every stored name (a live view of ``tokzoo.modalities.STORED``)."""


def written_extension(modality: str) -> str:
    """The extension a value of ``modality`` computed in memory is written as (``StoredValue.written_as``)."""
    stored = STORED[modality]
    return stored.written_as or stored.extensions[0]


def _format(modality: str) -> str:
    fmt = STORED[modality].file_format
    if fmt not in FORMATS:
        raise ConfigError(f"stored value {modality!r} declares file_format {fmt!r}; known: {', '.join(FORMATS)}")
    return fmt


def _ext_of(source: str, ext: str | None) -> str:
    if ext is None:
        ext = Path(source).suffix
    ext = ext.lower()
    return ext if not ext or ext.startswith(".") else "." + ext


def _sniff(data: bytes, modality: str) -> str:
    """Extension for bytes that came without a name (e.g. a dataset column)."""
    if data.startswith(NPY_MAGIC):
        return ".npy"
    if _format(modality) in _JSON_CHECKS:
        return ".json"
    return EXTENSIONS[modality][0]  # image and audio decoders identify their bytes themselves


def _check_modality(modality: str, source: str) -> str:
    """The canonical name of ``modality`` (tokzoo.vocabulary); raises for unknown ones."""
    modality = canonical(modality)
    if modality not in EXTENSIONS:
        raise UnsupportedFormatError(source, f"unknown modality {modality!r}; known: {', '.join(MODALITIES)}")
    return modality


def read_modality(
    modality: str, source: str | Path, data: bytes | None = None, ext: str | None = None, **options
) -> object:
    """Read one modality value from a file (``data=None``) or from ``data`` bytes named ``source``.

    ``ext`` overrides the extension taken from ``source``; bytes with no extension at all are
    sniffed. Returns the contract value (see module docstring) or raises a typed InputError.
    """
    source = str(source)
    modality = _check_modality(modality, source)
    ext = _ext_of(source, ext)
    if data is None:
        data = read_file(source, options.get("max_file_bytes", MAX_FILE_BYTES))
    if not data:
        raise EmptyFileError(source, "file is empty (0 bytes)")
    if not ext:
        ext = _sniff(data, modality)
    if ext not in EXTENSIONS[modality]:
        allowed = ", ".join(EXTENSIONS[modality])
        raise UnsupportedFormatError(source, f"{modality} cannot be read from {ext!r} files; use one of {allowed}")
    if ext == ".npy":
        return from_value(modality, load_npy(data, source), source, **options)
    fmt = _format(modality)
    if ext == ".json":
        return _JSON_CHECKS[fmt](load_json(data, source, options.get("max_json_bytes", MAX_JSON_BYTES)), source)
    if fmt == "audio":
        return read_audio(data, source, options.get("sample_rate", SAMPLE_RATE))
    if fmt == "text":
        return V.text(_utf8(data, source), source)
    return from_value(modality, open_image(data, source, options.get("max_pixels", MAX_PIXELS)), source, **options)


def _utf8(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptFileError(source, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _depth_from_ints(stored: np.ndarray, source: str, scale: float) -> np.ndarray:
    if stored.dtype == np.uint8:
        raise DtypeError(source, "depth PNG must be 16-bit gray (8-bit depth would lose all precision)")
    return V.depth(stored.astype(np.float64) / scale, source)


def from_value(modality: str, value: object, source: str, **options) -> object:
    """Coerce an in-memory value (array, PIL image, dict, JSON text, encoded bytes) to the contract.

    PIL images follow the same rules as image files (EXIF orientation, depth PNG ``scale``,
    normals PNG encoding). Audio arrays are assumed to be at the requested rate already.
    """
    modality = _check_modality(modality, source)
    if isinstance(value, (bytes, bytearray)):
        return read_modality(modality, source, bytes(value), "", **options)
    fmt = _format(modality)
    if fmt in _JSON_CHECKS:
        if isinstance(value, str):
            value = load_json(value.encode("utf-8"), source, options.get("max_json_bytes", MAX_JSON_BYTES))
        return _JSON_CHECKS[fmt](value, source)
    if fmt == "audio":
        return check_audio(value, source)
    if fmt == "text":
        return V.text(value, source)
    if isinstance(value, Image.Image):
        img = orient(value)
        if fmt == "image":
            return pil_to_rgb(img, source)
        if fmt == "normals":
            stored = pil_to_rgb8_exact(img, source).astype(np.float32)
            return V.normals(stored / 255.0 * 2.0 - 1.0, source, min_norm=0.5)
        value = pil_to_channel(img, source)
        if fmt == "depth":
            return _depth_from_ints(value, source, float(options.get("scale", DEPTH_SCALE)))
    if fmt == "semseg":
        return V.semseg(value, source, options.get("ignore_index", V.IGNORE))
    if fmt == "features":
        return V.features(value, source, STORED[modality].sample_ndim)
    return _ARRAY_CHECKS[fmt](value, source)


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _encode(modality: str, value: object, ext: str, source: str, **options) -> bytes:
    if ext == ".json":
        try:
            return json.dumps(value, allow_nan=False, sort_keys=True).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise InvalidValueError(source, f"not JSON-serialisable ({exc})") from None
    fmt = _format(modality)
    if fmt == "text":
        return (value + "\n").encode("utf-8")
    if fmt == "audio":
        return write_audio(value, ext, options.get("sample_rate", SAMPLE_RATE), source)
    if ext == ".npy":
        return _npy_bytes(value)
    if fmt == "depth":
        scale = float(options.get("scale", DEPTH_SCALE))
        stored = np.rint(np.nan_to_num(value, nan=0.0) * scale)
        if stored.max() > 65535:
            reason = f"depth {np.nanmax(value):.3f} m does not fit a 16-bit PNG at scale {scale}; lower the scale"
            raise InvalidValueError(source, reason)
        stored[np.isfinite(value) & (stored < 1)] = 1  # keep tiny valid depths valid (smallest step)
        return encode_image(stored.astype(np.uint16), ext, source)
    if fmt == "normals":
        stored = np.rint((np.nan_to_num(value, nan=0.0) + 1.0) / 2.0 * 255.0).astype(np.uint8)
        stored[np.isnan(value).any(axis=2)] = 128  # decodes to a near-zero vector = invalid
        return encode_image(stored, ext, source)
    if fmt == "edges":
        return encode_image(value * np.uint8(255), ext, source)
    return encode_image(value, ext, source)


def write_modality(modality: str, value: object, path_or_ext: str | Path, **options) -> bytes:
    """Encode a contract value; write it when given a path (its suffix picks the format), return the bytes.

    ``path_or_ext`` is either a file path or a bare extension such as ``".png"`` (nothing written).
    Writable: everything ``read_modality`` reads except mp3 / ogg audio; JPEG / WebP only for rgb.
    """
    target = str(path_or_ext)
    is_path = not (target.startswith(".") and "/" not in target and target.count(".") == 1)
    ext = _ext_of(target, None) if is_path else target.lower()
    source = target if is_path else f"<{modality}{ext}>"
    modality = _check_modality(modality, source)
    writable = _WRITABLE.get(_format(modality), EXTENSIONS[modality])
    if ext not in writable:
        raise UnsupportedFormatError(source, f"{modality} cannot be written as {ext!r}")
    data = _encode(modality, from_value(modality, value, source, **options), ext, source, **options)
    if is_path:
        from .writes import write_output

        write_output(target, data)
    return data
