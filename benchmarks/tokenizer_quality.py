"""Tokenizer quality over the depth contract's range and on outdoor scenes (issue 15).

Subcommands (each prints markdown; ``--write`` adds a dated entry to benchmarks/RESULTS.md under
"Tokenizers across the depth range and outdoors"):

- ``decades``: depth abs-rel per depth decade (0.1-1, 1-10, 10-100 m) of a depth tokenizer and of its
  same-bit downsample baseline on held-out scenes (indoor, outdoor, and the two together).
- ``outdoor``: every shipped image-like tokenizer (rgb, depth, normals, semseg, canny_edges) on held-out
  indoor and outdoor scenes: main metric, best same-bit baseline, codebook usage.
- ``normalisation``: train a scale-invariant depth variant (per-image standardised log-depth, the median and
  spread stored beside the tokens as two float16 = 32 bits) with the absolute recipe's data, steps and model,
  and compare it per decade with an absolute log-depth run.
- ``sizes``: train the same recipe at several sizes (input px, tokens, codes) for a fixed CPU budget and
  tabulate quality against size.

    python benchmarks/tokenizer_quality.py decades --tokenizer depth --n 256 --write
    python benchmarks/tokenizer_quality.py outdoor --n 128 --write
    python benchmarks/tokenizer_quality.py normalisation --recipe recipes/depth.yaml --steps 7000 --absolute depth --out runs/depth_si --write
    python benchmarks/tokenizer_quality.py sizes --recipe recipes/depth.yaml --steps 300 --write
"""

from __future__ import annotations

import argparse
import copy
import datetime
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from tokzoo.datasets.scenes import generate_scene, is_outdoor  # noqa: E402
from tokzoo.tokenizers.evaluation import HELDOUT_SEED, evaluate, heldout_values  # noqa: E402
from tokzoo.tokenizers.evaluation.baselines import bits_per_sample, downsample_bicubic  # noqa: E402
from tokzoo.tokenizers.evaluation.metrics import HIGHER_IS_BETTER, abs_rel_by_decade, main_metric  # noqa: E402
from tokzoo.tokenizers.zoo import load_tokenizer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## Tokenizers across the depth range and outdoors"
IMAGE_LIKE = ("rgb", "depth", "normals", "semseg", "canny_edges")
SCALE_BITS = 32  # two float16 per image: median and spread of log-depth
SI_RANGE = 3.0  # standardised log-depth is clamped to [-3, 3], i.e. depth' in [e^-3, e^3]


# -- held-out data ----------------------------------------------------------------------------------
def heldout_depth(n: int, size, kind: str, seed: int = HELDOUT_SEED):
    """(depth (n, H, W) rendered at ``size``, outdoor flags (n,)) of held-out scenes of ``kind``, as ``tokzoo eval``."""
    depth = np.stack([generate_scene(i, seed, tuple(size), kind)["depth"] for i in range(n)])
    return depth, np.array([is_outdoor(i, seed, kind) for i in range(n)])


def encode_decode(tokenizer, values, batch_size: int = 32) -> np.ndarray:
    out = []
    for start in range(0, len(values), batch_size):
        out.append(tokenizer.decode(tokenizer.encode(values[start : start + batch_size])))
    return np.concatenate(out)


# -- scale-invariant depth (4M-style per-image standardisation, in log-depth) -------------------------
def standardise(depth: np.ndarray):
    """depth (H, W) metres -> (depth' = exp(u), median, spread) with u = (log d - median) / spread, where median
    and spread (= (p90 - p10) / 2.563, the 10%-truncated standard deviation of a normal) are of the valid
    log-depths, each rounded to float16 as stored beside the tokens."""
    valid = np.isfinite(depth) & (depth > 0)
    log = np.log(depth[valid].astype(np.float64))
    median = float(np.float16(np.median(log)))
    spread = float(np.float16(max((np.percentile(log, 90) - np.percentile(log, 10)) / 2.563, 0.05)))
    u = np.clip((np.log(np.where(valid, depth, 1.0)) - median) / spread, -SI_RANGE, SI_RANGE)
    return np.where(valid, np.exp(u), np.nan).astype(np.float32), median, spread


