"""A dense feature-map tokenizer trained here: the scene ViT's patch features (recipes/features/scene_vit_dense.yaml)
reconstructed on held-out scenes, against same-bit baselines.

One command:

1. render procedural scenes (training stream 0, held-out stream 1000003, 64 px) and label them with the ``vit_dense``
   labeler of ``--vision`` (a transformers ViTModel folder: the composition work's scene ViT, built by
   ``tokzoo fm train --recipe compose/vision``; ``--tiny`` makes a random one of the same shape, a stand-in);
2. ``tokzoo train --recipe features/scene_vit_dense --data TRAIN`` (``--steps`` overrides the recipe's);
3. score the held-out features: the tokenizer's cosine and MAE per vector, beside
   - the mean feature map of the training scenes (0 bits: what knowing nothing gives),
   - same-bit bicubic (tokzoo's baseline: area-average onto a grid, uniform levels, bicubic up) on the token grid
     and on coarser grids (each reported with its own bits; on the token grid even 2 levels cost 9x the budget),
   - same-bit PCA: per vector, the first k principal components of the training vectors, each quantised uniformly
     to floor(2 ** (bits per token / k)) levels (k = 1..8, the best k on the held-out set: an oracle choice).

Appends a table under ``## Feature-map tokenizer: scene ViT`` in benchmarks/RESULTS.md (unless ``--no-write``).

    python benchmarks/scene_vit_features.py --vision runs/compose27/vision --out runs/scene_vit_features
    python benchmarks/scene_vit_features.py --tiny --out /tmp/svf --no-write     # seconds, a random ViT
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from results_md import append_to_section  # noqa: E402
from tokzoo_cli_call import cli  # noqa: E402

SECTION = "## Feature-map tokenizer: scene ViT"
RECIPE = "features/scene_vit_dense"
HELDOUT_SEED = 1_000_003
SIZES = {
    "full": {"train": 4096, "heldout": 256, "steps": None},
    "tiny": {"train": 24, "heldout": 8, "steps": 3},
}


def random_vit(path: Path) -> Path:
    """A randomly initialised ViT of the scene ViT's interface (64 px, patch 8, width 128, 1 block): a stand-in."""
    import torch
    import transformers as tf

    if not (path / "config.json").exists():
        torch.manual_seed(0)
        config = tf.ViTConfig(
            hidden_size=128,
            num_hidden_layers=1,
            num_attention_heads=4,
            intermediate_size=128,
            image_size=64,
            patch_size=8,
        )
        tf.ViTModel(config, add_pooling_layer=False).save_pretrained(path)
        tf.ViTImageProcessor(image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(path)
    return path


def prepare(out: Path, size: dict, vision: Path) -> dict[str, Path]:
    """Scenes labelled with the ViT's features; each step skipped when its output exists."""
    folders = {}
    for name, n, seed in (("train", size["train"], 0), ("heldout", size["heldout"], HELDOUT_SEED)):
        scenes, labelled = out / f"scenes-{name}", out / name
        if not scenes.exists():
            cli("scenes", "--n", n, "--size", 64, "--seed", seed, "--samples-per-shard", 512, "--out", scenes)
        if not labelled.exists():
            cli(
                "pseudo-label",
                "-m",
                "dense_features",
                "-l",
                f"dense_features=vit_dense:{vision}",
                "-i",
                scenes,
                "-o",
                labelled,
                "--no-progress",
            )
        folders[name] = labelled
    return folders


def features(folder: Path) -> np.ndarray:
    from tokzoo.tokenizers.training.data import read_values

    return np.stack(read_values(str(folder), "dense_features")[0]).astype(np.float32)


def pca_same_bit(train: np.ndarray, heldout: np.ndarray, bits_per_vector: float, max_k: int = 8) -> dict:
    """The best (held-out cosine) of k = 1..max_k quantised principal components per vector; side information
    (mean, components, coefficient ranges) from the training vectors, not counted."""
    from tokzoo.tokenizers.evaluation.metrics import cosine, mae

    flat = train.reshape(-1, train.shape[-1]).astype(np.float64)
    rows = flat[np.random.default_rng(0).permutation(len(flat))[:50_000]]
    mean = rows.mean(0)
    components = np.linalg.svd(rows - mean, full_matrices=False)[2]
    best = None
    for k in range(1, max_k + 1):
        levels = math.floor(2 ** (bits_per_vector / k))
        if levels < 2:
            break
        basis = components[:k]
        low, high = ((rows - mean) @ basis.T).min(0), ((rows - mean) @ basis.T).max(0)
        coeffs = (heldout.reshape(-1, heldout.shape[-1]) - mean) @ basis.T
        steps = np.round((np.clip(coeffs, low, high) - low) / (high - low) * (levels - 1))
        recon = (low + steps / (levels - 1) * (high - low)) @ basis + mean
        recon = recon.reshape(heldout.shape)
        row = {"k": k, "levels": levels, "cosine": cosine(heldout, recon), "mae": mae(heldout, recon)}
        row["bits"] = heldout.shape[1] * heldout.shape[2] * k * math.log2(levels)
        if best is None or row["cosine"] > best["cosine"]:
            best = row
    return best


def score(run: Path, folders: dict[str, Path]) -> dict:
    from tokzoo.tokenizers.evaluation.baselines import bits_per_sample, downsample_bicubic
    from tokzoo.tokenizers.evaluation.evaluate import evaluate
    from tokzoo.tokenizers.evaluation.metrics import cosine, mae
    from tokzoo.tokenizers.zoo import load_tokenizer

    tok = load_tokenizer(str(run / "tokenizer"))
    train, heldout = features(folders["train"]), features(folders["heldout"])
    report = evaluate(tok, heldout, data=str(folders["heldout"])).report
    own = next(r for r in report["rows"] if r["method"] == "tokenizer")
    budget = bits_per_sample(tok)
    rows = [{"method": "tokenizer", "bits": budget, **own["metrics"]}]
    mean_map = np.broadcast_to(train.mean(0), heldout.shape)
    rows.append({"method": "mean feature map (training scenes)", "bits": 0.0, "cosine": cosine(heldout, mean_map)})
    rows[-1]["mae"] = mae(heldout, mean_map)
    for grid in ((8, 8), (4, 4), (2, 2), (1, 1)):
        recon, bits = downsample_bicubic(tok, heldout, grid)
        rows.append({"method": f"bicubic, {grid[0]}x{grid[1]} grid", "bits": bits, "cosine": cosine(heldout, recon)})
        rows[-1]["mae"] = mae(heldout, recon)
    pca = pca_same_bit(train, heldout, budget / math.prod(tok.token_shape))
    rows.append(
        {
            "method": f"PCA, {pca['k']} components x {pca['levels']} levels",
            "bits": pca["bits"],
            "cosine": pca["cosine"],
            "mae": pca["mae"],
        }
    )
    config = json.loads((run / "tokenizer" / "config.json").read_text())
    return {
        "rows": rows,
        "budget": budget,
        "codebook": report["codebook"],
        "steps": config.get("provenance", {}).get("steps"),
        "n_train": len(train),
        "n_heldout": len(heldout),
    }


def table(result: dict, vision: Path, command: str, minutes: float) -> str:
    lines = [
        f"### {datetime.date.today().isoformat()}: {RECIPE}, {result['steps']} steps on {result['n_train']} "
        f"scenes, {result['n_heldout']} held-out scenes (stream {HELDOUT_SEED})",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs; training {minutes:.1f} min on one thread. "
        f"Features: vit_dense of {vision} (8 x 8 x 128 after the final LayerNorm). Codebook usage "
        f"{result['codebook'].get('usage', float('nan')):.1%}. `{command}`",
        "",
        "| method | bits / image | cosine (higher) | MAE (lower) | within the budget |",
        "|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        within = "yes" if r["bits"] <= result["budget"] + 1e-6 else f"NO ({r['bits'] / result['budget']:.1f}x)"
        lines.append(f"| {r['method']} | {r['bits']:.0f} | {r['cosine']:.4f} | {r['mae']:.4f} | {within} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--vision", type=Path, default=None, help="ViTModel folder (default with --tiny: random)")
    parser.add_argument("--tiny", action="store_true", help="toy sizes and a random ViT (seconds)")
    parser.add_argument("--steps", type=int, default=None, help="override the recipe's steps")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    size = SIZES["tiny" if args.tiny else "full"]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.vision is None and not args.tiny:
        parser.error("--vision DIR is required (a ViTModel folder), except with --tiny")
    vision = args.vision or random_vit(args.out / "vit-random")
    folders = prepare(args.out, size, vision)
    steps = args.steps or size["steps"]
    timing = args.out / "train_minutes.json"  # a reused run keeps the time its training took
    if not (args.out / "run" / "tokenizer" / "config.json").exists():
        started = time.perf_counter()
        extra = ["--steps", steps] if steps else []
        cli("train", "-r", RECIPE, "--data", folders["train"], "-o", args.out / "run", "--no-eval", "--threads", 1,
            "--no-progress", *extra)  # fmt: skip
        timing.write_text(json.dumps((time.perf_counter() - started) / 60))
    minutes = json.loads(timing.read_text()) if timing.exists() else float("nan")
    result = score(args.out / "run", folders)
    command = "python benchmarks/scene_vit_features.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = table(result, vision, command, minutes)
    print(text)
    if not args.no_write:
        append_to_section(ROOT / "benchmarks" / "RESULTS.md", SECTION, text)
    return result


if __name__ == "__main__":
    main()
