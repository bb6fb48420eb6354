"""Per-sample crop settings and their consistent application to every modality of a sample.

Settings are int32 (n_crops, 5) rows ``top, left, height, width, hflip`` in source pixels
(docs/ARCHITECTURE.md). Crop 0 is the largest centred square without flip; crops 1.. are
random-resized crops (area fraction in ``scale``, aspect ratio w / h in ``ratio``, flipped with
probability ``hflip_p``) drawn from a generator seeded by SHA-256 of ``(seed, key)``, so the same
seed and key give the same crops on every machine.

:func:`apply_crop` cuts one crop out of every modality and resizes it to ``out_size`` by the crop rule the
modality declares (``crop_rule`` in tokzoo/modalities; :data:`CROP_RULES`):

| modality (rule) | resampling |
|---|---|
| rgb (bilinear) | bilinear with antialias (torchvision), uint8 |
| semseg, sam_instances (nearest) | nearest-exact (ids never blend) |
| edges (any_edge) | any-edge (area) when shrinking: an output pixel is an edge when any source pixel it covers is one, so thin lines stay connected (nearest would drop most of them); nearest-exact when enlarging |
| depth (nearest) | nearest-exact: values stay measured metres and NaN (invalid) never bleeds into valid pixels |
| normals (normals) | valid-aware bilinear: NaN vectors count as zero, pixels whose resampled validity is < 0.5 become NaN, the rest are renormalised; hflip negates x |
| pose (pose) | keypoints moved with the crop, outside it -> ``[0, 0, 0]``; each human's ``box`` moved and clamped as in boxes, a human whose box does not touch the crop dropped; ``width``, ``height`` and ``intrinsics`` follow the crop as in camera; hflip mirrors x, swaps left/right joints (COCO-17 or SMPL), negates x of ``keypoints_3d`` and mirrors SMPL rotations, translation and weak perspective (:func:`mirror_smpl`) |
| boxes (boxes) | torchvision BoundingBoxes: moved, clamped to the crop; boxes not touching the crop are dropped |
| camera (camera) | intrinsics follow the crop; hflip mirrors cx and composes ``cam_to_world`` with diag(-1, 1, 1, 1) |
| palette, metadata, audio (unchanged) | unchanged |

Pixel coordinates: keypoints and the principal point put pixel (row i, col j)'s centre at
``(x, y) = (j, i)`` (OpenCV, as tokzoo.datasets.scenes writes them); boxes use edges, pixel j
spanning ``[j, j + 1)``. Nearest-exact samples each output pixel at its centre, the same geometry as
bilinear and the coordinate maps (tv_tensors.Mask is avoided: its legacy nearest is shifted by
half a pixel). torchvision's KeyPoints are not used because their resize scales ``x``
about the image corner while their flip maps ``x -> W - 1 - x``, which disagree by half a pixel.

Humans of a pose dict: one whose ``box`` does not touch the crop is dropped, as the boxes modality
drops its boxes: the crop's pose describes the people the crop shows (such a human would otherwise
tokenize as an all-invisible COCO-17 vector, or as an SMPL body that is not in the picture). A human
without ``box`` is kept, its keypoints marked ``v = 0`` where they leave the crop. SMPL's
``translation`` and ``keypoints_3d`` are in the camera frame, which only a flip changes (the new
``intrinsics`` absorb crop and scale); ``weak_perspective`` stays relative to the labeler's person crop.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from tokzoo.errors import ConfigError, ShapeError
from tokzoo.modalities import STORED

COCO17_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
"""COCO-17 left/right joints (eyes, ears, shoulders, elbows, wrists, hips, knees, ankles), swapped on hflip."""

SMPL_JOINT_NAMES = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
)
"""SMPL's 24 joints in model order (``keypoints_2d`` / ``keypoints_3d``); ``body_pose`` row i is joint i + 1."""

SMPL_FLIP_PAIRS = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23))
"""Left/right SMPL joints (hip, knee, ankle, foot, collar, shoulder, elbow, wrist, hand), swapped on hflip."""

