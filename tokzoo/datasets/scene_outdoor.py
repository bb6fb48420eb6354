"""Random outdoor layouts: rolling terrain, buildings, trees, objects and a few humans under the sun.

World frame as in the rooms (z up, metres); the camera stands above the terrain at the origin. Depth
covers 0.1-100 m: low cameras (0.25-0.6 m) see the ground from a few decimetres, buildings and trees stand
5-90 m away, and terrain beyond :data:`MAX_DEPTH` of z-depth is not drawn (those pixels are sky, and haze
fades distant surfaces into the horizon colour). The sun is a point light far away, so objects, trees,
buildings and humans cast sharp shadows on the terrain and on each other (the terrain casts none).
Everything is drawn from the ``rng`` passed in, in a fixed order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scene_geometry import Box, Capsule, Cylinder, Sphere
from .scene_humans import _rot, sample_human
from .scene_layout import (
    BUILDING,
    CHECKER,
    HUMAN,
    NOISE,
    PLAIN,
    STRIPES,
    TERRAIN,
    TREE,
    Human,
    Layout,
    Material,
    Surface,
    _colour,
    _group,
    _material,
    _object,
)

MAX_DEPTH = 100.0
"""Largest z-depth (metres) drawn; farther terrain is sky."""

_MARCH_STEPS = 128  # geometric ray-march samples between 0.02 m and MAX_DEPTH (~7% of the distance apart)
_BISECTIONS = 26


@dataclass(frozen=True)
class Terrain:
    """Height field ``z = sum_k a_k sin(w_k . (x, y) + phase_k)`` over the whole plane.

    ``waves`` float64 (K, 4): rows ``(w_x, w_y, amplitude, phase)`` (1/metres, metres, radians).
    ``intersect`` takes primary rays only: their parameter is z-depth, searched in (0, MAX_DEPTH].
    """

    waves: np.ndarray

    def height(self, xy: np.ndarray) -> np.ndarray:
        """Terrain height (N,) at points ``xy`` (N, 2)."""
        w = self.waves
        return np.sin(xy @ w[:, :2].T + w[:, 3]) @ w[:, 2]

    def gradient(self, xy: np.ndarray) -> np.ndarray:
        """(dz/dx, dz/dy) (N, 2) at ``xy`` (N, 2)."""
        w = self.waves
        return (np.cos(xy @ w[:, :2].T + w[:, 3]) * w[:, 2]) @ w[:, :2]

    def bound(self):
        return np.zeros(3), 1e6  # covers the whole image

    def _above(self, o, d, t, waves=None):
        """Height of the rays ``o + t d`` above the terrain; ``d`` (N, 3), ``t`` (N, S) -> (N, S), in the
        dtype of ``d`` (float32 while marching, float64 when refining)."""
        w = self.waves.astype(d.dtype) if waves is None else waves
        x = o[0] + t * d[:, 0:1]
        y = o[1] + t * d[:, 1:2]
        ground = sum(a * np.sin(wx * x + wy * y + phase) for wx, wy, a, phase in w)
        return o[2] + t * d[:, 2:3] - ground

    def intersect(self, o, d, dd):
        o, d = np.asarray(o, np.float64), np.asarray(d, np.float64)
        o32, d32, w32 = o.astype(np.float32), d.astype(np.float32), self.waves.astype(np.float32)
        steps = np.geomspace(0.02, MAX_DEPTH, _MARCH_STEPS).astype(np.float32)
        top = float(np.abs(self.waves[:, 2]).sum())  # no terrain point lies higher
        t_hit = np.full(len(d), np.inf)
        lo, hi = np.zeros(len(d)), np.zeros(len(d))
        active = np.flatnonzero(~((d[:, 2] >= 0) & (o[2] > top)))
        prev = np.zeros(len(d))
        for start in range(0, _MARCH_STEPS, 16):
            if not len(active):
                break
            ts = np.broadcast_to(steps[start : start + 16], (len(active), len(steps[start : start + 16])))
            below = self._above(o32, d32[active], ts, w32) <= 0
            found = below.any(axis=1)
            first = below.argmax(axis=1)[found]
            rays = active[found]
            hi[rays] = ts[found, first]
            lo[rays] = np.where(first > 0, ts[found, np.maximum(first - 1, 0)], prev[rays])
            t_hit[rays] = 0  # marked: refined below
            prev[active] = ts[:, -1]
            rest = active[~found]
            # rays climbing above the highest terrain point can no longer hit it
            active = rest[~((d[rest, 2] > 0) & (o[2] + prev[rest] * d[rest, 2] > top))]
        hits = np.flatnonzero(t_hit == 0)
        a, b = lo[hits], hi[hits]
        for _ in range(_BISECTIONS):
            mid = (a + b) / 2
            under = self._above(o, d[hits], mid[:, None])[:, 0] <= 0
            a, b = np.where(under, a, mid), np.where(under, mid, b)
        t_hit[hits] = b
        return t_hit.astype(np.float32)

    def normal(self, p):
        g = self.gradient(np.asarray(p, np.float64)[:, :2])
        n = np.concatenate([-g, np.ones((len(g), 1))], axis=1)
        return (n / np.linalg.norm(n, axis=1, keepdims=True)).astype(np.float32)


def _terrain(rng) -> Terrain:
    """Hills (30-200 m wavelengths, up to ~6 m) plus bumps (3-12 m, a few decimetres)."""
    waves = []
    for count, wavelength, amplitude in ((3, (40, 200), (0.5, 2.5)), (2, (3, 12), (0.03, 0.15))):
        for _ in range(count):
            angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(*wavelength)
            k = 2 * np.pi / length
            waves.append([k * np.cos(angle), k * np.sin(angle), rng.uniform(*amplitude), rng.uniform(0, 2 * np.pi)])
    return Terrain(np.array(waves))


def _camera(rng, terrain: Terrain, width: int):
    """Pose (4, 4) above the terrain at the origin, focal length (pixels), yaw and horizontal field of view."""
    kind = rng.choice(3, p=[0.25, 0.55, 0.2])  # low (ground robot), eye height, elevated
    height = (rng.uniform(0.25, 0.6), rng.uniform(1.2, 3.0), rng.uniform(4.0, 12.0))[kind]
    pitch = (rng.uniform(-0.55, 0.05), rng.uniform(-0.45, 0.1), rng.uniform(-0.6, -0.1))[kind]
    pos = np.array([0.0, 0.0, float(terrain.height(np.zeros((1, 2)))[0]) + height])
    yaw, roll = rng.uniform(0, 2 * np.pi), rng.uniform(-0.1, 0.1)
    fwd = np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])
    right = np.cross(fwd, [0, 0, 1])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = _rot(fwd, roll) @ np.stack([right, down, fwd], axis=1), pos
    hfov = rng.uniform(np.radians(50), np.radians(80))
    return pose, (width / 2) / np.tan(hfov / 2), yaw, hfov


def _spot(rng, placed, yaw, hfov, distance, radius):
    """A ground point (2,) in view at ``distance`` (low, high) metres, clear of ``placed`` (x, y, r); None
    when 40 tries fail."""
    for _ in range(40):
        dist, bearing = rng.uniform(*distance), yaw + rng.uniform(-0.5, 0.5) * hfov
        p = dist * np.array([np.cos(bearing), np.sin(bearing)])
        if dist > radius + 0.4 and all(np.hypot(*(p - q[:2])) > radius + q[2] + 0.2 for q in placed):
            placed.append((p[0], p[1], radius))
            return p
    return None


def _ground(terrain: Terrain, xy, radius: float) -> float:
    """Lowest terrain height over a disc of ``radius`` around ``xy`` (sampled), so nothing floats."""
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    ring = np.asarray(xy) + radius * np.stack([np.cos(angles), np.sin(angles)], 1)
    return float(terrain.height(np.vstack([np.asarray(xy)[None], ring])).min())


def _building(rng, terrain, xy, half_xy, yaw, instance) -> Surface:
    half = np.array([*half_xy, rng.uniform(2.5, 12.0)], np.float32)
    base = _ground(terrain, xy, float(np.hypot(*half_xy))) - 0.3
    centre = np.array([xy[0], xy[1], base + half[2]], np.float32)
    material = _material(rng, centre, (0.8, 3.0), (PLAIN, STRIPES, CHECKER, CHECKER))
    return Surface(Box(centre, half, _rot([0, 0, 1], yaw).astype(np.float32)), material, BUILDING, instance)


def _tree(rng, terrain, xy, instance) -> list:
    """Trunk (cylinder) and crown (sphere) of one tree, one instance."""
    f32 = np.float32
    trunk_r, trunk_h, crown_r = rng.uniform(0.12, 0.35), rng.uniform(1.5, 4.0), rng.uniform(1.0, 3.5)
    base = _ground(terrain, xy, trunk_r) - 0.1
    a, b = np.array([xy[0], xy[1], base], f32), np.array([xy[0], xy[1], base + trunk_h + 0.1], f32)
    bark = Material(
        NOISE,
        np.array([0.35, 0.25, 0.15], f32) * f32(rng.uniform(0.7, 1.2)),
        np.array([0.2, 0.14, 0.08], f32),
        a,
        np.array([0, 0, 6.0], f32),
        float(rng.uniform(0, 6)),
    )
    crown_c = b + np.array([0, 0, 0.6 * crown_r], f32)
    leaves = _material(rng, crown_c, (0.2, 0.8), (NOISE, NOISE, PLAIN))
    green = np.array([rng.uniform(0.1, 0.35), rng.uniform(0.35, 0.65), rng.uniform(0.05, 0.25)], f32)
    leaves = Material(leaves.kind, green, green * f32(0.55), leaves.origin, leaves.freq, leaves.phase)
    return [
        Surface(Cylinder(a, b, float(trunk_r)), bark, TREE, instance),
        Surface(Sphere(crown_c, float(crown_r)), leaves, TREE, instance),
    ]


def _lifted(surface: Surface, xy, z: float, instance: int) -> Surface:
    """``surface`` (built at the origin on z = 0) moved to ``(xy, z)`` with ``instance`` id."""
    off = np.array([xy[0], xy[1], z], np.float32)
    p, m = surface.prim, surface.material
    if isinstance(p, Sphere):
        p = Sphere(p.center + off, p.radius)
    elif isinstance(p, Box):
        p = Box(p.center + off, p.half, p.rot)
    elif isinstance(p, Capsule):
        p = Capsule(p.a + off, p.b + off, p.radius)
    else:
        p = Cylinder(p.a + off, p.b + off, p.radius)
    return Surface(p, Material(m.kind, m.c1, m.c2, m.origin + off, m.freq, m.phase), surface.cls, instance)


def sample_outdoor_layout(rng: np.random.Generator, width: int, height: int) -> Layout:
    """Draw a full outdoor scene for a ``width`` x ``height`` pixel camera."""
    terrain = _terrain(rng)
    grass = _material(rng, [0, 0, 0], (3.0, 12.0), (NOISE, NOISE, NOISE, CHECKER))
    tint = np.array([rng.uniform(0.25, 0.5), rng.uniform(0.35, 0.6), rng.uniform(0.1, 0.3)], np.float32)
    grass = Material(
        grass.kind, tint, np.clip(tint * 0.6 + 0.1, 0, 1).astype(np.float32), grass.origin, grass.freq, grass.phase
    )
    surfaces, humans, groups, placed = [Surface(terrain, grass, TERRAIN)], [], [], []
    pose, focal, yaw, hfov = _camera(rng, terrain, width)
    instance = 0

    def add(new: list) -> None:
        groups.append(list(range(len(surfaces), len(surfaces) + len(new))))
        surfaces.extend(new)

    for _ in range(int(rng.integers(0, 6))):  # buildings 15-90 m away
        half_xy = rng.uniform(3.0, 10.0, size=2)
        xy = _spot(rng, placed, yaw, hfov, (15.0, 90.0 - float(np.hypot(*half_xy))), float(np.hypot(*half_xy)))
        if xy is not None:
            instance += 1
            add([_building(rng, terrain, xy, half_xy, rng.uniform(0, np.pi), instance)])
    for _ in range(int(rng.integers(2, 13))):  # trees 8-85 m away
        xy = _spot(rng, placed, yaw, hfov, (8.0, 85.0), 3.0)
        if xy is not None:
            instance += 1
            add(_tree(rng, terrain, xy, instance))
    for _ in range(int(rng.choice(4, p=[0.4, 0.3, 0.2, 0.1]))):  # a few humans 3-30 m away
        h = rng.uniform(1.45, 1.95)
        xy = _spot(rng, placed, yaw, hfov, (3.0, 30.0), 0.5)
        if xy is None:
            continue
        instance += 1
        parts, kp, tol = sample_human(rng, np.zeros(2), rng.uniform(0, 2 * np.pi), h)
        z = _ground(terrain, xy, 0.3) - 0.03
        skin = _colour(rng, (0.3, 0.6), (0.35, 0.9))
        mats = {r: _material(rng, kp[11], (0.05, 0.2), (PLAIN, PLAIN, STRIPES, NOISE)) for r in ("shirt", "pants")}
        mats["skin"] = Material(PLAIN, skin, skin, np.zeros(3, np.float32), np.ones(3, np.float32))
        add([_lifted(Surface(p, mats[role], HUMAN), xy, z, instance) for p, role in parts])
        humans.append(Human(instance, kp + np.array([xy[0], xy[1], z]), tol))
    for near in (True, True, False, False, False, False, False, False):  # objects: some close to the camera
        if rng.uniform() < 0.4:
            continue
        surface = _object(rng)
        radius = float(surface.prim.bound()[1])
        xy = _spot(rng, placed, yaw, hfov, (0.6, 3.0) if near else (3.0, 30.0), radius)
        if xy is not None:
            instance += 1
            add([_lifted(surface, xy, _ground(terrain, xy, radius * 0.5) - 0.02, instance)])

    elevation, azimuth = rng.uniform(0.25, 1.2), rng.uniform(0, 2 * np.pi)
    sun_dir = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    # float64: shadow rays from 10 km away lose their precision in float32 (spurious speckled shadows)
    sun = 1e4 * sun_dir, (rng.uniform(0.75, 1.0) * (1 - 0.12 * _colour(rng, (0, 1), (0, 1)))).astype(np.float32)
    horizon = np.array([rng.uniform(0.75, 0.9), rng.uniform(0.8, 0.92), rng.uniform(0.88, 1.0)], np.float32)
    zenith = np.array([rng.uniform(0.2, 0.4), rng.uniform(0.4, 0.6), rng.uniform(0.75, 0.95)], np.float32)
    return Layout(
        surfaces, humans, [sun], np.full(3, rng.uniform(0.25, 0.4), np.float32), (horizon, zenith), pose, focal, focal,
        (width - 1) / 2, (height - 1) / 2, width, height, (-np.inf, np.inf, -np.inf, np.inf),
        [_group(surfaces, g) for g in groups], haze=float(rng.uniform(0.004, 0.015)),
    )  # fmt: skip