def unstandardise(depth_prime: np.ndarray, median: float, spread: float) -> np.ndarray:
    return np.exp(np.log(depth_prime.astype(np.float64)) * spread + median).astype(np.float32)


def si_recipe(absolute: dict, data_dir: Path) -> dict:
    recipe = copy.deepcopy(absolute)
    recipe["name"] = "depth_scale_invariant"
    recipe["tokenizer"]["normalization"] = {"min_depth": math.exp(-SI_RANGE), "max_depth": math.exp(SI_RANGE)}
    recipe["data"] = {
        "path": str(data_dir),
        **({"crop": absolute["data"]["crop"]} if "crop" in absolute["data"] else {}),
    }
    return recipe


def write_si_data(absolute: dict, data_dir: Path) -> None:
    """The absolute recipe's training depth (scenes + bundled samples), standardised, one .npy per sample."""
    from tokzoo.tokenizers.training.data import sample_values, scene_values

    spec = absolute["data"]["scenes"]
    values = scene_values(
        "depth", range(spec["n_train"] + spec["n_val"]), spec["seed"], spec["size"], spec.get("kind", "indoor")
    )
    train, val = values[: spec["n_train"]], values[spec["n_train"] :]
    if "samples" in absolute["data"]:
        train = train + sample_values("depth", absolute["data"]["samples"])
    data_dir.mkdir(parents=True, exist_ok=True)
    for i, value in enumerate(train + val):  # the reader holds out the last 5% for validation
        np.save(data_dir / f"d{i:06d}.npy", standardise(value)[0])


def si_decode(tokenizer, depth: np.ndarray) -> np.ndarray:
    out = []
    for d in depth:
        prime, median, spread = standardise(d)
        out.append(unstandardise(tokenizer.decode(tokenizer.encode(prime))[0], median, spread))
    return np.stack(out)


# -- tables -----------------------------------------------------------------------------------------
def decade_rows(depth, flags, methods: dict) -> list[str]:
    """Markdown rows: per scene set (all / indoor / outdoor), per decade, abs-rel of each method and pixels."""
    names = list(methods)
    rows = [f"| scenes | decade | pixels | {' | '.join(names)} | best |", "|---" * (4 + len(names)) + "|"]
    for label, pick in (("all", np.ones(len(flags), bool)), ("indoor", ~flags), ("outdoor", flags)):
        if not pick.any():
            continue
        per = {m: abs_rel_by_decade(depth[pick], r[pick]) for m, r in methods.items()}
        for decade in per[names[0]]:
            values = [per[m][decade]["abs_rel"] for m in names]
            best = names[int(np.nanargmin(values))] if np.isfinite(values).any() else "—"
            cells = " | ".join(f"{v:.4f}" if np.isfinite(v) else "—" for v in values)
            rows.append(
                f"| {label} ({pick.sum()}) | {decade} | {per[names[0]][decade]['pixels']:,} | {cells} | {best} |"
            )
    return rows


def run_decades(args) -> str:
    tok = load_tokenizer(args.tokenizer)
    size = list(tok.config["input_size"])
    depth, flags = heldout_depth(args.n, size, "mix")
    baseline, bits = downsample_bicubic(tok, depth)
    methods = {
        f"tokenizer ({bits_per_sample(tok):.0f} b)": encode_decode(tok, depth),
        f"downsample_bicubic ({bits:.0f} b)": baseline,
    }
    head = (
        f"`{args.tokenizer}` on {args.n} held-out mixed scenes (seed {HELDOUT_SEED}, {flags.sum()} outdoor), "
        f"{'x'.join(map(str, size))}; abs-rel over pixels whose true depth lies in the decade"
    )
    return "\n".join([head, "", *decade_rows(depth, flags, methods)])


