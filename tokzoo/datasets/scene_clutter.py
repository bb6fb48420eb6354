"""Random cluttered rooms: many small and thin objects at several depths (``kind="cluttered"``).

Where real depth maps differ from the plain rooms: thin structures (poles, rails, wires, spokes of 5-30 mm
radius, many near-horizontal), curved surfaces built from chains of capsules (rims, hoses, arches), clusters
of small boxes, spheres and cylinders, and furniture whose legs and rods occlude what stands behind them, so
depth discontinuities are frequent. Clusters stand 1-6 m from the camera, wires cross the view from 0.6 m;
walls and a ceiling close the room at 2.5-11 m. The room, camera, humans, lights and materials are drawn as in
scene_layout.py, and every surface takes the class of its primitive (sphere, box, or cylinder for cylinders and
capsules), so all modalities stay consistent. Everything is drawn from the ``rng`` passed in, in a fixed order.
"""

from __future__ import annotations

import numpy as np

from .scene_geometry import Box, Capsule, Cylinder, Rect, Sphere
from .scene_humans import _rot
from .scene_layout import (
    BOX,
    CYLINDER,
    SPHERE,
    WALL,
    Layout,
    Surface,
    _camera,
    _material,
    _room,
    add_humans,
    finish_layout,
)

_F32 = np.float32
_UP = np.array([0.0, 0.0, 1.0])


def _cyl(a, b, radius) -> Cylinder:
    return Cylinder(np.asarray(a, _F32), np.asarray(b, _F32), float(radius))


def _cap(a, b, radius) -> Capsule:
    return Capsule(np.asarray(a, _F32), np.asarray(b, _F32), float(radius))


def _sph(centre, radius) -> Sphere:
    return Sphere(np.asarray(centre, _F32), float(radius))


def _box(centre, half, yaw: float) -> Box:
    return Box(np.asarray(centre, _F32), np.asarray(half, _F32), _rot(_UP, yaw).astype(_F32))


