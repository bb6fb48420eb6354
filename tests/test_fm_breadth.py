"""benchmarks/fm_breadth.py at toy size: rooms with ten modalities (palette and metadata as sentinel-masked
sequences, a dense feature map from a vision model folder tokenized into its own folder) and outdoor scenes with
seven, mixed; the 4- and 10-modality recipes train and are evaluated rgb -> depth, normals, semseg."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "fm_breadth.py"


@pytest.mark.slow  # ~1-2 min on the shared 2-core machine: renders, labels and tokenizes three scene sets
def test_breadth_experiment_runs_end_to_end_at_toy_size(tmp_path, one_thread):
    spec = importlib.util.spec_from_file_location("tokzoo_fm_breadth", SCRIPT)
    breadth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(breadth)
    result = breadth.main(["--tiny", "--out", str(tmp_path), "--no-write", "--threads", "1"])
    assert [r["target"] for r in result["rows"]] == ["depth", "normals", "semseg"]
    assert all(math.isfinite(r["four"][0]) and math.isfinite(r["ten"][0]) for r in result["rows"])
    config = json.loads((tmp_path / "runs" / "breadth-10-seed0" / "config.json").read_text())
    kinds = {m["name"]: m["kind"] for m in config["modalities"]}
    assert len(kinds) == 10 and kinds["palette"] == kinds["metadata"] == "sequence" and kinds["human_pose"] == "items"
    log = [json.loads(line) for line in (tmp_path / "runs" / "breadth-10-seed0" / "log.jsonl").read_text().splitlines()]
    assert set(log[-1]["losses"]) == set(kinds)  # every modality was a target in the last step
    assert set(log[-1]["eval"]["losses"]) == {"rgb", "depth", "normals", "semseg"}  # the held-out rooms' modalities
    assert json.loads((tmp_path / "runs" / "breadth-4-seed0" / "config.json").read_text())["data"].endswith(
        "rooms-tokens"
    )

    # generate and eval read a dataset of two folders; sequences and feature maps are drawn in the PNG
    from click.testing import CliRunner
    from PIL import Image

    from tokzoo_cli.main import cli

    rooms = f"{tmp_path / 'rooms-tokens'},{tmp_path / 'rooms-features'}"
    png = tmp_path / "ten.png"
    done = CliRunner().invoke(
        cli,
        [
            "fm",
            "generate",
            "-m",
            str(tmp_path / "runs" / "breadth-10-seed0"),
            "--data",
            rooms,
            "--key",
            "scene_000001",
            "--from",
            "rgb",
            "--to",
            "palette,metadata,dense_features",
            "-o",
            str(png),
            "--steps",
            "2",
        ],
    )
    assert done.exit_code == 0, done.output
    assert Image.open(png).size[0] > 7 * 16  # 1 input + 3 predictions + 3 truths
    done = CliRunner().invoke(
        cli,
        [
            "fm",
            "eval",
            "-m",
            str(tmp_path / "runs" / "breadth-10-seed0"),
            "--data",
            rooms,
            "--n",
            "2",
            "--steps",
            "1",
            "--no-progress",
        ],
    )
    assert done.exit_code == 0 and "| semseg | boundary_f1" in done.output, done.output
