"""Procedural scene generator speed on one core: samples/s at 128, 256 and 512 px.

Times ``generate_scene`` (layout + ray casting + all modalities, no encoding) over consecutive
indices after a warm-up. Reports wall-clock and process-CPU rates (the CPU rate is the fairer one
on a shared machine) with the load average, prints a table and appends it to RESULTS.md under
"## Scenes generator speed".

    python benchmarks/scenes_speed.py [--samples 40]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from tokzoo.datasets import generate_scene  # noqa: E402

HEADING = "## Scenes generator speed"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def measure(size: int, samples: int) -> tuple[float, float]:
    """(wall samples/s, CPU samples/s) over ``samples`` scenes of ``size`` px, seed 0."""
    for i in range(2):
        generate_scene(10_000 + i, size=size)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(samples):
        generate_scene(i, size=size)
    return samples / (time.perf_counter() - wall), samples / (time.process_time() - cpu)


def append_section(text: str) -> None:
    """Add ``text`` at the end of this benchmark's section of RESULTS.md, creating it if missing."""
    content = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if HEADING not in content:
        content = content.rstrip("\n") + f"\n\n{HEADING}\n"
    start = content.index(HEADING) + len(HEADING)
    end = content.find("\n## ", start)
    end = len(content) if end < 0 else end
    content = content[:end].rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n" + content[end:]
    RESULTS.write_text(content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40, help="scenes per size at 256 px (x4 at 128, /4 at 512)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for size, n in ((128, args.samples * 4), (256, args.samples), (512, max(args.samples // 4, 4))):
        wall, cpu = measure(size, n)
        rows.append(f"| {size} | {n} | {wall:.1f} | {cpu:.1f} | {1000 / cpu:.1f} |")
        print(rows[-1], flush=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    text = "\n".join([
        f"{datetime.date.today().isoformat()}, {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, one thread, load average {load}.",
        "",
        "| size px | scenes | samples/s (wall) | samples/s (CPU) | ms/sample (CPU) |",
        "|---|---|---|---|---|",
        *rows,
    ])  # fmt: skip
    print(text)
    if not args.no_write:
        append_section(text)


if __name__ == "__main__":
    main()
