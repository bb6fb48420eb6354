"""Training speed of the 4M-style model: tokens/s, achieved FLOP/s / fp32 matmul peak, loader vs in-memory.

One process, ``--threads`` torch threads, ``--device cpu`` (float32) or ``cuda`` (bf16 autocast, as ``tokzoo fm
train`` runs there). Timings (best of ``--repeats`` rounds of ``--steps`` steps each):

- **peak**: ``torch.mm`` of two 2048 x 2048 float32 matrices on CPU (8192 x 8192 bf16 on CUDA), timed between
  the training rounds, so both see the same machine load;
- **in memory**: ``train_step`` on global batches read and masked beforehand;
- **real loader**: the same steps reading through ``tokzoo.fm.stream.MixtureStream`` (the rows of each global
  batch by index from the memory-mapped shards) with masking in the loop, as ``tokzoo fm train`` does (which
  also reads the next step's rows in a background thread; not here); the time spent waiting for the next batch and masking it is
  also timed inside those steps, which a loaded machine disturbs less than two separately timed rounds.

FLOPs per step are counted by ``torch.utils.flop_counter.FlopCounterMode`` over one forward + backward
(matmuls and attention). Tokens per step = input + target tokens. Appends a table under
``## Multimodal trainer speed`` in benchmarks/RESULTS.md.

    python benchmarks/fm_speed.py --data TOKENS/ [--preset fm-small --batch 32]
    python benchmarks/fm_speed.py --device cuda --preset 4M-B --batch 256     # model FLOP utilisation on a GPU
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from results_md import append_to_section
from torch.utils.flop_counter import FlopCounterMode

from tokzoo.fm.masking import Masker
from tokzoo.fm.model import FourM, model_config
from tokzoo.fm.recipe import load_recipe
from tokzoo.fm.stream import MixtureStream
from tokzoo.fm.train import make_optimizer, train_step
from tokzoo.tokens.spec import specs_from_manifest

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "fm" / "scenes-cpu.yaml"
SECTION = "## Multimodal trainer speed"
PEAK = {"cpu": (2048, torch.float32), "cuda": (8192, torch.bfloat16)}  # matmul side and dtype of the peak


def matmul_peak(device: torch.device, runs: int = 3) -> float:
    n, dtype = PEAK[device.type]
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    torch.mm(a, b)
    best = min(_seconds(lambda: torch.mm(a, b), device) for _ in range(runs))
    return 2 * n**3 / best


def _seconds(fn, device: torch.device) -> float:
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="Token dataset (default: tokenize 256 built-in scenes)")
    parser.add_argument("--preset", default="fm-small")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--device", default="cpu", help="cpu (float32) or cuda (bf16 autocast)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or _tokenize(Path(tmp) / "tokens")
        row = measure(data, args)
    text = _table(row, args)
    print(text)
    if not args.no_write:
        append_to_section(Path(__file__).with_name("RESULTS.md"), SECTION, text)


def measure(data: Path, args) -> dict:
    recipe = load_recipe(RECIPE)
    specs = specs_from_manifest(data, list(recipe.modalities))
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = FourM(specs, model_config(args.preset)).to(device)
    optimizer = make_optimizer(model, recipe.train)
    masker = Masker(specs, recipe.masking)
    cfg = recipe.train
    stream = MixtureStream([(data, 1.0)], specs, args.batch, seed=1)

    def next_batch(step: int):
        positions, rows = stream.plan(step)
        return masker(stream.read(positions), [np.random.default_rng([1, step, int(r)]) for r in rows])

    batches = [next_batch(i) for i in range(args.steps)]
    with FlopCounterMode(display=False) as counter, _autocast(device):
        out = model(batches[0].to(device))
        sum(out[m][0] / max(1, int(out[m][1])) for m in out).backward()
    flops = counter.get_total_flops()
    optimizer.zero_grad(set_to_none=True)
    tokens = float(np.mean([sum(int(b.input[m].sum() + b.target[m].sum()) for m in b.tokens) for b in batches]))
    train_step(model, optimizer, batches[0], cfg, 0, device=device)  # warm-up

    def in_memory():
        for i, b in enumerate(batches):
            train_step(model, optimizer, b, cfg, i, device=device)

    waits = []

    def real_loader():
        for i in range(args.steps):
            t = time.perf_counter()
            batch = next_batch(args.steps + i)
            waits.append(time.perf_counter() - t)
            train_step(model, optimizer, batch, cfg, i, device=device)

    memory, real, peaks = [], [], []
    load = os.getloadavg()
    for _ in range(args.repeats):
        peaks.append(matmul_peak(device))
        memory.append(_seconds(in_memory, device) / args.steps)
        peaks.append(matmul_peak(device))
        real.append(_seconds(real_loader, device) / args.steps)
    peak, step_memory, step_real = max(peaks), min(memory), min(real)
    return {
        "params": model.num_parameters(),
        "flops_per_step": flops,
        "tokens_per_step": tokens,
        "peak": peak,
        "step_memory": step_memory,
        "step_real": step_real,
        "wait": float(np.mean(waits)),
        "load_start": load,
        "load_end": os.getloadavg(),
    }


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def _tokenize(out: Path) -> Path:
    from click.testing import CliRunner

    from tokzoo_cli.main import cli

    result = CliRunner().invoke(
        cli,
        [
            "tokenize",
            "-m",
            "rgb,depth,normals,semseg",
            "--scenes",
            "256",
            "--scene-size",
            "64",
            "--no-progress",
            "-o",
            str(out),
        ],
    )
    if result.exit_code:
        raise SystemExit(result.output)
    return out


def _table(r: dict, args) -> str:
    achieved = r["flops_per_step"] / r["step_memory"]
    device = torch.device(args.device)
    n, dtype = PEAK[device.type]
    precision = "CUDA bf16 autocast" if device.type == "cuda" else "CPU float32"
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    machine = f"{platform.platform()}, {os.cpu_count()} CPUs{gpu}, torch {torch.__version__}, {args.threads} threads"
    la, le = r["load_start"], r["load_end"]
    return "\n".join(
        [
            f"### {datetime.date.today().isoformat()}: {args.preset}, global batch {args.batch}, scenes-cpu masking, {precision}",
            "",
            f"Machine: {machine}; load average {la[0]:.2f}, {la[1]:.2f}, {la[2]:.2f} at start, {le[0]:.2f}, {le[1]:.2f}, "
            f"{le[2]:.2f} at the end. Best of {args.repeats} rounds of {args.steps} steps; peak = torch.mm {n}^2 {str(dtype).removeprefix('torch.')}, "
            f"best of the timings between rounds. `python benchmarks/fm_speed.py --preset {args.preset} --batch {args.batch} --steps {args.steps} "
            f"--repeats {args.repeats} --threads {args.threads} --device {args.device}`",
            "",
            "| model | params | tokens/step | GFLOP/step | step s (in memory) | tokens/s | GFLOP/s | mm peak GFLOP/s | "
            "achieved / peak | step s (real loader) | in memory / real loader | "
            "data wait s/step (next batch + masking) | 1 - wait / step |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            f"| {args.preset} | {r['params'] / 1e6:.1f}M | {r['tokens_per_step']:.0f} | {r['flops_per_step'] / 1e9:.1f} | "
            f"{r['step_memory']:.3f} | {r['tokens_per_step'] / r['step_memory']:,.0f} | {achieved / 1e9:.1f} | {r['peak'] / 1e9:.1f} | "
            f"{achieved / r['peak']:.2f} | {r['step_real']:.3f} | {r['step_memory'] / r['step_real']:.3f} | "
            f"{r['wait']:.4f} | {1 - r['wait'] / r['step_real']:.4f} |",
        ]
    )


if __name__ == "__main__":
    main()
