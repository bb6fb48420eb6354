"""Composing frozen models: GATS, eP-ALM and MiT against full fine-tuning and the components alone.

Trains the text LM component (recipes/compose/text_lm.yaml) unless RUNS/text_lm exists, then each method's
recipe (recipes/compose/<name>.yaml) into RUNS/<name>, and writes a dated section with the table to
benchmarks/RESULTS.md. ``--only`` runs some methods (several processes can share the work; ``--report`` alone
then writes the table from the metrics.json files they left). ``--vision fm:RUN_DIR`` swaps the rgb component for
the encoder of a trained tokzoo.fm run (:class:`tokzoo.compose.FMEncoder`; its layers 1-4 are the encoder blocks,
5 its final norm) with the glue's rgb layers moved to it (``FM_LAYERS``). ``--probe`` fits a logistic regression
on each frozen vision component's features of the training scenes and scores it on the held-out ones, per fact
(is there a person, counts, nearest thing and its colour), against the majority answer.

    nice -n 10 python benchmarks/compose_methods.py [--runs runs/compose] [--only gats,epalm] [--report]
    nice -n 10 python benchmarks/compose_methods.py --vision fm:runs/compose/fm_scenes --runs runs/compose_fm
    nice -n 10 python benchmarks/compose_methods.py --runs runs/small --n-train 1000 --steps 600   # the older, smaller runs
    nice -n 10 python benchmarks/compose_methods.py --runs runs/epalm_pool2 --only epalm --set compose.settings.pool=2
    nice -n 10 python benchmarks/compose_methods.py --probe rgb:8,fm:runs/compose/fm_scenes:4,fm:runs/compose/fm_scenes:5mean
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
FM_LAYERS = {"full_finetune": {"layers": [{"rgb": 3, "lm": 3}, {"rgb": 5, "lm": 6}]},
             "gats": {"layers": [{"rgb": 3, "lm": 3}, {"rgb": 5, "lm": 6}]},
             "gats_answers": {"layers": [{"rgb": 3, "lm": 3}, {"rgb": 5, "lm": 6}]},
             "epalm": {"vision_layers": [4, 5]}, "mit": {"vision_layer": 5}, "alone": {}}  # fmt: skip
PROBE_FACTS = {"person": "is there a person?", "boxes": "how many boxes are there?",
               "objects": "how many objects are there?", "nearest": "what is the nearest thing?",
               "nearest colour": "what colour is the nearest object?"}  # fmt: skip


def run(names: list[str], runs: Path, vision: str | None = None, n_train: int | None = None,
        steps: int | None = None, overrides: list[str] = ()) -> None:
    import torch

    from tokzoo.compose import read_recipe, resolve_recipe
    from tokzoo.compose.train import run_recipe

    torch.set_num_threads(1)
    lm_dir = runs / "text_lm"
    if not (lm_dir / "model.safetensors").is_file():
        run_recipe(read_recipe(ROOT / "recipes/compose/text_lm.yaml"), lm_dir)
    for name in names:
        recipe = read_recipe(ROOT / f"recipes/compose/{name}.yaml")
        recipe["compose"]["components"]["lm"] = {"causal_lm": str(lm_dir)}
        if n_train:  # more training scenes for the glue; the LM component keeps its own
            recipe["data"]["scene_text"]["n_train"] = n_train
        if steps and recipe["steps"]:
            recipe["steps"] = steps
        if vision:
            kind, source = vision.split(":", 1)
            recipe["compose"]["components"]["rgb"] = {kind: source}
            recipe["compose"]["settings"].update(FM_LAYERS[name] if kind == "fm" else {})
        for item in overrides:  # last: a --set wins over --vision's layers
            _override(recipe, item)
        run_recipe(resolve_recipe(recipe, f"recipes/compose/{name}.yaml with --set"), runs / name)


def _override(recipe: dict, item: str) -> None:
    """``KEY.PATH=VALUE`` (VALUE read as JSON, else kept as text) into the resolved recipe, e.g.
    ``optimizer.component_lr=2e-4``, ``compose.settings.inject_layers=[4,5,6]``."""
    path, sep, value = item.partition("=")
    *parents, key = path.split(".")
    if not sep or not key:
        raise SystemExit(f"--set {item!r}: expected KEY.PATH=VALUE")
    node = recipe
    for part in parents:
        node = node.setdefault(part, {})
    try:
        node[key] = json.loads(value)
    except json.JSONDecodeError:
        node[key] = value


def _fit(features: dict, asked: dict) -> dict[str, float]:
    """Held-out accuracy per fact of a logistic regression (C 0.05) fitted on the training scenes' features."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    accuracy = {}
    for fact in PROBE_FACTS:
        (fit_at, fit_to), (val_at, val_to) = (zip(*asked[split][fact]) for split in ("train", "val"))
        model = LogisticRegression(C=0.05, max_iter=500).fit(features["train"][list(fit_at)], fit_to)
        accuracy[fact] = float(np.mean(model.predict(features["val"][list(val_at)]) == np.array(val_to)))
    return accuracy


