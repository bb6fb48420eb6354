"""Procedural vs real depth structure (issue 30): how often 64-px depth maps of each scene kind break (depth
discontinuities), hold thin structures and miss pixels, next to the held-out Middlebury motorcycle.

Statistics: tokzoo.datasets.depth_stats (shares of all pixels; inverse-depth based, so slanted planes count as
neither discontinuity nor thin structure). Scenes are rendered at 64 px (indices 0 .. N-1, seed 0); the
motorcycle gives the views benchmarks/real_photos.py scores tokenizers on (centre square + random-resized crops
of 5-100% of the area, 64 px). A ``+ sensor`` row applies tokzoo.tokenizers.training.sensor.corrupt_depth with
``--sensor`` to the cluttered scenes. The last column is the CPU time of one 96-px scene (the depth recipe's
size). ``--write`` adds a dated entry to benchmarks/RESULTS.md under "Procedural vs real depth structure".

    python benchmarks/depth_structure.py --scenes 64 --sensor shadow=4,edges=0.2,blobs=0.005,noise=0.003 --write
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from real_photos import heldout_views  # noqa: E402
from results_md import append_to_section  # noqa: E402

from tokzoo.datasets.depth_stats import depth_structure  # noqa: E402
from tokzoo.datasets.scenes import generate_scene  # noqa: E402
from tokzoo.tokenizers.training.sensor import corrupt_depth  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## Procedural vs real depth structure"
KINDS = ("indoor", "mix", "cluttered")


def _row(label: str, maps: list, ms: str = "") -> str:
    stats = [depth_structure(m) for m in maps]
    mean = {k: np.mean([s[k] for s in stats]) for k in stats[0]}
    return (
        f"| {label} | {len(maps)} | {mean['discontinuities']:.3f} | {mean['thin']:.4f} | {mean['invalid']:.3f} | {ms} |"
    )


def _ms_per_scene(kind: str, n: int) -> float:
    generate_scene(0, 0, 96, kind)  # warm-up
    start = time.process_time()
    for i in range(n):
        generate_scene(i, 0, 96, kind)
    return (time.process_time() - start) / n * 1000


def run(args) -> str:
    sensor = {k: float(v) for k, v in (item.split("=") for item in args.sensor.split(","))} if args.sensor else None
    rows = [
        "| depth maps (64 px) | maps | discontinuities | thin structures | invalid | ms / 96-px scene (CPU) |",
        "|---|---|---|---|---|---|",
    ]
    scenes = {kind: [generate_scene(i, 0, 64, kind)["depth"] for i in range(args.scenes)] for kind in KINDS}
    for kind in KINDS:
        rows.append(_row(f"scenes, {kind}", scenes[kind], f"{_ms_per_scene(kind, args.timed):.1f}"))
    turns = ("mix", "mix", "cluttered")  # data.scenes.kind: [mix, mix, cluttered]
    rows.append(_row("scenes, kind [mix, mix, cluttered]", [scenes[turns[i % 3]][i] for i in range(args.scenes)]))
    if sensor:
        corrupted = [corrupt_depth(d, sensor, np.random.default_rng([0, i])) for i, d in enumerate(scenes["cluttered"])]
        rows.append(_row(f"scenes, cluttered + sensor {args.sensor}", corrupted))
    rows.append(_row("Middlebury motorcycle (held out)", heldout_views("depth", 64, args.views)["motorcycle"]))
    return "\n".join(rows) + (
        "\n\nShares of all pixels. Discontinuity: |second difference of inverse depth| > 5% of the inverse depth "
        "along a row or column; thin structure: over 10% nearer than both pixels 2 px away along a row or column; "
        f"invalid: NaN (sky in scenes, no ground truth in the motorcycle). Times: mean over {args.timed} scenes."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=64, help="scenes of each kind")
    parser.add_argument("--views", type=int, default=16, help="motorcycle views")
    parser.add_argument("--timed", type=int, default=40, help="96-px scenes timed per kind")
    parser.add_argument("--sensor", default="", help="data.sensor fields for a corrupted row, e.g. shadow=4,edges=0.2")
    parser.add_argument("--write", action="store_true", help="add the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    body = run(args)
    print(body)
    if args.write:
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        command = "python benchmarks/depth_structure.py " + " ".join(sys.argv[1:])
        entry = (
            f"### {datetime.date.today().isoformat()}: depth structure\n\n{platform.platform()}, {os.cpu_count()} "
            f"CPUs, one thread, load average {load}. Command: `{command}`\n\n{body}"
        )
        append_to_section(RESULTS, SECTION, entry)


if __name__ == "__main__":
    main()
