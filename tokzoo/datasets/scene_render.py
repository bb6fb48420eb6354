"""Ray casting of a :class:`~tokzoo.datasets.scene_layout.Layout` into aligned modality arrays.

One primary ray per pixel centre (pixel ``(row i, col j)`` looks through ``x = j``, ``y = i``; the
principal point ``(cx, cy)`` is in the same pixel coordinates). Camera-frame ray directions have
``z = 1``, so the ray parameter of a hit is its z-depth. Loops run over primitives; each primitive
is tested only on the pixel rectangle its bounding sphere projects to.
"""

from __future__ import annotations

import numpy as np

from .scene_layout import SKY, WALL, Layout


def _screen_rect(centre, radius, rot, pos, fx, fy, cx, cy, width, height):
    """Pixel rectangle (row0, row1, col0, col1) covering a world sphere's projection; None when the
    sphere is behind the camera or off screen. Spheres crossing the camera plane cover the image."""
    x, y, z = rot.T @ (np.asarray(centre, float) - pos)
    if z + radius <= 0:
        return None
    if z - radius <= 1e-3:
        return 0, height, 0, width
    bounds = []
    for a, f, c, n in ((x, fx, cx, width), (y, fy, cy, height)):
        mid, half = np.arctan2(a, z), np.arcsin(min(radius / np.hypot(a, z), 1.0))
        lo, hi = f * np.tan(mid - half) + c, f * np.tan(mid + half) + c
        bounds.append((max(int(np.floor(lo)), 0), min(int(np.ceil(hi)) + 1, n)))
    (c0, c1), (r0, r1) = bounds
    return None if r0 >= r1 or c0 >= c1 else (r0, r1, c0, c1)


def _cast(layout: Layout, dirs: np.ndarray, dd: np.ndarray):
    """Z-buffer over all surfaces: returns depth (H, W) float32 (inf = sky) and surface index
    (H, W) int16 (``len(surfaces)`` = sky)."""
    h, w = dd.shape
    rot, pos = layout.cam_to_world[:3, :3], layout.cam_to_world[:3, 3]
    origin = pos.astype(np.float32)
    cam = (rot, pos, layout.fx, layout.fy, layout.cx, layout.cy, w, h)
    depth = np.full((h, w), np.inf, np.float32)
    index = np.full((h, w), len(layout.surfaces), np.int16)
    for k, surface in enumerate(layout.surfaces):
        rect = _screen_rect(*surface.prim.bound(), *cam)
        if rect is None:
            continue
        r0, r1, c0, c1 = rect
        t = surface.prim.intersect(origin, dirs[r0:r1, c0:c1].reshape(-1, 3), dd[r0:r1, c0:c1].ravel())
        t = t.reshape(r1 - r0, c1 - c0)
        closer = t < depth[r0:r1, c0:c1]
        depth[r0:r1, c0:c1][closer] = t[closer]
        index[r0:r1, c0:c1][closer] = k
    return depth, index


def _cone(units, light, centre, radius):
    """Mask of rays from ``light`` with unit directions ``units`` (N, 3) that point into the world
    sphere ``(centre, radius)``; None when the light is inside the sphere."""
    w = np.asarray(centre, float) - light
    dist = float(np.linalg.norm(w))
    if dist <= radius:
        return None
    return units @ (w / dist).astype(np.float32) > np.sqrt(1 - (radius / dist) ** 2)


