"""Steering: does rgb generated from a requested palette or metadata land closer to the request than rgb generated
without it? With a classifier-free guidance-scale sweep (issue 28).

One command runs the whole experiment (``--tiny``: the same path at toy size, what the tests run):

1. data (each step skipped when its output exists): procedural scenes (``mix``: rooms and outdoor scenes, 64 px;
   training stream 0, held-out stream 7), palette and metadata pseudo-labelled by the classical labelers (k-means
   palette; image statistics), tokenized (rgb, palette, metadata);
2. train ``--recipe`` (default ``recipes/fm/steering.yaml``: rgb from the palette alone, from the metadata alone,
   from its own visible tokens alone, and any-to-any), from scratch or from the weights of ``--init RUN``;
3. for each held-out scene, its palette (resp. metadata), as the tokens hold it, is the request: rgb is generated
   from it alone (MaskGIT, ``--steps`` steps, temperature 1, one seed) at every guidance scale g of ``--scales``
   (logits u + g (c - u): g = 0 is unconditioned generation, g = 1 plain conditioning), decoded, and labelled again
   by the same labeler. Distance to the request: palette - symmetric chamfer distance between the requested colours
   and the generated image's k-means palette (uint8 RGB units, mean over colours of the distance to the nearest
   colour of the other palette, both ways averaged); metadata - |brightness| and |contrast| differences (uint8
   luma). References: the held-out scene's own rgb (its true tokens decoded: what a perfect generator scores, the
   binning and the tokenizer included) and another held-out scene's rgb (an unrelated image).

Differences to unconditioned generation and to another scene's image (closer than an unrelated natural image is
steering, not only a better-formed picture) are paired over held-out scenes with 95% bootstrap intervals. Appends a
table under ``## Multimodal trainer: steering`` in benchmarks/RESULTS.md (unless ``--no-write``).

    python benchmarks/fm_steering.py --out runs/steering                  # CPU: ~2 h (data, 6000 steps, sweep)
    python benchmarks/fm_steering.py --tiny --out /tmp/steering --no-write  # a minute
    python benchmarks/fm_steering.py --out runs/steering --model RUN      # measure another fm run (no training)
    python benchmarks/fm_steering.py --out runs/steering --recipe recipes/fm/steering_finetune.yaml --init RUN
                                        # fine-tune a trained fm run (e.g. fm_breadth's 11-modality model) to steer
    ... --train-steps 4500              # the same recipe trained longer, in run-{recipe}-4500steps-seed{S}
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from paired import bootstrap  # noqa: E402
from results_md import append_to_section  # noqa: E402
from tokzoo_cli_call import cli  # noqa: E402

SECTION = "## Multimodal trainer: steering"
MODALITIES = ["rgb", "palette", "metadata"]
SIZES = {
    "full": {"train": 4096, "heldout": 256, "size": 64, "steps": None},
    "tiny": {"train": 8, "heldout": 4, "size": 64, "steps": 2},
}
METADATA_KEYS = ("brightness", "contrast")
OTHER = "another scene's image"


def prepare(out: Path, size: dict) -> dict[str, Path]:
    """Render, label and tokenize the training and held-out scenes; returns the token folders."""
    folders = {}
    for name, n, seed in (("train", size["train"], 0), ("heldout", size["heldout"], 7)):
        scenes, labelled, tokens = out / f"scenes-{name}", out / f"labelled-{name}", out / f"{name}-tokens"
        if not scenes.exists():
            cli("scenes", "--n", n, "--size", size["size"], "--kind", "mix", "--seed", seed, "--out", scenes)
        if not labelled.exists():
            cli("pseudo-label", "-m", "palette,metadata", "-i", scenes, "-o", labelled, "--no-progress")
        cli("tokenize", "-m", ",".join(MODALITIES), "-i", labelled, "-o", tokens, "--no-progress")  # resumes
        folders[name] = tokens
    return folders


def train(
    out: Path,
    data: dict[str, Path],
    steps: int | None,
    threads: int,
    seed: int,
    recipe_path: Path,
    init: Path | None,
    train_steps: int | None = None,
) -> Path:
    """Train ``recipe_path`` (from the weights of the fm run ``init`` when given; ``train_steps`` instead of the
    recipe's steps, in a run folder of its own) on the training scenes."""
    import yaml

    raw = yaml.safe_load(recipe_path.read_text())
    raw["train"]["seed"] = seed
    if init is not None:
        raw["train"]["init"] = str(init)
    if steps is not None:
        raw["train"].update(steps=steps, warmup_steps=1, checkpoint_every=steps, eval_every=steps, eval_samples=4)
    if train_steps is not None:
        raw["train"]["steps"] = train_steps
    stem = recipe_path.stem + ("-init" if init is not None and recipe_path.stem == "steering" else "")
    stem += f"-{train_steps}steps" if train_steps is not None else ""
    run = out / f"run-{'' if stem == 'steering' else stem + '-'}seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    recipe = out / f"{stem}-seed{seed}.yaml"
    recipe.write_text(yaml.safe_dump(raw, sort_keys=False))
    cli("fm", "train", "-r", recipe, "--data", data["train"], "--eval-data", data["heldout"], "-o", run,
        "--threads", threads, "--no-progress")  # fmt: skip
    return run


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric chamfer distance between two palettes (k, 3) and (m, 3), uint8 RGB units."""
    d = np.linalg.norm(np.asarray(a, np.float64)[:, None] - np.asarray(b, np.float64)[None], axis=-1)
    return float(0.5 * (d.min(1).mean() + d.min(0).mean()))


def distances(condition: str, request, image: np.ndarray) -> dict[str, float]:
    """How far a generated (or reference) rgb image lies from the request, per measure."""
    from tokzoo.labelers.image_statistics import rgb_statistics
    from tokzoo.labelers.kmeans import palette

    if condition == "palette":
        return {"chamfer": chamfer(request["colors"], palette(image)["colors"])}
    stats = rgb_statistics(image)
    return {key: abs(stats[key] - request[key]) for key in METADATA_KEYS}


def measure(run: Path, heldout: Path, scales: list[float], steps: int, seed: int, n: int | None) -> dict:
    """condition -> row name -> measure -> per-scene distances (float64 arrays in the held-out order)."""
    from tokzoo.fm.checkpoint import load_model
    from tokzoo.fm.generate import DecodeSettings, decode_tokens, generate
    from tokzoo.fm.masking import flatten_batch
    from tokzoo.fm.stream import ordered_batches

    model = load_model(run)
    by_name = {s.name: s for s in model.specs}
    rows: dict[str, dict[str, dict[str, list]]] = {"palette": {}, "metadata": {}}
    truths, requests_all = [], {"palette": [], "metadata": []}
    done = 0
    for batch in ordered_batches(heldout, MODALITIES, 32):
        if n and done >= n:
            break
        masked = flatten_batch(batch, model.specs)
        truths += decode_tokens(by_name["rgb"], masked.tokens["rgb"], masked.valid["rgb"])
        for condition in rows:
            requests = decode_tokens(by_name[condition], masked.tokens[condition], masked.valid[condition])
            requests_all[condition] += requests
            for g in scales:
                settings = DecodeSettings(steps=steps, temperature=1.0, seed=seed, guidance_scale=g)
                images = decode_tokens(by_name["rgb"], generate(model, masked, [condition], ["rgb"], settings)["rgb"])
                row = rows[condition].setdefault(f"g = {g:g}", {})
                for request, image in zip(requests, images):
                    for key, value in distances(condition, request, image).items():
                        row.setdefault(key, []).append(value)
        done += len(batch["__key__"])
    keep = slice(0, n) if n else slice(None)
    truths = truths[keep]
    for condition, row_set in rows.items():
        requests = requests_all[condition][keep]
        other = truths[1:] + truths[:1]  # another held-out scene's image: an unrelated picture
        for name, images in (("own image (true tokens)", truths), (OTHER, other)):
            row = row_set.setdefault(name, {})
            for request, image in zip(requests, images):
                for key, value in distances(condition, request, image).items():
                    row.setdefault(key, []).append(value)
        for row in row_set.values():
            for key in row:
                row[key] = np.asarray(row[key][keep], np.float64)
    return rows


def condition_use(run: Path, heldout: Path, n: int = 64) -> dict[str, tuple[float, float]]:
    """Whether the model reads its condition at all: held-out rgb cross-entropy (nats per token, every rgb token a
    target) given each condition of the same scene vs of another scene (rolled by one in the batch); for
    ``rgb`` the even token slots are given and the odd ones predicted. Any fm model with rgb: the conditions are
    those of palette, metadata and rgb that it has."""
    import torch

    from tokzoo.fm.checkpoint import load_model
    from tokzoo.fm.masking import flatten_batch
    from tokzoo.fm.stream import ordered_batches

    model = load_model(run).eval()
    conditions = [m for m in ("palette", "metadata", "rgb") if m in {s.name for s in model.specs}]
    batch = flatten_batch(next(iter(ordered_batches(heldout, conditions, n))), model.specs)
    given = torch.zeros_like(batch.valid["rgb"])
    given[:, ::2] = True
    out = {}
    for condition in conditions:
        pair = []
        for other in (False, True):
            tokens, valid = dict(batch.tokens), dict(batch.valid)
            if other:
                rolled = tokens[condition].roll(1, 0)
                tokens[condition] = torch.where(given, rolled, tokens[condition]) if condition == "rgb" else rolled
                valid[condition] = valid[condition] if condition == "rgb" else valid[condition].roll(1, 0)
            nothing = {m: torch.zeros_like(v) for m, v in valid.items()}
            inputs = {**nothing, condition: valid[condition] & given if condition == "rgb" else valid[condition]}
            targets = {**nothing, "rgb": valid["rgb"] & ~given if condition == "rgb" else valid["rgb"]}
            with torch.no_grad():
                total, count = model(batch.with_masks(inputs, targets, tokens=tokens))["rgb"]
            pair.append(float(total / count))
        out[condition] = (pair[0], pair[1])
    return out


def palette_information(train: Path, heldout: Path, n_train: int = 2048) -> dict[str, float]:
    """How much a palette tells about an image's rgb tokens, without the fm: a colour-association model
    p(code | palette) ~ p(code) exp(-beta d), d = the distance (uint8 RGB / 255) from the code's mean colour to the
    nearest requested colour. Code colours (the mean of the decoded 8 x 8 patch where the code sits), code
    frequencies and beta (of 0..32, by training cross-entropy) come from the training scenes. Returns held-out rgb
    cross-entropy (nats per token) with no palette (the marginal), the scene's own palette and another scene's."""
    from tokzoo.fm.generate import decode_tokens
    from tokzoo.fm.masking import flatten_batch
    from tokzoo.fm.stream import ordered_batches
    from tokzoo.tokens.spec import specs_from_manifest

    def load(root: Path, n: int | None):
        specs = specs_from_manifest(root, ["rgb", "palette"])
        rgb, palette = specs
        ids, images, palettes = [], [], []
        for batch in ordered_batches(root, ["rgb", "palette"], 64):
            masked = flatten_batch(batch, specs)
            ids.append(masked.tokens["rgb"][:, : rgb.length].numpy())
            images += decode_tokens(rgb, masked.tokens["rgb"], masked.valid["rgb"])
            colours = decode_tokens(palette, masked.tokens["palette"], masked.valid["palette"])
            palettes += [np.asarray(c["colors"], np.float64) for c in colours]
            if n and len(images) >= n:
                break
        keep = slice(0, n)
        return np.concatenate(ids)[keep], np.stack(images)[keep].astype(np.float64), palettes[keep], rgb

    ids, images, palettes, spec = load(train, n_train)
    side = int(round(spec.length**0.5))  # a square token grid over the image
    b, h, w, _ = images.shape
    patches = images.reshape(b, side, h // side, side, w // side, 3).mean((2, 4)).reshape(b, side * side, 3)
    vocab = spec.vocab_size
    count = np.bincount(ids.ravel(), minlength=vocab).astype(np.float64)
    colour = np.stack([np.bincount(ids.ravel(), patches[..., c].ravel(), vocab) for c in range(3)], 1)
    colour /= np.maximum(count, 1)[:, None]
    log_prior = np.log((count + 1) / (count + 1).sum())

    def distances(requests) -> np.ndarray:
        """(n, vocab): each code's colour distance to the nearest requested colour of each palette."""
        d = np.stack([np.linalg.norm(colour[:, None] - r[None], axis=-1).min(1) for r in requests]) / 255.0
        d[:, count == 0] = 0.0  # a code never seen in training has no colour: the palette leaves it be
        return d

    def cross_entropy(rows: np.ndarray, distance: np.ndarray, beta: float) -> float:
        logp = log_prior - beta * distance
        logp -= np.logaddexp.reduce(logp, axis=1, keepdims=True)
        return float(-np.take_along_axis(logp, rows, 1).sum() / rows.size)

    fitting = distances(palettes[:512])
    fit = min((cross_entropy(ids[:512], fitting, beta), beta) for beta in (0, 1, 2, 4, 8, 16, 32))[1]
    held_ids, _, held_palettes, _ = load(heldout, None)
    own = distances(held_palettes)
    other = np.roll(own, -1, axis=0)  # another held-out scene's palette
    return {
        "beta": fit,
        "marginal": cross_entropy(held_ids, own, 0),
        "own": cross_entropy(held_ids, own, fit),
        "other": cross_entropy(held_ids, other, fit),
    }


def table(rows: dict, scales: list[float], meta: dict) -> tuple[str, dict]:
    lines = [
        f"### {datetime.date.today().isoformat()}: steering rgb by palette and by metadata, seed {meta['seed']}, "
        f"{meta['n']} held-out scenes",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, torch threads {meta['threads']}. "
        f"`{meta['command']}`. Model: {meta['model']}; held-out: stream 7. Generation: MaskGIT "
        f"{meta['decode_steps']} steps, "
        "temperature 1, from the condition alone; g = 0 is unconditioned generation.",
        "",
    ]
    use = meta.get("condition_use")
    if use:
        lines += [
            "Does the model read the condition? Held-out rgb cross-entropy (nats per token) given the scene's own "
            "condition vs another scene's (rgb: half of its tokens given):",
            "",
            "| condition | own | another scene's |",
            "|---|---|---|",
            *(f"| {c} | {own:.4f} | {other:.4f} |" for c, (own, other) in use.items()),
            "",
        ]
    info = meta.get("palette_information")
    if info:
        lines += [
            "What the palette tells, without the fm (reference, not a method): a colour-association model fit on the "
            f"training scenes (`palette_information`, beta {info['beta']:g}) gives held-out rgb cross-entropy "
            f"{info['own']:.4f} with the scene's own palette, {info['other']:.4f} with another scene's, "
            f"{info['marginal']:.4f} with none (the code frequencies).",
            "",
        ]
    summary = {}
    base = f"g = {scales[0]:g}"
    interval = lambda d: "{:+.2f} [{:+.2f}, {:+.2f}]".format(*d)  # noqa: E731
    for condition, row_set in rows.items():
        keys = list(next(iter(row_set.values())))
        unit = "uint8 RGB" if condition == "palette" else "uint8 luma"
        lines += [
            f"Requested {condition} ({', '.join(keys)}, {unit}; lower is closer), difference to {base}"
            f"{' (unconditioned generation)' if scales[0] == 0 else ''} and to {OTHER} (a natural image that "
            "ignores the request: closer than it is steering, not only a better-looking image), each with its 95% "
            "paired interval:",
            "",
            "| generated rgb | " + " | ".join(f"{k} | vs {base} | vs {OTHER}" for k in keys) + " |",
            "|---|" + "---|---|---|" * len(keys),
        ]
        for name, row in row_set.items():
            cells = []
            for key in keys:
                mean, vs_base, vs_other = float(np.mean(row[key])), "-", "-"
                if name != base:
                    d, lo, hi = bootstrap(row[key] - row_set[base][key])
                    vs_base = interval((d, lo, hi))
                    summary[f"{condition} {name} {key}"] = {"mean": mean, "diff": d, "low": lo, "high": hi}
                if name.startswith("g = "):  # generated rows, the reference one included
                    other = bootstrap(row[key] - row_set[OTHER][key])
                    vs_other = interval(other)
                    summary[f"{condition} {name} {key} vs other"] = dict(zip(("diff", "low", "high"), other))
                cells += [f"{mean:.2f}", vs_base, vs_other]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines), summary


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for data and the run (resumes)")
    parser.add_argument("--tiny", action="store_true", help="toy sizes: the path, not the figures")
    parser.add_argument("--scales", default="0,1,2,3", help="guidance scales; the first is the reference")
    parser.add_argument("--steps", type=int, default=8, help="parallel decoding steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=None, help="held-out scenes scored (default all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--model", type=Path, default=None, help="measure this fm run (with rgb, palette, metadata) instead of training"
    )
    parser.add_argument("--recipe", type=Path, default=None, help="fm recipe (default recipes/fm/steering.yaml)")
    parser.add_argument(
        "--init", type=Path, default=None, help="fm run whose weights start the training (train.init of the recipe)"
    )
    parser.add_argument(
        "--train-steps", type=int, default=None, help="train this many steps instead of the recipe's (own run folder)"
    )
    args = parser.parse_args(argv)
    if args.model and (args.init or args.recipe or args.train_steps):
        parser.error("--model measures an existing run: --recipe, --init and --train-steps train one")
    if args.train_steps is not None and args.train_steps < 1:
        parser.error("--train-steps must be at least 1")
    recipe = args.recipe or ROOT / "recipes" / "fm" / "steering.yaml"
    import torch

    torch.set_num_threads(args.threads)
    size = SIZES["tiny" if args.tiny else "full"]
    scales = [float(s) for s in args.scales.split(",")]
    data = prepare(args.out, size)
    run = args.model or train(
        args.out, data, size["steps"], args.threads, args.seed, recipe, args.init, args.train_steps
    )
    rows = measure(run, data["heldout"], scales, args.steps, args.seed, args.n)
    config = json.loads((run / "config.json").read_text())
    steps = config["recipe"]["train"]["steps"] if "recipe" in config else size["steps"]
    init = config.get("recipe", {}).get("train", {}).get("init")
    meta = {
        "condition_use": condition_use(run, data["heldout"], 64 if not args.tiny else size["heldout"]),
        "palette_information": palette_information(data["train"], data["heldout"], None if args.tiny else 2048),
        "seed": args.seed,
        "n": len(next(iter(rows["palette"].values()))["chamfer"]),
        "threads": args.threads,
        "model": (
            f"{run}, {steps} steps of its recipe"
            if args.model
            else f"{recipe.relative_to(ROOT) if recipe.is_relative_to(ROOT) else recipe}, {steps} steps, "
            f"on {size['train']} scenes (stream 0, mix)"
        )
        + (f", starting from the weights of {init}" if init else ""),
        "decode_steps": args.steps,
        "command": "python benchmarks/fm_steering.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    text, summary = table(rows, scales, meta)
    print(text)
    if not args.no_write:
        append_to_section(Path(__file__).with_name("RESULTS.md"), SECTION, text)
    return {
        "rows": rows,
        "summary": summary,
        "run": run,
        "condition_use": meta["condition_use"],
        "palette_information": meta["palette_information"],
    }


if __name__ == "__main__":
    main()
