"""Tokenize pipeline throughput and memory: `tokzoo tokenize` end to end vs the encoder alone.

Input: webdataset tars of depth maps (100 distinct procedural scenes cycled under unique keys), one
centre crop, batch size 64. Default, the 4M-like size the throughput goal is about: 256 x 256 sources,
224 x 224 crops, a conv-small depth tokenizer (196 tokens). ``--tiny``: 40 x 40 sources, 32 x 32 crops,
conv-tiny (16 tokens), where the encoder is so fast that the run measures the pipeline's own per-sample
work.

1. encoder alone: ``tok.encode`` on the same centre crops, same batch size, in this process,
   measured right before and right after each pipeline run (the machine is shared: its load
   drifts), the ratio taken against the mean of the two;
2. pipeline: ``tokenize`` (decode + crop + normalise in workers, encode, write) on the same samples,
   in a fresh process, excluding interpreter start and imports; per-sample overhead = pipeline
   time per sample - encoder time per sample;
3. peak RSS (main process, and the largest worker) at 1,000 and ``--large`` (10,000) samples.

At the default size a 10,000-sample run takes about 3 minutes per worker count on 2 cores, and its
input about 2.6 GB of temporary disk; ``--large 3000`` is quicker.

Usage: ``python benchmarks/pipeline_throughput.py [--tiny] [--large N] [--append]`` (``--append`` adds the
table to benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BATCH = 64
DEFAULT = {"preset": "conv-small", "size": 224, "source": 256}
TINY = {"preset": "conv-tiny", "size": 32, "source": 40}
RESULTS = Path(__file__).with_name("RESULTS.md")

CHILD = (
    """
import json, resource, sys, time
from pathlib import Path
from tokzoo.pipeline import TokenizeJob, tokenize
src, out, tok, workers = sys.argv[1:5]
start = time.perf_counter()
summary = tokenize(TokenizeJob(modalities=["depth"], output=Path(out), input=src, tokenizers={"depth": tok},
                               batch_size=%d, workers=int(workers), samples_per_shard=1000, progress=False))