def probe(spec: str, n_train: int = 1000, n_val: int = 200) -> str:
    """``spec``: comma-separated ``rgb:LAYER`` (the shipped tokenizer's encoder) / ``fm:RUN_DIR:LAYER`` (``LAYERmean``:
    the tokens' mean instead of all of them, flattened) / ``pixels:CELLS`` (control: the image's cell means); a table of
    held-out logistic-regression accuracy per fact for each, with the majority answer's first."""
    import numpy as np
    import torch

    from tokzoo.compose import build_component
    from tokzoo.compose.train import scene_set

    torch.set_num_threads(1)
    train, val = scene_set(n_train, 0, 64), scene_set(n_val, 1000003, 64)
    # per split and fact: the scenes asked that question (not all are: no nearest colour when it is a person) and their answers
    asked = {split: {f: [(i, dict(qa)[q]) for i, qa in enumerate(s.qa) if q in dict(qa)] for f, q in PROBE_FACTS.items()}
             for split, s in (("train", train), ("val", val))}  # fmt: skip
    rows = {"majority answer of the training scenes": {}}
    for fact, pairs in asked["train"].items():
        common = max({a for _, a in pairs}, key=[a for _, a in pairs].count)
        rows["majority answer of the training scenes"][fact] = float(np.mean([a == common for _, a in asked["val"][fact]]))
    for item in spec.split(","):
        kind, *source, layer = item.split(":")
        if kind == "pixels":  # control: the image itself, mean over LAYER x LAYER cells, in [0, 1]
            cells = int(layer)
            features = {split: s.images.reshape(len(s.images), cells, 64 // cells, cells, 64 // cells, 3).mean((2, 4))
                        .reshape(len(s.images), -1) / 255.0 for split, s in (("train", train), ("val", val))}  # fmt: skip
            rows[f"pixels, {cells} x {cells} cell means ({features['train'].shape[1]} features)"] = _fit(features, asked)
            continue
        component = build_component("vision", {kind: ":".join(source) if source else "rgb"} if kind == "fm" else {"tokenizer": "rgb"}).freeze()
        features = {}
        with torch.no_grad():
            for split, s in (("train", train), ("val", val)):
                stream = component.run(component.begin(component.normalize(s.images)), int(layer.removesuffix("mean")))
                tokens = component.tokens(stream)
                features[split] = (tokens.mean(1) if layer.endswith("mean") else tokens.flatten(1)).numpy()
        pooled = ", mean over positions" if layer.endswith("mean") else ""
        label = (f"{type(component).__name__} {component.source} layer {layer.removesuffix('mean')} "
                 f"({features['train'].shape[1]} features{pooled})")
        rows[label] = _fit(features, asked)
    counts = " | ".join(f"{len(asked['train'][f])} / {len(asked['val'][f])}" for f in PROBE_FACTS)
    lines = ["| features | " + " | ".join(PROBE_FACTS) + " |", "|---|" + "---|" * len(PROBE_FACTS),
             f"| scenes asked (train / held-out) | {counts} |"]
    lines += [f"| {name} | " + " | ".join(_pct(r[f]) for f in PROBE_FACTS) + " |" for name, r in rows.items()]
    return "\n".join(lines)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _psnr(own: dict) -> str:
    """The rgb tokenizer's reconstruction PSNR; an fm encoder component has no own metric here ("-")."""
    return f"{own['rgb']['reconstruction_psnr']:.2f}" if "rgb" in own else "-"


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
            f"{_psnr(before)} -> {_psnr(after)} | "
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


def write_results(table: str, runs: Path, vision: str | None = None) -> None:
    first = next(runs / n for n in METHODS if (runs / n / "metrics.json").is_file() and n != "alone")
    recipe = json.loads((first / "compose.json").read_text())["recipe"]
    d = (f"{first.name}: {recipe['data']['scene_text']['n_train']:,} training scenes, {recipe['steps']} steps of "
         f"{recipe['batch_size']}")
    header = (f"### {datetime.date.today().isoformat()}, {platform.platform()}, {os.cpu_count()} CPUs, torch threads 1, "
              f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n\n"
              f"`nice -n 10 python benchmarks/compose_methods.py{f' --vision {vision}' if vision else ''}` "
              f"(recipes/compose/*.yaml as committed{'; the rgb component and its layers replaced, see FM_LAYERS' if vision else ''}; {d}) - "
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
    parser.add_argument("--vision", default=None, help="fm:RUN_DIR: the vision component is that fm run's encoder")
    parser.add_argument("--n-train", type=int, default=None, help="Training scenes of the glue runs (default: the recipes')")
    parser.add_argument("--steps", type=int, default=None, help="Steps of the glue runs (default: the recipes')")
    parser.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="Override a recipe field of the methods run, e.g. optimizer.lr=5e-3 (repeatable)")
    parser.add_argument("--probe", default=None, help="rgb:LAYER,fm:RUN_DIR:LAYER: print a linear-probe table, train nothing")
    args = parser.parse_args()
    if args.probe:
        print(probe(args.probe))
        return
    if not args.report:
        run([n for n in args.only.split(",") if n], args.runs, args.vision, args.n_train, args.steps, args.set)
    table = report(args.runs)
    print(table)
    if args.report:
        write_results(table, args.runs, args.vision)


if __name__ == "__main__":
    main()
