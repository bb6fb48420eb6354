"""`tokzoo fm eval --samples K`: the model's prediction is the decision over K sampled predictions made by the prior's
own rule (per-pixel majority class for semseg), seeded seed .. seed+K-1."""

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from tokzoo.fm import evaluate as fm_evaluate
from tokzoo.fm.checkpoint import load_model
from tokzoo.fm.generate import DecodeSettings
from tokzoo_cli.main import cli

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "fm" / "scenes-cpu.yaml"


def run(args, code=0):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("decision")
    tokens, runs = root / "tokens", root / "run"
    run([*"tokenize -m rgb,depth,normals,semseg --scenes 6 --scene-size 64 --no-progress".split(), "-o", str(tokens)])
    run(
        [
            *"fm train --steps 1 --threads 1 --no-progress".split(),
            "-r",
            str(RECIPE),
            "--data",
            str(tokens),
            "-o",
            str(runs),
        ]
    )
    return tokens, runs


def test_the_decision_is_the_per_pixel_majority_of_the_samples(tiny, monkeypatch):
    tokens, runs = tiny
    model = load_model(runs)
    real = fm_evaluate.generate
    seeds = []

    def sample(model, masked, sources, targets, settings):  # seeds 10 and 12 the true tokens, 11 all zeros
        seeds.append(settings.seed)
        out = real(model, masked, sources, targets, settings)
        return {t: masked.tokens[t].clone() if settings.seed != 11 else torch.zeros_like(out[t]) for t in out}

    monkeypatch.setattr(fm_evaluate, "generate", sample)
    settings = DecodeSettings(steps=1, temperature=1.0, seed=10)
    three = fm_evaluate.evaluate(model, tokens, tokens, ["rgb"], ["semseg"], settings=settings, samples=3)
    assert sorted(set(seeds)) == [10, 11, 12] and three["decision_samples"] == 3
    semseg = three["targets"]["semseg"]
    assert semseg["model"] == semseg["tokenizer_ceiling"]  # two of three samples are the true tokens
    zeros = fm_evaluate.evaluate(model, tokens, tokens, ["rgb"], ["semseg"], settings=DecodeSettings(1, 1.0, seed=11))
    assert zeros["targets"]["semseg"]["model"] < semseg["model"]  # the odd sample alone scores lower


def test_one_sample_is_the_plain_sampled_prediction_and_greedy_is_refused(tiny):
    tokens, runs = tiny
    args = ["fm", "eval", "-m", str(runs), "--data", str(tokens), "--to", "semseg", "--steps", "2", "--json"]
    args += ["--no-progress", "--temperature", "1", "--seed", "3"]
    plain, one = json.loads(run(args)), json.loads(run([*args, "--samples", "1"]))
    assert one["decision_samples"] == 1 and plain["decision_samples"] == 0
    assert one["targets"]["semseg"]["model"] == plain["targets"]["semseg"]["model"]
    output = run(["fm", "eval", "-m", str(runs), "--data", str(tokens), "--to", "semseg", "--samples", "2"], code=2)
    assert "needs a temperature > 0" in output and "Traceback" not in output
