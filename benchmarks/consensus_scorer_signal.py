"""Which scorers carry information about a region's depth error, on validation scenes only (never the test stream).

The loop picks, per token region, the candidate the weighted scorers judge best; that can only lower abs-rel
through a scorer whose errors track the region's true abs-rel *across the candidates of that region*. This
measures it: N open-loop proposals per validation scene, per region each scorer's error and the true region
abs-rel, both centred over the region's candidates, each scorer divided by its mean absolute deviation in the
scene. Two folds over scenes: least-squares weights of the scorers for the true error fitted on one half; on
the other half every region takes the candidate of lowest predicted error. Printed per scorer set: the fitted
weights (relative to the first scorer's) and the mean true abs-rel of the picked regions; the oracle (the
truly best candidate per region) and a random candidate bound it.

    python benchmarks/consensus_scorer_signal.py --run RUN --val VAL [--n 64 --proposals 8 --seed 0]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from tokzoo.consensus import ConsensusRecipe, gather_evidence, load_depth_net
from tokzoo.consensus.loop import open_loop_proposals
from tokzoo.consensus.scorers import region_errors, region_means
from tokzoo.fm.checkpoint import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from consensus_loop import RESULTS, SECTION, load_scenes, scene_seed, scorer_names  # noqa: E402
from results_md import append_to_section  # noqa: E402

SCORER_NAMES = scorer_names({"depth_net": None})  # the shape scorers, then the U-Net
SETS = [("depth_net",), ("depth_net", "normals"), ("depth_net", "planarity"), ("depth_net", "normals", "planarity")]


def centred(values: np.ndarray, axis: int) -> np.ndarray:
    """``values`` minus their mean along ``axis`` (NaN where all are NaN: sky, no opinion)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return values - np.nanmean(values, axis, keepdims=True)


def collect(model, val, nets: dict, recipe: ConsensusRecipe, n: int):
    """Scorer errors (scenes, N, S, R) and true region abs-rel (scenes, N, R) of N proposals per scene."""
    grid = tuple(next(s for s in model.specs if s.name == recipe.target).grid)
    errors, truth = [], []
    for keys, masked, scenes in val:
        rgb = np.stack([s["rgb"] for s in scenes])
        evidence = gather_evidence(model, masked, recipe, rgb, nets)
        _, maps = open_loop_proposals(model, masked, recipe, n, row_seeds=[zlib.crc32(k.encode()) for k in keys])
        for i, scene in enumerate(scenes):
            e = np.stack(
                [region_errors(m, evidence.scene(i), SCORER_NAMES, grid, recipe.hfov_degrees) for m in maps[i]]
            )
            with np.errstate(invalid="ignore", divide="ignore"):
                t = np.stack([region_means(np.abs(m - scene["depth"]) / scene["depth"], grid) for m in maps[i]])
            errors.append(e.reshape(n, len(SCORER_NAMES), -1))
            truth.append(t.reshape(n, -1))
    return np.stack(errors), np.stack(truth)


def picked_error(errors, truth, columns, fit, test) -> tuple[np.ndarray, float]:
    """Least-squares weights of ``columns`` fitted on scenes ``fit``; mean true error of the picks on ``test``."""
    with np.errstate(invalid="ignore"):
        feats = centred(errors, 1)
        feats = feats / np.nanmean(np.abs(feats), (1, 3), keepdims=True)
    target = centred(truth, 1)
    ok = np.isfinite(feats[:, :, columns]).all(2) & np.isfinite(target)
    x = lambda m: feats[m].transpose(0, 1, 3, 2)[ok[m]][:, columns]  # noqa: E731
    weights = np.linalg.lstsq(x(fit), target[fit][ok[fit]], rcond=None)[0]
    predicted = np.full(truth[test].shape, np.inf)
    predicted[ok[test]] = x(test) @ weights
    picks = np.take_along_axis(truth[test], predicted.argmin(1)[:, None], 1)[:, 0]
    region_ok = ok[test].any(1)
    return weights, float(np.nanmean(np.where(region_ok, picks, np.nan)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--val", type=Path, required=True)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--proposals", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.run / "gen")
    nets = {"depth_net": load_depth_net(args.run / "depthnets" / "unet")}
    recipe = ConsensusRecipe(scorers=tuple((s, 1.0) for s in SCORER_NAMES), seed=args.seed)
    errors, truth = collect(model, load_scenes(args.val, model, args.n, 32), nets, recipe, args.proposals)
    half = np.arange(len(truth)) < len(truth) // 2
    folds = [(half, ~half), (~half, half)]
    rows = []
    for names in SETS:
        columns = [SCORER_NAMES.index(s) for s in names]
        fitted = [picked_error(errors, truth, columns, fit, test) for fit, test in folds]
        weights = " / ".join("(" + ", ".join(f"{w / abs(fw[0]):+.3f}" for w in fw) + ")" for fw, _ in fitted)
        rows.append(f"| {' + '.join(names)} | {weights} | {np.mean([p for _, p in fitted]):.4f} |")
    judged = np.isfinite(truth).any(1)  # regions with ground truth (not sky)
    oracle = float(np.where(np.isfinite(truth), truth, np.inf).min(1)[judged].mean())
    random = float(np.nanmean(truth[:, 0]))
    text = (
        f"### {datetime.date.today().isoformat()}: which scorers track a region's abs-rel across candidates, "
        f"{args.n} validation scenes (stream {scene_seed(args.val)}), generator {args.run.name}, {platform.platform()}\n\n"
        f"`python benchmarks/consensus_scorer_signal.py --run RUN --val VAL --n {args.n} --proposals {args.proposals} "
        f"--seed {args.seed}`\n\n{args.proposals} proposals per scene (sampling seed {args.seed}); least-squares weights "
        "of the scorers for the region's true abs-rel (centred over the region's candidates, each scorer per scene "
        "divided by its mean absolute deviation), relative to depth_net's, fitted on one half of the scenes "
        "(fold 1 / fold 2); picked: the true region abs-rel of the candidate of lowest predicted error on the other "
        f"half (mean of the folds). A random candidate: {random:.4f}; the truly best per region: {oracle:.4f}.\n\n"
        "| scorers | weights (fold 1) / (fold 2) | picked region abs-rel |\n|---|---|---|\n" + "\n".join(rows)
    )
    print(text)
    if not args.no_write:
        append_to_section(RESULTS, SECTION, text)


if __name__ == "__main__":
    main()
