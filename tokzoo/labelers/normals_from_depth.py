"""Geometry from depth: intrinsics, unprojection, and surface normals by finite differences.

Pixel (row i, col j) has its centre at ``(u, v) = (j, i)``; the camera frame is OpenCV's (x right,
y down, z forward), as in :mod:`tokzoo.datasets.scenes`.
"""

from __future__ import annotations

import math

import numpy as np

from tokzoo.errors import InvalidValueError, ShapeError

from .base import Labeler, register_labeler

DEFAULT_HFOV_DEGREES = 60.0


def intrinsics(height: int, width: int, camera: dict | None = None, hfov_degrees: float = DEFAULT_HFOV_DEGREES):
    """``(fx, fy, cx, cy)`` in pixels: from ``camera`` when given, else a pinhole guess with horizontal
    field of view ``hfov_degrees``, square pixels and the principal point at the image centre."""
    if camera is not None:
        return tuple(float(camera[k]) for k in ("fx", "fy", "cx", "cy"))
    f = (width / 2) / math.tan(math.radians(hfov_degrees) / 2)
    return f, f, (width - 1) / 2, (height - 1) / 2


def unproject(depth: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """z-depth (H, W) metres -> camera-frame points float32 (H, W, 3) metres (NaN where depth is NaN)."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([(u - cx) / fx * depth, (v - cy) / fy * depth, depth], axis=-1).astype(np.float32)


def _tangent(points: np.ndarray, depth: np.ndarray, axis: int, max_jump: float) -> np.ndarray:
    """dP along ``axis`` (0 rows, 1 cols) as float32 (H, W, 3): of the backward and forward differences the one
    with the smaller depth change (so a pixel next to an occlusion edge takes its own surface's side); NaN when
    neither neighbour is valid or both jump by more than ``max_jump`` * depth."""
    pad = [(0, 0)] * 3
    pad[axis] = (1, 1)
    padded = np.pad(points, pad, constant_values=np.nan)
    n = points.shape[axis]
    take = lambda a, s: np.take(a, range(s, s + n), axis=axis)  # noqa: E731
    forward, backward = take(padded, 2) - points, points - take(padded, 0)
    jf, jb = np.abs(forward[..., 2]), np.abs(backward[..., 2])
    jf, jb = np.where(np.isnan(jf), np.inf, jf), np.where(np.isnan(jb), np.inf, jb)
    out = np.where((jf <= jb)[..., None], forward, backward)
    with np.errstate(invalid="ignore"):
        bad = np.minimum(jf, jb) > max_jump * depth
    out[bad | ~np.isfinite(out).all(axis=-1)] = np.nan
    return out


def normals_from_depth(
    depth: np.ndarray, camera: dict | None = None, hfov_degrees: float = DEFAULT_HFOV_DEGREES, max_jump: float = 0.1
) -> np.ndarray:
    """Surface normals from z-depth.

    ``depth``: float (H, W) metres, NaN invalid. Returns float32 (H, W, 3) unit normals in the camera
    frame facing the camera (contract of ``normals``), NaN where depth is invalid or where, along rows or
    columns, both neighbours are invalid or differ by more than ``max_jump`` (relative) — depth edges.
    Normal = cross product of the row and column tangents of the unprojected points.
    """
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2 or min(depth.shape) < 2:
        raise ShapeError("normals_from_depth", f"depth must be (H, W) with H, W >= 2, got shape {depth.shape}")
    points = unproject(depth, *intrinsics(*depth.shape, camera, hfov_degrees))
    du, dv = _tangent(points, depth, 1, max_jump), _tangent(points, depth, 0, max_jump)
    n = np.cross(du, dv)
    with np.errstate(invalid="ignore", divide="ignore"):
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        flip = (n * points).sum(-1, keepdims=True) > 0  # must face the camera: n . P < 0
    n = np.where(flip, -n, n).astype(np.float32)
    n[~np.isfinite(n).all(axis=-1)] = np.nan
    return n


@register_labeler
class NormalsFromDepth(Labeler):
    """Normals from a depth map (see :func:`normals_from_depth`); intrinsics from ``camera`` when a sample
    has one, else a guess with horizontal field of view ``hfov_degrees``."""

    name = "normals_from_depth"
    modality = "normals"
    default = True
    needs = ("depth",)
    optional = ("camera",)

    def __init__(self, hfov_degrees: float = DEFAULT_HFOV_DEGREES, max_jump: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        if not 0 < hfov_degrees < 180:
            raise InvalidValueError(self.name, f"hfov_degrees must be in (0, 180), got {hfov_degrees}")
        self.hfov_degrees, self.max_jump = hfov_degrees, max_jump

    def _label(self, chunk):
        cameras = chunk.get("camera", [None] * len(chunk["depth"]))
        return [normals_from_depth(d, c, self.hfov_degrees, self.max_jump) for d, c in zip(chunk["depth"], cameras)]