def _visibility(layout: Layout, points, surface, light) -> np.ndarray:
    """1.0 where the segment from ``light`` (3,) to each point (N, 3) lying on surface index
    ``surface`` (N,) is free of other surfaces, else 0.0; float32 (N,). Surfaces are convex, so none
    shades its own lit side. Casters are culled by cones from the light around their bounding
    spheres, per group (an object, a human, the walls) and then per primitive."""
    dirs = points - light
    dd = np.einsum("ij,ij->i", dirs, dirs)
    units = dirs / np.sqrt(dd)[:, None]
    visible = np.ones(len(points), np.float32)
    x0, x1, y0, y1 = layout.room
    px, py = points[:, 0], points[:, 1]
    for centre, radius, group in layout.groups:
        cand = _cone(units, light, centre, radius)
        if layout.surfaces[group[0]].cls == WALL:  # walls only shade points outside the room
            outside = (px < x0) | (px > x1) | (py < y0) | (py > y1)
            cand = outside if cand is None else cand & outside
        idx = np.arange(len(points)) if cand is None else np.flatnonzero(cand)
        idx = idx[visible[idx] > 0]
        g_dirs, g_units = dirs[idx], units[idx]
        for i in group:
            prim, sub = layout.surfaces[i].prim, surface[idx] != i
            if len(group) > 1:
                cone = _cone(g_units, light, *prim.bound())
                sub = sub if cone is None else sub & cone
            sub = np.flatnonzero(sub)
            if len(sub):
                blocked = prim.intersect(light, g_dirs[sub], dd[idx[sub]]) < 1
                visible[idx[sub[blocked]]] = 0
    return visible


def _edges(semseg, instances, depth, index) -> np.ndarray:
    """1-px boundaries, uint8 {0, 1}: where a 4-neighbour differs in class or instance, or belongs to
    another surface with a depth jump over 5%; the nearer pixel of each such pair is marked."""
    z = np.where(np.isfinite(depth), depth, np.inf)
    edges = np.zeros(depth.shape, np.uint8)
    head, tail, every = slice(None, -1), slice(1, None), slice(None)
    for sa, sb in (((head, every), (tail, every)), ((every, head), (every, tail))):  # vertical, horizontal pairs
        za, zb = z[sa], z[sb]
        with np.errstate(invalid="ignore"):
            jump = np.abs(za - zb) > 0.05 * np.minimum(za, zb)
        cut = (semseg[sa] != semseg[sb]) | (instances[sa] != instances[sb]) | ((index[sa] != index[sb]) & jump)
        edges[sa][cut & (za <= zb)] = 1
        edges[sb][cut & (zb < za)] = 1
    return edges


def _keypoints(layout: Layout, depth: np.ndarray) -> list:
    """Per human: 2-D keypoints ``[x, y, v]`` and camera-frame 3-D keypoints, COCO-17 order."""
    rot, pos = layout.cam_to_world[:3, :3], layout.cam_to_world[:3, 3]
    out = []
    for human in layout.humans:
        cam = (human.keypoints - pos) @ rot
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.where(z > 0, layout.fx * cam[:, 0] / z + layout.cx, 0.0)
            v = np.where(z > 0, layout.fy * cam[:, 1] / z + layout.cy, 0.0)
        col, row = np.round(u).astype(int), np.round(v).astype(int)
        inside = (z > 0) & (col >= 0) & (col < layout.width) & (row >= 0) & (row < layout.height)
        seen = np.where(inside, depth[np.clip(row, 0, layout.height - 1), np.clip(col, 0, layout.width - 1)], 0)
        # pixel footprint: neighbouring rays on a slanted surface differ in depth by about this much
        margin = 0.02 + 2 * z / layout.fx
        with np.errstate(invalid="ignore"):
            visible = ~(seen < z - human.tolerance - margin)  # NaN (sky) counts as visible
        flag = np.where(inside, np.where(visible, 2, 1), 0)
        kp2 = [[float(a), float(b), int(c)] for a, b, c in zip(u, v, flag)]
        out.append({"keypoints_2d": kp2, "keypoints_3d": cam.tolist(), "instance_id": human.instance})
    return out


