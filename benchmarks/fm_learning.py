"""Does the 4M-style model learn cross-modal prediction? Held-out scores, training curves, example grid.

Scores rgb -> depth / normals / semseg of a trained run on a held-out token dataset (other scenes) against the
exact ground truth, the tokenizer's own reconstruction (ceiling) and the per-pixel training prior (see
tokzoo/fm/evaluate.py); plots the per-modality training losses from the run's log.jsonl
(benchmarks/fm_curves.png) and writes a grid of predictions (benchmarks/fm_examples.png). Appends a dated table
under ``## Multimodal trainer: cross-modal prediction`` in benchmarks/RESULTS.md.

    python benchmarks/fm_learning.py --run runs/scenes-cpu --data fm-heldout/
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from tokzoo.fm.checkpoint import load_model, read_run_config
from tokzoo.fm.evaluate import evaluate, example_rows
from tokzoo.fm.generate import DecodeSettings
from tokzoo.viz import grid, save_png

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
        ax.plot(steps[window - 1:], smooth, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(f"target cross-entropy (nats, mean of {window} steps)")
    ax.set_title("tokzoo fm: per-modality training loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="Held-out token dataset")
    parser.add_argument("--train-data", type=Path, default=None)
    parser.add_argument("--n", type=int, default=None, help="Held-out samples (default: all)")
    parser.add_argument("--steps", type=int, default=8, help="Parallel decoding steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = read_run_config(args.run)
    model = load_model(args.run)
    log = [json.loads(line) for line in (args.run / "log.jsonl").read_text().splitlines()]
    load = os.getloadavg()
    t = time.perf_counter()
    settings = DecodeSettings(steps=args.steps, temperature=0.0)
    report = evaluate(model, args.data, args.train_data or config["data"], ["rgb"], TARGETS, limit=args.n,
                      settings=settings, progress=True)
    seconds = time.perf_counter() - t
    curves(log, HERE / "fm_curves.png")
    save_png(grid(example_rows(model, args.data, [f"scene_{i:06d}" for i in range(4)], ["rgb"], TARGETS, settings)),
             HERE / "fm_examples.png")
    train_seconds = sum(r["tokens"] / r["tokens_per_s"] for r in log)
    text = _table(report, config, model, log, train_seconds, seconds, load, args)
    print(text)
    if not args.no_write:
        _append(HERE / "RESULTS.md", text)


def _table(report, config, model, log, train_seconds, seconds, load, args) -> str:
    recipe = config["recipe"]
    first, last = log[0], log[-1]
    tail = log[-50:]
    mean_tail = {m: float(np.mean([r["losses"][m] for r in tail if m in r["losses"]])) for m in first["losses"]}
    lines = [
        f"### {datetime.date.today().isoformat()}: run `{args.run.name}` ({model.num_parameters() / 1e6:.1f}M parameters, "
        f"{last['step']} steps of {recipe['train']['batch_size']} samples), {report['samples']} held-out scenes",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, CPU float32, 1 torch thread, niced; load average "
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
        lines.append(f"| {t} | {r['metric']} ({r['better']} is better) | {r['model']:.4f} | {r['training_prior']:.4f} | "
                     f"{r['tokenizer_ceiling']:.4f} | {ratio:.2f}x | {goal} |")
    lines += ["", "Training loss (target cross-entropy, nats) at step 1 -> mean of the last 50 steps: "
              + ", ".join(f"{m} {first['losses'][m]:.2f} -> {mean_tail[m]:.2f}" for m in first["losses"] if m in mean_tail)
              + ". Curves: [fm_curves.png](fm_curves.png); examples (rgb | predicted depth, normals, semseg | ground truth): "
              "[fm_examples.png](fm_examples.png). `python benchmarks/fm_learning.py --run RUN --data HELDOUT`"]
    return "\n".join(lines)


def _append(path: Path, text: str) -> None:
    content = path.read_text()
    if SECTION not in content:
        path.write_text(content.rstrip("\n") + "\n\n" + SECTION + "\n\n" + text + "\n")
        return
    head, _, tail = content.partition(SECTION)
    cut = tail.find("\n## ")
    section, rest = (tail, "") if cut < 0 else (tail[:cut], tail[cut:])
    path.write_text(head + SECTION + section.rstrip("\n") + "\n\n" + text + "\n" + rest)


if __name__ == "__main__":
    main()
