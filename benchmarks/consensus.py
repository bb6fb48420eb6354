"""Iterative consensus vs single labelers on procedural scenes with exact ground truth.

No pretrained depth / normals weights can be downloaded here, so the candidate "labelers" are the scenes'
ground truth corrupted with degradations typical of monocular models, each at a severity drawn per sample:

| labeler | degradation |
|---|---|
| warped | global scale x U(0.8, 1.25), smooth multiplicative warp (Gaussian field, 16 px, 4-12 %), 0.5 % pixel noise |
| blurry | NaN-aware Gaussian blur sigma U(1.5, 4) px (a low-resolution model), scale x U(0.9, 1.1) |
| outliers | 1 % noise, 1-3 boxes (5-20 % of the image) with depth x U(0.5, 0.7) or x U(1.4, 2), 3 % holes (NaN) |
| biased | additive offset U(0.1, 0.5) m (an affine, not scale, error), 0.5 % noise |
| normals model | GT normals + smoothed vector noise (sigma U(0.05, 0.25)), one box of normals rotated 30-60 deg |

Depth metrics after per-image median scale alignment to the ground truth (the consensus only fixes the
candidates' scales relative to one another): abs-rel and RMSE (m); normals: mean angular error (deg) of the
normals derived from the depth (scene camera). Confidence: Spearman correlation of the per-sample confidence
with the per-sample abs-rel, the abs-rel of the most confident half of the samples, and the pixel abs-rel
where the confidence map is above vs below its median.

    python benchmarks/consensus.py [--scenes 32] [--size 128] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage, stats

from tokzoo.datasets import generate_scene
from tokzoo.labelers.consensus import _smooth, depth_consensus, normals_consensus
from tokzoo.labelers.metrics import angular_errors
from tokzoo.labelers.normals_from_depth import normals_from_depth

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Iterative consensus"


def _boxes(rng, shape, n, lo, hi) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for _ in range(n):
        area = rng.uniform(lo, hi) * mask.size
        h = int(np.clip(np.sqrt(area * rng.uniform(0.5, 2)), 4, shape[0]))
        w = int(np.clip(area / h, 4, shape[1]))
        top, left = rng.integers(0, shape[0] - h + 1), rng.integers(0, shape[1] - w + 1)
        mask[top : top + h, left : left + w] = True
    return mask


def degrade(scene: dict, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """-> ({labeler: depth float32 (H, W)}, normals model output float32 (H, W, 3))."""
    gt, shape = scene["depth"].astype(np.float64), scene["depth"].shape
    noise = lambda s: np.exp(rng.normal(0, s, shape))  # noqa: E731
    warp = ndimage.gaussian_filter(rng.normal(0, 1, shape), 16)
    warp *= rng.uniform(0.04, 0.12) / warp.std()
    out = {
        "warped": gt * rng.uniform(0.8, 1.25) * np.exp(warp) * noise(0.005),
        "blurry": _smooth(gt, rng.uniform(1.5, 4)) * rng.uniform(0.9, 1.1),
    }
    outliers = gt * noise(0.01)
    for box in range(rng.integers(1, 4)):
        factor = rng.uniform(0.5, 0.7) if rng.random() < 0.5 else rng.uniform(1.4, 2.0)
        outliers[_boxes(rng, shape, 1, 0.05 / (box + 1), 0.2 / (box + 1))] *= factor
    outliers[rng.random(shape) < 0.03] = np.nan
    out["outliers"] = outliers
    out["biased"] = (gt + rng.uniform(0.1, 0.5)) * noise(0.005)
    field = ndimage.gaussian_filter(rng.normal(0, 1, (*shape, 3)), (2, 2, 0))
    normals = scene["normals"] + field * (rng.uniform(0.05, 0.25) / field.std())
    box = _boxes(rng, shape, 1, 0.05, 0.15)
    angle = np.radians(rng.uniform(30, 60))
    rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    normals[box] = normals[box] @ rot.T
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    return {k: np.where(np.isnan(gt), np.nan, v).astype(np.float32) for k, v in out.items()}, normals.astype(np.float32)


def depth_errors(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-pixel abs-rel (H, W) after median scale alignment (NaN where either is invalid), and RMSE (m)."""
    ok = np.isfinite(pred) & np.isfinite(gt)
    aligned = pred * np.median(gt[ok] / pred[ok])
    absrel = np.where(ok, np.abs(aligned - gt) / gt, np.nan)
    return absrel, float(np.sqrt(np.mean((aligned[ok] - gt[ok]) ** 2)))


