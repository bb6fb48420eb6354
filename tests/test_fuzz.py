"""Class 8 of issue 10: a seeded mutation fuzzer (benchmarks/fuzz.py) over every public reader; only tokzoo's
typed errors may escape. The default run fuzzes a few hundred cases in a subprocess under RLIMIT_AS with a
per-case timeout; the slow run 10,000 (figures in benchmarks/RESULTS.md)."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

FUZZ = Path(__file__).parents[1] / "benchmarks" / "fuzz.py"


def load_fuzz():
    return load_benchmark("fuzz")


def test_mutations_are_seeded_and_change_the_bytes():
    fuzz = load_fuzz()
    data = bytes(range(256)) * 4
    first = [fuzz.mutate(data, random.Random(3), [data]) for _ in range(20)]
    assert first == [fuzz.mutate(data, random.Random(3), [data]) for _ in range(20)]
    rng = random.Random(4)
    assert sum(fuzz.mutate(data, rng, [b"other"]) != data for _ in range(50)) >= 45


def run_fuzz(tmp_path, cases: int, seed: int, timeout: float, kinds: str = "readers") -> dict:
    out = tmp_path / "fuzz.json"
    result = subprocess.run(
        [
            sys.executable,
            str(FUZZ),
            "--cases",
            str(cases),
            "--seed",
            str(seed),
            "--memory-gb",
            "6",
            "--kinds",
            kinds,
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(FUZZ.parents[1])},
    )
    assert out.exists(), result.stderr[-3000:]
    return json.loads(out.read_text())


def test_fuzz_a_few_hundred_cases_only_typed_errors(tmp_path):
    result = run_fuzz(tmp_path, 200, seed=12345, timeout=300)
    untyped = [
        f"{f['kind']} -> {f['reader']}: {f['error']}: {f['message']}\n{f['traceback']}" for f in result["failures"]
    ]
    assert not untyped, untyped[0]
    assert result["calls"] >= 600 and result["outcomes"].get("ok", 0) > 0 and result["outcomes"]["CorruptFileError"] > 0


@pytest.mark.slow
def test_fuzz_ten_thousand_cases_only_typed_errors(tmp_path):
    result = run_fuzz(tmp_path, 10_000, seed=1, timeout=3600)
    assert result["untyped"] == 0, result["failures"][:3]


def test_fuzz_the_newer_entry_points_only_typed_errors(tmp_path):
    """fm run files, recipes, a GPT-2 component folder and ml-4m tokenizer folders (issue 25), a few cases each."""
    result = run_fuzz(tmp_path, 110, seed=2025, timeout=600, kinds="newer")
    untyped = [
        f"{f['kind']} -> {f['reader']}: {f['error']}: {f['message']}\n{f['traceback']}" for f in result["failures"]
    ]
    assert not untyped, untyped[0]
    assert set(result["kinds"]) == {
        "fm_config",
        "fm_weights",
        "fm_optimizer",
        "fm_state",
        "fm_recipe",
        "compose_recipe",
        "lm_config",
        "lm_weights",
        "fourm_mlp_config",
        "fourm_vit_config",
        "fourm_weights",
    }
    assert result["outcomes"].get("ok", 0) > 0 and result["outcomes"]["CheckpointError"] > 0


@pytest.mark.slow
def test_fuzz_ten_thousand_cases_of_the_newer_entry_points(tmp_path):
    result = run_fuzz(tmp_path, 10_000, seed=25, timeout=7200, kinds="newer")
    assert result["untyped"] == 0, result["failures"][:3]
