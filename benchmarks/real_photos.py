"""Tokenizers on tokzoo's held-out real set: photos, edges of photos and a real depth map (issue 30).

The held-out set is every bundled sample (tokzoo/datasets/samples.py: scikit-image, scikit-learn and matplotlib
photos, the Middlebury motorcycle); no shipped recipe trains on it. Each photo gives ``--views`` views at the
tokenizer's input size (or ``--size``: a fully convolutional tokenizer at another size): the centre square and
random-resized crops (5-100% of the area, seed 0). ``--set wallpapers`` scores the validation wallpapers
instead (every 8th cached wallpaper, which recipes with ``data.photos.hold_out_every: 8`` leave out of training; a
recipe that starts from weights trained on all wallpapers has seen them through those): a set to choose between
candidates on, so that the held-out photos see only the chosen one. ``--packages more --hold-out-every 4``
scores the photos of tokzoo.datasets.photos.MORE_PACKAGES that recipes/rgb_f4_more_photos.yaml leaves out (no
shipped weights saw them). Subcommands print markdown; ``--write`` adds a dated entry to benchmarks/RESULTS.md
under "Tokenizers on held-out real photos".

- ``rgb``: PSNR of each tokenizer and of its same-bit downsample + bicubic baseline, per photo (mean over views),
  photos where the tokenizer wins, bits per sample.
- ``edges``: Canny edges as the pseudo-labeler computes them (tokzoo.modalities.edges.canny_edges on the full
  photo, then the edges crop rule), reconstructed by each edges tokenizer: F1 at 1-px tolerance and IoU, against
  the empty map (F1 0, IoU of the empty prediction) and the same-bit baseline.
- ``depth``: the motorcycle's metric depth (views as above): abs-rel of each depth tokenizer vs same-bit bicubic.

    python benchmarks/real_photos.py rgb --tokenizers rgb,rgb_128 --write
    python benchmarks/real_photos.py edges --tokenizers canny_edges --write
    python benchmarks/real_photos.py depth --tokenizers depth --write

A tokenizer is a zoo name or a folder (``runs/rgb/tokenizer``); ``NAME=FOLDER`` labels a folder.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
from paired import bootstrap  # noqa: E402
from results_md import append_to_section  # noqa: E402

from tokzoo.crops import apply_crop, make_crop_settings  # noqa: E402
from tokzoo.datasets.samples import SAMPLES, load_sample  # noqa: E402
from tokzoo.labelers.metrics import edge_counts, f1  # noqa: E402
from tokzoo.tokenizers.evaluation.baselines import bits_per_sample, downsample_bicubic  # noqa: E402
from tokzoo.tokenizers.evaluation.metrics import abs_rel, binary_iou, psnr  # noqa: E402
from tokzoo.tokenizers.zoo import load_tokenizer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## Tokenizers on held-out real photos"
CROP_SCALE = (0.05, 1.0)


def set_name(args) -> str:
    if args.set == "heldout":
        return "held-out photos"
    if args.packages:
        kept = (
            f"left out by a recipe source naming exactly these packages with hold_out_every: {args.hold_out_every}; "
            "images made from a training photo (photos.DERIVED) skipped"
            if not args.wallpaper_offset
            else "trained on by a recipe source naming them"
        )
        return f"photos i % {args.hold_out_every} == {args.wallpaper_offset} of {', '.join(args.packages)} ({kept})"
    if args.wallpaper_offset:
        return (
            f"wallpapers i % {args.hold_out_every} == {args.wallpaper_offset} (in the training of every recipe with "
            "data.photos)"
        )
    return (
        f"validation wallpapers i % {args.hold_out_every} == 0 (left out of training by recipes with "
        "data.photos.hold_out_every; a recipe that starts from weights trained on them has seen them)"
    )


def photo_set(
    key: str, which: str, hold_out_every: int, offset: int = 0, packages: list[str] | None = None
) -> dict[str, np.ndarray]:
    """name -> full-size value of ``key``'s source: the held-out bundled samples, or (``which="wallpapers"``, rgb
    and edges) the validation wallpapers that recipes with ``data.photos.hold_out_every`` leave out of training
    (``offset`` k > 0: the wallpapers i % hold_out_every == k instead, which such recipes train on); ``packages``
    picks the cache folders (default: the wallpaper packages), fetched when missing."""
    source = "rgb" if key == "edges" else key
    if which == "wallpapers":
        from tokzoo.datasets.photos import DERIVED, PACKAGES, fetch_photos, photo_files, read_photo

        cache = fetch_photos(packages=tuple(packages) if packages else PACKAGES)
        files = photo_files(cache, every=hold_out_every, offset=offset, packages=packages)
        label = "photo" if packages else "wallpaper"
        return {
            f"{label}{i * hold_out_every + offset:03d}": read_photo(path)
            for i, path in enumerate(files)
            if offset or path.relative_to(cache).as_posix() not in DERIVED  # its source may be in training
        }
    return {name: load_sample(name)[source] for name in sorted(SAMPLES) if source in SAMPLES[name].modalities}


def heldout_views(
    key: str,
    size: int,
    views: int,
    which: str = "heldout",
    hold_out_every: int = 8,
    offset: int = 0,
    packages: list[str] | None = None,
) -> dict[str, list[np.ndarray]]:
    """photo name -> its ``views`` crops of ``key`` (rgb, edges or depth) resized to ``size``."""
    out = {}
    for name, value in photo_set(key, which, hold_out_every, offset, packages).items():
        if key == "edges":
            from tokzoo.modalities.edges import canny_edges

            value = canny_edges(value)
        height, width = value.shape[:2]
        rows = make_crop_settings(height, width, views, 0, name, scale=CROP_SCALE)
        out[name] = [apply_crop({key: value}, row, size)[key] for row in rows]
    return out


PSNR_CAP = 60.0
"""dB given to an exact reconstruction (a flat wallpaper view); no held-out photo view comes near it."""


def view_psnr(value: np.ndarray, reconstruction: np.ndarray) -> float:
    return min(psnr(value, reconstruction), PSNR_CAP)


def reconstruct(tokenizer, values: list[np.ndarray]) -> list[np.ndarray]:
    with torch.no_grad():
        return list(tokenizer.decode(tokenizer.encode(np.stack(values))))


def parse_tokenizers(text: str) -> list[tuple[str, object]]:
    pairs = []
    for item in text.split(","):
        label, _, where = item.partition("=")
        pairs.append((label, load_tokenizer(where or label)))
    return pairs


GRID_SCALES = (0.5, 0.625, 0.75, 0.875, 1.0, 1.25, 1.5, 2.0)


def bicubic_by_grid(tok, views: dict[str, list[np.ndarray]]) -> tuple[dict, tuple[int, int], dict]:
    """Same-bit bicubic PSNR per photo on the token grid, the grid (among the token grid x GRID_SCALES) with the
    best mean PSNR over all photos (one choice for the whole set: an oracle, so a stronger baseline), and the
    per-photo PSNR on that grid."""
    size = next(iter(views.values()))[0].shape[:2]
    token_side = tok.encoder.token_grid(size)[0]
    by_grid = {}
    for side in sorted({max(1, round(token_side * s)) for s in GRID_SCALES}):
        by_grid[side] = {
            name: float(
                np.mean(
                    [
                        view_psnr(v, r)
                        for v, r in zip(values, downsample_bicubic(tok, np.stack(values), (side, side))[0])
                    ]
                )
            )
            for name, values in views.items()
        }
    best = max(by_grid, key=lambda side: np.mean(list(by_grid[side].values())))
    return by_grid[token_side], (best, best), by_grid[best]


def run_rgb(args) -> str:
    rows = [
        "| tokenizer | px | tokens x codes | bits / sample | PSNR tokenizer (dB) | PSNR same-bit bicubic, token grid "
        "(dB) | gain (dB) | photos won | best-grid bicubic (grid, dB) | gain over it (dB) | photos won |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    per_photo, scored = [], []
    for label, tok in parse_tokenizers(args.tokenizers):
        size = args.size or tok.config["input_size"][0]
        views = heldout_views(
            "rgb", size, args.views, args.set, args.hold_out_every, args.wallpaper_offset, args.packages
        )
        ours = {
            name: float(np.mean([view_psnr(v, r) for v, r in zip(values, reconstruct(tok, values))]))
            for name, values in views.items()
        }
        base, grid, best = bicubic_by_grid(tok, views)
        scored.append((label, size, ours))
        for name in views:
            per_photo.append(f"{label} {name}: {ours[name]:.2f} vs {base[name]:.2f} / {best[name]:.2f}")
        mean = lambda d: float(np.mean(list(d.values())))  # noqa: E731
        wins = lambda d: sum(ours[n] > d[n] for n in views)  # noqa: E731
        rows.append(
            f"| {label} | {size} | {int(np.prod(tok.token_shape_for([size, size])))} x {tok.vocab_size} | "
            f"{bits_per_sample(tok, (size, size)):.0f} | {mean(ours):.2f} | {mean(base):.2f} | {mean(ours) - mean(base):+.2f} | "
            f"{wins(base)} / {len(views)} | {grid[0]}x{grid[1]}: {mean(best):.2f} | {mean(ours) - mean(best):+.2f} | "
            f"{wins(best)} / {len(views)} |"
        )
    return (
        "\n".join(rows)
        + paired_lines(scored)
        + f"\n\nMean over {len(views)} {set_name(args)} of the mean PSNR of their {args.views} views "
        f"(centre square + random-resized crops of {CROP_SCALE[0]:.0%}-100% of the area). Best-grid bicubic: the "
        f"same bits spread over the grid (token grid x {', '.join(map(str, GRID_SCALES))}) whose mean PSNR on this "
        "set is best (finer grids get fewer levels per value).\n\nPer photo (tokenizer vs token-grid / best-grid "
        "bicubic): " + "; ".join(per_photo)
    )


def paired_lines(scored: list[tuple[str, int, dict[str, float]]]) -> str:
    """Each tokenizer against the first one scored at the same size: mean per-photo PSNR difference, its paired 95%
    bootstrap interval over the photos where both are finite, photos where it is higher ("" when nothing pairs)."""
    lines, first_at = [], {}
    for label, size, ours in scored:
        if size not in first_at:
            first_at[size] = (label, ours)
            continue
        first, reference = first_at[size]
        diff = np.array([ours[n] - reference[n] for n in reference])
        diff = diff[np.isfinite(diff)]
        if not len(diff):
            continue
        mean, low, high = bootstrap(diff)
        lines.append(
            f"{label} - {first}: {mean:+.3f} dB [{low:+.3f}, {high:+.3f}], higher on {int((diff > 0).sum())} / "
            f"{len(diff)} photos"
        )
    return "\n\nPaired over photos (95% bootstrap interval): " + "; ".join(lines) if lines else ""


def run_edges(args) -> str:
    rows = [
        "| tokenizer | bits / sample | F1 @1px | IoU | empty map F1 / IoU | same-bit bicubic F1 / IoU |",
        "|---|---|---|---|---|---|",
    ]
    for label, tok in parse_tokenizers(args.tokenizers):
        size = args.size or tok.config["input_size"][0]
        values = [
            v
            for vs in heldout_views(
                "edges", size, args.views, args.set, args.hold_out_every, args.wallpaper_offset, args.packages
            ).values()
            for v in vs
        ]
        recon = reconstruct(tok, values)
        bicubic, _ = downsample_bicubic(tok, np.stack(values))
        empty = [np.zeros_like(v) for v in values]

        def score(preds):
            counts = sum(np.array(edge_counts(p, t, 1.0)) for p, t in zip(preds, values))
            return f1(*counts)[2], float(np.mean([binary_iou(t, p) for p, t in zip(preds, values)]))

        (f_t, i_t), (f_e, i_e), (f_b, i_b) = score(recon), score(empty), score([np.asarray(b) for b in bicubic])
        rows.append(
            f"| {label} | {bits_per_sample(tok):.0f} | {f_t:.3f} | {i_t:.3f} | {f_e:.3f} / {i_e:.3f} | "
            f"{f_b:.3f} / {i_b:.3f} |"
        )
    share = float(np.mean([v.mean() for v in values]))
    return (
        "\n".join(rows) + f"\n\n{len(values)} views of the {set_name(args)} ({args.views} each); edges by "
        f"tokzoo.modalities.edges.canny_edges on the full photo, then the edges crop rule; {share:.1%} of pixels "
        "are edges."
    )


def run_depth(args) -> str:
    rows = ["| tokenizer | bits / sample | abs-rel tokenizer | abs-rel same-bit bicubic |", "|---|---|---|---|"]
    for label, tok in parse_tokenizers(args.tokenizers):
        size = args.size or tok.config["input_size"][0]
        values = heldout_views("depth", size, args.views)["motorcycle"]
        recon = reconstruct(tok, values)
        bicubic, _ = downsample_bicubic(tok, np.stack(values))
        ours = np.mean([abs_rel(v, r) for v, r in zip(values, recon)])
        base = np.mean([abs_rel(v, np.asarray(r)) for v, r in zip(values, bicubic)])
        rows.append(f"| {label} | {bits_per_sample(tok):.0f} | {ours:.4f} | {base:.4f} |")
    return "\n".join(rows) + f"\n\nThe Middlebury motorcycle's metric depth (held out), {args.views} views."


def write_entry(title: str, body: str, command: str) -> None:
    """Append a dated entry (machine, load, command, body) to this script's RESULTS.md section."""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    entry = (
        f"### {datetime.date.today().isoformat()}: {title}\n\n{platform.platform()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, one thread, load average {load}. Command: `{command}`\n\n{body}"
    )
    append_to_section(RESULTS, SECTION, entry)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["rgb", "edges", "depth"])
    parser.add_argument("--tokenizers", required=True, help="comma-separated zoo names, folders or NAME=FOLDER")
    parser.add_argument("--views", type=int, default=8, help="views per photo: the centre square + random crops")
    parser.add_argument(
        "--size", type=int, default=None, help="view size in pixels (default: each tokenizer's input size)"
    )
    parser.add_argument(
        "--set",
        choices=["heldout", "wallpapers"],
        default="heldout",
        help="the held-out bundled photos, or the wallpapers that data.photos.hold_out_every leaves out (rgb, "
        "edges): the set to choose on, so that the held-out photos stay unseen by choices",
    )
    parser.add_argument("--hold-out-every", type=int, default=8, help="k of data.photos.hold_out_every")
    parser.add_argument(
        "--wallpaper-offset",
        type=int,
        default=0,
        help="with --set wallpapers: 0 scores the validation wallpapers, j > 0 the trained-on wallpapers i %% k == j",
    )
    parser.add_argument(
        "--packages",
        default=None,
        help="with --set wallpapers: comma-separated photo packages (cache folders) instead of the wallpaper "
        "packages; 'more' = tokzoo.datasets.photos.MORE_PACKAGES",
    )
    parser.add_argument("--write", action="store_true", help="add the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.packages:
        from tokzoo.datasets.photos import MORE_PACKAGES

        args.packages = list(MORE_PACKAGES) if args.packages == "more" else args.packages.split(",")
        if args.set != "wallpapers":
            parser.error("--packages picks photos for --set wallpapers")
    if args.set == "wallpapers" and args.command == "depth":
        parser.error("--set wallpapers: wallpapers are photos, no depth; depth is scored on the motorcycle")
    if not 0 <= args.wallpaper_offset < args.hold_out_every:
        parser.error(f"--wallpaper-offset must be in [0, {args.hold_out_every}), got {args.wallpaper_offset}")
    torch.set_num_threads(1)
    body = {"rgb": run_rgb, "edges": run_edges, "depth": run_depth}[args.command](args)
    print(body)
    if args.write:
        where = (
            "held-out real"
            if args.set == "heldout"
            else f"{'photos of named packages' if args.packages else 'wallpapers'} (offset {args.wallpaper_offset}),"
        )
        write_entry(f"{where} {args.command}", body, "python benchmarks/real_photos.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
