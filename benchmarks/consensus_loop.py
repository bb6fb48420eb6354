"""Iterative consensus (Li et al., ICLR 2023) vs open-loop reranking, at equal generator calls, on held-out scenes.

Generator: an fm model trained with recipes/fm/scenes-consensus.yaml (rgb -> depth by sampling). Scorers:
``normals`` (the same fm's rgb -> normals vs the normals of the proposed depth), ``planarity`` (the fm's
rgb -> semseg floor / wall regions: plane fits of the proposed depth), ``depth_net`` (a small U-Net trained
here on its own scene stream). Variants per scene, each with N generator calls (N = rounds x proposals)
unless the row says otherwise: greedy (1 call); best-of-N reranked by each single scorer and by the
ensemble; the closed loop with each single scorer and with the ensemble; region-wise reranking of N proposals
in one round (no feedback: an ablation). References: the per-pixel mean depth of training scenes (the
trivial prior), the true tokens decoded (the tokenizer's ceiling), one sample, the depth network alone, and
best-of-N picked by the true abs-rel (what reranking could reach).

Metrics per scene against the exact ground truth: depth abs-rel (pixels with depth in both) and two structure
metrics: the mean angle (degrees) between the normals implied by the predicted depth (true camera) and the
true normals on pixels that are floor or wall; floor planarity, the mean relative distance of the predicted
points on true floor pixels to their least-squares plane (0 for a planar floor). Paired bootstrap (2000 resamples of scenes): mean difference
to the closed loop with the ensemble and its 95% interval. Run time per scene: wall time of the variant's
calls (generation, decoding, scoring) plus, for variants that use scorers, the scorers' references; the
best-of-N rows share one set of N proposals scored by every scorer, so each carries that whole time.

Chosen on validation scenes (another stream), never on the test scenes: the "best single scorer" (lowest
best-of-N abs-rel) and the ensemble weights (normals, planarity, each depth network) from weight_grid: for best-of-N the
lowest abs-rel; for the loop, the declared objective of tokzoo.consensus.tuning (the lowest abs-rel among the
weightings whose floor planarity is no worse than greedy's on the same validation scenes) - the reference row -
and, beside it, the loop's lowest abs-rel alone; the equal-weight ensembles are reported too.

    python benchmarks/consensus_loop.py --run /work/runs/consensus --heldout HELDOUT --val VAL [--train-data TRAIN]

RUN holds (or gets, when --train-data is given) gen/ (the fm run) and depthnets/unet (the scorer network).
``--more-nets coarse dilated`` adds RUN/depthnets/coarse and /dilated (benchmarks/consensus_fusion.py trains them,
each on its own scene stream) as scorers of their own (``depth_net.coarse``, ...): an ensemble of metric scorers.
HELDOUT / VAL: token datasets of built-in scenes at 64 px (`tokzoo tokenize -m rgb,depth,normals,semseg
--scenes 256 --scene-size 64 --seed 7 -o HELDOUT`; VAL with --seed 8), never used for training.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from tokzoo.consensus import (
    ConsensusRecipe,
    DepthNetConfig,
    consensus_loop,
    gather_evidence,
    greedy,
    load_depth_net,
    save_depth_net,
    train_depth_net,
)
from tokzoo.consensus.loop import decode_depth, open_loop_proposals, rerank
from tokzoo.consensus.scorers import region_errors
from tokzoo.consensus.tuning import choose_weights
from tokzoo.datasets import generate_scene
from tokzoo.fm.checkpoint import load_model
from tokzoo.fm.masking import flatten_batch
from tokzoo.fm.stream import ordered_batches
from tokzoo.labelers.normals_from_depth import intrinsics, normals_from_depth, unproject
from tokzoo.tokenizers.evaluation.metrics import abs_rel
from tokzoo.tokens.layout import read_manifest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired import bootstrap  # noqa: E402
from results_md import append_to_section  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "fm" / "scenes-consensus.yaml"
SHAPE_SCORERS = ("normals", "planarity")


def scorer_names(nets: dict) -> tuple[str, ...]:
    """The shape scorers, then one scorer per depth network (``depth_net``, ``depth_net.<label>``)."""
    return (*SHAPE_SCORERS, *nets)


SECTION = "## Iterative consensus: closed loop vs reranking"
BEST_MARK = " (best single scorer on validation)"


def ensure_models(run: Path, train_data: Path | None) -> None:
    """Train what RUN lacks: the generator (recipe above) and the scorer network (U-Net, stream 101)."""
    if not (run / "gen" / "config.json").is_file():
        if train_data is None:
            raise SystemExit(f"error: {run / 'gen'}: no trained generator; pass --train-data to train it")
        from tokzoo.fm.recipe import load_recipe
        from tokzoo.fm.train import train

        train(load_recipe(RECIPE), train_data, run / "gen", progress=False)
    if not (run / "depthnets" / "unet" / "config.json").is_file():
        save_depth_net(train_depth_net(DepthNetConfig("unet", stream=101)), run / "depthnets" / "unet")


def scene_seed(tokens_dir: Path) -> int:
    """The scene stream a token dataset of built-in scenes was made from (its crops' seed = --seed)."""
    return int(read_manifest(tokens_dir)["crops"]["seed"])


def load_scenes(tokens_dir: Path, model, n: int, batch_size: int):
    """Batches of (keys, masked batch, scenes) for the first n samples; scenes regenerated from their stream."""
    seed = scene_seed(tokens_dir)
    names = [s.name for s in model.specs]
    out, seen = [], 0
    for batch in ordered_batches(tokens_dir, names, batch_size):
        keys = list(batch["__key__"])[: n - seen]
        if not keys:
            break
        masked = flatten_batch({m: batch[m][: len(keys)] for m in names}, model.specs)
        scenes = [generate_scene(int(k.split("_")[-1]), seed=seed, size=64) for k in keys]
        out.append((keys, masked, scenes))
        seen += len(keys)
        if seen >= n:
            break
    return out


def floor_planarity(pred: np.ndarray, scene: dict) -> float:
    """Mean |distance| / depth of the predicted points (true camera) on true floor pixels to their least-squares plane."""
    mask = (scene["semseg"] == 0) & np.isfinite(pred) & (pred > 0)
    if mask.sum() < 12:
        return float("nan")
    points = unproject(pred, *intrinsics(*pred.shape, scene["camera"]))[mask].astype(np.float64)
    centre = points.mean(0)
    normal = np.linalg.svd(points - centre, full_matrices=False)[2][-1]
    return float(np.mean(np.abs((points - centre) @ normal) / points[:, 2]))


def structure_error(pred: np.ndarray, scene: dict) -> float:
    """Mean angle (deg) between normals of the predicted depth (true camera) and the true normals, floor + wall."""
    implied = normals_from_depth(pred, scene["camera"])
    mask = np.isin(scene["semseg"], (0, 1)) & np.isfinite(implied).all(-1) & np.isfinite(scene["normals"]).all(-1)
    if not mask.any():
        return float("nan")
    cos = np.clip((implied[mask] * scene["normals"][mask]).sum(-1), -1, 1)
    return float(np.degrees(np.arccos(cos)).mean())


METRICS = {
    "abs_rel": lambda d, s: abs_rel(s["depth"], d),
    "structure": lambda d, s: structure_error(d, s),
    "planarity": lambda d, s: floor_planarity(d, s),
}


def training_prior(size: int = 64, n: int = 1024) -> np.ndarray:
    """Per-pixel mean depth of the generator's training stream (seed 0, scenes 0..n-1)."""
    stack = np.stack([generate_scene(i, seed=0, size=size)["depth"] for i in range(n)])
    return np.nanmean(stack, 0).astype(np.float32)


SHAPE_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0)


