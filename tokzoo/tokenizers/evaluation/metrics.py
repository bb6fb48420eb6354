"""Reconstruction metrics on raw values (batch first), by name; each modality names its own (``Modality.metrics``).

``METRICS[modality]`` maps the names a modality declares to ``fn(original, reconstruction) -> float``; the first
is the modality's main metric. A new metric function adds one entry to ``FUNCTIONS``. Names in
``HIGHER_IS_BETTER`` improve upwards, the rest downwards.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ...modalities import MODALITIES


def psnr(original, reconstruction, peak: float = 255.0) -> float:
    """Mean over images of 10 log10(peak^2 / MSE); inf when every image is reproduced exactly."""
    error = (np.asarray(original, np.float64) - np.asarray(reconstruction, np.float64)) ** 2
    mse = error.reshape(len(error), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return float(np.mean(10 * np.log10(peak**2 / mse)))


def ssim(original, reconstruction, peak: float = 255.0) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03) over images and channels."""
    a = torch.as_tensor(np.asarray(original, np.float64)).permute(0, 3, 1, 2)
    b = torch.as_tensor(np.asarray(reconstruction, np.float64)).permute(0, 3, 1, 2)
    size = min(11, a.shape[-1], a.shape[-2])
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * 1.5**2))
    g = g / g.sum()
    rows = g.view(1, 1, size, 1).expand(a.shape[1], 1, size, 1)
    cols = g.view(1, 1, 1, size).expand(a.shape[1], 1, 1, size)

    def blur(t):  # the 2-D Gaussian window as two 1-D passes: same result (to 1e-15), ~5x faster in float64
        return F.conv2d(F.conv2d(t, rows, groups=a.shape[1]), cols, groups=a.shape[1])

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    score = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(score.mean())


def mae(original, reconstruction) -> float:
    return float(np.mean(np.abs(np.asarray(original, np.float64) - np.asarray(reconstruction, np.float64))))


def _both_valid(original, reconstruction):
    a, b = np.asarray(original, np.float64), np.asarray(reconstruction, np.float64)
    valid = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    return a[valid], b[valid]


def abs_rel(original, reconstruction) -> float:
    """Mean |d_hat - d| / d over pixels valid in both (validity disagreements: see ``valid_accuracy``)."""
    a, b = _both_valid(original, reconstruction)
    return float(np.mean(np.abs(b - a) / a)) if a.size else float("nan")


DEPTH_DECADES = ((0.1, 1.0), (1.0, 10.0), (10.0, 100.0))
"""The depth contract's range (metres) in decades, for :func:`abs_rel_by_decade`."""


def abs_rel_by_decade(original, reconstruction, decades=DEPTH_DECADES) -> dict:
    """``{"0.1-1 m": {"abs_rel": ..., "pixels": ...}, ...}``: abs-rel over pixels valid in both whose TRUE depth
    lies in ``[low, high)`` (the last decade includes its upper end); abs_rel is NaN for a decade without pixels."""
    a, b = np.asarray(original, np.float64), np.asarray(reconstruction, np.float64)
    valid = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    a, b = a[valid], b[valid]
    out = {}
    for i, (low, high) in enumerate(decades):
        inside = (a >= low) & ((a <= high) if i == len(decades) - 1 else (a < high))
        n = int(inside.sum())
        error = float(np.mean(np.abs(b[inside] - a[inside]) / a[inside])) if n else float("nan")
        out[f"{low:g}-{high:g} m"] = {"abs_rel": error, "pixels": n}
    return out


def rmse(original, reconstruction) -> float:
    """Root mean squared error in metres over pixels valid in both."""
    a, b = _both_valid(original, reconstruction)
    return float(np.sqrt(np.mean((b - a) ** 2))) if a.size else float("nan")


def valid_accuracy(original, reconstruction) -> float:
    """Fraction of pixels whose validity (finite, > 0) the reconstruction gets right."""
    a, b = np.asarray(original, np.float64), np.asarray(reconstruction, np.float64)
    with np.errstate(invalid="ignore"):
        return float(np.mean((np.isfinite(a) & (a > 0)) == (np.isfinite(b) & (b > 0))))


def angular_error(original, reconstruction) -> float:
    """Mean angle in degrees between unit normals, over pixels valid (not NaN) in both."""
    a, b = np.asarray(original, np.float64), np.asarray(reconstruction, np.float64)
    valid = np.isfinite(a).all(-1) & np.isfinite(b).all(-1)
    cos = np.clip((a[valid] * b[valid]).sum(-1), -1.0, 1.0)
    return float(np.degrees(np.arccos(cos)).mean()) if cos.size else float("nan")


def mean_iou(original, reconstruction, ignore: int = 255) -> float:
    """Mean over classes present in either of |A and B| / |A or B|, accumulated over the set; ``ignore`` skipped."""
    a, b = np.asarray(original).ravel(), np.asarray(reconstruction).ravel()
    keep = a != ignore
    a, b = a[keep], b[keep]
    ious = [np.sum((a == c) & (b == c)) / np.sum((a == c) | (b == c)) for c in np.union1d(a, b)]
    return float(np.mean(ious)) if ious else float("nan")


def label_boundaries(labels, ignore: int = 255) -> np.ndarray:
    """(H, W) class ids -> bool (H, W): pixels with a 4-neighbour of another class (``ignore`` pixels never count)."""
    x = np.asarray(labels)
    edge = np.zeros(x.shape, bool)
    for a, b, sa, sb in ((x[1:], x[:-1], np.s_[1:], np.s_[:-1]), (x[:, 1:], x[:, :-1], np.s_[:, 1:], np.s_[:, :-1])):
        differ = (a != b) & (a != ignore) & (b != ignore)
        edge[sa] |= differ
        edge[sb] |= differ
    return edge


