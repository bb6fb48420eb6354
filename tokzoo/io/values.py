"""Check decoded values against the in-memory contract (docs/ARCHITECTURE.md) and coerce them to it.

Every function takes what a format decoded (or a user handed over) plus the ``source`` to name in
errors, and returns the contract value or raises a typed :mod:`tokzoo.errors` error.
"""

from __future__ import annotations

import math

import numpy as np

from tokzoo.errors import DtypeError, InvalidValueError, ShapeError

IGNORE = 255
"""semseg ignore id in memory."""


def as_array(value: object, source: str) -> np.ndarray:
    """Any array-like -> ndarray; object dtype (ragged lists, pickled objects) is refused."""
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # ragged nested lists
        raise ShapeError(source, f"not a rectangular array ({exc})") from None
    if arr.dtype.hasobject:
        raise DtypeError(source, "object arrays are refused")
    return arr


def _image_2d(arr: np.ndarray, source: str, what: str) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2 or 0 in arr.shape:
        raise ShapeError(source, f"{what} must be (H, W) with H, W > 0, got shape {arr.shape}")
    return arr


def _kind(arr: np.ndarray, kinds: str, source: str, what: str) -> None:
    if arr.dtype.kind not in kinds:
        names = {"u": "unsigned int", "i": "int", "f": "float", "b": "bool"}
        allowed = "/".join(names[k] for k in kinds)
        raise DtypeError(source, f"{what} must have dtype {allowed}, got {arr.dtype}")


