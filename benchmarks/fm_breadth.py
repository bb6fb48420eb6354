"""Breadth without loss: one fm model on eleven modalities vs the four-modality model, same size, steps and budgets.

One command runs the whole experiment (``--tiny``: the same path at toy size, what the tests run):

1. data: rooms (indoor scenes) with all eleven modalities, outdoor scenes with the seven pixel modalities, held-out
   rooms; Canny edges, palette and metadata pseudo-labelled (classical labelers), the dense feature map by a frozen
   vision model (``--vision-model DIR``: a transformers ViT or DINOv2 folder; default tokzoo's shipped scene ViT)
   and tokenized (``--feature-tokenizer``: default the zoo's ``scene_vit_dense``, trained on that ViT's features)
   into its own folder of the same samples; the scenes' own captions (``.captions.txt``) into a third folder;
2. train ``recipes/fm/breadth-4.yaml`` and ``breadth-10.yaml`` (eleven modalities; ``--wide RECIPE``: another
   eleven-modality recipe in its place, e.g. recipes/fm/breadth-10-weighted.yaml) with each seed (rooms 3 :
   outdoor 1, the held-out rooms scored during training);
3. ``tokzoo fm eval`` rgb -> depth, normals, semseg on the held-out rooms; the eleven-modality model passes where it
   is within max(5% relative, 2x the seed spread) of the four-modality one on every metric. New directions of the
   wide model, each against its training prior: rgb -> captions (class-word accuracy vs the text-only prior,
   tokzoo/fm/caption_words.py), captions -> semseg (mIoU vs the majority map), rgb -> edges (F1 at 1 px vs the
   empty map), rgb -> dense_features (cosine vs the mean feature map), rgb -> human_pose (keypoint error vs one
   human in the mean pose). ``--decision-samples K``: the new directions also scored by the model's decision over
   K sampled predictions (``tokzoo fm eval --samples``), reported as a second count beside greedy decoding.
   Evaluations are reused when the same request wrote them after the run's last checkpoint.
``--dim D``: both recipes at model width D (runs named NAME-dimD-seedS), the capacity question.

``--finetune RECIPE`` (after the four runs): each seed's eleven-modality run fine-tuned by RECIPE (``train.init``),
e.g. recipes/fm/directions_finetune.yaml, which trains rgb -> captions and captions -> semseg directly; scored the same
way, beside both variants (more steps than they had: not a breadth test).

Appends the tables under ``## Multimodal trainer: breadth`` in benchmarks/RESULTS.md (unless ``--no-write``).

    python benchmarks/fm_breadth.py --out runs/breadth                       # CPU: hours (tokenizing + 4 runs)
    python benchmarks/fm_breadth.py --out runs/breadth --device cuda --threads 8
    python benchmarks/fm_breadth.py --out runs/breadth --wide recipes/fm/breadth-10-weighted.yaml
    python benchmarks/fm_breadth.py --out runs/breadth --finetune recipes/fm/directions_finetune.yaml
    python benchmarks/fm_breadth.py --out runs/breadth --wide recipes/fm/breadth-10-weighted.yaml --dim 256  # capacity
    python benchmarks/fm_breadth.py --tiny --out /tmp/breadth --no-write     # minutes
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from results_md import append_to_section  # noqa: E402
from tokzoo_cli_call import cli  # noqa: E402

from tokzoo.labelers.hf_features import SCENE_VIT  # noqa: E402

SECTION = "## Multimodal trainer: breadth"
PIXEL = ["rgb", "depth", "normals", "semseg", "edges", "sam_instances", "human_pose"]
TARGETS = ["depth", "normals", "semseg"]
VARIANTS = ("breadth-4", "breadth-10")  # the two roles: four modalities, eleven (``--wide`` picks its recipe)
WIDE = ROOT / "recipes" / "fm" / "breadth-10.yaml"
CAPTION_DIRECTIONS = (("rgb", "captions"), ("captions", "semseg"))  # whose use of the source condition_use measures
SIZES = {
    "full": {"rooms": 8192, "outdoor": 2048, "heldout": 256, "size": 64, "steps": None, "seeds": [0, 1], "eval_n": 256},
    "tiny": {"rooms": 8, "outdoor": 4, "heldout": 4, "size": 64, "steps": 2, "seeds": [0], "eval_n": 4},
}


def feature_labeler(vision: Path) -> str:
    """The dense-feature labeler for a vision model folder: ``vit_dense`` for a transformers ViT (the composition
    work's scene ViT), ``dinov2_dense`` for a DINOv2 folder."""
    model_type = json.loads((vision / "config.json").read_text()).get("model_type")
    return "vit_dense" if model_type == "vit" else "dinov2_dense"


def default_feature_tokenizer(vision: Path) -> str | None:
    """The zoo tokenizer made for a vision folder's features: ``scene_vit_dense`` for the shipped scene ViT,
    ``dinov2_b14`` (no weights ship: untrained) for a DINOv2 folder; None for any other model."""
    if vision.resolve() == SCENE_VIT.resolve():
        return "scene_vit_dense"
    return "dinov2_b14" if feature_labeler(vision) == "dinov2_dense" else None


def prepare(out: Path, size: dict, vision: Path, feature_tokenizer: str) -> dict:
    """Render, label and tokenize; returns the token folders. Rendering is skipped when its folder exists."""
    px = str(size["size"])
    for name, n, kind, seed in (
        ("rooms", size["rooms"], "indoor", 0),
        ("outdoor", size["outdoor"], "outdoor", 1),
        ("heldout", size["heldout"], "indoor", 7),
    ):
        if not (out / f"scenes-{name}").exists():
            cli(
                "scenes",
                "--n",
                n,
                "--size",
                px,
                "--kind",
                kind,
                "--seed",
                seed,
                "--samples-per-shard",
                256,
                "--out",
                out / f"scenes-{name}",
            )
    # pseudo-label and tokenize resume an interrupted run and leave a finished one as it is
    cli(
        "pseudo-label",
        "-m",
        "edges,palette,metadata,dense_features",
        "-l",
        f"dense_features={feature_labeler(vision)}:{vision}",
        "-i",
        out / "scenes-rooms",
        "-o",
        out / "labelled-rooms",
        "--no-progress",
    )
    cli(  # the held-out rooms get the same edges and features, for the new directions' ground truth
        "pseudo-label",
        "-m",
        "edges,dense_features",
        "-l",
        f"dense_features={feature_labeler(vision)}:{vision}",
        "-i",
        out / "scenes-heldout",
        "-o",
        out / "labelled-heldout",
        "--no-progress",
    )
    untrained = ["--untrained"] if feature_tokenizer == "dinov2_b14" else []
    features = ["-t", f"dense_features={feature_tokenizer}", *untrained]
    jobs = [
        ("rooms-tokens", out / "labelled-rooms", PIXEL + ["palette", "metadata"], []),
        ("rooms-features", out / "labelled-rooms", ["dense_features"], features),
        ("outdoor-tokens", out / "scenes-outdoor", PIXEL, []),
        ("heldout-tokens", out / "scenes-heldout", ["rgb", "depth", "normals", "semseg"], []),
        ("heldout-edges", out / "labelled-heldout", ["edges"], []),  # the labelled copy holds rgb + its labels
        ("heldout-features", out / "labelled-heldout", ["dense_features"], features),
        ("heldout-pose", out / "scenes-heldout", ["human_pose"], []),
        ("rooms-captions", out / "scenes-rooms", ["captions"], []),  # pseudo-label does not carry them through
        ("heldout-captions", out / "scenes-heldout", ["captions"], []),
    ]
    for name, source, modalities, extra in jobs:
        edges = ["-t", "edges=canny_edges"] if "edges" in modalities else []
        cli(
            "tokenize", "-m", ",".join(modalities), *edges, *extra, "-i", source, "-o", out / name, "--no-progress"
        )  # resumes: a finished folder is left as it is
    return token_folders(out, vision)


def token_folders(out: Path, vision: Path) -> dict:
    """The token folders :func:`prepare` writes under ``out``, by role."""
    return {
        "rooms": f"{out / 'rooms-tokens'},{out / 'rooms-features'},{out / 'rooms-captions'}",
        "outdoor": str(out / "outdoor-tokens"),
        "heldout": str(out / "heldout-tokens"),
        "heldout_captions": f"{out / 'heldout-tokens'},{out / 'heldout-captions'}",
        "heldout_features": f"{out / 'heldout-tokens'},{out / 'heldout-edges'},{out / 'heldout-features'}",
        "heldout_pose": f"{out / 'heldout-tokens'},{out / 'heldout-pose'}",
        "train_captions": str(out / "rooms-captions"),
        "train_pixels": f"{out / 'rooms-tokens'},{out / 'rooms-features'}",
        "vision": str(vision),
    }


def run_variant(
    out: Path,
    name: str,
    data: dict,
    seed: int,
    steps: int | None,
    device: str | None,
    threads: int,
    eval_n: int,
    recipe: Path | None = None,
    init: str | None = None,
    wide: bool = False,
    decision_samples: int = 0,
    dim: int | None = None,
) -> dict:
    """Train one recipe with one seed (resumes) into runs/{name}-seed{seed} and evaluate it on the held-out rooms.
    ``recipe``: the recipe file (default recipes/fm/{name}.yaml); ``init``: a run whose weights it starts from
    (fine-tuning); ``wide``: an eleven-modality model (all three token folders; its new directions scored too);
    ``decision_samples`` K: its new directions also scored by the decision over K sampled predictions; ``dim``: the
    recipe's model.dim replaced (a capacity test)."""
    import yaml

    raw = yaml.safe_load((recipe or ROOT / "recipes" / "fm" / f"{name}.yaml").read_text())
    raw = copy.deepcopy(raw)
    raw["train"]["seed"] = seed
    if dim is not None:
        raw["model"]["dim"] = dim
    if init is not None:
        raw["train"]["init"] = str(out / "runs" / f"{init}-seed{seed}")
    if steps is not None:
        raw["train"].update(steps=steps, warmup_steps=1, checkpoint_every=steps, eval_every=steps, eval_samples=4)
    run = out / "runs" / f"{name}-seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    written = run.parent / f"{name}-seed{seed}.yaml"
    written.write_text(yaml.safe_dump(raw, sort_keys=False))
    rooms = data["rooms"] if wide else data["rooms"].split(",")[0]
    cli(
        "fm",
        "train",
        "-r",
        written,
        "--data",
        rooms,
        "--data",
        data["outdoor"],
        "--eval-data",
        data["heldout"],
        "-o",
        run,
        "--threads",
        threads,
        "--no-progress",
        *(["--device", device] if device else []),
    )
    scores = fm_eval(run, data["heldout"], "rgb", TARGETS, eval_n, run / "eval.json")
    scores["target_shares"] = target_shares(written, [rooms, data["outdoor"]], steps=2 if steps else 40)
    if wide:
        directions = (
            ("rgb", "captions", data["heldout_captions"], data["train_captions"]),
            ("captions", "semseg", data["heldout_captions"], data["train_pixels"]),
            ("rgb", "edges", data["heldout_features"], data["train_pixels"]),
            ("rgb", "dense_features", data["heldout_features"], data["train_pixels"]),
            ("rgb", "human_pose", data["heldout_pose"], data["train_pixels"]),
        )

        def scored(samples: int) -> dict:
            return {
                f"{source} -> {target}": new_direction(run, source, target, heldout, train, eval_n, samples)
                for source, target, heldout, train in directions
            }

        scores["directions"] = scored(0)
        if decision_samples:
            scores["directions_decision"] = scored(decision_samples)
        scores["decision_samples"] = decision_samples
        scores["condition_use"] = caption_directions_use(run, data)
    return scores


def target_shares(recipe: Path, data: list[str], steps: int = 40, seed: int = 0) -> dict[str, float]:
    """Target tokens per training sample of each modality, as the recipe's masking draws them on ``data`` (its
    ``--data`` folders, weighted like training): ``steps`` batches read and masked the way ``fm train`` does."""
    import numpy as np

    from tokzoo.fm.masking import Masker
    from tokzoo.fm.recipe import load_recipe
    from tokzoo.fm.stream import MixtureStream, mixture_specs

    parsed = load_recipe(recipe)
    specs = mixture_specs(data, list(parsed.modalities), parsed.max_items)
    masker = Masker(specs, parsed.masking)
    weights = list(parsed.weights) if parsed.weights else [1.0] * len(data)
    stream = MixtureStream(list(zip(data, weights)), specs, parsed.train.batch_size, seed)
    totals, samples = dict.fromkeys(parsed.modalities, 0), 0
    for step in range(steps):
        positions, rows = stream.plan(step)
        batch = masker(stream.read(positions), [np.random.default_rng([seed, step, int(r)]) for r in rows])
        for name in totals:
            totals[name] += int(batch.target[name].sum())
        samples += batch.batch_size
    return {name: total / samples for name, total in totals.items()}


def fm_eval(
    run: Path, heldout: str, source: str, targets: list[str], eval_n: int, output: Path, train=None, samples: int = 0
) -> dict:
    """``tokzoo fm eval`` of ``source`` -> ``targets`` on ``heldout`` (priors from ``train``, else the run's
    training data; ``samples`` K: the decision over K sampled predictions at temperature 1); the report. A report
    that the same request wrote after the run's last checkpoint is read back instead of evaluated again."""
    request = [
        "fm",
        "eval",
        "-m",
        run,
        "--data",
        heldout,
        *(["--train-data", train] if train else []),
        "--from",
        source,
        "--to",
        ",".join(targets),
        "--n",
        eval_n,
        "--train-n",
        eval_n,
        *(["--samples", samples, "--temperature", 1] if samples else []),
        "--output",
        output,
        "--no-progress",
    ]
    key = [str(x) for x in request]
    if output.is_file() and output.stat().st_mtime > (run / "model.safetensors").stat().st_mtime:
        report = json.loads(output.read_text())
        if report.get("request") == key:
            return report
    cli(*request)
    report = json.loads(output.read_text())
    output.write_text(json.dumps({**report, "request": key}, indent=2))
    return report


def new_direction(run: Path, source: str, target: str, heldout: str, train: str, eval_n: int, samples: int = 0) -> dict:
    """One direction the 4-modality model does not have: model, training prior (the text-only caption, the
    majority map, the empty edge map, the mean feature map, the mean pose) and tokenizer ceiling; ``samples`` K:
    the model's decision over K sampled predictions instead of greedy decoding."""
    suffix = f"-samples{samples}" if samples else ""
    report = fm_eval(
        run, heldout, source, [target], eval_n, run / f"eval-{source}-{target}{suffix}.json", train, samples
    )
    return report["targets"][target]


def condition_use(run: Path, heldout: str, source: str, target: str, batch_size: int = 64) -> tuple[float, float]:
    """Whether the model reads ``source`` when it predicts ``target``: held-out cross-entropy of the whole target
    (nats per target token; a sequence's decoder tokens, sentinels included) from the whole source alone, given the
    scene's own source vs another scene's (rolled by one in the batch). Equal values: the source is ignored."""
    import numpy as np
    import torch

    from tokzoo.fm.checkpoint import load_model
    from tokzoo.fm.masking import Masker, MaskingConfig, MixtureComponent, flatten_batch
    from tokzoo.fm.stream import ordered_batches

    model = load_model(run).eval()
    sequence = {s.name: s.kind == "sequence" for s in model.specs}[source]
    keep = {source: "all"} if sequence else {}  # a sequence source given whole, as generation gives it
    whole = MixtureComponent(f"{source}->{target}", {source: 1000.0}, {target: 1000.0}, keep=keep)
    masker = Masker(model.specs, MaskingConfig(input_tokens=1 << 16, target_tokens=1 << 16, mixture=(whole,)))
    sums = np.zeros((2, 2))  # [own, other] x [total, count]
    for i, raw in enumerate(ordered_batches(heldout, [source, target], batch_size)):
        batch = masker(flatten_batch(raw, model.specs), np.random.default_rng(i))
        for shift in (0, 1):  # the own source, then the next scene's
            masked = batch.with_masks(
                {**batch.input, source: batch.input[source].roll(shift, 0)},
                batch.target,
                tokens={source: batch.tokens[source].roll(shift, 0)},
            )
            with torch.no_grad():
                total, count = model(masked)[target]
            sums[shift] += (float(total), float(count))
    return float(sums[0, 0] / sums[0, 1]), float(sums[1, 0] / sums[1, 1])


def caption_directions_use(run: Path, data: dict) -> dict[str, tuple[float, float]]:
    """:func:`condition_use` of each of :data:`CAPTION_DIRECTIONS` on the held-out rooms, by ``"source -> target"``."""
    return {
        f"{source} -> {target}": condition_use(run, data["heldout_captions"], source, target)
        for source, target in CAPTION_DIRECTIONS
    }


def verdict(reports: dict[str, list[dict]]) -> list[dict]:
    """Per target metric: both variants' mean over seeds, the seed spread, the allowed gap and whether breadth held."""
    rows = []
    for target in TARGETS:
        base = [r["targets"][target]["model"] for r in reports["breadth-4"]]
        wide = [r["targets"][target]["model"] for r in reports["breadth-10"]]
        metric, better = (
            reports["breadth-4"][0]["targets"][target]["metric"],
            reports["breadth-4"][0]["targets"][target]["better"],
        )
        spread = max(max(v) - min(v) for v in (base, wide))
        mean_base, mean_wide = sum(base) / len(base), sum(wide) / len(wide)
        allowed = max(0.05 * abs(mean_base), 2 * spread)
        loss = (mean_base - mean_wide) if better == "higher" else (mean_wide - mean_base)
        rows.append(
            {
                "target": target,
                "metric": metric,
                "better": better,
                "four": base,
                "wide": wide,
                "seed_spread": spread,
                "allowed_gap": allowed,
                "gap": loss,
                "no_loss": loss <= allowed,
            }
        )
    return rows


def new_directions(reports: list[dict], key: str = "directions") -> list[dict]:
    """Per new direction of the wide model (rgb -> captions, captions -> semseg, rgb -> edges, rgb ->
    dense_features, rgb -> human_pose): model, training prior and tokenizer ceiling per seed; learned where the
    model beats the prior with every seed. ``key``: ``directions`` (greedy) or ``directions_decision``."""
    rows = []
    for direction in reports[0][key]:
        r = [report[key][direction] for report in reports]
        higher = r[0]["better"] == "higher"
        model, prior = [x["model"] for x in r], [x["training_prior"] for x in r]
        also = {name: [x["also"][name] for x in r] for name in r[0]["also"]}
        rows.append(
            {
                "direction": direction,
                "metric": r[0]["metric"],
                "better": r[0]["better"],
                "model": model,
                "prior": prior,
                "ceiling": [x["tokenizer_ceiling"] for x in r],
                "also": {
                    name: {k: [v[k] for v in vs] for k in ("model", "training_prior")} for name, vs in also.items()
                },
                "learned": all((m > p) if higher else (m < p) for m, p in zip(model, prior)),
            }
        )
    return rows


def _fmt(values) -> str:
    return ", ".join(f"{x:.4f}" for x in values)


def directions_lines(directions: list[dict], wide_reports: list[dict]) -> list[str]:
    """The new directions' table (model vs prior per seed), how many were learned, the same scored by the decision
    over sampled predictions when the reports have it, and whether the caption directions read their source (each
    wide report's ``condition_use``)."""
    lines = learned_lines(directions, "greedy decoding")
    samples = wide_reports[0].get("decision_samples")
    if samples:
        lines += [
            f"The same directions scored by the model's decision over {samples} sampled predictions (temperature 1; "
            "the prior's rule over the samples: per-pixel majority, the words most samples name, the mean map or "
            "pose; `tokzoo fm eval --samples`):",
            "",
            *learned_lines(new_directions(wide_reports, "directions_decision"), f"the decision over {samples} samples"),
        ]
    lines += [
        "Do the caption directions read their source? Held-out cross-entropy of the whole target from the whole source "
        "(nats per target token), the scene's own source vs another scene's, per seed:",
        "",
    ]

    def pairs(key: str, direction: str) -> str:
        return "; ".join(f"{own:.4f} vs {other:.4f}" for own, other in (r[key][direction] for r in wide_reports))

    tuned = "condition_use_before" in wide_reports[0]  # a fine-tuned model: its breadth-10 start beside it
    for direction in wide_reports[0]["condition_use"]:
        before = f"before fine-tuning {pairs('condition_use_before', direction)}; after " if tuned else ""
        lines.append(f"- {direction}: {before}{pairs('condition_use', direction)}")
    return lines


def learned_lines(directions: list[dict], scorer: str) -> list[str]:
    """Table of new directions (model vs prior per seed) and how many were learned under ``scorer``."""
    lines = [
        "| direction | metric | model | prior | tokenizer ceiling | beats the prior |",
        "|---|---|---|---|---|---|",
    ]
    for r in directions:
        lines.append(
            f"| {r['direction']} | {r['metric']} ({r['better']}) | {_fmt(r['model'])} | {_fmt(r['prior'])} | "
            f"{_fmt(r['ceiling'])} | {'yes' if r['learned'] else 'NO'} |"
        )
        for name, values in r["also"].items():
            lines.append(
                f"| {r['direction']} | {name} | {_fmt(values['model'])} | {_fmt(values['training_prior'])} | | |"
            )
    learned = sum(r["learned"] for r in directions)
    return lines + [
        "",
        f"New directions learned (beat the prior with every seed), {scorer}: {learned} of {len(directions)}.",
        "",
    ]


def table(
    rows: list[dict],
    size: dict,
    data: dict,
    command: str,
    directions: list[dict],
    wide_reports: list[dict],
    wide: str = "breadth-10",
    shares: dict[str, dict[str, float]] | None = None,
    four: str = "breadth-4",
) -> str:
    lines = [
        f"### {datetime.date.today().isoformat()}: {four} vs {wide}, seeds {size['seeds']}, "
        f"{size['rooms']} rooms + {size['outdoor']} outdoor scenes, {size['eval_n']} held-out rooms",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs. Vision model for dense_features: {data['vision']}. "
        f"`{command}`",
        "",
        "| rgb -> | metric | 4 modalities (per seed) | 11 modalities (per seed) | seed spread | allowed gap | gap | no loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['target']} | {r['metric']} ({r['better']}) | {_fmt(r['four'])} | {_fmt(r['wide'])} | "
            f"{r['seed_spread']:.4f} | {r['allowed_gap']:.4f} | {r['gap']:.4f} | {'yes' if r['no_loss'] else 'NO'} |"
        )
    for name, drawn in (shares or {}).items():
        listed = ", ".join(f"{m} {v:.1f}" for m, v in drawn.items() if v)
        lines += ["", f"Target tokens per training sample, {name} (its masking drawn on its training data): {listed}."]
    lines += [
        "",
        "New directions of the 11-modality model, held-out rooms (per seed; prior from the training rooms: the "
        "text-only caption, the per-pixel majority class, the majority edge map = empty, the mean feature map, "
        "one human in the mean pose):",
        "",
    ]
    return "\n".join(lines + directions_lines(directions, wide_reports))


def finetune_table(
    recipe: Path,
    reports: list[dict],
    earlier: dict,
    size: dict,
    command: str,
    directions: list[dict],
    wide: str = "breadth-10",
) -> str:
    """The fine-tuned eleven-modality model: rgb -> depth / normals / semseg beside both trained variants (more steps
    than they had, so no breadth test), then its new directions against their priors."""
    steps = reports[0]["steps"]
    lines = [
        f"### {datetime.date.today().isoformat()}: {wide} fine-tuned by {recipe.name} ({steps} more steps from "
        f"each seed's {wide} run), seeds {size['seeds']}, {size['eval_n']} held-out rooms",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs. `{command}`",
        "",
        "| rgb -> | metric | 4 modalities | 11 modalities | 11, fine-tuned |",
        "|---|---|---|---|---|",
    ]
    for target in TARGETS:
        first = reports[0]["targets"][target]
        values = [[r["targets"][target]["model"] for r in earlier[v]] for v in VARIANTS]
        values.append([r["targets"][target]["model"] for r in reports])
        lines.append(f"| {target} | {first['metric']} ({first['better']}) | " + " | ".join(map(_fmt, values)) + " |")
    lines += [
        "",
        f"The fine-tuned model had {steps} steps more than either variant: these rows show what fine-tuning costs or "
        "gains on the original directions, not breadth without loss.",
        "",
    ]
    return "\n".join(lines + directions_lines(directions, reports))


def earlier_reports(out: Path, seeds: list[int], names: dict[str, str]) -> dict[str, list[dict]]:
    """Both variants' evaluations per seed (``names``: role -> run name), which ``--finetune`` needs first (one-line
    exit naming what is missing)."""
    evals = {v: [out / "runs" / f"{names[v]}-seed{seed}" / "eval.json" for seed in seeds] for v in VARIANTS}
    missing = [str(e.parent) for paths in evals.values() for e in paths if not e.exists()]
    if missing:
        raise SystemExit(f"--finetune needs the trained and evaluated runs first: {', '.join(missing)}")
    return {v: [json.loads(e.read_text()) for e in paths] for v, paths in evals.items()}


def run_seeds(args, size: dict, data: dict, name: str, **options) -> list[dict]:
    """:func:`run_variant` of run ``name`` with each seed of ``size``; ``options``: its recipe / init / wide."""
    return [
        run_variant(
            args.out,
            name,
            data,
            seed,
            size["steps"],
            args.device,
            args.threads,
            size["eval_n"],
            decision_samples=args.decision_samples,
            dim=args.dim,
            **options,
        )
        for seed in size["seeds"]
    ]


def run_name(stem: str, dim: int | None) -> str:
    """A recipe's run name: its file stem, with ``-dimD`` when ``--dim`` widens it."""
    return f"{stem}-dim{dim}" if dim else stem


def run_finetune(args, size: dict, data: dict, earlier: dict, argv, wide: str) -> dict:
    """``--finetune RECIPE``: each seed's eleven-modality run (``wide``: its run name) fine-tuned by RECIPE, then
    scored like it (its condition use is measured again beside it)."""
    name = run_name(args.finetune.stem, args.dim)
    reports = run_seeds(args, size, data, name, recipe=args.finetune, init=wide, wide=True)
    for report, seed in zip(reports, size["seeds"]):
        config = json.loads((args.out / "runs" / f"{name}-seed{seed}" / "config.json").read_text())
        report["steps"] = config["recipe"]["train"]["steps"]
        report["condition_use_before"] = caption_directions_use(args.out / "runs" / f"{wide}-seed{seed}", data)
    directions = new_directions(reports)
    text = finetune_table(args.finetune, reports, earlier, size, command_line(argv), directions, wide)
    write(text, args.no_write)
    return {"reports": reports, "directions": directions, "data": data}


def command_line(argv: list[str] | None) -> str:
    return "python benchmarks/fm_breadth.py " + " ".join(argv if argv is not None else sys.argv[1:])


def write(text: str, no_write: bool) -> None:
    """Print a table and append it to RESULTS.md unless ``no_write``."""
    print(text)
    if not no_write:
        append_to_section(ROOT / "benchmarks" / "RESULTS.md", SECTION, text)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tiny", action="store_true", help="toy sizes (minutes)")
    parser.add_argument(
        "--vision-model",
        type=Path,
        default=SCENE_VIT,
        help="ViT or DINOv2 folder for dense_features (default: scene ViT)",
    )
    parser.add_argument(
        "--feature-tokenizer",
        default=None,
        help="zoo name or folder for the vision model's features (default: scene_vit_dense for the scene ViT, "
        "dinov2_b14 untrained for a DINOv2 folder)",
    )
    parser.add_argument(
        "--wide",
        type=Path,
        default=WIDE,
        help="the eleven-modality recipe compared with breadth-4 (default recipes/fm/breadth-10.yaml)",
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--seeds", default=None, help="comma-separated seeds to run now (default 0,1; with fewer, use --no-write)"
    )
    parser.add_argument(
        "--only",
        choices=VARIANTS,
        default=None,
        help="train (and evaluate) one variant only, e.g. beside another process training the other; no table",
    )
    parser.add_argument(
        "--finetune",
        type=Path,
        default=None,
        help="a recipe that fine-tunes each seed's breadth-10 run (train.init), then scored like it; needs the four "
        "runs trained, e.g. recipes/fm/directions_finetune.yaml",
    )
    parser.add_argument(
        "--decision-samples",
        type=int,
        default=0,
        help="also score the new directions by the model's decision over this many sampled predictions (tokzoo fm "
        "eval --samples; 0: greedy only)",
    )
    parser.add_argument(
        "--dim",
        type=int,
        default=None,
        help="replace model.dim in both recipes (a capacity test: heads stay; runs are named NAME-dimD-seedS)",
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.finetune and args.only:
        parser.error("--finetune and --only: one or the other")
    if args.finetune and not args.finetune.is_file():
        parser.error(f"--finetune {args.finetune}: no such recipe file")
    if not args.wide.is_file():
        parser.error(f"--wide {args.wide}: no such recipe file")
    if args.dim is not None and not 8 <= args.dim <= 4096:
        parser.error(f"--dim {args.dim}: expected 8 to 4096")
    names = {"breadth-4": run_name("breadth-4", args.dim), "breadth-10": run_name(args.wide.stem, args.dim)}
    if args.wide.stem == "breadth-4":
        parser.error(f"--wide {args.wide}: the eleven-modality recipe needs a name other than breadth-4")
    if args.finetune and args.finetune.stem in (*VARIANTS, args.wide.stem):
        parser.error(f"--finetune {args.finetune}: a fine-tuning recipe needs a name of its own, not {names}")
    size = dict(SIZES["tiny" if args.tiny else "full"])
    if args.seeds:
        size["seeds"] = [int(s) for s in args.seeds.split(",")]
        if size["seeds"] != SIZES["tiny" if args.tiny else "full"]["seeds"] and not args.no_write:
            parser.error("--seeds with other than the default seeds is a partial run: add --no-write")
    feature_tokenizer = args.feature_tokenizer or default_feature_tokenizer(args.vision_model)
    if feature_tokenizer is None:
        parser.error(
            f"--vision-model {args.vision_model}: no zoo tokenizer reads its features; pass --feature-tokenizer"
        )
    earlier = earlier_reports(args.out, size["seeds"], names) if args.finetune else None  # before hours of data checks
    args.out.mkdir(parents=True, exist_ok=True)
    data = prepare(args.out, size, args.vision_model, feature_tokenizer)
    if args.finetune:
        return run_finetune(args, size, data, earlier, argv, names["breadth-10"])
    recipes = {"breadth-4": ROOT / "recipes" / "fm" / "breadth-4.yaml", "breadth-10": args.wide}
    reports = {
        role: run_seeds(args, size, data, names[role], recipe=recipes[role], wide=role == "breadth-10")
        for role in ([args.only] if args.only else VARIANTS)
    }
    if args.only:
        print(json.dumps(reports, indent=1))
        return {"reports": reports, "data": data}
    rows, directions = verdict(reports), new_directions(reports["breadth-10"])
    shares = {names[role]: reports[role][0]["target_shares"] for role in VARIANTS}
    text = table(
        rows,
        size,
        data,
        command_line(argv),
        directions,
        reports["breadth-10"],
        names["breadth-10"],
        shares,
        names["breadth-4"],
    )
    write(text, args.no_write)
    decided = new_directions(reports["breadth-10"], "directions_decision") if args.decision_samples else None
    return {"rows": rows, "directions": directions, "decided": decided, "data": data, "shares": shares}


if __name__ == "__main__":
    main()
