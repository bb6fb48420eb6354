"""Samples/s of tokzoo.tokens vs loose .npy files vs webdataset, on 10,000 samples x 3 modalities x (1, 256) uint16.

The fixture is written to a temp dir; every reader runs once to warm the page cache, then the best of
three timed passes counts. Baselines only read (np.load per file; webdataset ``.decode()`` zipped by
key) and build no batches, so they are measured as cheaply as possible; tokzoo.tokens yields int64
batches of 256 with a random crop per sample, shuffled. The DataLoader rows show worker start-up per
exact epoch and, separately, a resampled stream timed over 3 x samples once its workers run.
Appends a table under ``## Loader speed`` in benchmarks/RESULTS.md.

    python benchmarks/loader_speed.py [--samples 10000]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from tokzoo.tokens import TokenDataset
from tokzoo.tokens.tars import npy_bytes, tar_bytes

MODALITIES = ("rgb", "depth", "normals")
SHARD_SIZE = 1000
BATCH = 256


def write_fixture(root: Path, n: int) -> None:
    """OUT/<modality>/shard-*.tar (+ .stats.json) with the pipeline's own tar writer, and
    loose/<modality>/<key>.npy with the same tokens."""
    rng = np.random.default_rng(0)
    for modality in MODALITIES:
        (root / "loose" / modality).mkdir(parents=True)
        (root / "out" / modality).mkdir(parents=True)
        for shard in range(-(-n // SHARD_SIZE)):
            members = []
            for i in range(shard * SHARD_SIZE, min(n, (shard + 1) * SHARD_SIZE)):
                data = npy_bytes(rng.integers(0, 65536, (1, 256), dtype=np.uint16))
                (root / "loose" / modality / f"s{i:07d}.npy").write_bytes(data)
                members.append((f"s{i:07d}", data))
            tar_path = root / "out" / modality / f"shard-{shard:06d}.tar"
            tar_path.write_bytes(tar_bytes(members))
            tar_path.with_suffix(".stats.json").write_text("{}")


def read_tokzoo(root: Path, workers: int) -> int:
    dataset = TokenDataset(root / "out", list(MODALITIES), BATCH, shuffle=True)
    batches = DataLoader(dataset, batch_size=None, num_workers=workers) if workers else dataset
    return sum(len(b["__key__"]) for b in batches)


def steady_workers(root: Path, n: int) -> float:
    """Wall samples/s of a resampled stream through 2 DataLoader workers, after the workers have started."""
    dataset = TokenDataset(root / "out", list(MODALITIES), BATCH, resampled=True)
    stream = iter(DataLoader(dataset, batch_size=None, num_workers=2))
    for _ in range(4):
        next(stream)
    start, count = time.perf_counter(), 0
    while count < n:
        count += len(next(stream)["__key__"])
    return count / (time.perf_counter() - start)


def read_loose(root: Path, n: int) -> int:
    for i in range(n):
        for modality in MODALITIES:
            np.load(root / "loose" / modality / f"s{i:07d}.npy")
    return n


def read_webdataset(root: Path) -> int:
    import webdataset as wds

    pipelines = [
        wds.WebDataset(sorted(str(p) for p in (root / "out" / m).glob("*.tar")), shardshuffle=False).decode()
        for m in MODALITIES
    ]
    count = 0
    for samples in zip(*pipelines):
        assert len({s["__key__"] for s in samples}) == 1
        count += 1
    return count


def best_rate(fn, n: int) -> tuple[float, float]:
    """(wall samples/s, this process's CPU samples/s), best of 3 after a warm-up pass."""
    assert fn() == n  # warm-up pass, also checks every sample arrived
    walls, cpus = [], []
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return n / min(walls), n / min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    n = parser.parse_args().samples
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_fixture(root, n)
        load = os.getloadavg()
        rates = {
            "loose .npy, np.load per file": best_rate(lambda: read_loose(root, n), n),
            "webdataset .decode(), 3 pipelines zipped": best_rate(lambda: read_webdataset(root), n),
            "tokzoo.tokens, in process": best_rate(lambda: read_tokzoo(root, 0), n),
            "tokzoo.tokens, DataLoader num_workers=2, workers started each epoch": (
                best_rate(lambda: read_tokzoo(root, 2), n)[0],
                None,
            ),
            "tokzoo.tokens, DataLoader num_workers=2, resampled, after start-up": (steady_workers(root, 3 * n), None),
        }
    loose = rates["loose .npy, np.load per file"][0]
    machine = f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    lines = [
        f"### {datetime.date.today().isoformat()}: {n:,} samples x {len(MODALITIES)} modalities x (1, 256) uint16, "
        f"warm page cache, best of 3",
        "",
        f"Machine: {machine}; load average at start {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}. "
        "CPU column: samples per CPU-second of the reading process (workers not counted).",
        "",
        "| reader | samples/s (wall) | vs loose .npy | samples/s (CPU) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {wall:,.0f} | {wall / loose:.1f}x | {f'{cpu:,.0f}' if cpu else '—'} |"
        for name, (wall, cpu) in rates.items()
    ]
    text = "\n".join(lines)
    print(text)
    append_results(Path(__file__).with_name("RESULTS.md"), text)


def append_results(path: Path, text: str) -> None:
    """Append under ``## Loader speed`` (created at the end of the file when missing), re-reading the file first."""
    content = path.read_text() if path.exists() else ""
    if "## Loader speed" not in content:
        content = content.rstrip("\n") + ("\n\n" if content else "") + "## Loader speed\n"
        path.write_text(content + "\n" + text + "\n")
        return
    head, _, tail = content.partition("## Loader speed")
    next_section = tail.find("\n## ")
    section, rest = (tail, "") if next_section < 0 else (tail[:next_section], tail[next_section:])
    path.write_text(head + "## Loader speed" + section.rstrip("\n") + "\n\n" + text + "\n" + rest)


if __name__ == "__main__":
    main()
