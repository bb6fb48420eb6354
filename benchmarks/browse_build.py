"""Build time and size of the ``tokzoo browse`` site of a 10,000-sample token dataset, and what a page loads.

The dataset: built-in procedural scenes tokenized with copies of the shipped zoo tokenizers (rgb, depth,
semseg by default) at a small size (32 px crops of 32 px scenes: the site's cost is per image, not per pixel), one
crop per sample, 1,000 samples per shard; tokenizing is timed apart. Then the site is built cold, rebuilt
with nothing changed (every chunk reused), and rebuilt after one modality's images are deleted with its
chunk files (those chunks redrawn). Reports wall and CPU seconds, samples/s, files and bytes on disk, and
the largest data file each kind of page loads (they do not grow with the dataset: one view page, one chunk).
When Chromium is there, times opening the grid and a sample page from disk until they are drawn.
Appends a section under ``## Dataset browser`` in benchmarks/RESULTS.md.

    python benchmarks/browse_build.py [--samples 10000] [--size 32] [--modalities rgb,depth,semseg]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from results_md import append_to_section

from tokzoo.browse import build_site
from tokzoo.pipeline import TokenizeJob, tokenize
from tokzoo.tokenizers.zoo import load_tokenizer

SECTION = "## Dataset browser"


def tree_size(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def page_times(site: Path) -> dict[str, float] | None:
    """Seconds from navigation until the grid / a sample page / the dataset page is drawn, in headless Chromium."""
    from tokzoo.browse.chromium import Chromium, ChromiumError, find_chromium
    from tokzoo.browse.site import read_data_file

    chunks = read_data_file(site / "data" / "chunks.js")
    middle = chunks[len(chunks) // 2][0]
    try:
        find_chromium()
    except ChromiumError:
        return None
    times = {}
    with Chromium() as browser:
        for name, page, fragment in (
            ("grid", "index.html", ""),
            ("sample", "sample.html", f"#c={middle}&i=7"),
            ("dataset", "dataset.html", ""),
        ):
            started = time.perf_counter()
            browser.open((site / page).resolve().as_uri() + fragment)
            browser.wait_for("document.body.dataset.ready", timeout=60)
            assert browser.broken_images() == [], name
            times[name] = time.perf_counter() - started
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--modalities", default="rgb,depth,semseg")
    parser.add_argument("--workers", type=int, default=1, help="tokenize's decode/crop processes (not timed)")
    args = parser.parse_args()
    modalities = args.modalities.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        tokens, site = Path(tmp) / "tokens", Path(tmp) / "site"
        # copies of the shipped tokenizers: the zoo's files may change while this runs, the copies do not
        copies = {m: str(load_tokenizer(m).save_pretrained(Path(tmp) / f"tok-{m}")) for m in modalities}
        _, tokenize_s, _ = timed(
            lambda: tokenize(
                TokenizeJob(
                    modalities=modalities,
                    tokenizers=copies,
                    output=tokens,
                    scenes=args.samples,
                    scene_size=args.size,
                    size=(args.size, args.size),
                    samples_per_shard=1000,
                    workers=args.workers,
                    progress=True,
                )
            )
        )
        load = os.getloadavg()
        cold, cold_s, cold_cpu = timed(lambda: build_site(tokens, site, progress=True))
        if cold.notes:  # e.g. a tokenizer that cannot be loaded: the build did less than it should
            raise SystemExit(f"the build had notes, its figures would not be comparable: {cold.notes}")
        files, size = tree_size(site)
        images = sum(1 for _ in (site / "img").rglob("*.png"))
        warm, warm_s, _ = timed(lambda: build_site(tokens, site, progress=False))
        for chunk in list((site / "data" / "chunks").glob("shard-00000[0-1]-*.js")):
            chunk.unlink()
        partial, partial_s, _ = timed(lambda: build_site(tokens, site, progress=False))
        largest = {
            kind: max(p.stat().st_size for p in (site / "data").glob(pattern))
            for kind, pattern in (
                ("site.js", "site.js"),
                ("view page", "views/*/*.js"),
                ("chunk", "chunks/*.js"),
                ("chunks.js", "chunks.js"),
                ("dataset.js", "dataset.js"),
            )
        }
        pages = page_times(site)
        shutil.rmtree(site)
    machine = f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    n = cold.samples
    lines = [
        f"### {datetime.date.today().isoformat()}: {n:,} samples x {len(modalities)} modalities "
        f"({', '.join(modalities)}, shipped zoo tokenizers at {args.size} px, 1 crop)",
        "",
        f"Machine: {machine}, no GPU; load average at the cold build's start {load[0]:.1f}, {load[1]:.1f}, "
        f"{load[2]:.1f} (shared with other jobs). Command: `python benchmarks/browse_build.py --samples "
        f"{args.samples} --size {args.size} --modalities {args.modalities}`. Tokenizing them took {tokenize_s:.0f} s "
        "(not counted).",
        "",
        "| build | wall s | CPU s | samples/s (wall) | chunks drawn / reused | images written |",
        "|---|---|---|---|---|---|",
        f"| cold | {cold_s:.1f} | {cold_cpu:.1f} | {n / cold_s:.0f} | {cold.chunks_drawn} / {cold.chunks_reused} | {cold.images_written:,} |",
        f"| rebuild, nothing changed | {warm_s:.1f} | — | {n / warm_s:.0f} | {warm.chunks_drawn} / {warm.chunks_reused} | {warm.images_written:,} |",
        f"| rebuild, 2 shards' chunk files deleted | {partial_s:.1f} | — | — | {partial.chunks_drawn} / {partial.chunks_reused} | {partial.images_written:,} |",
        "",
        f"Site: {files:,} files, {size / 2**20:.1f} MiB ({images:,} PNGs; {size / n / 1024:.1f} KiB per sample). "
        "Largest data file a page loads: " + ", ".join(f"{k} {v / 1024:.1f} KiB" for k, v in largest.items()) + ".",
    ]
    if pages:
        lines.append(
            "Headless Chromium, from disk until drawn with every image loaded: "
            + ", ".join(f"{k} page {v:.2f} s" for k, v in pages.items())
            + "."
        )
    else:
        lines.append("Page times not measured: no Chromium on this machine.")
    text = "\n".join(lines)
    print(text)
    append_to_section(Path(__file__).with_name("RESULTS.md"), SECTION, text)


if __name__ == "__main__":
    main()