def weight_grid(n_nets: int) -> list[tuple[float, ...]]:
    """(normals, planarity, each depth network) weights tried on the validation scenes, the networks at 1 each;
    only the ratios matter."""
    return [(a, b, *[1.0] * n_nets) for a in SHAPE_WEIGHTS for b in SHAPE_WEIGHTS]


def tune_on_validation(model, val, nets: dict, base: ConsensusRecipe) -> dict:
    """On validation scenes: best-of-N abs-rel of each single scorer (-> the best single scorer) and, for every
    weighting of weight_grid, of best-of-N and of the closed loop (-> each one's ensemble weights; the loop's
    under the structure limit: floor planarity no worse than greedy's on these scenes, see choose_weights)."""
    calls = base.calls
    grid = tuple(next(s for s in model.specs if s.name == base.target).grid)
    names, weightings = scorer_names(nets), weight_grid(len(nets))
    single = {s: [] for s in names}
    reranked = {w: [] for w in weightings}
    looped = {w: [] for w in weightings}
    looped_planarity = {w: [] for w in weightings}
    greedy_planarity = []
    for keys, masked, scenes in val:
        greedy_planarity += [floor_planarity(d, s) for s, d in zip(scenes, greedy(model, masked, base).depth)]
        rgb = np.stack([s["rgb"] for s in scenes])
        seeds = [zlib.crc32(k.encode()) for k in keys]
        evidence = gather_evidence(model, masked, base.with_scorers(dict.fromkeys(names, 1.0)), rgb, nets)
        _, maps = open_loop_proposals(model, masked, base, calls, row_seeds=seeds)
        for i, scene in enumerate(scenes):
            errors = np.stack([region_errors(m, evidence.scene(i), names, grid, base.hfov_degrees) for m in maps[i]])
            for j, name in enumerate(names):
                single[name].append(abs_rel(scene["depth"], maps[i][rerank(errors, np.eye(len(names))[j])]))
            for w in weightings:
                reranked[w].append(abs_rel(scene["depth"], maps[i][rerank(errors, w)]))
        for w in weightings:
            r = consensus_loop(model, masked, evidence, base.with_scorers(dict(zip(names, w))), row_seeds=seeds)
            looped[w] += [abs_rel(s["depth"], d) for s, d in zip(scenes, r.depth)]
            looped_planarity[w] += [floor_planarity(d, s) for s, d in zip(scenes, r.depth)]
    mean = lambda d: {k: float(np.nanmean(v)) for k, v in d.items()}  # noqa: E731
    single, reranked, looped, looped_planarity = mean(single), mean(reranked), mean(looped), mean(looped_planarity)
    limit = float(np.nanmean(greedy_planarity))
    loop_weights, within = choose_weights({w: (looped[w], looped_planarity[w]) for w in weightings}, limit)
    return {
        "best_single": min(single, key=single.get),
        "single": single,
        "rerank_weights": min(reranked, key=reranked.get),
        "reranked": reranked,
        "loop_weights": loop_weights,
        "loop_within_limit": within,
        "loop_weights_abs_rel": min(looped, key=looped.get),
        "looped": looped,
        "looped_planarity": looped_planarity,
        "greedy_planarity": limit,
    }


