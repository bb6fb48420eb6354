"""Every GPU path of tokzoo in one run (<= 8 minutes on one H100), with its figures.

Checks (each timed on its own; a failing check is reported and the others still run):

- **fm**: ``tokzoo fm train``'s step (bf16 autocast) of a 4M-B model on rgb/depth/normals/semseg scene tokens at
  4M's budgets (128 input + 128 target tokens per sample): tokens/s, model FLOP/s (FlopCounterMode over one
  forward + backward) and model FLOP utilisation against the measured bf16 matmul peak and, on an H100 / H200,
  against the nominal dense bf16 peak;
- **tokenize**: ``tokzoo tokenize -m rgb --device cuda`` on pre-rendered scenes (end to end: reading, decoding,
  cropping, encoding, writing shards), divided by the zoo rgb encoder alone on the same number of crops;
- **tokenizer training**: one training step (forward, losses, backward, AdamW) of the 4M-size rgb tokenizer
  (``recipes/rgb_4m.yaml``: 224 px, 196 tokens, FSQ 15360 codes), median over steps after warm-up;
- **composition**: one glue step (GATS, ``tokzoo.compose``) between the zoo rgb encoder and a GPT-2-small-sized
  causal LM (random weights: timing only), both frozen, on the GPU.

``--cpu`` runs the same code at toy sizes on the CPU (what the test suite does). Writes the figures as JSON
(``--json``) and appends a table under ``## GPU check`` in benchmarks/RESULTS.md (unless ``--no-write``).

    python benchmarks/gpu_check.py                   # one GPU
    python benchmarks/gpu_check.py --cpu --no-write  # toy sizes on the CPU
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from results_md import append_to_section  # noqa: E402

SECTION = "## GPU check"
NOMINAL_BF16 = {"H100": 989e12, "H200": 989e12}  # dense bf16 tensor-core peak of the SXM parts (FLOP/s)
SIZES = {
    "gpu": {
        "fm_preset": "4M-B",
        "fm_batch": 256,
        "fm_steps": 5,
        "fm_scenes": 256,
        "budget": 128,
        "tok_scenes": 1024,
        "tok_size": 256,
        "tok_batch": 128,
        "tok_workers": 8,
        "tokenizer_batch": 64,
        "tokenizer_steps": 12,
        "tokenizer_preset": None,
        "lm": {"n_embd": 768, "n_layer": 12, "n_head": 12},
        "lm_layers": [3, 6, 9],
        "compose_batch": 32,
        "compose_steps": 12,
        "compose_size": 64,
    },
    "cpu": {
        "fm_preset": "fm-tiny",
        "fm_batch": 4,
        "fm_steps": 2,
        "fm_scenes": 8,
        "budget": 32,
        "tok_scenes": 8,
        "tok_size": 64,
        "tok_batch": 4,
        "tok_workers": 0,
        "tokenizer_batch": 2,
        "tokenizer_steps": 3,
        "tokenizer_preset": "conv-tiny",
        "lm": {"n_embd": 32, "n_layer": 2, "n_head": 4},
        "lm_layers": [1, 2],
        "compose_batch": 2,
        "compose_steps": 3,
        "compose_size": 32,
    },
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def matmul_peak(device: torch.device) -> float:
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (1024, torch.float32)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    torch.mm(a, b)
    return 2 * n**3 / min(timed(lambda: torch.mm(a, b), device) for _ in range(5))


def cli(args: list[str]) -> None:
    from click.testing import CliRunner

    from tokzoo_cli.main import cli as main

    result = CliRunner().invoke(main, args)
    if result.exit_code:
        raise RuntimeError(f"tokzoo {' '.join(args[:2])}: {result.output.strip()[-500:]}")


# -- checks ---------------------------------------------------------------------------------------------
def check_fm(size: dict, device: torch.device, tmp: Path) -> dict:
    from tokzoo.fm.masking import Masker, MaskingConfig, MixtureComponent
    from tokzoo.fm.model import FourM, model_config
    from tokzoo.fm.recipe import TrainConfig
    from tokzoo.fm.stream import MixtureStream
    from tokzoo.fm.train import make_optimizer, train_step
    from tokzoo.tokens.spec import specs_from_manifest

    data = tmp / "fm-tokens"
    names = ["rgb", "depth", "normals", "semseg"]
    cli(
        [
            "tokenize",
            "-m",
            ",".join(names),
            "--scenes",
            str(size["fm_scenes"]),
            "--scene-size",
            "64",
            "--no-progress",
            "-o",
            str(data),
        ]
    )
    specs = specs_from_manifest(data, names)
    torch.manual_seed(0)
    model = FourM(specs, model_config(size["fm_preset"])).to(device)
    cfg = TrainConfig(steps=1000, batch_size=size["fm_batch"], lr=1e-4, warmup_steps=10)
    optimizer = make_optimizer(model, cfg)
    alpha = {n: 0.5 for n in names}
    masker = Masker(specs, MaskingConfig(size["budget"], size["budget"], (MixtureComponent("all->all", alpha, alpha),)))
    stream = MixtureStream([(data, 1.0)], specs, size["fm_batch"], seed=0)
    batches = []
    for step in range(size["fm_steps"] + 1):
        positions, rows = stream.plan(step)
        batches.append(masker(stream.read(positions), [np.random.default_rng([0, step, int(r)]) for r in rows]))
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )
    with FlopCounterMode(display=False) as counter, autocast:
        out = model(batches[0].to(device))
        sum(out[m][0] / max(1, int(out[m][1])) for m in out).backward()
    flops = counter.get_total_flops()
    optimizer.zero_grad(set_to_none=True)
    train_step(model, optimizer, batches[0], cfg, 0, device=device)  # warm-up
    seconds = [
        timed(lambda b=b, i=i: train_step(model, optimizer, b, cfg, i, device=device), device)
        for i, b in enumerate(batches[1:])
    ]
    step = statistics.median(seconds)
    tokens = float(np.mean([sum(int(b.input[m].sum() + b.target[m].sum()) for m in b.tokens) for b in batches]))
    peak = matmul_peak(device)
    row = {
        "preset": size["fm_preset"],
        "params": model.num_parameters(),
        "batch": size["fm_batch"],
        "tokens_per_step": tokens,
        "step_s": step,
        "tokens_per_s": tokens / step,
        "model_flop_per_step": flops,
        "model_flop_per_s": flops / step,
        "matmul_peak_flop_per_s": peak,
        "mfu_vs_measured_peak": flops / step / peak,
    }
    nominal = next(
        (v for k, v in NOMINAL_BF16.items() if device.type == "cuda" and k in torch.cuda.get_device_name(device)), None
    )
    if nominal:
        row["mfu_vs_nominal_bf16"] = flops / step / nominal
    return row


def check_tokenize(size: dict, device: torch.device, tmp: Path) -> dict:
    from tokzoo.tokenizers.zoo import load_tokenizer

    scenes, tokens = tmp / "scenes", tmp / "tok-rgb"
    cli(
        [
            "scenes",
            "--n",
            str(size["tok_scenes"]),
            "--size",
            str(size["tok_size"]),
            "--samples-per-shard",
            "256",
            "--workers",
            str(size["tok_workers"]),
            "--out",
            str(scenes),
        ]
    )
    start = time.perf_counter()
    cli(
        [
            "tokenize",
            "-m",
            "rgb",
            "-i",
            str(scenes),
            "--device",
            device.type,
            "--batch-size",
            str(size["tok_batch"]),
            "--workers",
            str(size["tok_workers"]),
            "--no-progress",
            "-o",
            str(tokens),
        ]
    )
    end_to_end = time.perf_counter() - start
    tok = load_tokenizer("rgb", device=device)
    side = tok.config["input_size"]
    crops = torch.rand(size["tok_batch"], 3, *side, device=device) * 2 - 1
    tok.encode_normalized(crops)  # warm-up
    batches = -(-size["tok_scenes"] // size["tok_batch"])
    encoder = timed(lambda: [tok.encode_normalized(crops) for _ in range(batches)], device)
    return {
        "samples": size["tok_scenes"],
        "scene_px": size["tok_size"],
        "crop_px": list(side),
        "tokenize_s": end_to_end,
        "encoder_alone_s": encoder,
        "tokenize_over_encoder": end_to_end / encoder,
        "samples_per_s": size["tok_scenes"] / end_to_end,
    }


def check_tokenizer_training(size: dict, device: torch.device, tmp: Path) -> dict:
    from tokzoo.tokenizers.training.loop import _loss
    from tokzoo.tokenizers.training.recipe import build_tokenizer, load_recipe

    recipe = load_recipe(ROOT / "recipes" / "rgb_4m.yaml")
    if size["tokenizer_preset"]:  # toy size on the CPU
        recipe["tokenizer"]["model"] = {"preset": size["tokenizer_preset"]}
        recipe["tokenizer"]["input_size"] = [32, 32]
    torch.manual_seed(0)
    tokenizer = build_tokenizer(recipe).to(device).train()
    optimizer = torch.optim.AdamW(tokenizer.parameters(), lr=1e-4)
    x = torch.rand(size["tokenizer_batch"], 3, *recipe["tokenizer"]["input_size"], device=device) * 2 - 1

    def step():
        loss, _ = _loss(tokenizer, x, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    seconds = [timed(step, device) for _ in range(size["tokenizer_steps"])][2:] or [float("nan")]
    return {
        "recipe": "rgb_4m",
        "preset": recipe["tokenizer"]["model"]["preset"],
        "input_size": recipe["tokenizer"]["input_size"],
        "tokens_per_image": int(np.prod(tokenizer.token_shape)),
        "batch": size["tokenizer_batch"],
        "params": sum(p.numel() for p in tokenizer.parameters()),
        "step_s": statistics.median(seconds),
    }


def check_composition(size: dict, device: torch.device, tmp: Path) -> dict:
    from transformers import GPT2Config, GPT2LMHeadModel

    from tokzoo.compose import CausalLM, Composition, TokenizerEncoder
    from tokzoo.tokenizers.zoo import load_tokenizer

    torch.manual_seed(0)
    lm = GPT2LMHeadModel(GPT2Config(vocab_size=8192, n_positions=128, bos_token_id=1, eos_token_id=1, **size["lm"]))
    components = {"rgb": TokenizerEncoder(load_tokenizer("rgb"), name="rgb"), "lm": CausalLM(lm.eval(), name="lm")}
    layers = [{"rgb": 6 + i, "lm": layer} for i, layer in enumerate(size["lm_layers"][:3])]
    comp = Composition(components, "gats", {"layers": layers, "dim": 64, "heads": 4}).to(device)
    params = [p for p in comp.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    g = torch.Generator().manual_seed(1)
    b, length = size["compose_batch"], 32
    inputs = {
        "rgb": (torch.rand(b, 3, size["compose_size"], size["compose_size"], generator=g) * 2 - 1).to(device),
        "lm": torch.randint(2, 8192, (b, length), generator=g).to(device),
    }
    prompt = torch.full((b,), 8, device=device)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )

    def step():
        with autocast:
            logits = comp(inputs, prompt)
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.shape[-1]), inputs["lm"][:, 1:].reshape(-1)
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    seconds = [timed(step, device) for _ in range(size["compose_steps"])][2:] or [float("nan")]
    return {
        "method": "gats",
        "lm_params": sum(p.numel() for p in lm.parameters()),
        "glue_params": sum(p.numel() for p in params),
        "batch": b,
        "text_tokens": length,
        "image_px": size["compose_size"],
        "step_s": statistics.median(seconds),
    }


CHECKS = {
    "fm": check_fm,
    "tokenize": check_tokenize,
    "tokenizer_training": check_tokenizer_training,
    "composition": check_composition,
}


def run_checks(mode: str, device: torch.device, only: list[str] | None = None) -> dict:
    """Run the checks; returns {"machine", "mode", "checks": {name: figures or {"error"}}, "seconds"}."""
    size, results, start = SIZES[mode], {}, time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name, check in CHECKS.items():
            if only and name not in only:
                continue
            t = time.perf_counter()
            try:
                results[name] = check(size, device, Path(tmp))
            except Exception as error:  # a failing path is a finding; the other checks still run
                results[name] = {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()[-1500:]}
            results[name]["check_s"] = time.perf_counter() - t
            print(f"{name}: {json.dumps({k: v for k, v in results[name].items() if k != 'trace'})}", flush=True)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    machine = f"{platform.platform()}, {os.cpu_count()} CPUs{', ' + gpu if gpu else ''}, torch {torch.__version__}"
    return {
        "machine": machine,
        "mode": mode,
        "date": datetime.date.today().isoformat(),
        "checks": results,
        "seconds": time.perf_counter() - start,
    }


def table(report: dict) -> str:
    c = report["checks"]
    lines = [
        f"### {report['date']}: {report['mode']} mode, {report['seconds']:.0f} s in all",
        "",
        f"Machine: {report['machine']}. `python benchmarks/gpu_check.py{' --cpu' if report['mode'] == 'cpu' else ''}`",
        "",
        "| check | figures |",
        "|---|---|",
    ]
    for name, r in c.items():
        if "error" in r:
            lines.append(f"| {name} | FAILED: {r['error'][:200]} |")
            continue
        figures = ", ".join(f"{k} {_fmt(v)}" for k, v in r.items())
        lines.append(f"| {name} | {figures} |")
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="toy sizes on the CPU")
    parser.add_argument("--only", nargs="+", choices=list(CHECKS), default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--no-write", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device; pass --cpu for the toy-size run")
    device = torch.device("cpu" if args.cpu else "cuda")
    report = run_checks("cpu" if args.cpu else "gpu", device, args.only)
    text = table(report)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if not args.no_write:
        append_to_section(ROOT / "benchmarks" / "RESULTS.md", SECTION, text)
    if any("error" in r for r in report["checks"].values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