def run(n: int, size: int, seed: int = 3) -> tuple[str, dict]:
    rng = np.random.default_rng(seed)
    rows: dict[str, dict[str, list]] = {}
    conf, conf_absrel, pix_hi, pix_lo, iters, normal_rows = [], [], [], [], [], {}
    started = time.perf_counter()
    for i in range(n):
        scene = generate_scene(i, seed, size)
        gt, camera = scene["depth"], scene["camera"]
        cands, normals_model = degrade(scene, rng)
        stack = np.stack(list(cands.values()))
        methods = dict(cands)
        methods["mean of candidates"] = depth_consensus(list(cands.values()), camera=camera, iterations=1).proposal
        logs = np.log(stack)
        logs += np.nanmedian(np.nanmedian(logs, 0)[None] - logs, axis=(1, 2))[:, None, None]
        methods["median of candidates"] = np.exp(np.nanmedian(logs, 0))
        result = depth_consensus(list(cands.values()), camera=camera)
        methods["consensus"] = result.proposal
        with_normals = depth_consensus(list(cands.values()), [normals_model], camera=camera)
        methods["consensus + normals model"] = with_normals.proposal
        for name, pred in methods.items():
            absrel, rmse = depth_errors(pred, gt)
            ang = angular_errors(normals_from_depth(pred, camera), scene["normals"])
            row = rows.setdefault(name, {"absrel": [], "rmse": [], "deg": []})
            row["absrel"].append(np.nanmean(absrel))
            row["rmse"].append(rmse)
            row["deg"].append(ang.mean())
        absrel, _ = depth_errors(result.proposal, gt)
        conf.append(result.confidence)
        conf_absrel.append(np.nanmean(absrel))
        cmap = result.confidence_map
        ok = np.isfinite(absrel) & np.isfinite(cmap)
        cut = np.median(cmap[ok])
        pix_hi.append(absrel[ok & (cmap >= cut)].mean())
        pix_lo.append(absrel[ok & (cmap < cut)].mean())
        iters.append(len(result.history))
        normal_cands = {
            "normals model": normals_model,
            **{f"from {k}": normals_from_depth(v, camera) for k, v in cands.items()},
        }
        normal_cands["normals consensus"] = normals_consensus(list(normal_cands.values())).proposal
        for name, value in normal_cands.items():
            normal_rows.setdefault(name, []).append(angular_errors(value, scene["normals"]).mean())
    seconds = time.perf_counter() - started
    singles = [k for k in rows if k in cands]
    best = min(singles, key=lambda k: np.mean(rows[k]["absrel"]))
    order = np.argsort(conf)[::-1]
    lines = ["| depth from | abs-rel | RMSE (m) | normals from it (deg) |", "|---|---|---|---|"]
    for name, row in rows.items():
        mark = " (best single)" if name == best else ""
        lines.append(
            f"| {name}{mark} | {np.mean(row['absrel']):.4f} | {np.mean(row['rmse']):.3f} | {np.mean(row['deg']):.2f} |"
        )
    oracle = np.mean(np.min([rows[k]["absrel"] for k in singles], axis=0))
    lines += [
        f"| oracle: best single per sample | {oracle:.4f} | | |",
        "",
        "| normals from | mean angular error (deg) |",
        "|---|---|",
    ]
    lines += [f"| {name} | {np.mean(v):.2f} |" for name, v in normal_rows.items()]
    rho = stats.spearmanr(conf, conf_absrel).statistic
    half = order[: max(n // 2, 1)]
    lines += [
        "",
        "| confidence (depth consensus) | value |",
        "|---|---|",
        f"| Spearman(per-sample confidence, abs-rel) | {rho:.3f} |",
        f"| abs-rel: all samples / most confident half | {np.mean(conf_absrel):.4f} / "
        f"{np.mean(np.array(conf_absrel)[half]):.4f} |",
        f"| pixel abs-rel where confidence map >= / < its median | {np.mean(pix_hi):.4f} / {np.mean(pix_lo):.4f} |",
        f"| confidence range, mean rounds | {min(conf):.3f}..{max(conf):.3f}, {np.mean(iters):.1f} |",
    ]
    return "\n".join(lines), {"seconds": seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=32)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN medians on sky pixels
    table, info = run(args.scenes, args.size)
    head = (
        f"{datetime.date.today()}, {platform.platform()}, {args.scenes} scenes (stream 3) at {args.size} px, "
        f"{info['seconds']:.0f} s. `python benchmarks/consensus.py --scenes {args.scenes} --size {args.size}`"
    )
    print(head + "\n\n" + table)
    if not args.no_write:
        text = RESULTS.read_text() if RESULTS.exists() else ""
        if SECTION not in text:
            text = text.rstrip("\n") + f"\n\n{SECTION}\n"
        start = text.index(SECTION) + len(SECTION)
        end = text.find("\n## ", start)  # the section's end: the next section, else the file's
        end = len(text) if end < 0 else end
        RESULTS.write_text(text[:end].rstrip("\n") + f"\n\n{head}\n\n{table}\n" + text[end:])


if __name__ == "__main__":
    main()