def run_outdoor(args) -> str:
    rows = [
        "| tokenizer | scenes | main metric | tokenizer | best same-bit baseline | usage (codes) | beats baselines |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in args.tokenizers.split(","):
        tok = load_tokenizer(name)
        for kind in ("indoor", "outdoor"):
            held = heldout_values(tok, args.n, HELDOUT_SEED, kind=kind)
            report = evaluate(tok, held.values, data=held.description).report
            metric = report["main_metric"]
            values = {r["method"]: r["metrics"][metric] for r in report["rows"]}
            ours = values.pop("tokenizer")
            higher = metric in HIGHER_IS_BETTER
            best_name = (max if higher else min)(values, key=values.get)
            wins = all((ours > v) if higher else (ours < v) for v in values.values())
            usage = report["codebook"]
            rows.append(
                f"| {name} | {kind} ({report['n_samples']}) | {metric} {'↑' if higher else '↓'} | {ours:.4g} | "
                f"{values[best_name]:.4g} ({best_name}) | {usage['usage']:.1%} ({usage['codes_used']}/"
                f"{usage['vocab_size']}) | {'yes' if wins else 'NO'} |"
            )
            print(rows[-1], flush=True)
    return f"Held-out scenes (seed {HELDOUT_SEED}) at each tokenizer's input size, {args.n} per kind.\n\n" + "\n".join(
        rows
    )


def run_normalisation(args) -> str:
    from tokzoo.tokenizers.training import load_recipe, train

    recipe = load_recipe(args.recipe)
    if args.steps is not None:  # both variants at a smaller budget (the absolute one trained with --steps too)
        recipe["steps"] = args.steps
    absolute = load_tokenizer(args.absolute)
    if absolute.config["provenance"]["recipe"] != recipe:  # before hours of training, not after
        raise SystemExit(f"{args.absolute} was not trained with {args.recipe} (its steps: --steps)")
    data_dir, si_dir = Path(args.out) / "data", Path(args.out) / "tokenizer"
    if not (si_dir / "config.json").is_file():  # train the variant once; later runs only evaluate
        if not data_dir.is_dir():
            write_si_data(recipe, data_dir)
        torch.set_num_threads(1)
        train(si_recipe(recipe, data_dir), args.out, progress=True)
    if args.train_only:
        return f"trained {si_dir}"
    si = load_tokenizer(si_dir)
    size = list(absolute.config["input_size"])
    depth, flags = heldout_depth(args.n, size, "mix")
    baseline, bits = downsample_bicubic(absolute, depth)
    methods = {
        f"absolute log-depth ({bits_per_sample(absolute):.0f} b)": encode_decode(absolute, depth),
        f"scale-invariant ({bits_per_sample(si) + SCALE_BITS:.0f} b)": si_decode(si, depth),
        f"downsample_bicubic ({bits:.0f} b)": baseline,
    }
    head = (
        f"Absolute log-depth (`{args.absolute}`) vs scale-invariant (per-image standardised log-depth, "
        f"median and spread stored as 2 x float16; same recipe, data and steps, `{si_dir}`"
        + (", without the sensor corruption: data.sensor acts on metric depth" if "sensor" in recipe["data"] else "")
        + f") on {args.n} held-out mixed scenes (seed {HELDOUT_SEED}, {flags.sum()} outdoor)"
    )
    return "\n".join([head, "", *decade_rows(depth, flags, methods)])


def run_sizes(args) -> str:
    from tokzoo.tokenizers.training import load_recipe, train, validate_recipe

    base = load_recipe(args.recipe)
    rows = [
        "| input px | model | tokens | codes (levels) | bits/sample | steps | CPU s | main metric | tokenizer | "
        "downsample_bicubic | usage |",
        "|---" * 11 + "|",
    ]
    for spec in args.configs.split(";"):
        px, preset, levels = spec.split(":")
        recipe = copy.deepcopy(base)
        recipe["tokenizer"].update(
            input_size=[int(px), int(px)],
            model={"preset": preset},
            quantizer={"type": "fsq", "levels": [int(v) for v in levels.split(",")]},
        )
        recipe.update(resolution=[int(px), int(px)], steps=args.steps, checkpoint_every=0, batch_size=args.batch)
        recipe["schedule"]["warmup_steps"] = min(recipe["schedule"]["warmup_steps"], args.steps // 10)
        recipe["data"]["scenes"]["size"] = max(recipe["data"]["scenes"]["size"], int(int(px) * 1.5))
        recipe["data"]["scenes"]["n_train"] = args.n_train
        recipe = validate_recipe(recipe, f"{args.recipe} ({spec})")
        torch.set_num_threads(1)
        start = time.process_time()
        result = train(recipe, Path(args.out) / spec.replace(":", "_").replace(",", "-"), progress=True)
        seconds = time.process_time() - start
        tok = result.tokenizer
        held = heldout_values(tok, args.n, HELDOUT_SEED, kind="mix")
        report = evaluate(tok, held.values, data=held.description).report
        metric = main_metric(tok.modality)
        values = {r["method"]: r["metrics"][metric] for r in report["rows"]}
        rows.append(
            f"| {px} | {preset} | {math.prod(tok.token_shape)} | {tok.vocab_size} ({levels}) | "
            f"{bits_per_sample(tok):.0f} | {args.steps} | {seconds:.0f} | {metric} | {values['tokenizer']:.4g} | "
            f"{values['downsample_bicubic']:.4g} | {report['codebook']['usage']:.1%} |"
        )
        print(rows[-1], flush=True)
    return (
        f"`{args.recipe}` at several sizes, {args.steps} steps of {args.batch} each on {args.n_train} training scenes "
        f"(1 thread), evaluated on {args.n} held-out mixed scenes (seed {HELDOUT_SEED}).\n\n" + "\n".join(rows)
    )


def write_entry(title: str, body: str, command: str) -> None:
    """Insert a dated entry (machine, load, command, body) at the top of this script's RESULTS.md section."""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    entry = (
        f"### {datetime.date.today().isoformat()}: {title}\n\n{platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, torch {torch.__version__}, one thread, load average {load}. "
        f"Command: `{command}`\n\n{body}\n\n"
    )
    text = RESULTS.read_text()
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n"
    head, tail = text.split(SECTION, 1)
    intro_end = tail.find("\n### ")
    insert_at = len(tail) if intro_end < 0 else intro_end + 1
    RESULTS.write_text(head + SECTION + tail[:insert_at].rstrip("\n") + "\n\n" + entry + tail[insert_at:].lstrip("\n"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("decades")
    p.add_argument("--tokenizer", default="depth")
    p = sub.add_parser("outdoor")
    p.add_argument("--tokenizers", default=",".join(IMAGE_LIKE))
    p = sub.add_parser("normalisation")
    p.add_argument("--recipe", default=str(ROOT / "recipes" / "depth.yaml"), help="the absolute log-depth recipe")
    p.add_argument("--absolute", default="depth", help="absolute log-depth tokenizer trained with --recipe")
    p.add_argument("--train-only", action="store_true", help="train the scale-invariant variant and stop")
    p.add_argument("--steps", type=int, default=None, help="override the recipe's steps (for both variants)")
    p.add_argument("--out", required=True, help="run directory of the scale-invariant variant")
    p = sub.add_parser("sizes")
    p.add_argument("--recipe", required=True)
    p.add_argument(
        "--configs",
        default="64:conv-tiny:5,5,5;128:conv-small:8,5,5,5;224:conv-small:8,8,8,6,5",
        help="'px:preset:levels;...'",
    )
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--n-train", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out", default="runs/sizes")
    for p in sub.choices.values():
        p.add_argument("--n", type=int, default=256, help="held-out scenes (per kind for outdoor)")
        p.add_argument("--write", action="store_true", help="add the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    body = {"decades": run_decades, "outdoor": run_outdoor, "normalisation": run_normalisation, "sizes": run_sizes}[
        args.command
    ](args)
    print(body)
    if args.write:
        titles = {
            "decades": "depth abs-rel per decade",
            "outdoor": "shipped image-like tokenizers, indoor vs outdoor",
            "normalisation": "depth normalisation, absolute vs scale-invariant",
            "sizes": "quality vs size",
        }
        write_entry(titles[args.command], body, "python benchmarks/tokenizer_quality.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