def boundary_f1(original, reconstruction, tolerance: int = 1, ignore: int = 255) -> float:
    """Mean over images (N, H, W) of the boundary F1 score: precision = predicted boundary pixels within
    ``tolerance`` pixels (chessboard distance) of a true one, recall the converse; 1 for an image without
    boundaries in both maps, 0 when only one has them. Rewards layouts whose region edges sit in place,
    which per-pixel scores (mIoU) barely see."""
    from scipy.ndimage import binary_dilation

    structure = np.ones((2 * tolerance + 1, 2 * tolerance + 1), bool)
    scores = []
    for a, b in zip(np.asarray(original), np.asarray(reconstruction)):
        truth, pred = label_boundaries(a, ignore), label_boundaries(np.where(a == ignore, ignore, b), ignore)
        if not truth.any() and not pred.any():
            scores.append(1.0)
            continue
        precision = (pred & binary_dilation(truth, structure)).sum() / max(pred.sum(), 1)
        recall = (truth & binary_dilation(pred, structure)).sum() / max(truth.sum(), 1)
        scores.append(float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0)
    return float(np.mean(scores)) if scores else float("nan")


def binary_iou(original, reconstruction) -> float:
    """|A and B| / |A or B| of the positive (non-zero) pixels over the set; 1 when both are empty."""
    a, b = np.asarray(original) != 0, np.asarray(reconstruction) != 0
    union = np.sum(a | b)
    return float(np.sum(a & b) / union) if union else 1.0


def mask_iou(original, reconstruction) -> float:
    """Mean over masks (axis 0) of |A and B| / |A or B| (1 for a mask empty in both): sam_instances crops."""
    a = np.asarray(original).reshape(len(original), -1) != 0
    b = np.asarray(reconstruction).reshape(len(reconstruction), -1) != 0
    union = (a | b).sum(axis=1)
    inter = (a & b).sum(axis=1)
    return float(np.mean(np.where(union > 0, inter / np.maximum(union, 1), 1.0))) if len(a) else float("nan")


def _keypoints(original, reconstruction):
    """(N, J, 3) [x, y, v] arrays -> per-joint pixel distances over joints labelled in the original (v > 0)."""
    a, b = np.asarray(original, np.float64), np.asarray(reconstruction, np.float64)
    labelled = a[..., 2] > 0
    return np.linalg.norm(a[..., :2] - b[..., :2], axis=-1)[labelled]


def keypoint_error(original, reconstruction) -> float:
    """Mean pixel distance between keypoints, over joints labelled (v > 0) in the original."""
    distances = _keypoints(original, reconstruction)
    return float(distances.mean()) if distances.size else float("nan")


PCK_PIXELS = 2.0


def pck(original, reconstruction) -> float:
    """Fraction of labelled joints (v > 0 in the original) reconstructed within ``PCK_PIXELS`` pixels."""
    distances = _keypoints(original, reconstruction)
    return float(np.mean(distances <= PCK_PIXELS)) if distances.size else float("nan")


def visibility_accuracy(original, reconstruction) -> float:
    """Fraction of joints whose visibility flag v in {0, 1, 2} is reconstructed exactly."""
    a, b = np.asarray(original, np.float64), np.asarray(reconstruction, np.float64)
    return float(np.mean(a[..., 2] == b[..., 2])) if a.size else float("nan")


def cosine(original, reconstruction) -> float:
    """Mean cosine similarity between vectors along the last axis."""
    a, b = np.asarray(original, np.float64), np.asarray(reconstruction, np.float64)
    dots = (a * b).sum(-1)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return float(np.mean(dots / np.maximum(norms, 1e-12)))


FUNCTIONS = {
    "psnr": psnr,
    "ssim": ssim,
    "mae": mae,
    "abs_rel": abs_rel,
    "rmse": rmse,
    "valid_accuracy": valid_accuracy,
    "angular_error": angular_error,
    "miou": mean_iou,
    "iou": binary_iou,
    "mask_iou": mask_iou,
    "keypoint_error": keypoint_error,
    "pck_2px": pck,
    "visibility_accuracy": visibility_accuracy,
    "cosine": cosine,
}
"""Metric name (``Modality.metrics``) -> ``fn(original, reconstruction) -> float``."""


class _Metrics(Mapping):
    """Modality -> {metric name: function} for the modalities declaring metrics, read from the registry when asked."""

    def __getitem__(self, modality: str) -> dict:
        names = getattr(MODALITIES.get(modality), "metrics", ())
        if not names:
            raise KeyError(modality)
        unknown = [name for name in names if name not in FUNCTIONS]
        if unknown:
            raise ConfigError(
                f"modality {modality!r} declares unknown metric {unknown[0]!r}; known: {', '.join(FUNCTIONS)}"
            )
        return {name: FUNCTIONS[name] for name in names}

    def __iter__(self):
        return (name for name, cls in MODALITIES.items() if cls.metrics)

    def __len__(self) -> int:
        return sum(1 for _ in self)


METRICS: Mapping[str, dict] = _Metrics()
HIGHER_IS_BETTER = {
    "psnr",
    "ssim",
    "valid_accuracy",
    "miou",
    "iou",
    "cosine",
    "mask_iou",
    "pck_2px",
    "visibility_accuracy",
}


def metrics_for(modality: str) -> dict:
    if modality not in METRICS:
        raise ConfigError(
            f"no evaluation metrics declared for modality {modality!r} (its ``metrics`` in tokzoo/modalities)"
        )
    return METRICS[modality]


def main_metric(modality: str) -> str:
    return next(iter(metrics_for(modality)))


def better(name: str, a: float, b: float) -> bool:
    """Whether value ``a`` of metric ``name`` beats ``b``."""
    return a > b if name in HIGHER_IS_BETTER else a < b