seconds = time.perf_counter() - start
print(json.dumps({"ok": summary.ok, "seconds": seconds,
                  "rss_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""
    % BATCH
)


def write_input(folder: Path, n: int, source: int, per_tar: int = 1000) -> str:
    """``n`` depth samples of ``source`` x ``source`` px as tars of ``per_tar``; returns the brace pattern."""
    import webdataset as wds

    from tokzoo.datasets.scenes import generate_scene

    folder.mkdir(parents=True, exist_ok=True)
    depths = []
    for i in range(100):
        buffer = io.BytesIO()
        np.save(buffer, generate_scene(i, seed=7, size=source)["depth"])
        depths.append(buffer.getvalue())
    shards = (n + per_tar - 1) // per_tar
    for s in range(shards):
        with wds.TarWriter(str(folder / f"in-{s:04d}.tar"), encoder=False, mtime=0.0) as tar:
            for i in range(s * per_tar, min(n, (s + 1) * per_tar)):
                tar.write({"__key__": f"sample_{i:06d}", "depth.npy": depths[i % 100]})
    return str(folder / f"in-{{0000..{shards - 1:04d}}}.tar")


def encoder_alone(tok, n: int, source: int, size: int) -> float:
    """samples/s of ``tok.encode`` on ``n`` centre crops, batch ``BATCH``."""
    from tokzoo.datasets.scenes import generate_scene

    offset = (source - size) // 2
    crops = np.stack(
        [
            generate_scene(i, seed=7, size=source)["depth"][offset : offset + size, offset : offset + size]
            for i in range(100)
        ]
    )
    batch = np.concatenate([crops] * (BATCH // 100 + 1))[:BATCH]
    tok.encode(batch)  # warm-up
    start = time.perf_counter()
    for _ in range(n // BATCH):
        tok.encode(batch)
    return (n // BATCH) * BATCH / (time.perf_counter() - start)


def pipeline(src: str, tok_dir: Path, workers: int, out: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, src, str(out), str(tok_dir), str(workers)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--append", action="store_true", help="append the results to benchmarks/RESULTS.md")
    parser.add_argument("--large", type=int, default=10_000, help="samples of the large run (default 10,000)")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help=f"{TINY['preset']}, {TINY['size']} px crops of {TINY['source']} px sources: pipeline overhead alone",
    )
    parser.add_argument("--preset", help=f"model preset of the depth tokenizer (default {DEFAULT['preset']})")
    parser.add_argument("--size", type=int, help=f"crop (and tokenizer input) side in px (default {DEFAULT['size']})")
    parser.add_argument("--source", type=int, help=f"side of the stored depth maps in px (default {DEFAULT['source']})")
    args = parser.parse_args()
    for name, value in (TINY if args.tiny else DEFAULT).items():
        setattr(args, name, getattr(args, name) or value)

    from tokzoo.tokenizers.learned import LearnedTokenizer

    tok = LearnedTokenizer.from_defaults("depth", model={"preset": args.preset}, input_size=[args.size, args.size])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tok_dir = tok.save_pretrained(tmp / "tok")
        small, large = (
            write_input(tmp / "small", 1000, args.source),
            write_input(tmp / "large", args.large, args.source),
        )
        runs = {}
        for n, src in ((1000, small), (args.large, large)):
            for w in (1, 2):
                before = encoder_alone(tok, 1000, args.source, args.size)
                runs[(n, w)] = pipeline(src, tok_dir, w, tmp / f"out-{n}-{w}")
                runs[(n, w)]["alone"] = (before + encoder_alone(tok, 1000, args.source, args.size)) / 2
                print(
                    f"{n:,} samples, {w} worker(s): {runs[(n, w)]['ok'] / runs[(n, w)]['seconds']:.0f} samples/s, "
                    f"encoder alone {runs[(n, w)]['alone']:.0f}",
                    file=sys.stderr,
                )
    load = os.getloadavg()[0]
    lines = [
        f"### {datetime.date.today()} — {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_version()}, load average {load:.1f} at the end",
        f"{args.preset} depth tokenizer at {args.size}x{args.size} ({tok.token_shape[0]} tokens), "
        f"{args.source}x{args.source} .npy sources in tars, "
        f"batch {BATCH}, 1 crop.",
        "",
        "| samples | workers | `tokenize` samples/s | encoder alone samples/s | ratio | overhead ms/sample "
        "| peak RSS main (MB) | peak RSS worker (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (n, w), r in runs.items():
        rate = r["ok"] / r["seconds"]
        overhead = 1000 / rate - 1000 / r["alone"]
        lines.append(
            f"| {n:,} | {w} | {rate:.0f} | {r['alone']:.0f} | {rate / r['alone']:.2f} | {overhead:.2f} | "
            f"{r['rss_main_mb']:.0f} | {r['rss_worker_mb']:.0f} |"
        )
    for w in (1, 2):
        growth = runs[(args.large, w)]["rss_main_mb"] / runs[(1000, w)]["rss_main_mb"] - 1
        lines.append(
            f"\nPeak RSS growth of the main process from 1,000 to {args.large:,} samples, {w} worker(s): {growth:+.1%}."
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.append:
        append_section(text)


def append_section(text: str, header: str = "## Tokenize pipeline throughput") -> None:
    """Add ``text`` at the end of ``header``'s section of RESULTS.md (created when missing)."""
    content = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if header not in content:
        content = content.rstrip("\n") + f"\n\n{header}\n"
    start = content.index(header)
    end = content.find("\n## ", start + len(header))
    end = len(content) if end < 0 else end
    RESULTS.write_text(content[:end].rstrip("\n") + "\n\n" + text + content[end:])


if __name__ == "__main__":
    main()
