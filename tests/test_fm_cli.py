"""The README's "Train a multimodal model on the tokens" commands, at test size: tokenize rgb, depth, normals,
semseg of built-in scenes -> tokzoo fm train (the shipped recipe, 2 steps) -> generate a PNG -> eval."""

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from tokzoo_cli.main import cli

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "fm" / "scenes-cpu.yaml"


def run(args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_readme_tokenize_train_generate_eval(tmp_path):
    tokens, heldout, runs = tmp_path / "fm-tokens", tmp_path / "fm-heldout", tmp_path / "runs" / "scenes-cpu"
    modalities = "rgb,depth,normals,semseg"
    run(["tokenize", "-m", modalities, "--scenes", "16", "--scene-size", "64", "--no-progress", "-o", str(tokens)])
    run(
        [
            "tokenize",
            "-m",
            modalities,
            "--scenes",
            "4",
            "--scene-size",
            "64",
            "--seed",
            "7",
            "--no-progress",
            "-o",
            str(heldout),
        ]
    )
    output = run(
        [
            "fm",
            "train",
            "--recipe",
            str(RECIPE),
            "--data",
            str(tokens),
            "--out",
            str(runs),
            "--steps",
            "2",
            "--threads",
            "1",
            "--no-progress",
        ]
    )
    assert output.startswith("step 2: loss ") and "depth" in output
    config = json.loads((runs / "config.json").read_text())
    assert config["format"] == "tokzoo-fm" and config["data"] == str(tokens.resolve())
    assert [m["name"] for m in config["modalities"]] == modalities.split(",")
    assert sorted(p.name for p in runs.iterdir()) == [
        "config.json",
        "log.jsonl",
        "model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ]

    png = tmp_path / "fm.png"
    output = run(
        [
            "fm",
            "generate",
            "--model",
            str(runs),
            "--data",
            str(heldout),
            "--key",
            "scene_000003,scene_000001",
            "--from",
            "rgb",
            "--to",
            "depth,normals,semseg",
            "-o",
            str(png),
            "--steps",
            "2",
        ]
    )
    assert "rgb (inputs) | depth, normals, semseg (predicted) | depth, normals, semseg (ground truth)" in output
    picture = np.asarray(Image.open(png))
    # 2 keys x (1 input + 3 predictions + 3 ground truths) of 64 px drawn 2x (128 px cells), below two header lines
    # (groups, modalities) and right of the keys: the grid sits in the bottom-right corner
    body_h, body_w = 2 * 130 + 2, 7 * 130 + 2
    top, left = picture.shape[0] - body_h, picture.shape[1] - body_w
    assert 2 * 14 <= top <= 2 * 30 and left >= 40
    assert (picture[:top, left:] < 100).any() and (picture[top:, :left] < 100).any()  # header and key labels
    rgb_cell = picture[top + 2 : top + 130, left + 2 : left + 130]
    assert rgb_cell.std() > 5  # a real picture, not a blank cell

    guided = tmp_path / "guided.png"
    run(
        [
            "fm",
            "generate",
            "--model",
            str(runs),
            "--data",
            str(heldout),
            "--key",
            "scene_000003",
            "--from",
            "rgb",
            "--to",
            "semseg,depth",
            "-o",
            str(guided),
            "--steps",
            "2",
            "--order",
            "random",
            "--temperature",
            "1",
            "--temperature-schedule",
            "linear",
            "--top-p",
            "0.9",
            "--guide",
            "rgb=2.0",
        ]
    )
    guided_picture = np.asarray(Image.open(guided))  # 1 key x (1 input + 2 predictions + 2 ground truths), labelled
    assert guided_picture.shape[1] >= 5 * 130 + 2 and guided_picture.shape[0] >= 130 + 2 + 2 * 14

    report_path = tmp_path / "eval.json"
    output = run(
        [
            "fm",
            "eval",
            "--model",
            str(runs),
            "--data",
            str(heldout),
            "--n",
            "4",
            "--steps",
            "2",
            "-o",
            str(report_path),
            "--no-progress",
        ]
    )
    assert "| depth | abs_rel (lower is better) |" in output and "| semseg | miou (higher is better) |" in output
    assert "| semseg | boundary_f1 (higher is better) |" in output
    report = json.loads(report_path.read_text())
    assert report["samples"] == 4
    depth = report["targets"]["depth"]
    assert 0 < depth["tokenizer_ceiling"] < 0.2 and depth["training_prior"] > depth["tokenizer_ceiling"]
    assert 0 <= report["targets"]["semseg"]["model"] <= 1
    assert 0 <= report["targets"]["semseg"]["also"]["boundary_f1"]["tokenizer_ceiling"] <= 1

    # benchmarks/fm_schedules.py: MaskGIT vs random order vs one step on the same held-out samples
    import os
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fm_schedules.py"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "--model",
            str(runs),
            "--data",
            str(heldout),
            "--n",
            "2",
            "--steps",
            "2",
            "--threads",
            "1",
            "--no-write",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for row in ("| MaskGIT, 2 steps |", "| random order, 2 steps |", "| one step |", "| tokenizer ceiling |"):
        assert row in done.stdout
    assert "semseg boundary_f1 (higher)" in done.stdout
