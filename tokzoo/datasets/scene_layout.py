"""Random scene layouts: room, camera, objects, humans, lights and materials.

World frame: z up, floor at z = 0, metres. Everything is drawn from the ``rng`` passed in, in a fixed
order, so a layout is a pure function of the generator's seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .scene_geometry import Box, Cylinder, Rect, Sphere
from .scene_humans import _rot, sample_human

# Semantic classes; the index is the class id stored in `semseg`. Rooms use ids 0-6; outdoor scenes
# (scene_outdoor.py) add terrain, building and tree after them, so the ids of rooms never change.
SCENE_CLASSES = ("floor", "wall", "sky", "sphere", "box", "cylinder", "human", "terrain", "building", "tree")
FLOOR, WALL, SKY, SPHERE, BOX, CYLINDER, HUMAN, TERRAIN, BUILDING, TREE = range(len(SCENE_CLASSES))

PLAIN, CHECKER, STRIPES, NOISE = range(4)


@dataclass(frozen=True)
class Material:
    """Procedural solid texture: ``kind`` (PLAIN/CHECKER/STRIPES/NOISE) mixes albedos ``c1``, ``c2``
    (float32 (3,) in [0, 1]) over texture coordinates ``(p - origin) * freq`` (``freq`` (3,) 1/metres)."""

    kind: int
    c1: np.ndarray
    c2: np.ndarray
    origin: np.ndarray
    freq: np.ndarray
    phase: float = 0.0

    def albedo(self, p: np.ndarray) -> np.ndarray:
        """Albedo float32 (N, 3) in [0, 1] at world points ``p`` (N, 3)."""
        if self.kind == PLAIN:
            return np.broadcast_to(self.c1, p.shape)
        q = (p - self.origin) * self.freq
        if self.kind == CHECKER:
            w = np.floor(q).sum(axis=1) % 2
        elif self.kind == STRIPES:
            w = (np.sin(q.sum(axis=1) + self.phase) > 0).astype(np.float32)
        else:
            w = 0.5 + 0.25 * (np.sin(q.sum(axis=1) + self.phase) + np.sin(q[:, 0] - 1.7 * q[:, 1] + q[:, 2]))
        w = w.astype(np.float32)[:, None]
        return self.c1 * (1 - w) + self.c2 * w


@dataclass(frozen=True)
class Surface:
    """A primitive with its material and labels (class id, instance id; 0 = no instance)."""

    prim: object
    material: Material
    cls: int
    instance: int = 0


@dataclass
class Human:
    instance: int
    keypoints: np.ndarray  # (17, 3) world metres
    tolerance: np.ndarray  # (17,) metres


@dataclass
class Layout:
    """A scene ready to render. ``cam_to_world`` float64 (4, 4), camera axes x right, y down, z forward."""

    surfaces: list
    humans: list
    lights: list  # (position (3,), rgb intensity (3,))
    ambient: np.ndarray  # (3,)
    sky: tuple  # (horizon rgb, zenith rgb), each (3,) in [0, 1]
    cam_to_world: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    room: tuple  # (x0, x1, y0, y1)
    groups: list = field(default_factory=list)  # shadow casters: (centre, radius, surface indices)
    haze: float = 0.0  # aerial perspective, 1/metres: rgb fades to the horizon colour by exp(-haze * depth)


def _colour(rng, sat=(0.2, 0.9), val=(0.35, 0.95)) -> np.ndarray:
    """Random rgb float32 (3,) from hue/saturation/value."""
    h, s, v = rng.uniform(), rng.uniform(*sat), rng.uniform(*val)
    k = (np.array([5, 3, 1]) + h * 6) % 6
    return (v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)).astype(np.float32)


def _material(rng, origin, scale=(0.15, 0.6), kinds=(PLAIN, CHECKER, STRIPES, NOISE)) -> Material:
    kind = int(rng.choice(kinds))
    c1 = _colour(rng)
    c2 = np.clip(c1 * rng.uniform(0.3, 0.7) + _colour(rng) * rng.uniform(0.2, 0.6), 0, 1).astype(np.float32)
    direction = rng.normal(size=3)
    if kind == CHECKER:
        freq = np.full(3, 1 / rng.uniform(*scale))
    else:
        freq = direction / np.linalg.norm(direction) * (2 * np.pi / rng.uniform(*scale))
    # half a cell offset keeps planar surfaces away from the checker's cell boundaries
    origin = np.asarray(origin, np.float32) + 0.5 / np.abs(freq).max()
    return Material(kind, c1, c2, origin, freq.astype(np.float32), float(rng.uniform(0, 2 * np.pi)))


def _camera(rng, room, width, height):
    """Camera pose (4, 4) inside the room looking roughly at its centre, and focal length (pixels)."""
    x0, x1, y0, y1 = room
    pos = np.array([rng.uniform(x0 + 1, x1 - 1), rng.uniform(y0 + 1, y1 - 1), rng.uniform(0.6, 2.4)])
    to_centre = np.arctan2(-pos[1], -pos[0])
    yaw, pitch, roll = to_centre + rng.uniform(-0.6, 0.6), rng.uniform(-0.5, 0.1), rng.uniform(-0.14, 0.14)
    fwd = np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])
    right = np.cross(fwd, [0, 0, 1])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    rot = _rot(fwd, roll) @ np.stack([right, down, fwd], axis=1)
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rot, pos
    hfov = rng.uniform(np.radians(45), np.radians(75))
    return pose, (width / 2) / np.tan(hfov / 2), yaw, hfov


def _place(rng, placed, cam, yaw, hfov, room, radius):
    """A floor point (2,) in the camera's view, inside the room, clear of ``placed`` (x, y, r) and the
    camera; None when 60 tries fail."""
    x0, x1, y0, y1 = room
    for _ in range(60):
        dist, bearing = rng.uniform(1.5, 8.0), yaw + rng.uniform(-0.45, 0.45) * hfov
        p = cam[:2] + dist * np.array([np.cos(bearing), np.sin(bearing)])
        if not (x0 + radius < p[0] < x1 - radius and y0 + radius < p[1] < y1 - radius):
            continue
        if np.linalg.norm(p - cam[:2]) < radius + 0.7:
            continue
        if all(np.linalg.norm(p - q[:2]) > radius + q[2] + 0.1 for q in placed):
            placed.append((p[0], p[1], radius))
            return p
    return None


def _object(rng) -> Surface:
    """A random sphere, box or cylinder (upright or lying) standing on the floor at the origin."""
    kind, f32 = int(rng.integers(3)), np.float32
    if kind == 0:
        r = rng.uniform(0.2, 0.7)
        c = np.array([0, 0, r], f32)
        return Surface(Sphere(c, r), _material(rng, c), SPHERE)
    if kind == 1:
        half = rng.uniform(0.15, 0.75, size=3).astype(f32)
        c = np.array([0, 0, half[2]], f32)
        rot = _rot([0, 0, 1], rng.uniform(0, 2 * np.pi)).astype(f32)
        return Surface(Box(c, half, rot), _material(rng, c), BOX)
    r, h = rng.uniform(0.15, 0.5), rng.uniform(0.3, 2.0)
    if rng.uniform() < 0.25:  # lying on its side
        yaw = rng.uniform(0, 2 * np.pi)
        off = np.array([np.cos(yaw), np.sin(yaw), 0]) * min(h, 1.2) / 2
        a, b = np.array([0, 0, r]) - off, np.array([0, 0, r]) + off
    else:
        a, b = np.zeros(3), np.array([0, 0, h])
    return Surface(Cylinder(a.astype(f32), b.astype(f32), r), _material(rng, a), CYLINDER)


def _footprint(surface: Surface) -> float:
    """Radius (metres) of a vertical cylinder around the origin that holds the object."""
    if isinstance(surface.prim, Box):
        return float(np.hypot(*surface.prim.half[:2]))
    return float(surface.prim.bound()[1])


def _room(rng, half=(3, 7), wall_p=0.7):
    """Floor, walls (each present with probability ``wall_p``) and the room's footprint; ``half``: range of its
    half sizes (metres)."""
    hx, hy, wall_h = rng.uniform(*half), rng.uniform(*half), rng.uniform(2.4, 4.5)
    room = (-hx, hx, -hy, hy)
    floor = Rect(2, 0.0, np.array([-30, -30, 0], np.float32), np.array([30, 30, 0], np.float32))
    surfaces = [Surface(floor, _material(rng, [0, 0, 0], (0.3, 1.0), (PLAIN, CHECKER, CHECKER, NOISE)), FLOOR)]
    wall_mat = _material(rng, [0, 0, 0], (0.2, 1.0), (PLAIN, PLAIN, STRIPES, NOISE))
    for axis, value in ((0, -hx), (0, hx), (1, -hy), (1, hy)):
        if rng.uniform() < wall_p:
            lo, hi = np.array([-hx, -hy, 0], np.float32), np.array([hx, hy, wall_h], np.float32)
            surfaces.append(Surface(Rect(axis, value, lo, hi), wall_mat, WALL))
    return room, surfaces


def sample_layout(rng: np.random.Generator, width: int, height: int) -> Layout:
    """Draw a full scene for a ``width`` x ``height`` pixel camera."""
    room, surfaces = _room(rng)
    pose, focal, yaw, hfov = _camera(rng, room, width, height)
    cam = pose[:3, 3]
    placed, groups = [], []
    view = (cam, yaw, hfov, room)
    humans = add_humans(rng, int(rng.choice(4, p=[0.15, 0.4, 0.3, 0.15])), view, placed, surfaces, groups)
    instance = len(humans)
    for _ in range(int(rng.integers(2, 8))):
        surface = _object(rng)  # drawn at the origin first to know its footprint
        xy = _place(rng, placed, cam, yaw, hfov, room, _footprint(surface))
        if xy is None:
            continue
        instance += 1
        groups.append([len(surfaces)])
        surfaces.append(_shifted(surface, xy, instance))
    return finish_layout(rng, surfaces, humans, groups, pose, focal, room, width, height)


def add_humans(rng, count: int, view: tuple, placed: list, surfaces: list, groups: list) -> list:
    """Place up to ``count`` humans (instances 1, 2, ...) in ``view`` = ``(camera position, yaw, hfov, room)``,
    clear of ``placed``; their parts are appended to ``surfaces`` and ``groups``. Returns the :class:`Human` list."""
    cam, yaw, hfov, room = view
    humans = []
    for _ in range(count):
        h = rng.uniform(1.45, 1.95)
        xy = _place(rng, placed, cam, yaw, hfov, room, 0.5 * h / 1.75)
        if xy is None:
            continue
        instance = len(humans) + 1
        parts, kp, tol = sample_human(rng, xy, rng.uniform(0, 2 * np.pi), h)
        skin = _colour(rng, (0.3, 0.6), (0.35, 0.9))
        mats = {r: _material(rng, kp[11], (0.05, 0.2), (PLAIN, PLAIN, STRIPES, NOISE)) for r in ("shirt", "pants")}
        mats["skin"] = Material(PLAIN, skin, skin, np.zeros(3, np.float32), np.ones(3, np.float32))
        groups.append(list(range(len(surfaces), len(surfaces) + len(parts))))
        surfaces += [Surface(p, mats[role], HUMAN, instance) for p, role in parts]
        humans.append(Human(instance, kp, tol))
    return humans


def finish_layout(rng, surfaces, humans, groups, pose, focal, room, width, height, max_lights=2) -> Layout:
    """1 to ``max_lights`` lights, sky and ambient drawn for a room's ``surfaces``; the walls become one more
    shadow group."""
    lights, n_lights = [], int(rng.integers(1, max_lights + 1))
    for _ in range(n_lights):
        pos = np.array([rng.uniform(room[0], room[1]), rng.uniform(room[2], room[3]), rng.uniform(2.6, 6.0)])
        power = rng.uniform(0.55, 0.9) / n_lights**0.6
        tint = 1 - 0.15 * _colour(rng, (0, 1), (0, 1))  # slightly warm or cool
        lights.append((pos.astype(np.float32), (power * tint).astype(np.float32)))
    walls = [i for i, s in enumerate(surfaces) if s.cls == WALL]
    sky = (_colour(rng, (0.0, 0.3), (0.8, 1.0)), _colour(rng, (0.3, 0.8), (0.6, 0.95)))
    return Layout(
        surfaces, humans, lights, np.full(3, rng.uniform(0.2, 0.35), np.float32), sky, pose, focal, focal,
        (width - 1) / 2, (height - 1) / 2, width, height, room,
        [_group(surfaces, g) for g in (groups + [walls] if walls else groups)],
    )  # fmt: skip


def _group(surfaces, indices) -> tuple:
    """``(centre (3,), radius, indices)``: a sphere bounding the surfaces' bounding spheres."""
    bounds = [surfaces[i].prim.bound() for i in indices]
    lo = np.min([c - r for c, r in bounds], axis=0)
    hi = np.max([c + r for c, r in bounds], axis=0)
    centre = (lo + hi) / 2
    return centre, max(float(np.linalg.norm(c - centre)) + r for c, r in bounds), indices


def _shifted(surface: Surface, xy, instance: int) -> Surface:
    """``surface`` (built at the origin) moved to floor point ``xy`` with ``instance`` id."""
    off = np.array([xy[0], xy[1], 0], np.float32)
    p, m = surface.prim, surface.material
    if isinstance(p, Sphere):
        p = Sphere(p.center + off, p.radius)
    elif isinstance(p, Box):
        p = Box(p.center + off, p.half, p.rot)
    else:
        p = Cylinder(p.a + off, p.b + off, p.radius)
    m = Material(m.kind, m.c1, m.c2, m.origin + off, m.freq, m.phase)
    return Surface(p, m, surface.cls, instance)
