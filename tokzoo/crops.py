"""Per-sample crop settings and their consistent application to every modality of a sample.

Settings are int32 (n_crops, 5) rows ``top, left, height, width, hflip`` in source pixels
(docs/ARCHITECTURE.md). Crop 0 is the largest centred square without flip; crops 1.. are
random-resized crops (area fraction in ``scale``, aspect ratio w / h in ``ratio``, flipped with
probability ``hflip_p``) drawn from a generator seeded by SHA-256 of ``(seed, key)``, so the same
seed and key give the same crops on every machine.

:func:`apply_crop` cuts one crop out of every modality and resizes it to ``out_size``:

| modality | resampling |
|---|---|
| rgb | bilinear with antialias (torchvision), uint8 |
| semseg, instances, edges | nearest-exact (ids never blend) |
| depth | nearest-exact: values stay measured metres and NaN (invalid) never bleeds into valid pixels |
| normals | valid-aware bilinear: NaN vectors count as zero, pixels whose resampled validity is < 0.5 become NaN, the rest are renormalised; hflip negates x |
| pose | keypoints moved with the crop; outside the crop -> ``[0, 0, 0]``; hflip mirrors x, swaps left/right COCO-17 joints and negates x of ``keypoints_3d`` |
| boxes | torchvision BoundingBoxes: moved, clamped to the crop; boxes not touching the crop are dropped |
| camera | intrinsics follow the crop; hflip mirrors cx and composes ``cam_to_world`` with diag(-1, 1, 1, 1) |
| palette, metadata, audio | unchanged |

Pixel coordinates: keypoints and the principal point put pixel (row i, col j)'s centre at
``(x, y) = (j, i)`` (OpenCV, as tokzoo.datasets.scenes writes them); boxes use edges, pixel j
spanning ``[j, j + 1)``. Nearest-exact samples each output pixel at its centre, the same geometry as
bilinear and the coordinate maps (tv_tensors.Mask is avoided: its legacy nearest is shifted by
half a pixel). torchvision's KeyPoints are not used because their resize scales ``x``
about the image corner while their flip maps ``x -> W - 1 - x``, which disagree by half a pixel.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from tokzoo.errors import ConfigError, ShapeError

COCO17_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
"""COCO-17 left/right joints (eyes, ears, shoulders, elbows, wrists, hips, knees, ankles), swapped on hflip."""

UNCHANGED = ("palette", "metadata", "audio")
"""Modalities a crop leaves as they are."""


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
    w, h = (width, max(1, round(width / aspect))) if width / height <= aspect else (max(1, round(height * aspect)), height)
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
        raise ConfigError(f"crop settings need 0 < scale[0] <= scale[1] <= 1, 0 < ratio[0] <= ratio[1] and "
                          f"0 <= hflip_p <= 1; got scale {scale}, ratio {ratio}, hflip_p {hflip_p}")
    side = min(height, width)
    rows = [((height - side) // 2, (width - side) // 2, side, side, 0)]
    rng = _rng(seed, key)
    for _ in range(n_crops - 1):
        top, left, h, w = _random_resized(rng, height, width, scale, ratio)
        rows.append((top, left, h, w, int(rng.random() < hflip_p)))
    return np.asarray(rows, dtype=np.int32)


def _chw(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1) if arr.ndim == 3 else arr[None]))


def _hwc(t: torch.Tensor, ndim: int) -> np.ndarray:
    arr = t.numpy()
    return arr.transpose(1, 2, 0) if ndim == 3 else arr[0]


class _Crop:
    """One crop row and output size, with the coordinate maps every modality shares."""

    def __init__(self, crop_row, out_size):
        self.top, self.left, self.h, self.w, flip = (int(v) for v in np.asarray(crop_row).reshape(-1)[:5])
        self.flip = bool(flip)
        self.out_h, self.out_w = (out_size, out_size) if isinstance(out_size, int) else (int(out_size[0]), int(out_size[1]))
        self.sx, self.sy = self.out_w / self.w, self.out_h / self.h

    def image(self, arr: np.ndarray, mode: InterpolationMode, antialias: bool) -> np.ndarray:
        t = tv_tensors.Image(_chw(arr))
        t = F.resized_crop(t, self.top, self.left, self.h, self.w, [self.out_h, self.out_w],
                           interpolation=mode, antialias=antialias)
        if self.flip:
            t = F.horizontal_flip(t)
        return _hwc(t.as_subclass(torch.Tensor), arr.ndim)

    def point(self, x: float, y: float) -> tuple[float, float]:
        """Pixel-centre coordinates (OpenCV) in the source -> in the output."""
        u = (x + 0.5 - self.left) * self.sx
        v = (y + 0.5 - self.top) * self.sy
        if self.flip:
            u = self.out_w - u
        return u - 0.5, v - 0.5

    def inside(self, x: float, y: float) -> bool:
        return -0.5 <= x <= self.out_w - 0.5 and -0.5 <= y <= self.out_h - 0.5


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


def _pose(crop: _Crop, pose: dict) -> dict:
    humans = []
    for human in pose["humans"]:
        kp2 = []
        for x, y, v in human["keypoints_2d"]:
            u, w = crop.point(x, y)
            kp2.append([u, w, int(v)] if v and crop.inside(u, w) else [0.0, 0.0, 0])
        entry = dict(human, keypoints_2d=kp2)
        if crop.flip and "keypoints_3d" in human:
            entry["keypoints_3d"] = [[-x, y, z] for x, y, z in human["keypoints_3d"]]
        if crop.flip and pose.get("skeleton") == "coco17":
            for key in ("keypoints_2d", "keypoints_3d"):
                if key in entry:
                    pts = list(entry[key])
                    for a, b in COCO17_FLIP_PAIRS:
                        pts[a], pts[b] = pts[b], pts[a]
                    entry[key] = pts
        humans.append(entry)
    return dict(pose, humans=humans)


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


def _camera(crop: _Crop, cam: dict) -> dict:
    cx, cy = crop.point(cam["cx"], cam["cy"])
    out = dict(cam, fx=cam["fx"] * crop.sx, fy=cam["fy"] * crop.sy, cx=cx, cy=cy, width=crop.out_w, height=crop.out_h)
    if crop.flip:
        out["cam_to_world"] = (np.asarray(cam["cam_to_world"], dtype=np.float64) @ np.diag([-1.0, 1.0, 1.0, 1.0])).tolist()
    return out


_NEAREST = (InterpolationMode.NEAREST_EXACT, False)
_IMAGES = {"rgb": (InterpolationMode.BILINEAR, True),
           "semseg": _NEAREST, "instances": _NEAREST, "edges": _NEAREST, "depth": _NEAREST}


def apply_crop(values: dict, crop_row, out_size: int | tuple[int, int]) -> dict:
    """Crop and resize every modality of one sample to ``out_size`` ((H, W) or an int for a square).

    ``values`` maps modality -> contract value (docs/ARCHITECTURE.md); the result has the same keys
    and dtypes. Image-like values must share one (H, W) holding the crop; raises ShapeError
    otherwise, ConfigError for a modality with no crop rule.
    """
    crop = _Crop(crop_row, out_size)
    out = {}
    for modality, value in values.items():
        if modality in UNCHANGED:
            out[modality] = value
        elif modality in ("rgb", "depth", "normals", "semseg", "instances", "edges"):
            arr = np.asarray(value)
            if arr.shape[0] < crop.top + crop.h or arr.shape[1] < crop.left + crop.w or min(crop.top, crop.left) < 0:
                raise ShapeError(modality, f"crop {crop.top, crop.left, crop.h, crop.w} does not fit a {arr.shape[:2]} image")
            if modality == "normals":
                out[modality] = _normals(crop, arr)
            else:
                out[modality] = crop.image(arr, *_IMAGES[modality])
        elif modality == "pose":
            out[modality] = _pose(crop, value)
        elif modality == "boxes":
            out[modality] = _boxes(crop, value)
        elif modality == "camera":
            out[modality] = _camera(crop, value)
        else:
            raise ConfigError(f"apply_crop: no crop rule for modality {modality!r}")
    return out
