"""Feature tokenizers trained here: the scene ViT's patch features (recipes/features/scene_vit_dense.yaml) or, with
``--kind global``, its class token (recipes/features/scene_vit_global.yaml), reconstructed on held-out scenes
against same-bit baselines.

One command:

1. render procedural scenes (training stream 0, held-out stream 1000003, 64 px) and label them with the ``vit_dense``
   labeler of ``--vision`` (a transformers ViTModel folder: the composition work's scene ViT, shipped in
   tokzoo/labelers/weights/scene_vit and rebuilt by ``tokzoo compose train --recipe recipes/compose/vision.yaml``;
   ``--tiny`` makes a random one of the same shape, a stand-in);
2. ``tokzoo train --recipe features/scene_vit_dense --data TRAIN`` (``--steps`` overrides the recipe's);
3. score the held-out features: the tokenizer's cosine and MAE per vector, beside
   - the mean feature map of the training scenes (0 bits: what knowing nothing gives),
   - same-bit bicubic (tokzoo's baseline: area-average onto a grid, uniform levels, bicubic up) on the token grid
     and on coarser grids (each reported with its own bits; on the token grid even 2 levels cost 9x the budget),
   - same-bit PCA: per vector, the first k principal components of the training vectors, each quantised uniformly
     to floor(2 ** (bits per token / k)) levels (k = 1..8, the best k on the held-out set: an oracle choice).

``--kind global`` does the same with the ``vit_global`` labeler (one (128,) vector per scene; 32768 training and
1024 held-out scenes, its folders prefixed ``global-``) and ``features/scene_vit_global``, scored against
   - the mean training vector (0 bits),
   - same-bit PCA as above (k = 1..128, the best on the held-out set: an oracle choice),
   - same-bit residual k-means (VQ): stages of 256 centroids (8 bits) fitted to the training vectors' residuals,
     as many stages as the budget holds.

Appends a table under ``## Feature-map tokenizer: scene ViT`` in benchmarks/RESULTS.md (unless ``--no-write``).

    python benchmarks/scene_vit_features.py --vision runs/compose27/vision --out runs/scene_vit_features
    python benchmarks/scene_vit_features.py --kind global --vision runs/compose27/vision --out runs/scene_vit_global
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
HELDOUT_SEED = 1_000_003
TINY = {"train": 24, "heldout": 8, "steps": 3}
KINDS = {
    "dense": {
        "recipe": "features/scene_vit_dense",
        "modality": "dense_features",
        "labeler": "vit_dense",
        "prefix": "",  # folders scenes-train, train, run, ...
        "full": {"train": 4096, "heldout": 256, "steps": None},
        "max_k": 8,
    },
    "global": {  # one vector per scene (not 64): more scenes to train on, and 1024 held-out vectors
        "recipe": "features/scene_vit_global",
        "modality": "global_feature",
        "labeler": "vit_global",
        "prefix": "global-",
        "full": {"train": 32768, "heldout": 1024, "steps": None},
        "max_k": 128,
    },
}
RVQ_CODES = 256  # centroids per residual k-means stage (8 bits)


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


def prepare(out: Path, size: dict, vision: Path, kind: dict) -> dict[str, Path]:
    """Scenes labelled with the ViT's features; each step skipped when its output exists."""
    folders, prefix, modality = {}, kind["prefix"], kind["modality"]
    for name, n, seed in (("train", size["train"], 0), ("heldout", size["heldout"], HELDOUT_SEED)):
        scenes, labelled = out / f"scenes-{prefix}{name}", out / f"{prefix}{name}"
        if not scenes.exists():
            cli("scenes", "--n", n, "--size", 64, "--seed", seed, "--samples-per-shard", 512, "--out", scenes)
        if not labelled.exists():
            cli(
                "pseudo-label",
                "-m",
                modality,
                "-l",
                f"{modality}={kind['labeler']}:{vision}",
                "-i",
                scenes,
                "-o",
                labelled,
                "--no-progress",
            )
        folders[name] = labelled
    return folders


def features(folder: Path, modality: str = "dense_features") -> np.ndarray:
    """(N, ..., C) float32: the folder's ``modality`` values, stacked."""
    from tokzoo.tokenizers.training.data import read_values

    return np.stack(read_values(str(folder), modality)[0]).astype(np.float32)