def _heading(yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal unit vectors (forward, left) of ``yaw`` radians."""
    return np.array([np.cos(yaw), np.sin(yaw), 0.0]), np.array([-np.sin(yaw), np.cos(yaw), 0.0])


def _chain(points: np.ndarray, radius: float) -> list:
    """Capsules joining consecutive ``points`` (K, 3): a smooth curved tube (end balls fill the joints)."""
    return [_cap(a, b, radius) for a, b in zip(points[:-1], points[1:])]


def _small_object(rng, base) -> list:
    """One small sphere, box or cylinder (5-25 cm) standing on the point ``base`` (3,)."""
    kind = int(rng.integers(3))
    if kind == 0:
        r = rng.uniform(0.03, 0.12)
        return [_sph(base + [0, 0, r], r)]
    if kind == 1:
        half = rng.uniform(0.03, 0.15, size=3)
        return [_box(base + [0, 0, half[2]], half, rng.uniform(0, np.pi))]
    r, h = rng.uniform(0.015, 0.08), rng.uniform(0.05, 0.35)
    return [_cyl(base, base + [0, 0, h], r)]


def _wheel(rng, centre, axle, radius) -> list:
    """A rim (a ring of capsules), a hub on ``axle`` (unit, horizontal) and thin spokes, in the vertical plane."""
    side = np.cross(axle, _UP)
    tube, n_rim, n_spokes = rng.uniform(0.012, 0.05), int(rng.integers(7, 11)), int(rng.choice([5, 6, 8]))
    angles = np.linspace(0, 2 * np.pi, n_rim + 1) + rng.uniform(0, np.pi)
    ring = centre + radius * (np.cos(angles)[:, None] * _UP + np.sin(angles)[:, None] * side)
    hub_r, hub_len, spoke_r = rng.uniform(0.025, 0.06), rng.uniform(0.05, 0.14), rng.uniform(0.005, 0.01)
    parts = _chain(ring, tube) + [_cyl(centre - axle * hub_len / 2, centre + axle * hub_len / 2, hub_r)]
    for a in np.linspace(0, 2 * np.pi, n_spokes, endpoint=False) + rng.uniform(0, np.pi):
        rim = centre + (radius - tube) * (np.cos(a) * _UP + np.sin(a) * side)
        parts.append(_cyl(centre, rim, spoke_r))
    return parts


def _bike(rng, base, yaw) -> list:
    """One wheel standing alone, or two joined by a tube frame with a saddle and handlebars."""
    fwd, left = _heading(yaw)
    radius = rng.uniform(0.22, 0.4)
    if rng.uniform() < 0.35:
        return [_wheel(rng, base + [0, 0, radius], left, radius)]
    base_len = rng.uniform(0.9, 1.4)
    rear, front = base + [0, 0, radius] - fwd * base_len / 2, base + [0, 0, radius] + fwd * base_len / 2
    top = radius + rng.uniform(0.25, 0.45)
    seat, head = base - fwd * base_len * 0.15 + [0, 0, top], base + fwd * base_len * 0.3 + [0, 0, top]
    frame_r = rng.uniform(0.015, 0.035)
    bar = head + [0, 0, rng.uniform(0.1, 0.25)]
    half_bar = left * rng.uniform(0.2, 0.35)
    frame = [
        _cyl(rear, seat, frame_r),
        _cyl(seat, head, frame_r),
        _cyl(head, front, frame_r),
        _cyl(rear, base + [0, 0, radius * 0.8], frame_r),
        _cyl(base + [0, 0, radius * 0.8], head, frame_r),
        _cyl(head, bar, frame_r),
        _cyl(bar - half_bar, bar + half_bar, frame_r * 0.8),
        _box(seat + [0, 0, 0.04], [0.13, 0.06, 0.03], yaw),
    ]
    return [_wheel(rng, rear, left, radius) + _wheel(rng, front, left, radius) + frame]


def _shelf(rng, base, yaw) -> list:
    """Four thin posts, boards (or wire rails) at 2-5 levels, small objects on them (each its own instance)."""
    fwd, left = _heading(yaw)
    width, depth, height = rng.uniform(0.6, 1.6), rng.uniform(0.25, 0.5), rng.uniform(1.0, 2.2)
    post_r, levels, boards = rng.uniform(0.008, 0.025), int(rng.integers(2, 5)), rng.uniform() < 0.6
    corners = [base + sx * left * width / 2 + sy * fwd * depth / 2 for sx in (-1, 1) for sy in (-1, 1)]
    frame = [_cyl(c, c + [0, 0, height], post_r) for c in corners]
    items = []
    for z in np.linspace(height / levels, height, levels) - 0.02:
        if boards:
            frame.append(_box(base + [0, 0, z], [depth / 2, width / 2, 0.012], yaw))
        else:
            for sy in (-1, 1):
                edge = base + sy * fwd * depth / 2 + [0, 0, z]
                frame.append(_cyl(edge - left * width / 2, edge + left * width / 2, post_r))
        for _ in range(int(rng.integers(0, 4)) if z < height - 0.1 else 0):
            spot = base + left * rng.uniform(-0.4, 0.4) * width + fwd * rng.uniform(-0.2, 0.2) * depth
            items.append(_small_object(rng, spot + [0, 0, z + 0.012]))
    return [frame, *items]


def _railing(rng, base, yaw) -> list:
    """A row of thin vertical poles (8-30 cm apart) under one to three horizontal rails."""
    _, left = _heading(yaw)
    length, height = rng.uniform(1.0, 3.0), rng.uniform(0.6, 1.3)
    gap, pole_r, rail_r = rng.uniform(0.08, 0.3), rng.uniform(0.005, 0.02), rng.uniform(0.01, 0.03)
    n = min(int(length / gap) + 1, 12)
    ends = base - left * length / 2, base + left * length / 2
    parts = [_cyl(p, p + [0, 0, height], pole_r) for p in np.linspace(*ends, n)]
    for z in np.linspace(height, height * 0.3, int(rng.integers(1, 4))):
        parts.append(_cyl(ends[0] + [0, 0, z], ends[1] + [0, 0, z], rail_r))
    return [parts]


def _pile(rng, base, yaw) -> list:
    """3-8 small objects within 0.6 m of ``base``, each its own instance."""
    return [_small_object(rng, base + [*rng.uniform(-0.6, 0.6, size=2), 0]) for _ in range(int(rng.integers(3, 9)))]


def _furniture(rng, base, yaw) -> list:
    """A table (top on four thin legs) or a chair (seat, legs and a backrest of vertical rods)."""
    fwd, left = _heading(yaw)
    leg_r = rng.uniform(0.01, 0.03)
    if rng.uniform() < 0.5:
        width, depth, height = rng.uniform(0.6, 1.6), rng.uniform(0.5, 0.9), rng.uniform(0.6, 0.8)
        top = [_box(base + [0, 0, height], [depth / 2, width / 2, rng.uniform(0.01, 0.03)], yaw)]
    else:
        width = depth = rng.uniform(0.4, 0.5)
        height, back = rng.uniform(0.42, 0.5), rng.uniform(0.35, 0.55)
        top = [_box(base + [0, 0, height], [depth / 2, width / 2, 0.02], yaw)]
        rail = base - fwd * depth / 2 + [0, 0, height + back]
        top.append(_cyl(rail - left * width / 2, rail + left * width / 2, leg_r))
        for s in np.linspace(-0.4, 0.4, int(rng.integers(2, 6))):
            foot = base - fwd * depth / 2 + left * s * width + [0, 0, height]
            top.append(_cyl(foot, foot + [0, 0, back], leg_r * 0.7))
    corners = [
        base + sx * left * (width / 2 - 0.04) + sy * fwd * (depth / 2 - 0.04) for sx in (-1, 1) for sy in (-1, 1)
    ]
    return [top + [_cyl(c, c + [0, 0, height], leg_r) for c in corners]]


def _curve(rng, base, yaw) -> list:
    """A curved tube of capsules: a standing arch, a ring lying on the floor, or a coil; or beads on an arc."""
    fwd, left = _heading(yaw)
    radius, tube, kind = rng.uniform(0.25, 0.9), rng.uniform(0.015, 0.08), int(rng.integers(4))
    s = np.linspace(0, 1, int(rng.integers(8, 15)))[:, None]
    if kind == 0:  # arch
        a = np.pi * s
        points = base + radius * (np.cos(a) * left + np.sin(a) * _UP) + [0, 0, tube]
    elif kind == 1:  # ring on the floor
        a = 2 * np.pi * s
        points = base + radius * (np.cos(a) * fwd + np.sin(a) * left) + [0, 0, tube]
    else:  # coil, or beads along it
        a = 2 * np.pi * rng.uniform(1.0, 2.5) * s
        r = radius * 0.5
        points = base + r * (np.cos(a) * fwd + np.sin(a) * left) + _UP * (tube + s * rng.uniform(0.3, 1.2))
        if kind == 3:
            return [[_sph(p, tube * 1.5) for p in points]]
    return [_chain(points, tube)]


def _wire(rng, cam, view_yaw, hfov) -> list:
    """A long thin tube through a point 0.6-4 m ahead, mostly near-horizontal and across the view."""
    dist, bearing = rng.uniform(0.6, 4.0), view_yaw + rng.uniform(-0.4, 0.4) * hfov
    ray = np.array([np.cos(bearing), np.sin(bearing), rng.uniform(-0.3, 0.2)])
    ray /= np.linalg.norm(ray)
    anchor = cam + dist * ray
    if rng.uniform() < 0.6:
        direction = np.array([*rng.normal(size=2), rng.uniform(-0.3, 0.3)])
    else:
        direction = rng.normal(size=3)
    direction -= 0.8 * (direction @ ray) * ray  # mostly across the line of sight
    direction /= np.linalg.norm(direction)
    length = rng.uniform(1.5, 5.0)
    offset = rng.uniform(-0.5, 0.5) * length
    a, b = anchor + direction * (offset - length / 2), anchor + direction * (offset + length / 2)
    return [[_cyl(a, b, rng.uniform(0.005, 0.02))]]


_CLUSTERS = (_bike, _shelf, _railing, _pile, _furniture, _curve)
_CLUSTER_P = (0.18, 0.18, 0.16, 0.2, 0.16, 0.12)
_CLASS = {Sphere: SPHERE, Box: BOX, Cylinder: CYLINDER, Capsule: CYLINDER}


def _ceiling(surfaces: list, room) -> list:
    """A ceiling at the walls' height over the room (class wall: like walls, it shades nothing inside), or none
    without walls."""
    walls = [s for s in surfaces if s.cls == WALL]
    if not walls:
        return []
    x0, x1, y0, y1 = room
    height = float(walls[0].prim.hi[2])
    plane = Rect(2, height, np.array([x0, y0, height], _F32), np.array([x1, y1, height], _F32))
    return [Surface(plane, walls[0].material, WALL)]


def _spot(rng, cam, yaw, hfov, room, radius: float):
    """A floor point (3,) 1-6 m away in the camera's view and inside the room; None when 30 tries fail."""
    x0, x1, y0, y1 = room
    for _ in range(30):
        dist, bearing = rng.uniform(1.0, 6.0), yaw + rng.uniform(-0.5, 0.5) * hfov
        p = cam[:2] + dist * np.array([np.cos(bearing), np.sin(bearing)])
        if x0 + radius < p[0] < x1 - radius and y0 + radius < p[1] < y1 - radius:
            return np.array([p[0], p[1], 0.0])
    return None


def sample_cluttered_layout(rng: np.random.Generator, width: int, height: int) -> Layout:
    """Draw a cluttered room for a ``width`` x ``height`` pixel camera."""
    room, surfaces = _room(rng, (2.5, 5.5), wall_p=0.95)
    surfaces += _ceiling(surfaces, room)
    pose, focal, yaw, hfov = _camera(rng, room, width, height)
    cam = pose[:3, 3]
    placed, groups = [], []
    humans = add_humans(rng, int(rng.choice(3, p=[0.5, 0.35, 0.15])), (cam, yaw, hfov, room), placed, surfaces, groups)
    clusters = []
    for _ in range(int(rng.integers(4, 8))):
        build = _CLUSTERS[int(rng.choice(len(_CLUSTERS), p=_CLUSTER_P))]
        base = _spot(rng, cam, yaw, hfov, room, 0.8)
        if base is not None:
            clusters.append(build(rng, base, rng.uniform(0, 2 * np.pi)))
    clusters += [_wire(rng, cam, yaw, hfov) for _ in range(int(rng.integers(1, 5)))]
    instance = len(humans)
    for items in clusters:
        group = []
        for prims in items:
            instance += 1
            material = _material(rng, prims[0].bound()[0], (0.05, 0.3))
            group += range(len(surfaces), len(surfaces) + len(prims))
            surfaces += [Surface(p, material, _CLASS[type(p)], instance) for p in prims]
        groups.append(group)
    return finish_layout(rng, surfaces, humans, groups, pose, focal, room, width, height, max_lights=1)