def render(layout: Layout) -> dict:
    """All modalities of one layout (see :func:`tokzoo.datasets.scenes.generate_scene`)."""
    h, w = layout.height, layout.width
    rot = layout.cam_to_world[:3, :3]
    x = ((np.arange(w) - layout.cx) / layout.fx).astype(np.float32)
    y = ((np.arange(h) - layout.cy) / layout.fy).astype(np.float32)
    right, down, forward = rot.T.astype(np.float32)
    dirs = (x[:, None] * right + forward) + (y[:, None] * down)[:, None]  # world directions (H, W, 3)
    dd = x * x + (y * y + 1)[:, None]  # |dirs|^2, as the camera axes are orthonormal
    depth, index = _cast(layout, dirs, dd)

    n_surf = len(layout.surfaces)
    flat = index.ravel()
    hit = np.flatnonzero(flat < n_surf)
    order = hit[np.argsort(flat[hit], kind="stable")]
    starts = np.searchsorted(flat[order], np.arange(n_surf + 1))
    origin = layout.cam_to_world[:3, 3].astype(np.float32)
    points = origin + depth.ravel()[order, None] * dirs.reshape(-1, 3)[order]
    normals = np.empty_like(points)
    albedo = np.empty_like(points)
    for k, surface in enumerate(layout.surfaces):
        s = slice(starts[k], starts[k + 1])
        if s.start < s.stop:
            normals[s] = surface.prim.normal(points[s])
            albedo[s] = surface.material.albedo(points[s])
            # closed primitives are seen from outside; a plane's hits all lie on the camera's side. Decided by
            # the sum over the hits: one grazing hit (a thin tube's rim, float32 rounding) may face slightly away
            if np.einsum("ij,ij->", normals[s], origin - points[s]) < 0:
                normals[s] *= -1

    shade = np.broadcast_to(layout.ambient, points.shape).copy()
    for light, power in layout.lights:
        to_light = light - points
        cos = np.einsum("ij,ij->i", normals, to_light) / np.sqrt(np.einsum("ij,ij->i", to_light, to_light))
        lit = np.flatnonzero(cos > 0)
        cos[cos < 0] = 0
        cos[lit] *= _visibility(layout, points[lit], flat[order[lit]], light)
        shade += cos[:, None] * power

    rgb = np.empty((h * w, 3), np.float32)
    sky = np.flatnonzero(flat == n_surf)
    horizon, zenith = layout.sky
    up = (dirs.reshape(-1, 3)[sky, 2] / np.sqrt(dd.ravel()[sky])).clip(0, 1)[:, None] ** 0.6
    rgb[sky] = horizon * (1 - up) + zenith * up
    rgb[order] = albedo * shade
    if layout.haze > 0:  # outdoor scenes: distant surfaces fade into the horizon colour
        keep = np.exp(-layout.haze * depth.ravel()[order])[:, None]
        rgb[order] = rgb[order] * keep + horizon * (1 - keep)
    rgb = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(h, w, 3)

    normals_img = np.full((h * w, 3), np.nan, np.float32)
    cam_normals = normals @ rot.astype(np.float32)
    normals_img[order] = cam_normals / np.sqrt(np.einsum("ij,ij->i", cam_normals, cam_normals))[:, None]
    cls = np.array([s.cls for s in layout.surfaces] + [SKY], np.uint8)
    inst = np.array([s.instance for s in layout.surfaces] + [0], np.uint16)
    semseg, instances = cls[index], inst[index]
    return {
        "rgb": rgb,
        "depth": np.where(np.isfinite(depth), depth, np.float32(np.nan)),
        "normals": normals_img.reshape(h, w, 3),
        "semseg": semseg,
        "sam_instances": instances,
        "edges": _edges(semseg, instances, depth, index),
        "pose": {"skeleton": "coco17", "width": w, "height": h, "humans": _keypoints(layout, depth)},
        "camera": {
            "fx": float(layout.fx), "fy": float(layout.fy), "cx": float(layout.cx), "cy": float(layout.cy),
            "width": w, "height": h, "cam_to_world": layout.cam_to_world.tolist(),
        },
    }  # fmt: skip