def pca_same_bit(train: np.ndarray, heldout: np.ndarray, bits_per_vector: float, max_k: int = 8) -> dict:
    """The best (held-out cosine) of k = 1..max_k quantised principal components per vector; side information
    (mean, components, coefficient ranges) from the training vectors, not counted. ``train`` / ``heldout``:
    (N, ..., C), every C-vector coded alone (levels capped at 2^24: beyond, quantisation is exact anyway)."""
    from tokzoo.tokenizers.evaluation.metrics import cosine, mae

    flat = train.reshape(-1, train.shape[-1]).astype(np.float64)
    rows = flat[np.random.default_rng(0).permutation(len(flat))[:50_000]]
    mean = rows.mean(0)
    components = np.linalg.svd(rows - mean, full_matrices=False)[2]
    best = None
    for k in range(1, min(max_k, len(components)) + 1):
        levels = min(math.floor(2 ** (bits_per_vector / k)), 2**24)
        if levels < 2:
            break
        basis = components[:k]
        low, high = ((rows - mean) @ basis.T).min(0), ((rows - mean) @ basis.T).max(0)
        coeffs = (heldout.reshape(-1, heldout.shape[-1]) - mean) @ basis.T
        steps = np.round((np.clip(coeffs, low, high) - low) / (high - low) * (levels - 1))
        recon = (low + steps / (levels - 1) * (high - low)) @ basis + mean
        recon = recon.reshape(heldout.shape)
        row = {"k": k, "levels": levels, "cosine": cosine(heldout, recon), "mae": mae(heldout, recon)}
        row["bits"] = math.prod(heldout.shape[1:-1]) * k * math.log2(levels)
        if best is None or row["cosine"] > best["cosine"]:
            best = row
    return best


def kmeans(rows: np.ndarray, codes: int, rng: np.random.Generator, iterations: int = 25) -> np.ndarray:
    """(codes, C) Lloyd centroids of ``rows`` (N, C), started from distinct random rows; an emptied centroid
    restarts at a random row."""
    centroids = rows[rng.choice(len(rows), codes, replace=False)].copy()
    for _ in range(iterations):
        assign = nearest(rows, centroids)
        counts = np.bincount(assign, minlength=codes)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, rows)
        empty = counts == 0
        centroids[~empty] = sums[~empty] / counts[~empty, None]
        centroids[empty] = rows[rng.choice(len(rows), int(empty.sum()), replace=False)]
    return centroids