SMPL_BODY_FLIP_PAIRS = ((0, 1), (3, 4), (6, 7), (9, 10), (12, 13), (15, 16), (17, 18), (19, 20), (21, 22))
"""The same pairs as rows of ``body_pose`` (23 x 3 x 3, the pelvis's rotation is ``global_orient``)."""

MIRROR_SIGNS = np.outer([-1.0, 1.0, 1.0], [-1.0, 1.0, 1.0])
"""``M R M`` with M = diag(-1, 1, 1) equals ``R * MIRROR_SIGNS``: a rotation seen in a mirror (axis-angle
(x, y, z) -> (x, -y, -z)); exact, so flipping twice gives the rotation back bit for bit."""


def _rng(seed: int, key: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{int(seed)}\x00{key}".encode("utf-8")).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


def _random_resized(rng, height, width, scale, ratio) -> tuple[int, int, int, int]:
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    # fallback: the whole image trimmed to the nearest allowed aspect ratio, centred
    aspect = min(max(width / height, ratio[0]), ratio[1])
    w, h = (
        (width, max(1, round(width / aspect))) if width / height <= aspect else (max(1, round(height * aspect)), height)
    )
    w, h = min(w, width), min(h, height)
    return (height - h) // 2, (width - w) // 2, h, w


def make_crop_settings(
    height: int,
    width: int,
    n_crops: int,
    seed: int,
    key: str,
    scale: tuple[float, float] = (0.6, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    hflip_p: float = 0.5,
) -> np.ndarray:
    """int32 (n_crops, 5) ``top, left, height, width, hflip`` for a ``height`` x ``width`` image.

    Row 0: the largest centred square, no flip. Rows 1..: random-resized crops, reproducible from
    ``(seed, key)`` alone.
    """
    if height < 1 or width < 1 or n_crops < 1:
        raise ConfigError(f"crop settings need height, width, n_crops >= 1, got {height}, {width}, {n_crops}")
    if not (0 < scale[0] <= scale[1] <= 1) or not (0 < ratio[0] <= ratio[1]) or not (0 <= hflip_p <= 1):
        raise ConfigError(
            f"crop settings need 0 < scale[0] <= scale[1] <= 1, 0 < ratio[0] <= ratio[1] and "
            f"0 <= hflip_p <= 1; got scale {scale}, ratio {ratio}, hflip_p {hflip_p}"
        )
    side = min(height, width)
    rows = [((height - side) // 2, (width - side) // 2, side, side, 0)]
    rng = _rng(seed, key) if n_crops > 1 else None
    for _ in range(n_crops - 1):
        top, left, h, w = _random_resized(rng, height, width, scale, ratio)
        rows.append((top, left, h, w, int(rng.random() < hflip_p)))
    return np.asarray(rows, dtype=np.int32)


def _chw(arr: np.ndarray) -> torch.Tensor:
    """(H, W[, C]) -> (C, H, W) tensor; a read-only array (decoded files, shared memory) is copied, as torch
    cannot share it (it warned on every such crop)."""
    chw = np.ascontiguousarray(arr.transpose(2, 0, 1) if arr.ndim == 3 else arr[None])
    return torch.from_numpy(chw if chw.flags.writeable else chw.copy())


def _hwc(t: torch.Tensor, ndim: int) -> np.ndarray:
    arr = t.numpy()
    return arr.transpose(1, 2, 0) if ndim == 3 else arr[0]


class _Crop:
    """One crop row and output size, with the coordinate maps every modality shares."""

    def __init__(self, crop_row, out_size):
        self.top, self.left, self.h, self.w, flip = (int(v) for v in np.asarray(crop_row).reshape(-1)[:5])
        self.flip = bool(flip)
        self.out_h, self.out_w = (
            (out_size, out_size) if isinstance(out_size, int) else (int(out_size[0]), int(out_size[1]))
        )
        self.sx, self.sy = self.out_w / self.w, self.out_h / self.h

    def image(self, arr: np.ndarray, mode: InterpolationMode, antialias: bool) -> np.ndarray:
        if mode == InterpolationMode.NEAREST_EXACT:
            return self.nearest(arr)
        t = tv_tensors.Image(_chw(arr))
        t = F.resized_crop(
            t, self.top, self.left, self.h, self.w, [self.out_h, self.out_w], interpolation=mode, antialias=antialias
        )
        if self.flip:
            t = F.horizontal_flip(t)
        return _hwc(t.as_subclass(torch.Tensor), arr.ndim)

    def any_edge(self, arr: np.ndarray) -> np.ndarray:
        """Binary map: area-resize of the crop, > 0 where any covered source pixel is set; nearest when enlarging."""
        if self.h <= self.out_h and self.w <= self.out_w:
            return self.nearest(arr)
        crop = torch.from_numpy(np.ascontiguousarray(arr[self.top : self.top + self.h, self.left : self.left + self.w]))
        area = torch.nn.functional.interpolate(crop[None, None].float(), size=(self.out_h, self.out_w), mode="area")
        out = (area[0, 0] > 0).numpy().astype(arr.dtype)
        return np.array(out[:, ::-1] if self.flip else out)

    def nearest(self, arr: np.ndarray) -> np.ndarray:
        """Nearest-exact resize of the crop, then flip: the pixels torchvision's resize picks, gathered by index."""
        if (self.h, self.w) == (self.out_h, self.out_w):
            out = arr[self.top : self.top + self.h, self.left : self.left + self.w]
            return np.array(out[:, ::-1] if self.flip else out)
        rows = _nearest_exact_index(self.h, self.out_h) + self.top
        cols = _nearest_exact_index(self.w, self.out_w) + self.left
        return arr.take(rows, axis=0).take(cols[::-1] if self.flip else cols, axis=1)

    def point(self, x: float, y: float) -> tuple[float, float]:
        """Pixel-centre coordinates (OpenCV) in the source -> in the output."""
        u = (x + 0.5 - self.left) * self.sx
        v = (y + 0.5 - self.top) * self.sy
        if self.flip:
            u = self.out_w - u
        return u - 0.5, v - 0.5

    def inside(self, x: float, y: float) -> bool:
        return -0.5 <= x <= self.out_w - 0.5 and -0.5 <= y <= self.out_h - 0.5


@lru_cache(maxsize=256)
def _nearest_exact_index(size: int, out_size: int) -> np.ndarray:
    """Source index of each output pixel of a nearest-exact resize ``size -> out_size``, from torch's own kernel."""
    positions = torch.arange(size, dtype=torch.float64).reshape(1, 1, size, 1)
    index = torch.nn.functional.interpolate(positions, size=(out_size, 1), mode="nearest-exact").reshape(-1)
    index = index.to(torch.int64).numpy()
    index.flags.writeable = False
    return index


def _normals(crop: _Crop, n: np.ndarray) -> np.ndarray:
    valid = np.isfinite(n).all(axis=2, keepdims=True)
    stacked = np.concatenate([np.where(valid, n, 0.0), valid], axis=2).astype(np.float32)
    out = crop.image(stacked, InterpolationMode.BILINEAR, True)
    vec, weight = out[..., :3], out[..., 3]
    norm = np.linalg.norm(vec, axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        vec = vec / norm[..., None]
    vec[(weight < 0.5) | (norm < 1e-3)] = np.nan
    if crop.flip:
        vec[..., 0] = -vec[..., 0]
    return vec.astype(np.float32)


def mirror_smpl(human: dict) -> dict:
    """An SMPL human (tokzoo/labelers/hmr2.py) as seen in a horizontally flipped image, in the mirrored camera.

    The camera frame is mirrored by M = diag(-1, 1, 1) (as :func:`apply_crop` does to a camera): rotations
    become ``M R M`` (``global_orient`` and every ``body_pose`` joint), left and right body joints trade places
    (:data:`SMPL_BODY_FLIP_PAIRS`), ``translation`` x and ``weak_perspective`` tx change sign. ``betas`` are
    kept (SMPL's template is left/right symmetric up to small asymmetries, as in 4D-Humans' flip
    augmentation). Keypoints are left to the caller.
    """
    out = dict(human)
    if "global_orient" in human:
        out["global_orient"] = (np.asarray(human["global_orient"], np.float64) * MIRROR_SIGNS).tolist()
    if "body_pose" in human:
        body = np.asarray(human["body_pose"], np.float64)
        if body.shape != (23, 3, 3):
            raise ShapeError("pose", f"SMPL body_pose must be 23 x 3 x 3, got shape {body.shape}")
        order = np.arange(23)
        for a, b in SMPL_BODY_FLIP_PAIRS:
            order[a], order[b] = b, a
        out["body_pose"] = (body[order] * MIRROR_SIGNS).tolist()
    if "translation" in human:
        x, y, z = human["translation"]
        out["translation"] = [-x, y, z]
    if "weak_perspective" in human:
        s, tx, ty = human["weak_perspective"]
        out["weak_perspective"] = [s, -tx, ty]
    return out


def _box(crop: _Crop, box) -> list[float] | None:
    """[x, y, w, h] px (pixel edges) in the source -> in the output, clamped to it; None if it misses the crop."""
    x, y, w, h = (float(v) for v in box)
    if x + w < crop.left or x > crop.left + crop.w or y + h < crop.top or y > crop.top + crop.h:
        return None  # the test of _boxes: a box touching the crop's edge is kept
    x0, x1 = (x - crop.left) * crop.sx, (x + w - crop.left) * crop.sx
    if crop.flip:
        x0, x1 = crop.out_w - x1, crop.out_w - x0
    x0, x1 = min(max(x0, 0.0), crop.out_w), min(max(x1, 0.0), crop.out_w)
    y0, y1 = (min(max((v - crop.top) * crop.sy, 0.0), crop.out_h) for v in (y, y + h))
    return [x0, y0, x1 - x0, y1 - y0]


def _swap(points: list, pairs, skeleton: str) -> list:
    if not points:
        return points
    n = 1 + max(max(pair) for pair in pairs)
    if len(points) != n:
        raise ShapeError("pose", f"{skeleton} keypoints need {n} joints, got {len(points)}")
    points = list(points)
    for a, b in pairs:
        points[a], points[b] = points[b], points[a]
    return points


_FLIP_PAIRS = {"coco17": COCO17_FLIP_PAIRS, "smpl": SMPL_FLIP_PAIRS}


def _pose(crop: _Crop, pose: dict) -> dict:
    skeleton = pose.get("skeleton")
    humans = []
    for human in pose["humans"]:
        entry = dict(human)
        if "box" in human:
            entry["box"] = _box(crop, human["box"])
            if entry["box"] is None:
                continue
        if "keypoints_2d" in human:
            kp2 = []
            for x, y, v in human["keypoints_2d"]:
                u, w = crop.point(x, y)
                kp2.append([u, w, int(v)] if v and crop.inside(u, w) else [0.0, 0.0, 0])
            entry["keypoints_2d"] = kp2
        if crop.flip:
            if "keypoints_3d" in human:
                entry["keypoints_3d"] = [[-x, y, z] for x, y, z in human["keypoints_3d"]]
            if skeleton == "smpl":
                entry = mirror_smpl(entry)
            for key in ("keypoints_2d", "keypoints_3d"):
                if key in entry and skeleton in _FLIP_PAIRS:
                    entry[key] = _swap(entry[key], _FLIP_PAIRS[skeleton], skeleton)
        humans.append(entry)
    out = dict(pose, humans=humans, width=crop.out_w, height=crop.out_h)
    if "intrinsics" in pose:
        out["intrinsics"] = _intrinsics(crop, pose["intrinsics"])
    return out


def _boxes(crop: _Crop, value: dict) -> dict:
    xyxy = np.asarray(value["boxes"], dtype=np.float32).reshape(-1, 4)
    x0, y0, x1, y1 = crop.left, crop.top, crop.left + crop.w, crop.top + crop.h
    keep = (xyxy[:, 2] >= x0) & (xyxy[:, 0] <= x1) & (xyxy[:, 3] >= y0) & (xyxy[:, 1] <= y1)
    canvas = (int(value["height"]), int(value["width"]))
    boxes = tv_tensors.BoundingBoxes(torch.from_numpy(xyxy[keep]), format="XYXY", canvas_size=canvas)
    boxes = F.resized_crop(boxes, crop.top, crop.left, crop.h, crop.w, [crop.out_h, crop.out_w])
    if crop.flip:
        boxes = F.horizontal_flip(boxes)
    boxes = F.clamp_bounding_boxes(boxes)
    classes = np.asarray(value["classes"]).reshape(-1)[keep]
    xyxy = boxes.as_subclass(torch.Tensor).tolist()
    return dict(value, boxes=xyxy, classes=classes.tolist(), width=crop.out_w, height=crop.out_h)


def _intrinsics(crop: _Crop, k: dict) -> dict:
    """Pinhole ``fx, fy, cx, cy`` (principal point at pixel-centre coordinates) of the output."""
    cx, cy = crop.point(k["cx"], k["cy"])
    return dict(k, fx=k["fx"] * crop.sx, fy=k["fy"] * crop.sy, cx=cx, cy=cy)


def _camera(crop: _Crop, cam: dict) -> dict:
    out = dict(_intrinsics(crop, cam), width=crop.out_w, height=crop.out_h)
    if crop.flip:
        out["cam_to_world"] = (
            np.asarray(cam["cam_to_world"], dtype=np.float64) @ np.diag([-1.0, 1.0, 1.0, 1.0])
        ).tolist()
    return out


CROP_RULES = {
    "bilinear": lambda crop, arr: crop.image(arr, InterpolationMode.BILINEAR, True),
    "nearest": lambda crop, arr: crop.nearest(arr),
    "any_edge": lambda crop, arr: crop.any_edge(arr),
    "normals": _normals,
    "pose": _pose,
    "boxes": _boxes,
    "camera": _camera,
    "unchanged": lambda crop, value: value,
}
"""Crop rule name (``StoredValue.crop_rule``, declared by each modality) -> ``fn(crop, value) -> value``."""
PIXEL_RULES = ("bilinear", "nearest", "any_edge", "normals")
"""Rules for values on the image's pixel grid: the crop must fit them."""


def crop_rule(modality: str) -> str:
    """The crop rule ``modality`` declares (tokzoo.modalities.STORED); ConfigError when it has none."""
    stored = STORED.get(modality)
    rule = stored.crop_rule if stored is not None else None
    if rule not in CROP_RULES:
        raise ConfigError(f"apply_crop: no crop rule for modality {modality!r}")
    return rule


def apply_crop(values: dict, crop_row, out_size: int | tuple[int, int]) -> dict:
    """Crop and resize every modality of one sample to ``out_size`` ((H, W) or an int for a square).

    ``values`` maps modality -> contract value (docs/ARCHITECTURE.md); the result has the same keys
    and dtypes. Image-like values must share one (H, W) holding the crop; raises ShapeError
    otherwise, ConfigError for a modality with no crop rule.
    """
    crop = _Crop(crop_row, out_size)
    out = {}
    for modality, value in values.items():
        rule = crop_rule(modality)
        if rule in PIXEL_RULES:
            value = np.asarray(value)
            if (
                value.shape[0] < crop.top + crop.h
                or value.shape[1] < crop.left + crop.w
                or min(crop.top, crop.left) < 0
            ):
                raise ShapeError(
                    modality, f"crop {crop.top, crop.left, crop.h, crop.w} does not fit a {value.shape[:2]} image"
                )
        out[modality] = CROP_RULES[rule](crop, value)
    return out
