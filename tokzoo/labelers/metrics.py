"""Errors of pseudo-labels against ground truth (used by ``tokzoo eval-labels`` and the consensus study)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def angular_errors(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Angles in degrees (float64 (N,)) between unit normals at pixels valid (finite) in both (H, W, 3) maps."""
    ok = np.isfinite(pred).all(-1) & np.isfinite(target).all(-1)
    cos = np.clip((pred[ok].astype(np.float64) * target[ok]).sum(-1), -1.0, 1.0)
    return np.degrees(np.arccos(cos))


def normals_coverage(pred: np.ndarray, target: np.ndarray) -> float:
    """Fraction of pixels valid in ``target`` that are also valid in ``pred`` (1 when target has none)."""
    valid = np.isfinite(target).all(-1)
    return float((np.isfinite(pred).all(-1) & valid).sum() / max(valid.sum(), 1))


def edge_counts(pred: np.ndarray, target: np.ndarray, tolerance: float = 2.0) -> tuple[int, int, int, int]:
    """``(matched_pred, n_pred, matched_target, n_target)`` for binary (H, W) maps: a predicted edge pixel
    matches when a target edge lies within ``tolerance`` pixels (Euclidean), and vice versa. Sum over
    images, then :func:`f1`."""
    pred, target = pred.astype(bool), target.astype(bool)
    dist_to_target = ndimage.distance_transform_edt(~target) if target.any() else np.full(target.shape, np.inf)
    dist_to_pred = ndimage.distance_transform_edt(~pred) if pred.any() else np.full(pred.shape, np.inf)
    return (
        int((dist_to_target[pred] <= tolerance).sum()),
        int(pred.sum()),
        int((dist_to_pred[target] <= tolerance).sum()),
        int(target.sum()),
    )


def f1(matched_pred: int, n_pred: int, matched_target: int, n_target: int) -> tuple[float, float, float]:
    """``(precision, recall, F1)`` from :func:`edge_counts` totals; 0 where undefined."""
    p = matched_pred / n_pred if n_pred else 0.0
    r = matched_target / n_target if n_target else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def segmentation_accuracy(segments: np.ndarray, labels: np.ndarray) -> float:
    """Achievable segmentation accuracy: fraction of pixels whose segment's majority ``labels`` id equals
    theirs (1 = no segment straddles two labels). Both int (H, W)."""
    n_labels = int(labels.max()) + 1
    pairs = segments.astype(np.int64).ravel() * n_labels + labels.astype(np.int64).ravel()
    pair_ids, counts = np.unique(pairs, return_counts=True)
    best = np.zeros(int(segments.max()) + 1, np.int64)
    np.maximum.at(best, pair_ids // n_labels, counts)
    return float(best.sum() / labels.size)