TUNED_LOOP = "ensemble, weights tuned on validation (lowest abs-rel with floor planarity <= greedy's)"
TUNED_LOOP_ABS_REL = "ensemble, weights tuned on validation for abs-rel alone"


def evaluate(
    model,
    heldout,
    nets: dict,
    base: ConsensusRecipe,
    prior: np.ndarray,
    rerank_weights,
    loop_weights,
    loop_weights_abs_rel,
) -> dict:
    """Per variant: per-scene metrics and seconds; plus generator calls (and fm passes) per scene. The ensembles
    use the weights chosen on validation scenes (``rerank_weights`` for best-of-N, ``loop_weights`` for the loop
    under the structure limit, ``loop_weights_abs_rel`` for the loop on abs-rel alone)."""
    n_calls = base.calls
    names = scorer_names(nets)
    ensemble = dict.fromkeys(names, 1.0)
    ensemble_rerank, ensemble_loop = dict(zip(names, rerank_weights)), dict(zip(names, loop_weights))
    variants: dict[str, dict] = {}
    grid = tuple(next(s for s in model.specs if s.name == base.target).grid)

    def add(name, depth_maps, scenes, seconds, calls, forwards):
        v = variants.setdefault(
            name, {m: [] for m in METRICS} | {"seconds": 0.0, "calls": calls, "forwards": forwards, "scenes": 0}
        )
        for m, fn in METRICS.items():
            v[m] += [fn(d, s) for s, d in zip(scenes, depth_maps)]
        v["seconds"] += seconds
        v["scenes"] += len(scenes)

    for keys, masked, scenes in heldout:
        rgb = np.stack([s["rgb"] for s in scenes])
        seeds = [zlib.crc32(k.encode()) for k in keys]
        t = time.perf_counter()
        evidence = gather_evidence(model, masked, base.with_scorers(ensemble), rgb, nets)
        evidence_seconds = time.perf_counter() - t
        b = len(keys)
        add("trivial: per-pixel training mean depth", [prior] * b, scenes, 0.0, 0, 0)
        add(
            "tokenizer ceiling: the true tokens decoded (not a method)",
            decode_depth(model, masked.tokens[base.target]),
            scenes,
            0.0,
            0,
            0,
        )
        for name, net in nets.items():
            t = time.perf_counter()
            alone = net.predict(rgb)
            add(f"{name} alone (the scorer network)", alone, scenes, time.perf_counter() - t, 0, 0)
        r = greedy(model, masked, base)
        add("greedy (argmax, 1 step)", r.depth, scenes, r.seconds, 1, 1)
        # open loop: one set of N proposals, scored once by every scorer, reranked by each scorer set
        t = time.perf_counter()
        _, maps = open_loop_proposals(model, masked, base, n_calls, row_seeds=seeds)
        errors = [
            np.stack([region_errors(m, evidence.scene(i), names, grid, base.hfov_degrees) for m in maps[i]])
            for i in range(b)
        ]  # (N, S, gh, gw) per scene
        shared = time.perf_counter() - t + evidence_seconds
        add(f"one sample (temperature {base.temperature:g})", maps[:, 0], scenes, 0.0, 1, 1)
        oracle = [maps[i][int(np.argmin([abs_rel(s["depth"], m) for m in maps[i]]))] for i, s in enumerate(scenes)]
        add(f"oracle best-of-{n_calls} by true abs-rel (ceiling, not a method)", oracle, scenes, 0.0, n_calls, 1)
        for label, scorers in [
            *[(s, {s: 1.0}) for s in names],
            ("ensemble, equal weights", ensemble),
            ("ensemble, weights tuned on validation", ensemble_rerank),
        ]:
            weights = [scorers.get(s, 0.0) for s in names]
            picked = [maps[i][rerank(errors[i], weights)] for i in range(b)]
            add(f"best-of-{n_calls}, {label}", picked, scenes, shared, n_calls, 1)
        for label, scorers in [
            *[(s, {s: 1.0}) for s in names],
            ("ensemble, equal weights", ensemble),
            (TUNED_LOOP_ABS_REL, dict(zip(names, loop_weights_abs_rel))),
            (TUNED_LOOP, ensemble_loop),
        ]:
            r = consensus_loop(model, masked, evidence, base.with_scorers(scorers), row_seeds=seeds)
            add(
                f"closed loop ({base.rounds} rounds x {base.proposals}), {label}",
                r.depth,
                scenes,
                r.seconds + evidence_seconds,
                n_calls,
                base.rounds,
            )
        one_round = replace(base.with_scorers(ensemble_loop), rounds=1, proposals=n_calls)
        r = consensus_loop(model, masked, evidence, one_round, row_seeds=seeds)
        add(
            f"region-wise rerank of {n_calls} in 1 round (no feedback), the loop's ensemble weights",
            r.depth,
            scenes,
            r.seconds + evidence_seconds,
            n_calls,
            1,
        )
        print(f"  {variants['greedy (argmax, 1 step)']['scenes']} scenes", file=sys.stderr, flush=True)
    for v in variants.values():
        for m in METRICS:
            v[m] = np.array(v[m])
    return variants


