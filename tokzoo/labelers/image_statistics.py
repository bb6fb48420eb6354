"""Image-level statistics under the metadata tokenizer's key names (tokzoo/tokenizers/structured/metadata.py).

From rgb: ``original_width``, ``original_height``, ``brightness``, ``contrast``, ``saturation``,
``colorfulness``, ``entropy``. From other modalities when a sample has them: ``num_humans`` (pose),
``num_instances`` and ``objectness`` (instances), ``semantic_diversity`` and ``walkability`` (semseg),
``geometric_complexity`` (normals), ``occlusion_score`` (depth).
"""

from __future__ import annotations

import numpy as np

from .base import Labeler, register_labeler

WALKABLE_SCENE_IDS = (0,)
"""Walkable semseg ids of the procedural scenes (``floor``); pass others for other label sets."""


STATISTICS_PIXELS = 1 << 22
"""Images over this many pixels (4.2 M) give their statistics from an evenly strided subsample (every s-th row and
column): the float64 planes of a 64-megapixel image would take several GB."""


def rgb_statistics(rgb: np.ndarray) -> dict:
    """rgb uint8 (H, W, 3) -> the rgb-only metadata keys (units as in the tokenizer's DEFAULT_KEYS)."""
    rgb = np.asarray(rgb)
    height, width = rgb.shape[:2]
    stride = max(1, int(np.ceil(np.sqrt(height * width / STATISTICS_PIXELS))))
    x = np.asarray(rgb[::stride, ::stride], dtype=np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    high, low = x.max(-1), x.min(-1)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1e-12), 0.0)
    rg, yb = r - g, 0.5 * (r + g) - b
    colorfulness = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    hist = np.bincount(np.clip(np.rint(luma), 0, 255).astype(np.int64).ravel(), minlength=256) / luma.size
    nz = hist[hist > 0]
    return {
        "original_width": int(width),
        "original_height": int(height),
        "brightness": float(luma.mean()),
        "contrast": float(luma.std()),
        "saturation": float(saturation.mean()),
        "colorfulness": float(colorfulness),
        "entropy": float(-(nz * np.log2(nz)).sum()),
    }


def geometric_complexity(normals: np.ndarray) -> float | None:
    """Circular variance of the valid unit normals, 1 - |mean normal|, in [0, 1]; None without a valid one."""
    valid = normals[np.isfinite(normals).all(-1)]
    return float(1.0 - np.linalg.norm(valid.astype(np.float64).mean(0))) if len(valid) else None


def occlusion_score(depth: np.ndarray, jump: float = 0.05) -> float:
    """Fraction of pixels with a 4-neighbour, both valid, whose depth differs by more than ``jump`` (relative)."""
    depth = np.asarray(depth)
    stride = max(1, int(np.ceil(np.sqrt(depth.size / STATISTICS_PIXELS))))
    z = np.asarray(depth[::stride, ::stride], dtype=np.float64)  # neighbours s pixels apart when strided
    edge = np.zeros(z.shape, bool)
    for a, b in (
        ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
        ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
    ):
        with np.errstate(invalid="ignore"):
            cut = np.abs(z[a] - z[b]) > jump * np.minimum(z[a], z[b])
        edge[a] |= cut
        edge[b] |= cut
    return float(edge.mean())


def metadata(
    rgb: np.ndarray, semseg=None, instances=None, normals=None, depth=None, pose=None, walkable_ids=WALKABLE_SCENE_IDS
) -> dict:
    """Metadata dict of one sample; keys whose source modality is None are left out."""
    out = rgb_statistics(rgb)
    if pose is not None:
        out["num_humans"] = len(pose["humans"])
    if instances is not None:
        out["num_instances"] = int(np.count_nonzero(np.unique(instances)))
        out["objectness"] = float((instances > 0).mean())
    if semseg is not None:
        out["semantic_diversity"] = int(np.count_nonzero(np.unique(semseg) != 255))
        out["walkability"] = float(np.isin(semseg, walkable_ids).mean())
    if normals is not None and (complexity := geometric_complexity(normals)) is not None:
        out["geometric_complexity"] = complexity
    if depth is not None:
        out["occlusion_score"] = occlusion_score(depth)
    return out


@register_labeler
class Metadata(Labeler):
    """The metadata dict (see :func:`metadata`); uses whichever optional modalities a sample has."""

    name = "metadata"
    modality = "metadata"
    default = True
    optional = ("semseg", "sam_instances", "normals", "depth", "pose")

    def __init__(self, walkable_ids=WALKABLE_SCENE_IDS, **kwargs):
        super().__init__(**kwargs)
        self.walkable_ids = tuple(walkable_ids)

    def _label(self, chunk):
        n = len(chunk["rgb"])
        extra = {m: chunk.get(m, [None] * n) for m in self.optional}
        keyword = {"sam_instances": "instances"}  # metadata()'s parameter names
        return [
            metadata(rgb, **{keyword.get(m, m): extra[m][i] for m in self.optional}, walkable_ids=self.walkable_ids)
            for i, rgb in enumerate(chunk["rgb"])
        ]
