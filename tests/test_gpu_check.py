"""benchmarks/gpu_check.py's CPU mode: every check runs at toy size and reports finite figures."""

import math

import pytest
import torch
from benchmark_scripts import load_benchmark


def load():
    return load_benchmark("gpu_check")


def finite_figures(result):
    assert "error" not in result, result.get("trace")
    return all(math.isfinite(v) and v > 0 for k, v in result.items() if isinstance(v, float))


def test_cpu_mode_tokenize_and_tokenizer_step(one_thread):
    gpu_check = load()
    report = gpu_check.run_checks("cpu", torch.device("cpu"), ["tokenize", "tokenizer_training"])
    assert set(report["checks"]) == {"tokenize", "tokenizer_training"}
    assert all(finite_figures(r) for r in report["checks"].values())
    assert report["checks"]["tokenize"]["tokenize_over_encoder"] > 1  # the pipeline does more than the encoder
    assert "| tokenize | samples 8" in gpu_check.table(report)


@pytest.mark.slow  # ~30-50 s on the shared 2-core machine: a 4-modality token dataset and a GPT-2-style LM
def test_cpu_mode_runs_every_check(one_thread):
    gpu_check = load()
    report = gpu_check.run_checks("cpu", torch.device("cpu"))
    assert set(report["checks"]) == {"fm", "tokenize", "tokenizer_training", "composition"}
    assert all(finite_figures(r) for r in report["checks"].values())
    fm = report["checks"]["fm"]
    assert 0 < fm["mfu_vs_measured_peak"] < 1 and fm["tokens_per_step"] == 4 * 64  # 32 + 32 tokens x 4 samples