def table(variants: dict, reference: str, best_single: str) -> str:
    ref = variants[reference]
    lines = [
        "| variant | generator calls (fm passes) | abs-rel | diff to the ensemble loop [95% CI] | normals on floor + wall "
        "(deg) | diff [95% CI] | floor planarity | diff [95% CI] | s / scene |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in variants.items():
        mark = BEST_MARK if name.endswith(f", {best_single}") else ""
        cells = []
        for metric, fmt in (("abs_rel", "{:+.4f}"), ("structure", "{:+.2f}"), ("planarity", "{:+.4f}")):
            mean = f"{np.nanmean(v[metric]):.4f}" if metric != "structure" else f"{np.nanmean(v[metric]):.2f}"
            if name == reference:
                cells += [mean, "-"]
            else:
                d, lo, hi = bootstrap(v[metric] - ref[metric])
                cells += [mean, f"{fmt.format(d)} [{fmt.format(lo)}, {fmt.format(hi)}]"]
        calls = f"{v['calls']} ({v['forwards']})" if v["calls"] else "0"
        lines.append(f"| {name}{mark} | {calls} | {' | '.join(cells)} | {v['seconds'] / max(v['scenes'], 1):.3f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--heldout", type=Path, required=True)
    parser.add_argument("--val", type=Path, default=None)
    parser.add_argument("--train-data", type=Path, default=None)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--val-n", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--proposals", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="Also write the per-scene figures here.")
    parser.add_argument(
        "--more-nets",
        nargs="*",
        default=[],
        help="more depth networks as scorers of their own: labels of RUN/depthnets/LABEL (scorer depth_net.LABEL)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ensure_models(args.run, args.train_data)
    model = load_model(args.run / "gen")
    nets = {"depth_net": load_depth_net(args.run / "depthnets" / "unet")}
    nets |= {f"depth_net.{label}": load_depth_net(args.run / "depthnets" / label) for label in args.more_nets}
    names = scorer_names(nets)
    equal, nets_only = (1.0,) * len(names), (0.0, 0.0, *[1.0] * len(nets))
    start = time.time()
    load = " ".join(f"{x:.2f}" for x in __import__("os").getloadavg())
    heldout = load_scenes(args.heldout, model, args.n, args.batch)
    prior = training_prior()
    entries, dumps = [], {}
    for seed in args.seeds:
        base = ConsensusRecipe(
            scorers=tuple((s, 1.0) for s in names),
            rounds=args.rounds,
            proposals=args.proposals,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=seed,
        )
        tuned = {
            "best_single": "depth_net",
            "single": {},
            "rerank_weights": equal,
            "loop_weights": equal,
            "loop_weights_abs_rel": equal,
        }
        if args.val is not None:
            tuned = tune_on_validation(model, load_scenes(args.val, model, args.val_n, args.batch), nets, base)
        variants = evaluate(
            model,
            heldout,
            nets,
            base,
            prior,
            tuned["rerank_weights"],
            tuned["loop_weights"],
            tuned["loop_weights_abs_rel"],
        )
        reference = f"closed loop ({base.rounds} rounds x {base.proposals}), {TUNED_LOOP}"
        text = table(variants, reference, tuned["best_single"])
        fmt = lambda w: "/".join(f"{x:g}" for x in w)  # noqa: E731
        val_text = (
            f"best single scorer (best-of-{base.calls} abs-rel: "
            + ", ".join(f"{k} {v:.4f}" for k, v in tuned["single"].items())
            + f") {tuned['best_single']}; "
            f"ensemble weights {'/'.join(names)} for best-of-{base.calls}: {fmt(tuned['rerank_weights'])}"
            + (
                f" (abs-rel {tuned['reranked'][tuned['rerank_weights']]:.4f}, equal weights "
                f"{tuned['reranked'][equal]:.4f})"
                if "reranked" in tuned
                else ""
            )
            + f", for the loop: {fmt(tuned['loop_weights'])}"
            + (
                f" (abs-rel {tuned['looped'][tuned['loop_weights']]:.4f}, floor planarity "
                f"{tuned['looped_planarity'][tuned['loop_weights']]:.4f} vs greedy's {tuned['greedy_planarity']:.4f}"
                + ("" if tuned["loop_within_limit"] else ": no weighting met the limit, chosen on abs-rel alone")
                + f"), for abs-rel alone: {fmt(tuned['loop_weights_abs_rel'])} (abs-rel "
                f"{tuned['looped'][tuned['loop_weights_abs_rel']]:.4f}, floor planarity "
                f"{tuned['looped_planarity'][tuned['loop_weights_abs_rel']]:.4f}; equal weights "
                f"{tuned['looped'][equal]:.4f}; the depth network{'s' if len(nets) > 1 else ''} alone "
                f"{tuned['looped'][nets_only]:.4f})"
                if "looped" in tuned
                else ""
            )
        )
        entries.append(
            f"Sampling seed {seed} (temperature {args.temperature:g}, top-p {args.top_p:g}). Chosen on "
            f"{args.val_n} validation scenes (stream {scene_seed(args.val) if args.val else '-'}): {val_text}."
            f"\n\n{text}"
        )
        mark = lambda k: k + (BEST_MARK if k.endswith(f", {tuned['best_single']}") else "")  # noqa: E731
        dumps[seed] = {
            mark(k): {**{m: v[m].tolist() for m in METRICS}, "seconds": v["seconds"], "calls": v["calls"]}
            for k, v in variants.items()
        }
        print(entries[-1], flush=True)
    minutes = (time.time() - start) / 60
    head = (
        f"### {datetime.date.today().isoformat()}: {args.n} held-out scenes (stream {scene_seed(args.heldout)}), "
        f"{platform.platform()}, torch threads {args.threads}, load average {load} at start; {minutes:.1f} min\n\n"
        f"`python benchmarks/consensus_loop.py --run RUN --heldout HELDOUT --val VAL --n {args.n} --rounds {args.rounds} "
        f"--proposals {args.proposals} --temperature {args.temperature:g} --seeds {' '.join(map(str, args.seeds))}`"
    )
    if args.json:
        args.json.write_text(json.dumps(dumps))
    if not args.no_write:
        append_to_section(RESULTS, SECTION, head + "\n\n" + "\n\n".join(entries))


if __name__ == "__main__":
    main()
