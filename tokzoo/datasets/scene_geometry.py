"""Ray-primitive intersection for the procedural scenes, vectorised over rays.

Rays are ``o + t * d`` with origins ``o`` of shape (3,) (one shared origin) or (N, 3), directions
``d`` (N, 3) float32 that need not be unit length, and ``dd = |d|^2`` (N,). Every ``intersect``
returns the entry parameter ``t`` (N,) of the nearest hit with ``t > T_MIN``, ``inf`` on a miss; rays
that start inside a primitive miss it. ``normal(p)`` gives outward unit normals (N, 3) at hit points.
``bound()`` is a bounding sphere ``(centre (3,), radius)`` used for culling. All lengths in metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

T_MIN = 1e-4


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot product of (N, 3) / (3,) operands."""
    if a.ndim == 1 and b.ndim == 1:
        return np.float32(a @ b)
    if a.ndim == 1 or b.ndim == 1:
        return (b @ a) if b.ndim == 2 else (a @ b)
    return np.einsum("ij,ij->i", a, b)


def _entry(t: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Keep ``t`` where ``ok`` and ``t > T_MIN``, ``inf`` elsewhere."""
    return np.where(ok & (t > T_MIN), t, np.float32(np.inf)).astype(np.float32, copy=False)


def _sphere_t(oc, d, dd, radius):
    """Entry ``t`` into spheres of ``radius`` for rays with ``oc = origin - centre`` ((3,) or (N, 3))."""
    b = _dot(d, oc)
    h = b * b - dd * (_dot(oc, oc) - radius**2)
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(h)) / dd
    return _entry(t, h >= 0)


@dataclass(frozen=True)
class Sphere:
    center: np.ndarray
    radius: float

    def bound(self):
        return self.center, self.radius

    def intersect(self, o, d, dd):
        return _sphere_t(o - self.center, d, dd, self.radius)

    def normal(self, p):
        return (p - self.center) / np.float32(self.radius)


def _tube(o, d, dd, a, axis, length, radius):
    """Infinite tube of ``radius`` around the axis through ``a`` with unit ``axis``: returns the entry
    ``t`` where its axial coordinate lies in (0, length), that coordinate, and the terms caps reuse:
    origin and direction along the axis, sqrt of the discriminant (NaN on a miss), k1, k2."""
    oc = o - a
    d_ax = _dot(d, axis)
    oc_ax = _dot(oc, axis)
    k2 = dd - d_ax * d_ax
    k1 = _dot(d, oc) - oc_ax * d_ax
    k0 = _dot(oc, oc) - oc_ax * oc_ax - radius**2
    h = k1 * k1 - k2 * k0
    with np.errstate(invalid="ignore", divide="ignore"):
        sq = np.sqrt(h)
        t = (-k1 - sq) / k2
    y = oc_ax + t * d_ax
    return _entry(t, (h >= 0) & (y > 0) & (y < length)), y, oc_ax, d_ax, sq, k1, k2


def _segment_axis(a: np.ndarray, b: np.ndarray):
    ab = b - a
    length = float(np.linalg.norm(ab))
    return ab / length, length


@dataclass(frozen=True)
class Capsule:
    """Segment ``a``-``b`` swept by a ball of ``radius`` (limbs and torsos)."""

    a: np.ndarray
    b: np.ndarray
    radius: float

    def bound(self):
        return (self.a + self.b) / 2, float(np.linalg.norm(self.b - self.a)) / 2 + self.radius

    def intersect(self, o, d, dd):
        axis, length = _segment_axis(self.a, self.b)
        t, y, _, _, sq, _, _ = _tube(o, d, dd, self.a, axis, length, self.radius)
        # rays meeting the infinite tube outside the segment can only enter through the nearer end ball
        ends = np.flatnonzero((sq >= 0) & np.isinf(t))
        if len(ends):
            centre = np.where((y[ends] <= 0)[:, None], self.a, self.b)
            o_end = o if o.ndim == 1 else o[ends]
            t[ends] = _sphere_t(o_end - centre, d[ends], dd[ends], self.radius)
        return t

    def normal(self, p):
        axis, length = _segment_axis(self.a, self.b)
        y = np.clip((p - self.a) @ axis, 0, length)
        return (p - self.a - y[:, None] * axis) / np.float32(self.radius)


@dataclass(frozen=True)
class Cylinder:
    """Closed cylinder from ``a`` to ``b`` (flat caps) of ``radius``."""

    a: np.ndarray
    b: np.ndarray
    radius: float

    def bound(self):
        return (self.a + self.b) / 2, float(np.hypot(np.linalg.norm(self.b - self.a) / 2, self.radius))

    def intersect(self, o, d, dd):
        axis, length = _segment_axis(self.a, self.b)
        t, _, oc_ax, d_ax, sq, k1, k2 = _tube(o, d, dd, self.a, axis, length, self.radius)
        with np.errstate(invalid="ignore", divide="ignore"):
            for y_cap in (0.0, length):
                tc = (y_cap - oc_ax) / d_ax
                # inside the cap disc <=> the quadratic of the radial distance is <= 0 there
                t = np.minimum(t, _entry(tc, np.abs(k1 + k2 * tc) <= sq))
        return t

    def normal(self, p):
        axis, length = _segment_axis(self.a, self.b)
        y = (p - self.a) @ axis
        radial = p - self.a - y[:, None] * axis
        n = radial / np.float32(self.radius)
        # a hit belongs to whichever surface it is nearest: the side or a cap plane
        side = np.abs(self.radius - np.sqrt(np.einsum("ij,ij->i", radial, radial)))
        n[np.abs(y) < side] = -axis
        n[np.abs(length - y) < side] = axis
        return n


@dataclass(frozen=True)
class Box:
    """Oriented box: ``center``, ``half`` extents (3,), ``rot`` (3, 3) whose columns are its axes."""

    center: np.ndarray
    half: np.ndarray
    rot: np.ndarray

    def bound(self):
        return self.center, float(np.linalg.norm(self.half))

    def intersect(self, o, d, dd):
        lo = (o - self.center) @ self.rot
        ld = d @ self.rot
        with np.errstate(invalid="ignore", divide="ignore"):
            inv = 1.0 / ld
            t1 = (-self.half - lo) * inv
            t2 = (self.half - lo) * inv
        near, far = np.minimum(t1, t2), np.maximum(t1, t2)
        t_near = np.maximum(np.maximum(near[:, 0], near[:, 1]), near[:, 2])
        t_far = np.minimum(np.minimum(far[:, 0], far[:, 1]), far[:, 2])
        return _entry(t_near, t_near <= t_far)

    def normal(self, p):
        lp = (p - self.center) @ self.rot / self.half
        k = np.abs(lp).argmax(axis=1)
        sign = np.sign(lp[np.arange(len(p)), k]).astype(np.float32)
        return self.rot.T[k] * sign[:, None]


@dataclass(frozen=True)
class Rect:
    """Axis-aligned rectangle on the plane ``x[axis] == value``; the other two coordinates lie in
    ``[lo, hi]`` (each (3,), entry ``axis`` unused). Floors and walls; normal ``+e_axis``."""

    axis: int
    value: float
    lo: np.ndarray
    hi: np.ndarray

    def bound(self):
        lo, hi = self.lo.copy(), self.hi.copy()
        lo[self.axis] = hi[self.axis] = self.value
        return (lo + hi) / 2, float(np.linalg.norm(hi - lo)) / 2

    def intersect(self, o, d, dd):
        k = self.axis
        o_k = o[..., k]
        with np.errstate(invalid="ignore", divide="ignore"):
            t = (self.value - o_k) / d[:, k]
        ok = np.ones(len(d), bool)
        for j in range(3):
            if j != k:
                x = o[..., j] + t * d[:, j]
                ok &= (x >= self.lo[j]) & (x <= self.hi[j])
        return _entry(t, ok)

    def normal(self, p):
        n = np.zeros_like(p)
        n[:, self.axis] = 1
        return n