def nearest(rows: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(N,) index of each row's nearest centroid (squared Euclidean)."""
    return (-2 * rows @ centroids.T + (centroids**2).sum(1)).argmin(1)


def residual_kmeans_same_bit(train: np.ndarray, heldout: np.ndarray, bits_per_vector: float) -> dict:
    """Residual VQ: stage s codes what stages < s left, with k-means centroids of the training vectors' residuals
    (``RVQ_CODES`` each, fewer when there are fewer training vectors); as many stages as the budget holds.
    ``train`` / ``heldout``: (N, C); codebooks are side information, not counted."""
    from tokzoo.tokenizers.evaluation.metrics import cosine, mae

    codes = min(RVQ_CODES, 2 ** int(math.log2(len(train))))
    stages = int(bits_per_vector // math.log2(codes))
    rng = np.random.default_rng(0)
    fit, coded = train.astype(np.float64), heldout.astype(np.float64)
    recon = np.zeros_like(coded)
    for _ in range(stages):
        centroids = kmeans(fit, codes, rng)
        fit = fit - centroids[nearest(fit, centroids)]
        step = centroids[nearest(coded - recon, centroids)]
        recon = recon + step
    return {
        "codes": codes,
        "stages": stages,
        "bits": stages * math.log2(codes),
        "cosine": cosine(heldout, recon),
        "mae": mae(heldout, recon),
    }


def score(run: Path, folders: dict[str, Path], kind: str = "dense") -> dict:
    from tokzoo.tokenizers.evaluation.baselines import bits_per_sample, downsample_bicubic
    from tokzoo.tokenizers.evaluation.evaluate import evaluate
    from tokzoo.tokenizers.evaluation.metrics import cosine, mae
    from tokzoo.tokenizers.zoo import load_tokenizer

    modality = KINDS[kind]["modality"]
    tok = load_tokenizer(str(run / "tokenizer"))
    train, heldout = features(folders["train"], modality), features(folders["heldout"], modality)
    report = evaluate(tok, heldout, data=str(folders["heldout"])).report
    own = next(r for r in report["rows"] if r["method"] == "tokenizer")
    budget = bits_per_sample(tok)
    rows = [{"method": "tokenizer", "bits": budget, **own["metrics"]}]
    mean = np.broadcast_to(train.mean(0), heldout.shape)
    what = "feature map" if kind == "dense" else "vector"
    rows.append({"method": f"mean {what} (training scenes)", "bits": 0.0, "cosine": cosine(heldout, mean)})
    rows[-1]["mae"] = mae(heldout, mean)
    if kind == "dense":
        for grid in ((8, 8), (4, 4), (2, 2), (1, 1)):
            recon, bits = downsample_bicubic(tok, heldout, grid)
            rows.append(
                {"method": f"bicubic, {grid[0]}x{grid[1]} grid", "bits": bits, "cosine": cosine(heldout, recon)}
            )
            rows[-1]["mae"] = mae(heldout, recon)
    per_vector = budget / math.prod(tok.token_shape) if kind == "dense" else budget
    pca = pca_same_bit(train, heldout, per_vector, KINDS[kind]["max_k"])
    rows.append(
        {
            "method": f"PCA, {pca['k']} components x {pca['levels']} levels",
            "bits": pca["bits"],
            "cosine": pca["cosine"],
            "mae": pca["mae"],
        }
    )
    if kind == "global":
        rvq = residual_kmeans_same_bit(train, heldout, budget)
        rows.append({"method": f"residual k-means, {rvq['stages']} stages x {rvq['codes']} codes", **rvq})
    config = json.loads((run / "tokenizer" / "config.json").read_text())
    return {
        "rows": rows,
        "budget": budget,
        "codebook": report["codebook"],
        "steps": config.get("provenance", {}).get("steps"),
        "n_train": len(train),
        "n_heldout": len(heldout),
        "pca_k": pca["k"],
    }


def table(result: dict, vision: Path, command: str, minutes: float, kind: str = "dense") -> str:
    recipe = KINDS[kind]["recipe"]
    if kind == "dense":
        title = f"{recipe}, {result['steps']} steps"
        described = "vit_dense of {} (8 x 8 x 128 after the final LayerNorm)"
    else:
        title = f"global (class token), {recipe}, {result['steps']} steps"
        described = "vit_global of {} (the class token after the final LayerNorm, 128 values)"
    lines = [
        f"### {datetime.date.today().isoformat()}: {title} on {result['n_train']} "
        f"scenes, {result['n_heldout']} held-out scenes (stream {HELDOUT_SEED})",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs; training {minutes:.1f} min on one thread. "
        f"Features: {described.format(vision)}. Codebook usage "
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
    parser.add_argument("--kind", choices=sorted(KINDS), default="dense", help="patch features or the class token")
    parser.add_argument("--tiny", action="store_true", help="toy sizes and a random ViT (seconds)")
    parser.add_argument("--steps", type=int, default=None, help="override the recipe's steps")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    kind = KINDS[args.kind]
    size = TINY if args.tiny else kind["full"]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.vision is None and not args.tiny:
        parser.error("--vision DIR is required (a ViTModel folder), except with --tiny")
    vision = args.vision or random_vit(args.out / "vit-random")
    folders = prepare(args.out, size, vision, kind)
    steps = args.steps or size["steps"]
    run = args.out / f"{kind['prefix']}run"
    timing = args.out / f"{kind['prefix']}train_minutes.json"  # a reused run keeps the time its training took
    if not (run / "tokenizer" / "config.json").exists():
        started = time.perf_counter()
        extra = ["--steps", steps] if steps else []
        recipe = ROOT / "recipes" / f"{kind['recipe']}.yaml"  # this checkout's, not an installed tokzoo's
        cli("train", "-r", recipe, "--data", folders["train"], "-o", run, "--no-eval", "--threads", 1,
            "--no-progress", *extra)  # fmt: skip
        timing.write_text(json.dumps((time.perf_counter() - started) / 60))
    minutes = json.loads(timing.read_text()) if timing.exists() else float("nan")
    result = score(run, folders, args.kind)
    command = "python benchmarks/scene_vit_features.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = table(result, vision, command, minutes, args.kind)
    print(text)
    if not args.no_write:
        append_to_section(ROOT / "benchmarks" / "RESULTS.md", SECTION, text)
    return result


if __name__ == "__main__":
    main()
