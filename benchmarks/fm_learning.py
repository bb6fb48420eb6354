"""Does the 4M-style model learn cross-modal prediction? Held-out scores, training curves, example grid.

Scores rgb -> depth / normals / semseg of a trained run on a held-out token dataset (other scenes) against the
exact ground truth, the tokenizer's own reconstruction (ceiling) and the per-pixel training prior (see
tokzoo/fm/evaluate.py); plots the per-modality training losses from the run's log.jsonl
(benchmarks/fm_curves.png) and writes a grid of predictions (benchmarks/fm_examples.png). Appends a dated table
under ``## Multimodal trainer: cross-modal prediction`` in benchmarks/RESULTS.md.

Greedy decoding predicts each token's mode, which is not the best point estimate for abs-rel (it punishes
over-estimates of near pixels most). ``--samples K`` (default 16, 0 = off) adds depth rows for a decision made for
the metric: per pixel, the median of K sampled depth maps weighted by 1/d (the value minimising the expected
|p - d| / d under the samples), next to the prior made the same way from the training depths, so both sides get
the abs-rel-optimal estimate.

    python benchmarks/fm_learning.py --run runs/scenes-cpu --data fm-heldout/

``--tokenizer depth=DIR`` decodes with the tokenizer in DIR instead of the zoo's (e.g. an earlier shipped version,
``git show COMMIT:tokzoo/tokenizers/weights/depth/model.safetensors``, for a run whose tokens it wrote); the content hash in
the dataset's manifest is still checked, so only the tokenizer that wrote the tokens is accepted.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from results_md import append_to_section

from tokzoo.fm.checkpoint import load_model, read_run_config
from tokzoo.fm.evaluate import evaluate, example_rows, raw_crops
from tokzoo.fm.generate import DecodeSettings, decode_tokens, generate
from tokzoo.fm.masking import flatten_batch
from tokzoo.io.images import save_png
from tokzoo.tokenizers.evaluation.metrics import abs_rel
from tokzoo.tokens import make_loader
from tokzoo.viz import grid

HERE = Path(__file__).resolve().parent
SECTION = "## Multimodal trainer: cross-modal prediction"
TARGETS = ["depth", "normals", "semseg"]


def curves(log: list[dict], path: Path, window: int = 25) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for name in log[0]["losses"]:
        steps = [r["step"] for r in log if name in r["losses"]]
        losses = np.array([r["losses"][name] for r in log if name in r["losses"]])
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(f"target cross-entropy (nats, mean of {window} steps)")
    ax.set_title("tokzoo fm: per-modality training loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def inverse_depth_median(stack: np.ndarray) -> np.ndarray:
    """(K, H, W) depths (<= 0: invalid) -> (H, W) per-pixel median weighted by 1/d over the valid ones (0 where none)."""
    depth = np.where(stack > 0, stack, np.nan)
    ordered = np.sort(depth, 0)
    weights = np.where(np.isfinite(ordered), 1.0 / ordered, 0.0)
    cumulative = np.cumsum(weights, 0)
    index = np.argmax(cumulative >= cumulative[-1:] / 2, 0)
    return np.nan_to_num(np.take_along_axis(ordered, index[None], 0)[0], nan=0.0).astype(np.float32)


def depth_for_abs_rel(
    model, data: Path, train_data: Path, samples: int, limit: int | None, batch_size: int = 32
) -> dict:
    """abs-rel of rgb -> depth with the 1/d-weighted median of ``samples`` sampled maps (one parallel step at
    temperature 1, seeds 0..K-1), and of the training prior made the same way."""
    spec = {s.name: s for s in model.specs}["depth"]
    truths = raw_crops(data, "depth", limit)
    prior = inverse_depth_median(np.stack(list(raw_crops(train_data, "depth").values())))
    model_scores, prior_scores = [], []
    for batch in make_loader(data, [s.name for s in model.specs], batch_size, shuffle=False, crop=0):
        masked = flatten_batch(batch, model.specs)
        maps = [
            decode_tokens(
                spec,
                generate(model, masked, ["rgb"], ["depth"], DecodeSettings(steps=1, temperature=1.0, seed=k))["depth"],
                masked.valid["depth"],
            )
            for k in range(samples)
        ]
        for i, key in enumerate(batch["__key__"]):
            if limit and len(model_scores) >= limit:
                break
            model_scores.append(abs_rel(truths[key], inverse_depth_median(np.stack([m[i] for m in maps]))))
            prior_scores.append(abs_rel(truths[key], prior))
        if limit and len(model_scores) >= limit:
            break
    return {
        "samples": samples,
        "scenes": len(model_scores),
        "model": float(np.nanmean(model_scores)),
        "prior": float(np.nanmean(prior_scores)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="Held-out token dataset")
    parser.add_argument("--train-data", type=Path, default=None)
    parser.add_argument("--n", type=int, default=None, help="Held-out samples (default: all)")
    parser.add_argument(
        "--steps",
        type=int,
        default=1,
        help="Parallel decoding steps (1 scored better than 8 on all three targets of run-scenes-cpu)",
    )
    parser.add_argument("--samples", type=int, default=16, help="Depth maps sampled for the abs-rel decision (0: off)")
    parser.add_argument(
        "--tokenizer",
        action="append",
        default=[],
        metavar="MODALITY=DIR",
        help="Decode MODALITY with the tokenizer in DIR (hash-checked against the manifest)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="Print only: no RESULTS.md entry, no PNGs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = read_run_config(args.run)
    model = load_model(args.run)
    overrides = dict(item.split("=", 1) for item in args.tokenizer)
    model.specs = [dataclasses.replace(s, tokenizer=overrides.get(s.name, s.tokenizer)) for s in model.specs]
    log = [json.loads(line) for line in (args.run / "log.jsonl").read_text().splitlines()]
    load = os.getloadavg()
    t = time.perf_counter()
    settings = DecodeSettings(steps=args.steps, temperature=0.0)
    report = evaluate(
        model,
        args.data,
        args.train_data or config["data"],
        ["rgb"],
        TARGETS,
        limit=args.n,
        settings=settings,
        progress=True,
    )
    if args.samples:
        report["depth_for_abs_rel"] = depth_for_abs_rel(
            model, args.data, args.train_data or Path(config["data"]), args.samples, args.n
        )
    seconds = time.perf_counter() - t
    if not args.no_write:
        curves(log, HERE / "fm_curves.png")
        save_png(
            grid(example_rows(model, args.data, [f"scene_{i:06d}" for i in range(4)], ["rgb"], TARGETS, settings)),
            HERE / "fm_examples.png",
        )
    train_seconds = sum(r["tokens"] / r["tokens_per_s"] for r in log)
    text = _table(report, config, model, log, train_seconds, seconds, load, args)
    print(text)
    if not args.no_write:
        append_to_section(HERE / "RESULTS.md", SECTION, text)


def _table(report, config, model, log, train_seconds, seconds, load, args) -> str:
    recipe = config["recipe"]
    first, last = log[0], log[-1]
    tail = log[-50:]
    mean_tail = {m: float(np.mean([r["losses"][m] for r in tail if m in r["losses"]])) for m in first["losses"]}
    lines = [
        f"### {datetime.date.today().isoformat()}: run `{args.run.name}` ({model.num_parameters() / 1e6:.1f}M parameters, "
        f"{last['step']} steps of {recipe['train']['batch_size']} samples), {report['samples']} held-out scenes",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, CPU float32, {args.threads} torch thread(s), niced; load average "
        f"{load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} at evaluation. Training took {train_seconds / 60:.1f} min "
        f"(sum of step times); evaluation {seconds:.0f} s. Training data: {config['data']}; held-out: {args.data} "
        f"(scenes of another stream seed). Predictions: rgb tokens in, greedy parallel decoding in {args.steps} steps, "
        "decoded by the shipped tokenizers, scored at 64 x 64 against the scenes' exact ground truth.",
        "",
        "| target | metric | model (rgb -> target) | training prior | tokenizer ceiling | prior / model | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for t, r in report["targets"].items():
        ratio = r["training_prior"] / r["model"] if r["better"] == "lower" else r["model"] / r["training_prior"]
        goal = {"depth": ">= 2x better than the prior"}.get(t, "better than the prior")
        lines.append(
            f"| {t} | {r['metric']} ({r['better']} is better) | {r['model']:.4f} | {r['training_prior']:.4f} | "
            f"{r['tokenizer_ceiling']:.4f} | {ratio:.2f}x | {goal} |"
        )
    mbr = report.get("depth_for_abs_rel")
    if mbr:
        lines += [
            "",
            f"Depth decided for abs-rel (per pixel, the 1/d-weighted median of {mbr['samples']} sampled maps; "
            f"the prior: the 1/d-weighted per-pixel median of the training depths), {mbr['scenes']} scenes: "
            f"model {mbr['model']:.4f}, prior {mbr['prior']:.4f} ({mbr['prior'] / mbr['model']:.2f}x); "
            f"against the per-pixel training mean: {report['targets']['depth']['training_prior'] / mbr['model']:.2f}x.",
        ]
    lines += [
        "",
        "Training loss (target cross-entropy, nats) at step 1 -> mean of the last 50 steps: "
        + ", ".join(f"{m} {first['losses'][m]:.2f} -> {mean_tail[m]:.2f}" for m in first["losses"] if m in mean_tail)
        + ". Curves: [fm_curves.png](fm_curves.png); examples (rgb | predicted depth, normals, semseg | ground truth): "
        "[fm_examples.png](fm_examples.png). `python benchmarks/fm_learning.py --run RUN --data HELDOUT`",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
