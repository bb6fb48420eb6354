"""Composing frozen models: GATS, eP-ALM and MiT against their papers' baselines, full fine-tuning and the components alone.

Default suite ``vit`` (recipes/compose/vit/*.yaml): the frozen components are a ViT pretrained here (RUNS/vision:
the last of ``VISION_CHAIN``'s recipes, each going on from the one before; the first goes on from the shipped scene
ViT, recipes/compose/vision.yaml's run) and the text LM (recipes/compose/text_lm.yaml, RUNS/text_lm), each
trained first unless its folder exists. Each recipe runs into RUNS/vit/<name> (seed 0) and, for the headline rows
(``HEADLINE``), RUNS/vit/<name>_seed1; a run whose metrics.json exists is kept (the suite resumes). The report:
answer accuracy per seed and per question type, paired bootstrap 95% intervals over the held-out questions for
the comparisons the papers make (``PAIRS``), the gain over the components alone as a share of full fine-tuning's,
the constant answer of each question type, and per method trainable %, step time and inference FLOPs (counted with
torch's FlopCounterMode and timed on 32 held-out questions; split into encoder and the rest). ``--report`` writes
it to benchmarks/RESULTS.md. Suite ``rgb`` is the older set (recipes/compose/*.yaml, the shipped rgb tokenizer).

    nice -n 10 python benchmarks/compose_methods.py [--runs runs/compose] [--only gats,epalm] [--seeds 0,1] [--report]
    nice -n 10 python benchmarks/compose_methods.py --probe vision:runs/compose/vision:5,rgb:8

Suite ``rgb``: trains the text LM component (recipes/compose/text_lm.yaml) unless RUNS/text_lm exists, then each
method's recipe (recipes/compose/<name>.yaml) into RUNS/<name>, and writes a dated section with the table to
benchmarks/RESULTS.md. ``--only`` runs some methods (several processes can share the work; ``--report`` alone
then writes the table from the metrics.json files they left). ``--vision fm:RUN_DIR`` swaps the rgb component for
the encoder of a trained tokzoo.fm run (:class:`tokzoo.compose.FMEncoder`; its layers 1-4 are the encoder blocks,
5 its final norm) with the glue's rgb layers moved to it (``FM_LAYERS``). ``--probe`` fits a logistic regression
on each frozen vision component's features of the training scenes and scores it on the held-out ones, per fact
(is there a person, counts, nearest thing and its colour), against the majority answer.

    nice -n 10 python benchmarks/compose_methods.py --suite rgb [--runs runs/compose] [--only gats,epalm] [--report]
    nice -n 10 python benchmarks/compose_methods.py --suite rgb --vision fm:runs/compose/fm_scenes --runs runs/compose_fm
    nice -n 10 python benchmarks/compose_methods.py --suite rgb --runs runs/small --n-train 1000 --steps 600
    nice -n 10 python benchmarks/compose_methods.py --suite rgb --runs runs/epalm_pool2 --only epalm --set compose.settings.pool=2
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
LABELS = {
    "full_finetune": "full fine-tuning (GATS wiring, all trainable)",
    "gats": "GATS",
    "gats_answers": "GATS, lr 5e-3, 10% captions",
    "epalm": "eP-ALM",
    "mit": "MiT",
    "alone": "components alone (no glue)",
}
FM_LAYERS = {
    "full_finetune": {"layers": [{"rgb": 3, "lm": 3}, {"rgb": 5, "lm": 6}]},
    "gats": {"layers": [{"rgb": 3, "lm": 3}, {"rgb": 5, "lm": 6}]},
    "gats_answers": {"layers": [{"rgb": 3, "lm": 3}, {"rgb": 5, "lm": 6}]},
    "epalm": {"vision_layers": [4, 5]},
    "mit": {"vision_layer": 5},
    "alone": {},
}
PROBE_FACTS = {
    "person": "is there a person?",
    "boxes": "how many boxes are there?",
    "objects": "how many objects are there?",
    "nearest": "what is the nearest thing?",
    "nearest colour": "what colour is the nearest object?",
}


def run(
    names: list[str],
    runs: Path,
    vision: str | None = None,
    n_train: int | None = None,
    steps: int | None = None,
    overrides: list[str] = (),
) -> None:
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
    """``spec``: comma-separated ``rgb:LAYER`` (the shipped tokenizer's encoder) / ``fm:RUN_DIR:LAYER`` / ``vision:DIR:LAYER``
    (a transformers ViT folder: its class token and patch-token mean) (``LAYERmean``:
    the tokens' mean instead of all of them, flattened) / ``pixels:CELLS`` (control: the image's cell means); a table of
    held-out logistic-regression accuracy per fact for each, with the majority answer's first."""
    import numpy as np
    import torch

    from tokzoo.compose import build_component
    from tokzoo.compose.train import scene_set

    torch.set_num_threads(1)
    train, val = scene_set(n_train, 0, 64), scene_set(n_val, 1000003, 64)
    # per split and fact: the scenes asked that question (not all are: no nearest colour when it is a person) and their answers
    asked = {
        split: {f: [(i, dict(qa)[q]) for i, qa in enumerate(s.qa) if q in dict(qa)] for f, q in PROBE_FACTS.items()}
        for split, s in (("train", train), ("val", val))
    }
    rows = {"majority answer of the training scenes": {}}
    for fact, pairs in asked["train"].items():
        common = max({a for _, a in pairs}, key=[a for _, a in pairs].count)
        rows["majority answer of the training scenes"][fact] = float(
            np.mean([a == common for _, a in asked["val"][fact]])
        )
    for item in spec.split(","):
        kind, *source, layer = item.split(":")
        if kind == "pixels":  # control: the image itself, mean over LAYER x LAYER cells, in [0, 1]
            cells = int(layer)
            features = {
                split: s.images.reshape(len(s.images), cells, 64 // cells, cells, 64 // cells, 3)
                .mean((2, 4))
                .reshape(len(s.images), -1)
                / 255.0
                for split, s in (("train", train), ("val", val))
            }
            rows[f"pixels, {cells} x {cells} cell means ({features['train'].shape[1]} features)"] = _fit(
                features, asked
            )
            continue
        spec = {"tokenizer": "rgb"} if kind == "rgb" else {{"vision": "vision_model"}.get(kind, kind): ":".join(source)}
        component = build_component("vision", spec).freeze()
        features = {}
        with torch.no_grad():
            for split, s in (("train", train), ("val", val)):
                stream = component.run(component.begin(component.normalize(s.images)), int(layer.removesuffix("mean")))
                tokens = component.tokens(stream)
                if kind == "vision":  # the class token and the mean of the patch tokens
                    tokens = torch.cat([component.class_token(stream)[:, 0], component.grid_tokens(stream).mean(1)], 1)
                features[split] = (tokens.mean(1) if layer.endswith("mean") else tokens.flatten(1)).numpy()
        pooled = (
            ", mean over positions"
            if layer.endswith("mean")
            else (", class token + patch mean" if kind == "vision" else "")
        )
        label = (
            f"{type(component).__name__} {component.source} layer {layer.removesuffix('mean')} "
            f"({features['train'].shape[1]} features{pooled})"
        )
        rows[label] = _fit(features, asked)
    counts = " | ".join(f"{len(asked['train'][f])} / {len(asked['val'][f])}" for f in PROBE_FACTS)
    lines = [
        "| features | " + " | ".join(PROBE_FACTS) + " |",
        "|---|" + "---|" * len(PROBE_FACTS),
        f"| scenes asked (train / held-out) | {counts} |",
    ]
    lines += [f"| {name} | " + " | ".join(_pct(r[f]) for f in PROBE_FACTS) + " |" for name, r in rows.items()]
    return "\n".join(lines)


def pretraining_heads(folder: str, n: int = 500, seed: int = 7000002) -> str:
    """The held-out accuracies of a pretrained ViT folder's own heads (``heads.safetensors``) on ``n`` scenes of
    stream ``seed`` (the pretraining recipes' held-out stream), incl. human-patch recall and precision, and where
    the "person present" head goes wrong: its false "yes" on the scenes without a person and its recall by the
    people's visible area in pixels."""
    import numpy as np
    import torch
    from safetensors.torch import load_file

    from tokzoo.compose import build_component
    from tokzoo.compose.vision_pretrain import PERSON_LABEL, PretrainingHeads, head_accuracy, render_pretraining_set
    from tokzoo.datasets.scene_text import PERSON, visible_things
    from tokzoo.datasets.scenes import generate_scene

    torch.set_num_threads(1)
    if not (Path(folder) / "heads.safetensors").is_file():
        raise SystemExit(f"{folder}: no heads.safetensors (not a folder that pretrain_vision wrote)")
    component = build_component("vision", {"vision_model": folder}).freeze()
    saved = load_file(str(Path(folder) / "heads.safetensors"))
    config = json.loads((Path(folder) / "config.json").read_text())
    pixels = config["patch_size"] if "pixel_semantic.weight" in saved else 0
    heads = PretrainingHeads(component.hidden_size, attributes="side.weight" in saved, pixel_semantic=pixels)
    heads.load_state_dict(saved)
    scenes = render_pretraining_set(n, seed, config["image_size"], config["patch_size"])
    scores = head_accuracy(component, heads, scenes)
    area = np.array(
        [
            sum(t["area"] for t in visible_things(generate_scene(i, seed, config["image_size"])) if t["cls"] == PERSON)
            for i in range(n)
        ]
    )
    with torch.no_grad():
        stream = component.run(component.begin(scenes["rgb"]), component.n_layers)
        said = (heads(component.finish(stream))["present"][:, PERSON_LABEL] > 0).numpy()
    where = [f"false yes on {(area == 0).sum()} scenes without a person {said[area == 0].mean():.2f}"]
    for low, high in ((1, 40), (40, 80), (80, 160), (160, 400), (400, None)):
        chosen = (area >= low) & (area < (high or area.max() + 1))
        where.append(f"recall at {low}-{high or ''} px ({chosen.sum()} scenes) {said[chosen].mean():.2f}")
    return (
        f"{folder} ({n} scenes of stream {seed}): "
        + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
        + "\nperson present: "
        + ", ".join(where)
    )


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _psnr(own: dict) -> str:
    """The rgb tokenizer's reconstruction PSNR; an fm encoder component has no own metric here ("-")."""
    return f"{own['rgb']['reconstruction_psnr']:.2f}" if "rgb" in own else "-"


def report(runs: Path) -> str:
    rows = {
        n: json.loads((runs / n / "metrics.json").read_text()) for n in METHODS if (runs / n / "metrics.json").is_file()
    }
    lm = json.loads((runs / "text_lm" / "metrics.json").read_text())
    full = rows.get("full_finetune")
    types = sorted({t for m in rows.values() for t in m["task"]["answer_accuracy_by_type"]})
    lines = [
        "| method | trainable | answer acc. (mean of types) | vs full FT | captions BLEU-4 | caption exact | "
        "caption token acc. | step ms wall / CPU | LM text CE before -> after | rgb PSNR before -> after | frozen bit-identical |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
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
            f"{'yes' if all(m['components_unchanged'].values()) else 'no (trained)'} |"
        )
    lines += [
        "",
        "Answer accuracy by question type:",
        "",
        "| method | " + " | ".join(types) + " | all questions |",
        "|---|" + "---|" * (len(types) + 1),
    ]
    for name, m in rows.items():
        by = m["task"]["answer_accuracy_by_type"]
        lines.append(
            f"| {LABELS[name]} | "
            + " | ".join(_pct(by.get(k, float("nan"))) for k in types)
            + f" | {_pct(m['task']['answer_accuracy_questions'])} |"
        )
    samples = rows.get("gats", next(iter(rows.values())))["task"]["caption_samples"]
    lines += [
        "",
        "GATS captions of the first held-out scenes (generated / reference): "
        + "; ".join(f'"{g}" / "{r}"' for g, r in samples),
        "",
        f"Text LM component: {lm['parameters']:,} parameters, {lm['final_loss']:.3f} final training loss, held-out "
        f"text cross-entropy {lm['text_cross_entropy']:.3f}, token accuracy {_pct(lm['text_token_accuracy'])}, "
        f"{lm['step_ms']:.0f} ms/step (wall).",
    ]
    return "\n".join(lines)


def write_results(table: str, runs: Path, vision: str | None = None) -> None:
    first = next(runs / n for n in METHODS if (runs / n / "metrics.json").is_file() and n != "alone")
    recipe = json.loads((first / "compose.json").read_text())["recipe"]
    d = (
        f"{first.name}: {recipe['data']['scene_text']['n_train']:,} training scenes, {recipe['steps']} steps of "
        f"{recipe['batch_size']}"
    )
    header = (
        f"### {datetime.date.today().isoformat()}, {platform.platform()}, {os.cpu_count()} CPUs, torch threads 1, "
        f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n\n"
        f"`nice -n 10 python benchmarks/compose_methods.py{f' --vision {vision}' if vision else ''}` "
        f"(recipes/compose/*.yaml as committed{'; the rgb component and its layers replaced, see FM_LAYERS' if vision else ''}; {d}) - "
        "held-out: 200 scenes of stream 1000003 at 64 px, every question of each (answers: greedy, exact word), "
        "one caption each (greedy, up to 40 tokens).\n\n"
    )
    write_section("## Composing frozen models", header + table + "\n")


# -- the ViT suite ---------------------------------------------------------------------------------------------
VIT_RUNS = (
    "alone",
    "full_finetune",
    "gats",
    "gats_1layer",
    "epalm",
    "epalm_input",
    "prompt",
    "prefix",
    "mit",
    "mit_fixed",
    "xattn",
)
FRAME_RUNS = ("frames_alone", "frames_gats", "frames_gats_time")  # the multi-frame task: its own questions
HEADLINE = ("full_finetune", "gats", "epalm", "mit")  # also run with seed 1 (the LM alone trains nothing: one run)
VIT_LABELS = {
    "alone": "components alone (LM, no image)",
    "full_finetune": "full fine-tuning (GATS wiring, all trained)",
    "gats": "GATS, 2 layers",
    "gats_1layer": "GATS, 1 layer",
    "epalm": "eP-ALM (deep CLS injection)",
    "epalm_input": "input-level CLS injection",
    "prompt": "prompt-only (no image)",
    "prefix": "visual prefix",
    "mit": "MiT (adaptive head gates)",
    "mit_fixed": "MiT (fixed head gates)",
    "xattn": "xattn (gated cross-attention)",
    "frames_alone": "frames: LM alone",
    "frames_gats": "frames: GATS, per-stream windows (3 frames)",
    "frames_gats_time": "frames: GATS, time window (16 steps)",
}
# (better, worse): the comparisons the papers make, as paired differences over the same held-out questions
PAIRS = (
    ("gats", "alone"),
    ("full_finetune", "alone"),
    ("gats", "full_finetune"),
    ("gats", "gats_1layer"),
    ("epalm", "alone"),
    ("epalm", "prompt"),
    ("epalm", "epalm_input"),
    ("mit", "prefix"),
    ("mit", "mit_fixed"),
    ("mit", "alone"),
    ("prefix", "alone"),
)


def run_dir(runs: Path, name: str, seed: int) -> Path:
    return runs / "vit" / (name if seed == 0 else f"{name}_seed{seed}")


# The ViT of the method rows, chosen by its own held-out heads (RESULTS, "Composing frozen models", 2026-12-07
# (evening)): recipes/compose/<name>.yaml in order, each one's init the folder of the one before.
VISION_CHAIN = ("vision_long", "vision_long_pixels")


def build_vision(vision_dir: Path) -> None:
    """Train ``VISION_CHAIN`` into ``vision_dir`` (its earlier links beside it, as vision_dir.name + "_" + name)
    unless ``vision_dir`` holds a model already."""
    from tokzoo.compose import read_recipe, resolve_recipe
    from tokzoo.compose.train import run_recipe

    if (vision_dir / "model.safetensors").is_file():
        return
    previous = None
    for i, name in enumerate(VISION_CHAIN):
        out = vision_dir if i == len(VISION_CHAIN) - 1 else vision_dir.with_name(f"{vision_dir.name}_{name}")
        recipe = read_recipe(ROOT / f"recipes/compose/{name}.yaml")
        if previous is not None:
            recipe["compose"]["pretrain_vision"]["init"] = str(previous)
        if not (out / "model.safetensors").is_file():
            run_recipe(resolve_recipe(recipe, f"recipes/compose/{name}.yaml"), out)
        previous = out


def run_vit(names: list[str], runs: Path, seeds: list[int], overrides: list[str] = ()) -> None:
    """Train the components if missing, then every (recipe, seed) whose metrics.json is missing."""
    import torch

    from tokzoo.compose import read_recipe, resolve_recipe
    from tokzoo.compose.train import run_recipe

    torch.set_num_threads(1)
    lm_dir, vision_dir = runs / "text_lm", runs / "vision"
    if not (lm_dir / "model.safetensors").is_file():
        run_recipe(read_recipe(ROOT / "recipes/compose/text_lm.yaml"), lm_dir)
    build_vision(vision_dir)
    for name in names:
        for seed in seeds if name in HEADLINE else [0]:
            out = run_dir(runs, name, seed)
            if (out / "metrics.json").is_file():
                continue
            recipe = read_recipe(ROOT / f"recipes/compose/vit/{name}.yaml")
            recipe["seed"] = seed
            recipe["compose"]["components"] = {
                "lm": {"causal_lm": str(lm_dir.resolve())},
                "vision": {"vision_model": str(vision_dir.resolve())},
            }
            for item in overrides:
                _override(recipe, item)
            run_recipe(resolve_recipe(recipe, f"recipes/compose/vit/{name}.yaml"), out)


def constant_answers(runs: Path, n_train: int) -> dict:
    """Held-out accuracy per question type of answering each type's (and each question's) most common training answer."""
    import numpy as np

    from tokzoo.compose.train import scene_set
    from tokzoo.datasets.scene_text import question_type

    path = runs / "vit" / f"constant_{n_train}.json"
    if path.is_file():
        return json.loads(path.read_text())
    train, val = scene_set(n_train, 0, 64), scene_set(200, 1000003, 64)
    answers: dict = {"type": {}, "question": {}}
    for qa in train.qa:
        for q, a in qa:
            for key, table in ((question_type(q), answers["type"]), (q, answers["question"])):
                table.setdefault(key, []).append(a)
    common = {level: {k: max(set(v), key=v.count) for k, v in table.items()} for level, table in answers.items()}
    hits: dict = {"type": {}, "question": {}}
    for qa in val.qa:
        for q, a in qa:
            hits["type"].setdefault(question_type(q), []).append(common["type"].get(question_type(q)) == a)
            hits["question"].setdefault(question_type(q), []).append(common["question"].get(q) == a)
    result = {level: {k: float(np.mean(v)) for k, v in sorted(h.items())} for level, h in hits.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def type_mean(hits, kinds) -> float:
    """Mean over question types of the accuracy within each (the headline metric)."""
    import numpy as np

    return float(np.mean([hits[kinds == k].mean() for k in np.unique(kinds)]))


def paired_interval(a: dict, b: dict, n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(difference, low, high): a - b in mean-over-types accuracy and its paired bootstrap 95% interval over questions."""
    import numpy as np

    kinds = np.array(a["task"]["answer_kinds"])
    assert kinds.tolist() == b["task"]["answer_kinds"], "runs were evaluated on different questions"
    ha, hb = np.array(a["task"]["answer_hits"], float), np.array(b["task"]["answer_hits"], float)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n):
        i = rng.integers(0, len(kinds), len(kinds))
        diffs.append(type_mean(ha[i], kinds[i]) - type_mean(hb[i], kinds[i]))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return type_mean(ha, kinds) - type_mean(hb, kinds), float(low), float(high)


def inference_cost(directory: Path, n: int = 32) -> dict:
    """FLOPs per held-out question (counted) and ms per question (timed, median of 3) of one teacher-forced forward,
    from the raw images (the encoder included, split out as ``encoder``)."""
    import time

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from tokzoo.compose import load_composition
    from tokzoo.compose.task import SceneTask, predicting
    from tokzoo.compose.train import lm_tokenizer, scene_set

    torch.set_num_threads(1)
    comp = load_composition(directory).eval()
    (encoder,) = [name for name in comp.components if name != comp.lm_name]
    task = SceneTask(scene_set(200, 1000003, 64), comp.components[encoder].normalize, lm_tokenizer(comp.lm))
    batch = task.batch(task.questions[:n])
    inputs = {comp.lm_name: batch["ids"], encoder: batch["images"]}
    select = predicting(batch["loss_mask"])
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            comp(inputs, batch["prompt_len"], select)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            comp(inputs, batch["prompt_len"], select)
            times.append(time.perf_counter() - start)
    counts = counter.get_flop_counts()
    total = sum(counts["Global"].values())
    prefix = f"Composition.components.{encoder}."
    mine = [
        k for k in counts if k.startswith(prefix)
    ]  # the outermost modules only (a parent's count holds its children's)
    enc = sum(sum(counts[k].values()) for k in mine if not any(k.startswith(o + ".") for o in mine))
    return {"flops": total / n, "encoder_flops": enc / n, "ms": 1000 * sorted(times)[1] / n}


def _gain(method: dict, alone: dict, full: dict) -> str:
    """(method - alone) / (full fine-tuning - alone) in answer accuracy; "n/a" when fine-tuning gained nothing."""
    acc = {k: m["task"]["answer_accuracy"] for k, m in (("m", method), ("a", alone), ("f", full))}
    if acc["f"] - acc["a"] <= 0:
        return "n/a (FT gained nothing)"
    return f"{(acc['m'] - acc['a']) / (acc['f'] - acc['a']):.2f}"


def report_vit(runs: Path) -> str:
    import numpy as np

    rows, frames = {}, {}
    for name in FRAME_RUNS:
        path = run_dir(runs, name, 0) / "metrics.json"
        if path.is_file():
            frames[name] = json.loads(path.read_text())
    for name in VIT_RUNS:
        for seed in (0, 1):
            path = run_dir(runs, name, seed) / "metrics.json"
            if path.is_file():
                rows.setdefault(name, {})[seed] = json.loads(path.read_text())
    rows = {name: by_seed for name, by_seed in rows.items() if 0 in by_seed}  # the table needs seed 0 (others may run)
    if not rows:
        return "\n".join(["no single-image runs"] + frame_table(frames))
    recipe = json.loads((run_dir(runs, next(iter(rows)), 0) / "compose.json").read_text())["recipe"]
    n_train = recipe["data"]["scene_text"]["n_train"]
    alone, full = rows.get("alone", {}).get(0), rows.get("full_finetune", {})
    cost = {name: inference_cost(run_dir(runs, name, 0)) for name in rows}  # the single-image runs
    lm_flops = cost["alone"]["flops"] if "alone" in cost else None
    lines = [
        "| method | trainable | answer acc., seed 0 / 1 | vs LM alone, paired 95% interval | gain / full FT's gain, seed 0 / 1 | "
        "step ms (CPU) | inference MFLOPs / question: all (encoder) | added over the LM, MFLOPs | ms / question | "
        "components bit-identical |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_seed in rows.items():
        m = by_seed[0]
        acc = " / ".join(_pct(by_seed[s]["task"]["answer_accuracy"]) for s in sorted(by_seed))
        interval = "-"
        if alone and name != "alone":
            d, lo, hi = paired_interval(m, alone)
            interval = f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
        gain = "-"
        if alone and full and paired_interval(full[0], alone)[1] <= 0:
            gain = "n/a (FT's gain within the interval)" if name not in ("alone", "full_finetune") else "-"
        elif alone and full and name not in ("alone", "full_finetune"):
            gain = " / ".join(_gain(by_seed[s], alone, full[s]) for s in sorted(by_seed) if s in full)
        c = cost[name]
        added = f"{(c['flops'] - c['encoder_flops'] - lm_flops) / 1e6:.2f}" if lm_flops is not None else "-"
        step = "-" if m["step_cpu_ms"] is None else f"{m['step_cpu_ms']:.0f}"
        same = "yes" if all(m["components_unchanged"].values()) else "no (trained)"
        lines.append(
            f"| {VIT_LABELS[name]} | {m['split']['trainable']:,} ({m['split']['trainable_percent']:.2f}%) | {acc} | "
            f"{interval} | {gain} | {step} | {c['flops'] / 1e6:.2f} ({c['encoder_flops'] / 1e6:.2f}) | {added} | "
            f"{c['ms']:.2f} | {same} |"
        )
    lines += [
        "",
        "Paired differences (mean-over-types accuracy, points; 95% bootstrap interval over the 2,000 resamples of "
        "the held-out questions, seed 0 runs):",
        "",
        "| comparison | difference | 95% interval | beyond the interval |",
        "|---|---|---|---|",
    ]
    for a, b in PAIRS:
        if a in rows and b in rows:
            d, lo, hi = paired_interval(rows[a][0], rows[b][0])
            lines.append(
                f"| {VIT_LABELS[a]} - {VIT_LABELS[b]} | {100 * d:+.1f} | [{100 * lo:+.1f}, {100 * hi:+.1f}] | "
                f"{'yes' if lo > 0 else 'no'} |"
            )
    constant = constant_answers(runs, n_train)
    types = sorted(constant["type"])
    lines += [
        "",
        "Answer accuracy by question type (seed 0; constant answers from the training scenes):",
        "",
        "| method | " + " | ".join(types) + " | mean of types |",
        "|---|" + "---|" * (len(types) + 1),
    ]
    for level, label in (("type", "constant answer per question type"), ("question", "constant answer per question")):
        lines.append(
            f"| {label} | "
            + " | ".join(_pct(constant[level][k]) for k in types)
            + f" | {_pct(float(np.mean(list(constant[level].values()))))} |"
        )
    for name, by_seed in rows.items():
        by = by_seed[0]["task"]["answer_accuracy_by_type"]
        lines.append(
            f"| {VIT_LABELS[name]} | "
            + " | ".join(_pct(by.get(k, float("nan"))) for k in types)
            + f" | {_pct(by_seed[0]['task']['answer_accuracy'])} |"
        )
    best = {k: max(r[0]["task"]["answer_accuracy_by_type"].get(k, 0) for r in rows.values()) for k in types}
    above = [k for k in types if best[k] > max(constant["question"][k], constant["type"][k])]
    lines += [
        "",
        f"Question types above both constant answers for at least one method: {len(above)} of "
        f"{len(types)} ({', '.join(above) or 'none'}).",
    ]
    return "\n".join(lines + frame_table(frames))


def frame_table(frames: dict) -> list[str]:
    """The multi-frame task's rows: accuracy per type and the paired difference of the two GATS windows."""
    if not frames:
        return []
    types = sorted({k for m in frames.values() for k in m["task"]["answer_accuracy_by_type"]})
    lines = [
        "",
        f"Multi-frame task (3 frames, questions about the first view whose answer differs in the last; "
        f"{next(iter(frames.values()))['task']['n_questions']} held-out questions):",
        "",
        "| method | " + " | ".join(types) + " | mean of types |",
        "|---|" + "---|" * (len(types) + 1),
    ]
    for name, m in frames.items():
        by = m["task"]["answer_accuracy_by_type"]
        lines.append(
            f"| {VIT_LABELS[name]} | "
            + " | ".join(_pct(by.get(k, float("nan"))) for k in types)
            + f" | {_pct(m['task']['answer_accuracy'])} |"
        )
    for a, b in (("frames_gats", "frames_gats_time"), ("frames_gats", "frames_alone")):
        if a in frames and b in frames:
            d, lo, hi = paired_interval(frames[a], frames[b])
            lines.append(
                f"\n{VIT_LABELS[a]} - {VIT_LABELS[b]}: {100 * d:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}]"
                f" (paired 95% bootstrap), beyond the interval: {'yes' if lo > 0 else 'no'}."
            )
    return lines


def write_vit_results(table: str, runs: Path) -> None:
    """A dated section under "Composing frozen models that know the scene" in benchmarks/RESULTS.md (newest first)."""
    vision = json.loads((runs / "vision" / "metrics.json").read_text())
    heads = ", ".join(f"{k} {v:.3f}" for k, v in vision["held_out"].items())
    header = (
        f"### {datetime.date.today().isoformat()}, {platform.platform()}, {os.cpu_count()} CPUs, torch threads 1, "
        f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n\n"
        "`nice -n 5 python benchmarks/compose_methods.py` (recipes/compose/vit/*.yaml as committed; load average at report time, the runs ran at ~10) - held-out: 200 "
        "scenes of stream 1000003 at 64 px, every question of each (greedy, exact word). Vision component: "
        f"{vision['parameters']:,} parameters, held-out pretraining heads: {heads}.\n\n"
    )
    write_section("## Composing frozen models that know the scene", header + table + "\n")


def write_section(marker: str, section: str) -> None:
    """Put ``section`` first under the ``marker`` heading of RESULTS.md (after its intro), creating the heading."""
    path = ROOT / "benchmarks/RESULTS.md"
    text = path.read_text()
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
    parser.add_argument("--suite", choices=("vit", "rgb"), default="vit")
    parser.add_argument("--only", default=None, help="Comma-separated recipe names (default: the suite's)")
    parser.add_argument("--seeds", default="0,1", help="Seeds of the headline rows (vit suite)")
    parser.add_argument("--report", action="store_true", help="Only write the table from the runs' metrics.json.")
    parser.add_argument(
        "--vision", default=None, help="fm:RUN_DIR: the vision component is that fm run's encoder (rgb suite)"
    )
    parser.add_argument("--n-train", type=int, default=None, help="Training scenes of the glue runs (rgb suite)")
    parser.add_argument("--steps", type=int, default=None, help="Steps of the glue runs (rgb suite)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="Override a recipe field of the methods run, e.g. optimizer.lr=5e-3 (repeatable)",
    )
    parser.add_argument(
        "--probe", default=None, help="vision:DIR:LAYER,rgb:LAYER,fm:RUN_DIR:LAYER: a linear-probe table"
    )
    parser.add_argument("--heads", default=None, help="DIR: held-out accuracy of a pretrained ViT folder's own heads")
    args = parser.parse_args()
    if args.heads:
        print(pretraining_heads(args.heads))
        return
    if args.probe:
        print(probe(args.probe))
        return
    if args.suite == "vit":
        names = args.only.split(",") if args.only else list(VIT_RUNS + FRAME_RUNS)
        if not args.report:
            run_vit(names, args.runs, [int(s) for s in args.seeds.split(",")], args.set)
        table = report_vit(args.runs)
        print(table)
        if args.report:
            write_vit_results(table, args.runs)
        return
    if not args.report:
        run(
            [n for n in (args.only or ",".join(METHODS)).split(",") if n],
            args.runs,
            args.vision,
            args.n_train,
            args.steps,
            args.set,
        )
    table = report(args.runs)
    print(table)
    if args.report:
        write_results(table, args.runs, args.vision)


if __name__ == "__main__":
    main()
