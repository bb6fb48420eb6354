"""Each classical labeler against the procedural scenes' exact ground truth (``tokzoo eval-labels``).

| labeler | ground truth | numbers |
|---|---|---|
| normals_from_depth | scene normals; input: scene depth, with the scene camera and with the 60 deg guess | mean / median angular error (deg) over pixels valid in both, coverage of the valid GT pixels |
| canny | scene edges (occlusion, class and instance boundaries) | precision / recall / F1 at 1 and 2 px tolerance |
| kmeans_palette | posterised scenes: each class's pixels set to that class's mean colour, plus Gaussian noise (sigma 4); the GT palette is those colours | fraction with the right k, mean colour error (uint8 RGB distance, colours matched one to one), and on the real scene rgb the RMS error of repainting each pixel with its nearest palette colour |
| metadata | metadata from GT normals | abs. error of ``geometric_complexity`` computed from normals_from_depth (rgb-only keys are exact by construction) |
| slic | scene semseg and instances | achievable segmentation accuracy |
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from tokzoo.datasets import generate_scene

from ..modalities.edges import canny_edges
from .image_statistics import geometric_complexity
from .kmeans import palette
from .metrics import angular_errors, edge_counts, f1, normals_coverage, segmentation_accuracy
from .normals_from_depth import normals_from_depth
from .slic import Superpixels


def _posterised(scene: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(rgb uint8 with one flat colour per class + noise, GT colours (k, 3) float)."""
    rgb, classes = scene["rgb"].astype(np.float64), scene["semseg"]
    ids = np.unique(classes)
    colours = np.array([rgb[classes == c].mean(0) for c in ids])
    flat = colours[np.searchsorted(ids, classes)] + rng.normal(0, 4, rgb.shape)
    return np.clip(np.rint(flat), 0, 255).astype(np.uint8), colours


def _colour_error(pred: list, target: np.ndarray) -> float:
    """Mean RGB distance of a one-to-one matching (unmatched colours are not counted)."""
    cost = np.linalg.norm(np.asarray(pred, float)[:, None] - target[None], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def _repaint_rms(rgb: np.ndarray, colors: list) -> float:
    pixels = rgb.reshape(-1, 3).astype(np.float64)
    d2 = ((pixels[:, None] - np.asarray(colors, float)[None]) ** 2).sum(-1).min(1)
    return float(np.sqrt(d2.mean()))


def evaluate(n: int = 16, seed: int = 1, size: int = 128, progress: bool = False) -> dict[str, dict[str, float]]:
    """Scenes ``0..n-1`` of stream ``seed`` at ``size`` px -> ``{labeler: {metric: value}}``.

    ``progress``: a tqdm bar on stderr, one step per scene rendered and labelled.
    """
    from tqdm import tqdm

    scenes = (generate_scene(i, seed, size) for i in range(n))  # one at a time, so the bar counts both
    rng = np.random.default_rng(seed)
    ang_cam, ang_guess, cover, edges1, edges2, complexity = [], [], [], np.zeros(4), np.zeros(4), []
    k_right, colour_err, repaint, asa_sem, asa_inst = [], [], [], [], []
    slic = Superpixels()
    for s in tqdm(scenes, total=n, unit="scene", desc="eval-labels", disable=not progress, dynamic_ncols=True):
        normals = normals_from_depth(s["depth"], s["camera"])
        ang_cam.append(angular_errors(normals, s["normals"]))
        ang_guess.append(angular_errors(normals_from_depth(s["depth"]), s["normals"]))
        cover.append(normals_coverage(normals, s["normals"]))
        complexity.append(abs(geometric_complexity(normals) - geometric_complexity(s["normals"])))
        edges = canny_edges(s["rgb"])
        edges1 += edge_counts(edges, s["edges"], 1.0)
        edges2 += edge_counts(edges, s["edges"], 2.0)
        flat, colours = _posterised(s, rng)
        found = palette(flat)["colors"]
        k_right.append(len(found) == len(colours))
        colour_err.append(_colour_error(found, colours))
        repaint.append(_repaint_rms(s["rgb"], palette(s["rgb"])["colors"]))
        (segments,) = slic.label({"rgb": [s["rgb"]]})
        asa_sem.append(segmentation_accuracy(segments, s["semseg"]))
        asa_inst.append(segmentation_accuracy(segments, s["sam_instances"]))
    cam, guess = np.concatenate(ang_cam), np.concatenate(ang_guess)
    p1, r1, f1_1 = f1(*edges1)
    p2, r2, f1_2 = f1(*edges2)
    return {
        "normals_from_depth (scene camera)": {
            "mean_deg": cam.mean(),
            "median_deg": np.median(cam),
            "coverage": np.mean(cover),
        },
        "normals_from_depth (60 deg guess)": {"mean_deg": guess.mean(), "median_deg": np.median(guess)},
        "canny": {
            "precision_1px": p1,
            "recall_1px": r1,
            "f1_1px": f1_1,
            "precision_2px": p2,
            "recall_2px": r2,
            "f1_2px": f1_2,
        },
        "kmeans_palette": {
            "k_correct": np.mean(k_right),
            "colour_error": np.mean(colour_err),
            "repaint_rms": np.mean(repaint),
        },
        "metadata": {"geometric_complexity_abs_error": np.mean(complexity)},
        "slic": {"asa_semseg": np.mean(asa_sem), "asa_instances": np.mean(asa_inst)},
    }
