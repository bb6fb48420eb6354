"""`tokzoo browse` on real photographs with SAM-style instances: CPU per photo and the largest picture written.

Goals (issue 31): <= 100 ms CPU per photo for a token dataset with sam_instances, thumbnails <= 30 KB. The photos are
scikit-image's sample images at their own resolution (300 x 451 to 1411 x 1411); `tokzoo pseudo-label -m
sam_instances,edges --tokenize` labels them (slic instances, 36-55 per photo at 224 px) and tokenizes with the
shipped tokenizers; the site is built for the raw labelled shards and for the tokens. Imports happen before the clock.

    python benchmarks/browse_photos.py --record
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import append_to_section  # noqa: E402

import tokzoo.browse.render  # noqa: E402,F401  (imported before timing)
import tokzoo.tokenizers.evaluation.evaluate  # noqa: E402,F401
import tokzoo.tokenizers.learned  # noqa: E402,F401
from tokzoo.browse import build_site  # noqa: E402

PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "colorwheel",
    "cat",
)


def write_photos(folder: Path) -> int:
    from skimage import data

    folder.mkdir(parents=True)
    for name in PHOTOS:
        array = np.asarray(getattr(data, name)())
        array = np.stack([array] * 3, -1) if array.ndim == 2 else array[..., :3]
        Image.fromarray(array.astype(np.uint8)).save(folder / f"{name}.jpg", quality=90)
    return len(PHOTOS)


def measure(source: Path, site: Path, n: int) -> tuple[float, float, int]:
    """(CPU seconds per photo, largest picture in KiB, pictures) of one cold build."""
    shutil.rmtree(site, ignore_errors=True)
    start = time.process_time()
    build_site(source, site, progress=False)
    cpu = time.process_time() - start
    sizes = [p.stat().st_size for p in (site / "img").rglob("*.png") if p.parent.name != "plots"]
    return cpu / n, max(sizes) / 1024, len(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="Append the table to benchmarks/RESULTS.md.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n = write_photos(root / "photos")
        tokzoo = shutil.which("tokzoo") or str(Path(sys.executable).with_name("tokzoo"))
        subprocess.run(
            [
                tokzoo,
                "pseudo-label",
                "-m",
                "sam_instances,edges",
                "--input",
                str(root / "photos"),
                "-o",
                str(root / "pl"),
                "--tokenize",
                "--no-progress",
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        rows = [
            ("pseudo-labelled shards (raw)", *measure(root / "pl", root / "site-raw", n)),
            ("tokens (sam_instances + canny_edges)", *measure(root / "pl-tokens", root / "site", n)),
        ]
    lines = [
        f"### {date.today()} — {platform.machine()}, {os.cpu_count()} cores, one thread, load average {load:.1f} "
        f"/ {os.getloadavg()[0]:.1f} (start / end)",
        "",
        f"{n} scikit-image photos (300 x 451 to 1411 x 1411), cold build; per-sample pictures only "
        "(the dataset page's plots excluded).",
        "",
        "| dataset | CPU ms per photo | largest picture KiB | pictures |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {1000 * cpu:.0f} | {largest:.1f} | {count} |" for name, cpu, largest, count in rows]
    text = "\n".join(lines)
    print(text)
    if args.record:
        append_to_section(Path(__file__).with_name("RESULTS.md"), "## Browser on photographs", text)


if __name__ == "__main__":
    main()
