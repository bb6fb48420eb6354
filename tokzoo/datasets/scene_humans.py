"""Articulated stick-figure humans: capsule limbs, a head sphere and COCO-17 keypoints.

A human is posed by forward kinematics from random joint angles in a body frame (x forward,
y left, z up, metres), then turned by a yaw and placed so its lowest point touches the floor z = 0.
"""

from __future__ import annotations

import numpy as np

from .scene_geometry import Capsule, Sphere

COCO17 = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

# Unit directions of the face keypoints on the head sphere, head frame (x forward, y left, z up).
_FACE = np.array([[1, 0, -0.15], [0.85, 0.35, 0.25], [0.85, -0.35, 0.25], [0, 1, 0.1], [0, -1, 0.1]])
_FACE /= np.linalg.norm(_FACE, axis=1, keepdims=True)


def _rot(axis, angle: float) -> np.ndarray:
    """Rotation matrix (3, 3) by ``angle`` radians about ``axis`` (Rodrigues)."""
    x, y, z = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def _limb(rng, root, frame, side: int, arm: bool):
    """Two-segment limb from ``root``: returns (middle joint, end joint), body frame.

    ``frame`` (3, 3) columns: forward, left, up of the segment the limb hangs from."""
    fwd, lft, up = frame.T
    if arm:
        flex, abduct, bend = rng.uniform(-0.6, 2.6), rng.uniform(0.05, 1.5), rng.uniform(0, 2.3)
        lengths = (0.30, 0.27)
    else:
        flex, abduct, bend = rng.uniform(-0.4, 1.5), rng.uniform(0, 0.45), -rng.uniform(0, 2.0)
        lengths = (0.44, 0.43)
    r_limb = _rot(fwd, side * abduct) @ _rot(lft, -flex)
    upper = r_limb @ -up
    hinge = _rot(upper, rng.uniform(-0.7, 0.7)) @ (r_limb @ lft)  # twist about the upper segment
    lower = _rot(hinge, -bend) @ upper  # arms bend forward, knees backward
    mid = root + lengths[0] * upper
    return mid, mid + lengths[1] * lower


def sample_human(rng: np.random.Generator, xy, yaw: float, height: float):
    """A randomly posed human standing at ``xy`` (2,) facing ``yaw`` radians, ``height`` metres tall.

    Returns ``(parts, keypoints, tolerance)``: ``parts`` a list of ``(primitive, role)`` with role in
    {"skin", "shirt", "pants"}; ``keypoints`` float64 (17, 3) world metres in COCO-17 order;
    ``tolerance`` (17,) metres, how far in front of each keypoint the body's own surface can lie along
    a view ray (used for the occlusion test against the depth map).
    """
    s = height / 1.75
    lean = _rot([0, 1, 0], rng.uniform(-0.1, 0.45)) @ _rot([1, 0, 0], rng.uniform(-0.15, 0.15))
    pelvis = np.zeros(3)
    neck = lean @ np.array([0, 0, 0.5])
    shoulders = [neck + lean @ np.array([0, side * 0.19, -0.05]) for side in (1, -1)]
    hips = [np.array([0, side * 0.1, -0.03]) for side in (1, -1)]
    head_rot = lean @ _rot([0, 0, 1], rng.uniform(-0.9, 0.9)) @ _rot([0, 1, 0], rng.uniform(-0.35, 0.45))
    r_head = 0.11
    head = neck + head_rot @ np.array([0, 0, 0.16])
    arms = [_limb(rng, shoulders[i], lean, side, True) for i, side in enumerate((1, -1))]
    legs = [_limb(rng, hips[i], np.eye(3), side, False) for i, side in enumerate((1, -1))]
    face = head + r_head * _FACE @ head_rot.T

    kp = np.concatenate(
        [
            face,
            shoulders,
            [arms[0][0], arms[1][0], arms[0][1], arms[1][1]],
            hips,
            [legs[0][0], legs[1][0], legs[0][1], legs[1][1]],
        ]
    )
    segs = [  # (a, b, radius, role)
        (pelvis, neck, 0.14, "shirt"), (shoulders[0], shoulders[1], 0.06, "shirt"),
        (hips[0], hips[1], 0.085, "pants"), (neck, head, 0.045, "skin"),
    ]  # fmt: skip
    for (elbow, wrist), sh in zip(arms, shoulders):
        segs += [(sh, elbow, 0.055, "shirt"), (elbow, wrist, 0.045, "skin")]
    for (knee, ankle), hip in zip(legs, hips):
        segs += [(hip, knee, 0.075, "pants"), (knee, ankle, 0.06, "pants")]

    world = _rot([0, 0, 1], yaw) * s
    lowest = min(min(a[2], b[2]) - r for a, b, r, _ in segs) * s
    shift = np.array([xy[0], xy[1], -lowest])

    def place(p):
        return (p @ world.T + shift).astype(np.float32)

    parts = [(Capsule(place(a), place(b), r * s), role) for a, b, r, role in segs]
    parts.append((Sphere(place(head), r_head * s), "skin"))
    kp = kp @ world.T + shift
    tolerance = np.full(17, 0.25 * r_head * s)  # face points lie on the head's surface
    tolerance[5:] = _enclosing_depth([p for p, _ in parts], kp[5:])
    return parts, kp, tolerance


def _enclosing_depth(parts, q) -> np.ndarray:
    """For points ``q`` (Q, 3): the largest ``radius + distance to axis`` over the capsules/spheres
    that contain each point, 0 where none does; float (Q,)."""
    a = np.array([p.center if isinstance(p, Sphere) else p.a for p in parts], float)
    b = np.array([p.center if isinstance(p, Sphere) else p.b for p in parts], float)
    r = np.array([p.radius for p in parts])
    ab = b - a
    rel = q[:, None] - a  # (Q, P, 3)
    y = np.clip((rel * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0, 1)
    dist = np.linalg.norm(rel - y[..., None] * ab, axis=-1)
    return np.where(dist <= r + 1e-6, r + dist, 0).max(axis=1)