def rgb(value: object, source: str) -> np.ndarray:
    """uint8 (H, W, 3); uint8 (H, W) gray is repeated to 3 channels."""
    arr = as_array(value, source)
    _kind(arr, "u", source, "rgb")
    if arr.dtype != np.uint8:
        raise DtypeError(source, f"rgb must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3 or 0 in arr.shape:
        raise ShapeError(source, f"rgb must be (H, W, 3), got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def depth(value: object, source: str) -> np.ndarray:
    """float (H, W) metres -> float32 (H, W); 0, negatives, NaN and +-inf become NaN; all-invalid is refused."""
    arr = _image_2d(as_array(value, source), source, "depth")
    _kind(arr, "f", source, "depth")
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(np.float32)
        out[~(np.isfinite(out) & (out > 0))] = np.nan
    if np.isnan(out).all():
        raise InvalidValueError(source, "depth has no valid value (all zero, negative, NaN or inf)")
    return out


def normals(value: object, source: str, min_norm: float = 1e-3) -> np.ndarray:
    """float (H, W, 3) -> float32 unit vectors (renormalised); non-finite or norm < ``min_norm`` -> NaN in all channels."""
    arr = as_array(value, source)
    _kind(arr, "f", source, "normals")
    if arr.ndim != 3 or arr.shape[2] != 3 or 0 in arr.shape:
        raise ShapeError(source, f"normals must be (H, W, 3), got shape {arr.shape}")
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        vec = arr.astype(np.float32)
        norm = np.sqrt((vec.astype(np.float64) ** 2).sum(axis=2, keepdims=True)).astype(np.float32)
        out = np.where(np.abs(norm - 1) > 1e-6, vec / norm, vec)  # unit vectors stay bit-exact
    bad = ~np.isfinite(out).all(axis=2) | (norm[..., 0] < min_norm)
    out[bad] = np.nan
    if bad.all():
        raise InvalidValueError(source, "normals have no valid vector (all zero-length or non-finite)")
    return out


def semseg(value: object, source: str, ignore_index: int = IGNORE) -> np.ndarray:
    """int (H, W) class ids -> uint8; ``ignore_index`` in the data becomes 255; other ids must be 0..254."""
    arr = _image_2d(as_array(value, source), source, "semseg")
    _kind(arr, "ui", source, "semseg")
    arr = arr.astype(np.int64)
    ignore = arr == ignore_index
    real = arr[~ignore]
    if real.size and (real.min() < 0 or real.max() >= IGNORE):
        bad = int(real.min() if real.min() < 0 else real.max())
        raise InvalidValueError(source, f"semseg class id {bad} is outside 0..254 (ignore index is {ignore_index})")
    out = arr.astype(np.uint8)
    out[ignore] = IGNORE
    return out


def instances(value: object, source: str) -> np.ndarray:
    """int (H, W) instance ids in 0..65535 -> uint16 (0 = no instance)."""
    arr = _image_2d(as_array(value, source), source, "instances")
    _kind(arr, "ui", source, "instances")
    if arr.min() < 0 or arr.max() > 65535:
        raise InvalidValueError(source, f"instance ids must be in 0..65535, got {arr.min()}..{arr.max()}")
    return arr.astype(np.uint16)


def edges(value: object, source: str) -> np.ndarray:
    """bool / int / float (H, W) -> uint8 in {0, 1}.

    Values already in {0, 1} are kept; other integer maps (0..255) are thresholded at >= 128;
    float maps in [0, 1] at >= 0.5.
    """
    arr = _image_2d(as_array(value, source), source, "edges")
    _kind(arr, "buif", source, "edges")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise InvalidValueError(source, "float edges must be finite and in [0, 1]")
        return (arr >= 0.5).astype(np.uint8)
    if arr.dtype.kind == "b" or arr.max() <= 1:
        if arr.min() < 0:
            raise InvalidValueError(source, f"edges must not be negative, got {arr.min()}")
        return arr.astype(np.uint8)
    if arr.min() < 0 or arr.max() > 255:
        raise InvalidValueError(source, f"integer edges must be in 0..255, got {arr.min()}..{arr.max()}")
    return (arr >= 128).astype(np.uint8)


def crops(value: object, source: str) -> np.ndarray:
    """int (n, 5) ``top, left, height, width, hflip`` -> int32; sizes > 0, offsets >= 0, hflip in {0, 1}."""
    arr = as_array(value, source)
    _kind(arr, "ui", source, "crops")
    if arr.ndim != 2 or arr.shape[1] != 5 or arr.shape[0] == 0:
        raise ShapeError(source, f"crops must be (n_crops, 5), got shape {arr.shape}")
    if (arr[:, :2] < 0).any() or (arr[:, 2:4] <= 0).any() or not np.isin(arr[:, 4], (0, 1)).all():
        raise InvalidValueError(source, "crops need top, left >= 0, height, width > 0 and hflip in {0, 1}")
    return arr.astype(np.int32)


def features(value: object, source: str, ndim: int) -> np.ndarray:
    """Extractor features: float (D,) when ``ndim`` is 1 (global) or (h, w, C) when 3 (dense) -> float32, finite."""
    arr = as_array(value, source)
    _kind(arr, "f", source, "features")
    if arr.ndim != ndim or 0 in arr.shape:
        layout = "(D,)" if ndim == 1 else "(h, w, C)"
        raise ShapeError(source, f"features must be {layout}, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidValueError(source, "features contain NaN or inf")
    return arr.astype(np.float32)


def _finite_numbers(values: object, n: int, source: str, what: str) -> list[float]:
    if not isinstance(values, (list, tuple)) or len(values) != n:
        raise ShapeError(source, f"{what} must be a list of {n} numbers")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise InvalidValueError(source, f"{what} must hold finite numbers, got {values}")
    return [float(v) for v in values]


def json_object(value: object, source: str) -> dict:
    """Any JSON-able dict (palette, metadata, boxes); deeper checks live with their tokenizers."""
    if not isinstance(value, dict):
        raise ShapeError(source, f"expected a JSON object, got {type(value).__name__}")
    return value


MAX_TEXT_CHARS = 1 << 16
"""Longest text (captions) a file or value may hold, in characters."""


def text(value: object, source: str) -> str:
    """A caption: a str, surrounding whitespace removed; empty text, NUL characters or more than
    :data:`MAX_TEXT_CHARS` characters are refused."""
    if not isinstance(value, str):
        raise DtypeError(source, f"expected text (a str), got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise InvalidValueError(source, "text is empty")
    if "\x00" in value:
        raise InvalidValueError(source, "text holds a NUL character")
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidValueError(source, f"text is {len(value)} characters, over the limit of {MAX_TEXT_CHARS}")
    return value


MAX_SIDE = 1 << 16
"""Largest width / height a pose or camera file may declare (pixels)."""

SMPL_FIELDS = {
    "global_orient": (3, 3),
    "body_pose": (23, 3, 3),
    "betas": (10,),
    "translation": (3,),
    "weak_perspective": (3,),
    "box": (4,),
}
"""Per-human SMPL fields (tokzoo/labelers/hmr2.py) and their shapes, each checked when present."""


def _finite_array(values: object, shape: tuple[int, ...], source: str, what: str) -> list:
    """Nested lists of finite numbers of ``shape`` -> the same as float lists."""
    try:
        arr = np.asarray(values)
    except ValueError:  # ragged
        arr = np.empty(0, dtype=object)
    if arr.shape != shape or arr.dtype.kind not in "iuf":
        got = f"shape {arr.shape}" if arr.dtype.kind in "iuf" else "ragged or non-numeric values"
        raise ShapeError(source, f"{what} must be {' x '.join(map(str, shape))} numbers, got {got}")
    if not np.isfinite(arr).all():
        raise InvalidValueError(source, f"{what} must hold finite numbers")
    return arr.astype(np.float64).tolist()


def _keypoints(points: object, source: str, i: int, key: str) -> list:
    """A human's ``keypoints_2d`` ([x, y, v], v in {0, 1, 2}) or ``keypoints_3d`` ([x, y, z]) -> float lists."""
    if not isinstance(points, list):
        raise ShapeError(source, f"human {i} {key} must be a list of points")
    out = [_finite_numbers(p, 3, source, f"human {i} {key}[{j}]") for j, p in enumerate(points)]
    if key == "keypoints_2d":
        if any(p[2] not in (0, 1, 2) for p in out):
            raise InvalidValueError(source, f"human {i} keypoint visibility must be 0, 1 or 2")
        out = [[x, y, int(v)] for x, y, v in out]
    return out


def pose(value: object, source: str) -> dict:
    """A pose dict (docs/ARCHITECTURE.md): ``{"skeleton": str, "humans": [...]}``.

    Every human: ``keypoints_2d`` [[x, y, v]] * K with v in {0, 1, 2}, optional ``keypoints_3d`` [[x, y, z]] * K.
    Skeleton "smpl": ``keypoints_2d`` may be absent or empty (no SMPL body model) and the SMPL fields of
    :data:`SMPL_FIELDS` must have their shapes and be finite when present; ``intrinsics`` {fx, fy > 0, cx, cy}.
    """
    value = json_object(value, source)
    humans = value.get("humans")
    if not isinstance(value.get("skeleton"), str) or not isinstance(humans, list):
        raise ShapeError(source, 'pose needs a "skeleton" name and a "humans" list')
    smpl = value["skeleton"] == "smpl"
    out = []
    for i, human in enumerate(humans):
        if not isinstance(human, dict) or not (smpl or isinstance(human.get("keypoints_2d"), list)):
            raise ShapeError(source, f'pose human {i} needs a "keypoints_2d" list')
        entry = dict(human)
        if "keypoints_2d" in human:
            entry["keypoints_2d"] = _keypoints(human["keypoints_2d"], source, i, "keypoints_2d")
        if "keypoints_3d" in human:
            entry["keypoints_3d"] = _keypoints(human["keypoints_3d"], source, i, "keypoints_3d")
            n2, n3 = len(entry.get("keypoints_2d", [])), len(entry["keypoints_3d"])
            if n3 != n2 and (n2 or not smpl):
                raise ShapeError(source, f"human {i} has {n2} 2D but {n3} 3D keypoints")
        for key, shape in SMPL_FIELDS.items() if smpl else (("box", (4,)),):
            if key in human:
                entry[key] = _finite_array(human[key], shape, source, f"human {i} {key}")
        if "box" in human and min(entry["box"][2:]) < 0:
            raise InvalidValueError(source, f"human {i} box [x, y, w, h] needs w, h >= 0, got {entry['box']}")
        if "scores" in human:
            entry["scores"] = _finite_numbers(
                human["scores"], len(entry.get("keypoints_2d", [])), source, f"human {i} scores (one per keypoint)"
            )
        out.append(entry)
    value = dict(value, humans=out)
    for key in ("width", "height"):
        if key in value:
            (size,) = _finite_numbers([value[key]], 1, source, f"pose {key}")
            if size <= 0 or size > MAX_SIDE:
                raise InvalidValueError(source, f"pose {key} must be in (0, {MAX_SIDE}], got {value[key]}")
    if smpl and "intrinsics" in value:
        k = json_object(value["intrinsics"], source)
        names = ("fx", "fy", "cx", "cy")
        fx, fy, cx, cy = _finite_numbers([k.get(n) for n in names], 4, source, "pose intrinsics fx, fy, cx, cy")
        if fx <= 0 or fy <= 0:
            raise InvalidValueError(source, f"pose intrinsics fx, fy must be > 0, got {fx}, {fy}")
        value["intrinsics"] = dict(k, fx=fx, fy=fy, cx=cx, cy=cy)
    return value


def camera(value: object, source: str) -> dict:
    """``{"fx", "fy", "cx", "cy", "width", "height", "cam_to_world": 4x4}``; focal lengths and sizes > 0, all finite."""
    value = json_object(value, source)
    missing = [k for k in ("fx", "fy", "cx", "cy", "width", "height", "cam_to_world") if k not in value]
    if missing:
        raise ShapeError(source, f"camera is missing {missing}")
    names = ("fx", "fy", "cx", "cy", "width", "height")
    fx, fy, cx, cy, width, height = _finite_numbers([value[k] for k in names], 6, source, "camera intrinsics")
    if fx <= 0 or fy <= 0 or width <= 0 or height <= 0:
        raise InvalidValueError(source, "camera fx, fy, width and height must be > 0")
    matrix = value["cam_to_world"]
    if not isinstance(matrix, list) or len(matrix) != 4:
        raise ShapeError(source, "camera cam_to_world must be a 4x4 list")
    rows = [_finite_numbers(r, 4, source, "camera cam_to_world row") for r in matrix]
    return dict(value, fx=fx, fy=fy, cx=cx, cy=cy, width=int(width), height=int(height), cam_to_world=rows)
