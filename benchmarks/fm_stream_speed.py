"""The fm trainer's data path: samples/s of ``MixtureStream`` (a process's rows of each global batch, read by
index) against ``make_loader`` (whole shards front to back), and the token bytes each of W processes reads per
global batch (it should be 1/W of one process's).

Both read the same token dataset in one process without masking; the stream plans and reads ``--steps`` global
batches of ``--batch``; for each world size W, every rank r plans the same steps and reads only its rows.
Appends a table under ``## Multimodal trainer: data path`` in benchmarks/RESULTS.md.

    python benchmarks/fm_stream_speed.py --data TOKENS/ [--batch 256 --steps 40 --worlds 1 2 8]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

from results_md import append_to_section

from tokzoo.fm.stream import MixtureStream
from tokzoo.tokens import make_loader
from tokzoo.tokens.spec import dataset_manifest, specs_from_manifest

SECTION = "## Multimodal trainer: data path"


def stream_rate(data: Path, specs, batch: int, steps: int) -> float:
    stream = MixtureStream([(data, 1.0)], specs, batch, seed=0)
    stream.read(stream.plan(0)[0])  # opens the shards
    start = time.perf_counter()
    for step in range(1, steps + 1):
        stream.read(stream.plan(step)[0])
    return steps * batch / (time.perf_counter() - start)


def loader_rate(data: Path, names: list[str], batch: int, steps: int) -> float:
    loader = make_loader(data, names, batch, num_workers=0, shuffle=True, seed=0)
    wanted, seen, epoch = steps * batch, 0, 0
    start = time.perf_counter()
    while seen < wanted:
        loader.dataset.set_epoch(epoch)
        for b in loader:
            seen += len(b["__key__"])
            if seen >= wanted:
                break
        epoch += 1
    return seen / (time.perf_counter() - start)


def bytes_per_rank(data: Path, specs, batch: int, steps: int, world: int) -> list[int]:
    out = []
    for rank in range(world):
        stream = MixtureStream([(data, 1.0)], specs, batch, seed=0, rank=rank, world=world)
        for step in range(steps):
            stream.read(stream.plan(step)[0])
        out.append(stream.bytes_read)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 8])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    names = sorted(m for m in dataset_manifest(args.data)["modalities"] if m != "crops")
    specs = specs_from_manifest(args.data, names)
    stream, loader = (
        stream_rate(args.data, specs, args.batch, args.steps),
        loader_rate(args.data, names, args.batch, args.steps),
    )
    size = MixtureStream([(args.data, 1.0)], specs, args.batch, seed=0).streams[0].size
    one = sum(bytes_per_rank(args.data, specs, args.batch, args.steps, 1))
    lines = [
        f"### {datetime.date.today().isoformat()}: {', '.join(names)}, global batch {args.batch}, {args.steps} steps",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs. `python benchmarks/fm_stream_speed.py --data "
        f"{args.data} --batch {args.batch} --steps {args.steps} --worlds {' '.join(map(str, args.worlds))}`",
        "",
        f"Samples/s in one process: MixtureStream (rows by index) {stream:,.0f}, make_loader (whole shards, 0 workers) "
        f"{loader:,.0f}; the dataset holds {size:,} samples, so make_loader starts a new epoch (reopening and "
        f"checking its shards) every {size // args.batch} batches while the stream keeps them open.",
        "",
        "| world | token bytes per rank (min / max) | one process's | max rank / one process |",
        "|---|---|---|---|",
    ]
    for world in args.worlds:
        per_rank = bytes_per_rank(args.data, specs, args.batch, args.steps, world)
        lines.append(f"| {world} | {min(per_rank):,} / {max(per_rank):,} | {one:,} | {max(per_rank) / one:.4f} |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        append_to_section(Path(__file__).with_name("RESULTS.md"), SECTION, text)


if __name__ == "__main__":
    main()
