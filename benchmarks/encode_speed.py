"""Encoder speed of the image presets on CPU: images/s, memory, FLOPs and fraction of matmul peak.

Each preset runs in its own subprocess (so max RSS is its own), encodes (batch, 3, 224, 224) float32
in inference mode after ``prepare_for_inference`` (channels_last), best of a few timed runs. The same
subprocess also times float32 matmul peaks with the same thread count: ``torch.mm`` 2048x2048 (MKL)
and the same product as a 1x1 convolution (oneDNN, the library the conv presets run on). Fractions
are against the peaks timed interleaved with that model, so both see the same machine load.

    python benchmarks/encode_speed.py [--presets conv-tiny vit-tiny] [--threads 2] [--no-write]

Prints a markdown table and appends it to benchmarks/RESULTS.md under "## Encoder speed (CPU)".
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## Encoder speed (CPU)"
BATCH = {"conv-tiny": 16, "conv-small": 16, "conv-base": 1, "vit-tiny": 16, "vit-small": 8, "vit-base": 2}
PEAK_N = 2048


def _best_seconds(fns: dict, runs: int) -> dict:
    """Best wall time of each callable over ``runs`` interleaved rounds (after one warm-up call each)."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def worker(preset: str, batch: int, threads: int, runs: int) -> dict:
    """Measure one preset in this process; returns a JSON-able row."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(ROOT))
    from tokzoo.tokenizers.models import build_encoder, prepare_for_inference, resolve_preset

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = resolve_preset(preset)
    family = config.pop("family")
    x = torch.randn(batch, 3, 224, 224)
    a, b = torch.randn(PEAK_N, PEAK_N), torch.randn(PEAK_N, PEAK_N)
    as_conv = torch.nn.Conv2d(PEAK_N, PEAK_N, 1, bias=False).eval().to(memory_format=torch.channels_last)
    image = torch.randn(1, PEAK_N, 32, PEAK_N // 32).contiguous(memory_format=torch.channels_last)
    rss_before = _max_rss_mb()
    encoder = prepare_for_inference(build_encoder(family, 3, 32, **config))
    row = {"preset": preset, "batch": batch, "params": sum(p.numel() for p in encoder.parameters())}
    with torch.inference_mode():
        encoder(x)
        rss_model = _max_rss_mb()
        with FlopCounterMode(display=False) as counter:
            encoder(x[:1])
        row["gflop_per_image"] = counter.get_total_flops() / 1e9
        # Peaks are timed between the model's runs so that both see the same load on a shared machine.
        best = _best_seconds(
            {"model": lambda: encoder(x), "mm": lambda: torch.mm(a, b), "dnn": lambda: as_conv(image)}, runs
        )
        if family == "conv":
            nchw = build_encoder(family, 3, 32, **config).eval()
            row["nchw_seconds"] = _best_seconds({"nchw": lambda: nchw(x)}, max(1, runs // 2))["nchw"]
    row["rss_delta_mb"] = rss_model - rss_before
    row["seconds"] = best["model"]
    row["mm_peak_gflops"] = 2 * PEAK_N**3 / best["mm"] / 1e9
    row["onednn_peak_gflops"] = 2 * PEAK_N**3 / best["dnn"] / 1e9
    return row


def _table(rows: list[dict]) -> str:
    lines = [
        "| preset | params | batch | images/s | ms/image | NCHW images/s | peak RSS delta (MB) | GFLOP/image "
        "| GFLOP/s | mm peak GFLOP/s | % of mm peak | oneDNN peak GFLOP/s | % of oneDNN peak |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        per_s = r["batch"] / r["seconds"]
        gflops = r["gflop_per_image"] * per_s
        nchw = f"{r['batch'] / r['nchw_seconds']:.1f}" if "nchw_seconds" in r else "—"
        mm, dnn = r["mm_peak_gflops"], r["onednn_peak_gflops"]
        lines.append(
            f"| {r['preset']} | {r['params'] / 1e6:.2f}M | {r['batch']} | {per_s:.1f} | {1000 / per_s:.1f} | {nchw} "
            f"| {r['rss_delta_mb']:.0f} | {r['gflop_per_image']:.2f} | {gflops:.1f} "
            f"| {mm:.0f} | {100 * gflops / mm:.0f}% | {dnn:.0f} | {100 * gflops / dnn:.0f}% |"
        )
    return "\n".join(lines)


def _machine(threads: int) -> str:
    import torch

    cpuinfo = Path("/proc/cpuinfo")
    names = [
        line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
    ]
    processor = " ".join(filter(None, [platform.processor() or platform.machine(), names[0] if names else ""]))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"processor: {processor}; cpu count: {os.cpu_count()}; torch {torch.__version__}; threads: {threads}; "
        f"load average before the run: {load}"
    )


def _append(block: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n"
    start = text.index(SECTION) + len(SECTION)
    next_section = text.find("\n## ", start)
    end = len(text) if next_section == -1 else next_section + 1
    head, tail = text[:end].rstrip("\n"), text[end:]
    RESULTS.write_text(f"{head}\n\n{block}\n" + (f"\n{tail}" if tail else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(BATCH))
    parser.add_argument("--threads", type=int, default=None, help="default: torch's default thread count")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per preset (best is kept)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads is None:
        import torch

        args.threads = torch.get_num_threads()
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, args.threads, args.runs)))
        return

    machine = _machine(args.threads)
    rows = []
    for preset in args.presets:
        command = [sys.executable, __file__, "--worker", preset, "--batch", str(BATCH.get(preset, 4))]
        command += ["--threads", str(args.threads), "--runs", str(args.runs)]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(f"{preset}: {rows[-1]['batch'] / rows[-1]['seconds']:.1f} images/s", file=sys.stderr)
    block = "\n".join(
        [
            f"### {datetime.date.today().isoformat()}",
            "",
            machine,
            "",
            f"224x224x3 float32, inference mode, `prepare_for_inference` (channels_last), best of {args.runs} runs; "
            "NCHW column: the same model left in the default layout. Peaks: float32 "
            f"{PEAK_N}x{PEAK_N} matmul with `torch.mm` (MKL) and as a 1x1 conv (oneDNN, what the conv presets use), "
            "timed interleaved with the model in the same process.",
            "",
            _table(rows),
        ]
    )
    print(block)
    if not args.no_write:
        _append(block)


if __name__ == "__main__":
    main()
