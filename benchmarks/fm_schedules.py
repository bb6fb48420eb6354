"""Decoding schedules of a trained fm model, per-pixel and structure-sensitive: MaskGIT vs random order (ROAR)
vs one step, on held-out scenes (semseg mIoU and boundary F1, depth abs-rel, normals angle).

Each schedule decodes every target from rgb with the same seed; greedy within a step (temperature 0) unless
``--temperature`` is given. Appends a table under ``## Multimodal trainer: decoding schedules`` in RESULTS.md.

    python benchmarks/fm_schedules.py --model runs/scenes-cpu --data fm-heldout/ [--n 256 --steps 8]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

import torch
from results_md import append_to_section

from tokzoo.fm.checkpoint import load_model, read_run_config
from tokzoo.fm.evaluate import evaluate
from tokzoo.fm.generate import DecodeSettings

SECTION = "## Multimodal trainer: decoding schedules"


def schedules(steps: int, temperature: float, seed: int) -> dict[str, DecodeSettings]:
    return {
        f"MaskGIT, {steps} steps": DecodeSettings(steps, temperature, seed=seed, order="maskgit"),
        f"random order, {steps} steps": DecodeSettings(steps, temperature, seed=seed, order="random"),
        "one step": DecodeSettings(1, temperature, seed=seed),
    }


def measure(
    model_dir: Path,
    data: Path,
    targets: list[str],
    n: int | None,
    steps: int,
    temperature: float,
    seed: int,
    train_data: Path | None = None,
) -> dict[str, dict]:
    model = load_model(model_dir)
    train_data = train_data or read_run_config(model_dir)["data"]
    return {
        name: evaluate(model, data, train_data, ["rgb"], targets, limit=n, settings=settings, train_limit=n)
        for name, settings in schedules(steps, temperature, seed).items()
    }


def table(reports: dict[str, dict], command: str) -> str:
    first = next(iter(reports.values()))
    columns = []
    for target, r in first["targets"].items():
        columns.append((target, None, r["metric"], r["better"]))
        columns += [(target, name, name, also["better"]) for name, also in r.get("also", {}).items()]
    header = " | ".join(f"{t} {metric} ({better})" for t, _, metric, better in columns)
    lines = [
        f"### {datetime.date.today().isoformat()}: {first['samples']} held-out samples, from rgb",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}. `{command}`",
        "",
        f"| schedule | {header} |",
        "|---" * (len(columns) + 1) + "|",
    ]
    rows = [(name, report["targets"]) for name, report in reports.items()]
    rows += [("tokenizer ceiling", None), ("training prior", None)]
    for name, targets in rows:
        cells = []
        for t, also, _, _ in columns:
            source = (targets or first["targets"])[t]
            source = source["also"][also] if also else source
            key = "model" if targets is not None else name.replace(" ", "_")
            cells.append(f"{source[key]:.4f}")
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="Held-out token dataset (with its _source)")
    parser.add_argument("--train-data", type=Path, default=None)
    parser.add_argument("--to", default="depth,normals,semseg")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reports = measure(
        args.model, args.data, args.to.split(","), args.n, args.steps, args.temperature, args.seed, args.train_data
    )
    command = "python benchmarks/fm_schedules.py " + " ".join(sys.argv[1:])
    text = table(reports, command)
    print(text)
    if not args.no_write:
        append_to_section(Path(__file__).with_name("RESULTS.md"), SECTION, text)


if __name__ == "__main__":
    main()
