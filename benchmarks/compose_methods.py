"""Composing frozen models: GATS, eP-ALM and MiT against full fine-tuning and the components alone.

Trains the text LM component (recipes/compose/text_lm.yaml) unless RUNS/text_lm exists, then each method's
recipe (recipes/compose/<name>.yaml) into RUNS/<name>, and writes a dated section with the table to
benchmarks/RESULTS.md. ``--only`` runs some methods (several processes can share the work; ``--report`` alone
then writes the table from the metrics.json files they left).

    nice -n 10 python benchmarks/compose_methods.py [--runs runs/compose] [--only gats,epalm] [--report]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("full_finetune", "gats", "gats_answers", "epalm", "mit", "alone")
LABELS = {"full_finetune": "full fine-tuning (GATS wiring, all trainable)", "gats": "GATS",
          "gats_answers": "GATS, lr 5e-3, 10% captions", "epalm": "eP-ALM",
          "mit": "MiT", "alone": "components alone (no glue)"}  # fmt: skip


def run(names: list[str], runs: Path) -> None:
    import torch

    from tokzoo.compose import read_recipe
    from tokzoo.compose.train import run_recipe

    torch.set_num_threads(1)
    lm_dir = runs / "text_lm"
    if not (lm_dir / "model.safetensors").is_file():
        run_recipe(read_recipe(ROOT / "recipes/compose/text_lm.yaml"), lm_dir)
    for name in names:
        recipe = read_recipe(ROOT / f"recipes/compose/{name}.yaml")
        recipe["compose"]["components"]["lm"] = {"causal_lm": str(lm_dir)}
        run_recipe(recipe, runs / name)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def report(runs: Path) -> str:
    rows = {n: json.loads((runs / n / "metrics.json").read_text()) for n in METHODS if (runs / n / "metrics.json").is_file()}
    lm = json.loads((runs / "text_lm" / "metrics.json").read_text())
    full = rows.get("full_finetune")
    types = sorted({t for m in rows.values() for t in m["task"]["answer_accuracy_by_type"]})
    lines = ["| method | trainable | answer acc. (mean of types) | vs full FT | captions BLEU-4 | caption exact | "
             "caption token acc. | step ms wall / CPU | LM text CE before -> after | rgb PSNR before -> after | frozen bit-identical |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in rows.items():
        t, s = m["task"], m["split"]
        vs = f"{t['answer_accuracy'] / full['task']['answer_accuracy']:.2f}x" if full else "-"
        before, after = m["components_before"], m["components_after"]
        step = "-" if m["step_ms"] is None else f"{m['step_ms']:.0f} / {m['step_cpu_ms']:.0f}"
        lines.append(
            f"| {LABELS[name]} | {s['trainable']:,} ({s['trainable_percent']:.2f}%) | {_pct(t['answer_accuracy'])} | {vs} | "
            f"{t['caption_bleu4']:.3f} | {_pct(t['caption_exact'])} | {_pct(t['caption_token_accuracy'])} | {step} | "
            f"{before['lm']['text_cross_entropy']:.3f} -> {after['lm']['text_cross_entropy']:.3f} | "
            f"{before['rgb']['reconstruction_psnr']:.2f} -> {after['rgb']['reconstruction_psnr']:.2f} | "
            f"{'yes' if all(m['components_unchanged'].values()) else 'no (trained)'} |")
    lines += ["", "Answer accuracy by question type:", "",
              "| method | " + " | ".join(types) + " | all questions |", "|---|" + "---|" * (len(types) + 1)]
    for name, m in rows.items():
        by = m["task"]["answer_accuracy_by_type"]
        lines.append(f"| {LABELS[name]} | " + " | ".join(_pct(by.get(k, float('nan'))) for k in types)
                     + f" | {_pct(m['task']['answer_accuracy_questions'])} |")
    samples = rows.get("gats", next(iter(rows.values())))["task"]["caption_samples"]
    lines += ["", "GATS captions of the first held-out scenes (generated / reference): "
              + "; ".join(f"\"{g}\" / \"{r}\"" for g, r in samples), "",
              f"Text LM component: {lm['parameters']:,} parameters, {lm['final_loss']:.3f} final training loss, held-out "
              f"text cross-entropy {lm['text_cross_entropy']:.3f}, token accuracy {_pct(lm['text_token_accuracy'])}, "
              f"{lm['step_ms']:.0f} ms/step (wall)."]
    return "\n".join(lines)


def write_results(table: str, runs: Path) -> None:
    any_metrics = json.loads(next((runs / n / "metrics.json") for n in METHODS if (runs / n / "metrics.json").is_file()).read_text())
    d = any_metrics["recipe"]
    header = (f"### {datetime.date.today().isoformat()}, {platform.platform()}, {os.cpu_count()} CPUs, torch threads 1, "
              f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n\n"
              f"`nice -n 10 python benchmarks/compose_methods.py` (recipes/compose/*.yaml as committed; {d}) - "
              "held-out: 200 scenes of stream 1000003 at 64 px, every question of each (answers: greedy, exact word), "
              "one caption each (greedy, up to 40 tokens).\n\n")
    path = ROOT / "benchmarks/RESULTS.md"
    text = path.read_text()
    marker = "## Composing frozen models"
    section = header + table + "\n"
    if marker in text:
        head, tail = text.split(marker, 1)
        intro, _, rest = tail.partition("\n### ")
        text = head + marker + intro + "\n" + section + ("\n### " + rest if rest else "")
    else:
        text = text.rstrip() + f"\n\n{marker}\n\n" + section
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs/compose")
    parser.add_argument("--only", default=",".join(METHODS))
    parser.add_argument("--report", action="store_true", help="Only write the table from the runs' metrics.json.")
    args = parser.parse_args()
    if not args.report:
        run([n for n in args.only.split(",") if n], args.runs)
    table = report(args.runs)
    print(table)
    if args.report:
        write_results(table, args.runs)


if __name__ == "__main__":
    main()
