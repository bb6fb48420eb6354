"""Pseudo-label fusion with real labelers: tokzoo's ``consensus:`` (robust reweighted fusion, computed once)
vs the per-pixel median vs the best single labeler, on held-out scenes with exact depth.

Labelers (all trained or built here; their errors are correlated: same scene family, same loss):

| labeler | what |
|---|---|
| unet | tokzoo.consensus.depthnet U-Net, scenes 0-2047 of stream 101 |
| dilated | full-resolution dilated CNN, scenes 0-2047 of stream 102 |
| coarse | 1/8-resolution CNN, bilinear upsampling, scenes 0-2047 of stream 103 |
| row prior | classical, no image content: the median training depth of each image row (the ground-plane cue), stream 104 |

Fusions of the four (and of the three networks alone): ``consensus:`` (tokzoo.labelers.consensus.depth_consensus,
default settings, as the ``consensus:`` labeler runs it), the per-pixel median, the per-pixel mean of log depth. The best single
labeler is chosen on validation scenes of another stream. Metrics per scene: abs-rel and RMSE (metres) with no
alignment (every labeler predicts metric depth), and abs-rel after scaling each prediction to the true median
(scale-free). Paired bootstrap 95% intervals (2000 resamples of scenes) of the difference to ``consensus:``.

    python benchmarks/consensus_fusion.py --nets RUN/depthnets [--n 256] [--stream 7] [--val-stream 8]

Missing networks are trained into --nets first (~3-10 min each on one busy core).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tokzoo.consensus import DepthNetConfig, load_depth_net, save_depth_net, train_depth_net
from tokzoo.consensus.depthnet import scene_arrays
from tokzoo.labelers.consensus import depth_consensus
from tokzoo.tokenizers.evaluation.metrics import abs_rel, rmse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from consensus_loop import bootstrap  # noqa: E402
from results_md import append_to_section  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Pseudo-label fusion with real labelers"
NETS = (("unet", 101), ("dilated", 102), ("coarse", 103))


def row_prior(size: int = 64, n: int = 1024, stream: int = 104) -> np.ndarray:
    _, depth = scene_arrays(stream, range(n), size)
    return np.repeat(np.nanmedian(depth, axis=(0, 2))[:, None], size, 1).astype(np.float32)


def labels(nets: dict, prior: np.ndarray, rgb: np.ndarray) -> dict[str, np.ndarray]:
    out = {name: net.predict(rgb) for name, net in nets.items()}
    out["row prior"] = np.repeat(prior[None], len(rgb), 0)
    return out


def scale_aligned_abs_rel(truth, pred) -> float:
    ok = np.isfinite(truth) & np.isfinite(pred) & (truth > 0) & (pred > 0)
    return abs_rel(truth, pred * np.median(truth[ok]) / np.median(pred[ok]))


def error_correlations(truth: np.ndarray, candidates: dict[str, np.ndarray]) -> str:
    """Pearson correlation of the labelers' per-pixel log errors (pixels with true depth) and of their per-scene
    abs-rel, per pair: how correlated the labelers' mistakes are."""
    ok = np.isfinite(truth) & (truth > 0)
    errors = {k: (np.log(v) - np.log(np.where(ok, truth, 1.0)))[ok] for k, v in candidates.items()}
    per_scene = {k: np.array([abs_rel(t, p) for t, p in zip(truth, v)]) for k, v in candidates.items()}
    names = list(candidates)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    return "; ".join(
        f"{a} / {b} {np.corrcoef(errors[a], errors[b])[0, 1]:.2f} / {np.corrcoef(per_scene[a], per_scene[b])[0, 1]:.2f}"
        for a, b in pairs
    )


def fuse(candidates: dict[str, np.ndarray], suffix: str = "") -> dict[str, np.ndarray]:
    stack = np.stack(list(candidates.values()), 1)  # (N, K, H, W)
    return {
        f"consensus: (IRLS fusion){suffix}": np.stack([depth_consensus(list(s)).proposal for s in stack]),
        f"per-pixel median{suffix}": np.median(stack, 1),
        f"per-pixel mean of log depth{suffix}": np.exp(np.log(stack).mean(1)),
    }


def scores(truth: np.ndarray, preds: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "abs_rel": np.array([abs_rel(t, p) for t, p in zip(truth, preds)]),
        "rmse": np.array([rmse(t, p) for t, p in zip(truth, preds)]),
        "aligned": np.array([scale_aligned_abs_rel(t, p) for t, p in zip(truth, preds)]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", type=Path, required=True)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--stream", type=int, default=7)
    parser.add_argument("--val-stream", type=int, default=8)
    parser.add_argument("--val-n", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    start = time.time()
    nets = {}
    for arch, stream in NETS:
        folder = args.nets / arch
        if not (folder / "config.json").is_file():
            save_depth_net(train_depth_net(DepthNetConfig(arch, stream=stream)), folder)
        nets[arch] = load_depth_net(folder)
    prior = row_prior()
    val_rgb, val_depth = scene_arrays(args.val_stream, range(args.val_n), 64)
    val_scores = {k: float(np.mean(scores(val_depth, v)["abs_rel"])) for k, v in labels(nets, prior, val_rgb).items()}
    best = min(val_scores, key=val_scores.get)
    rgb, depth = scene_arrays(args.stream, range(args.n), 64)
    singles = labels(nets, prior, rgb)
    t = time.perf_counter()
    fused = fuse(singles)
    fusion_seconds = time.perf_counter() - t
    fused |= fuse({k: v for k, v in singles.items() if k != "row prior"}, ", 3 networks only")
    rows = {**{f"{k}{' (best single on validation)' if k == best else ''}": v for k, v in singles.items()}, **fused}
    results = {k: scores(depth, v) for k, v in rows.items()}
    ref = results["consensus: (IRLS fusion)"]
    lines = [
        "| labeler / fusion | abs-rel | diff to consensus: [95% CI] | RMSE (m) | diff [95% CI] | abs-rel, median-scaled | diff [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        cells = []
        for metric, fmt in (("abs_rel", "{:+.4f}"), ("rmse", "{:+.3f}"), ("aligned", "{:+.4f}")):
            if r is ref:
                cells.append("-")
            else:
                mean, lo, hi = bootstrap(r[metric] - ref[metric])
                cells.append(f"{fmt.format(mean)} [{fmt.format(lo)}, {fmt.format(hi)}]")
        lines.append(
            f"| {name} | {np.nanmean(r['abs_rel']):.4f} | {cells[0]} | {np.nanmean(r['rmse']):.3f} | {cells[1]} | "
            f"{np.nanmean(r['aligned']):.4f} | {cells[2]} |"
        )
    text = "\n".join(lines)
    val_text = ", ".join(f"{k} {v:.4f}" for k, v in val_scores.items())
    head = (
        f"### {datetime.date.today().isoformat()}: {args.n} held-out scenes (stream {args.stream}), {platform.platform()}, "
        f"load average {load}; {(time.time() - start) / 60:.1f} min; consensus: {fusion_seconds / args.n * 1000:.0f} ms "
        f"per scene\n\n`python benchmarks/consensus_fusion.py --nets RUN/depthnets --n {args.n}`; validation "
        f"({args.val_n} scenes of stream {args.val_stream}) abs-rel: {val_text}. Error correlation between labelers "
        f"(per-pixel log error / per-scene abs-rel, Pearson): {error_correlations(depth, singles)}"
    )
    print(head + "\n\n" + text)
    if not args.no_write:
        append_to_section(RESULTS, SECTION, head + "\n\n" + text)


if __name__ == "__main__":
    main()
