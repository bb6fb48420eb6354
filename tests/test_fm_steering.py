"""benchmarks/fm_steering.py at toy size: scenes labelled with palette and metadata, the steering recipe trained,
rgb generated from each condition across guidance scales and measured against the request."""

import json
from pathlib import Path

import numpy as np
import pytest
from benchmark_scripts import load_benchmark


def test_chamfer_is_zero_for_equal_palettes_and_symmetric():
    steering = load_benchmark("fm_steering")
    a, b = np.array([[0, 0, 0], [255, 0, 0]]), np.array([[0, 0, 3], [250, 0, 0], [0, 255, 0]])
    assert steering.chamfer(a, a) == 0
    assert steering.chamfer(a, b) == steering.chamfer(b, a) > 0
    assert steering.chamfer(a, b) == pytest.approx(0.5 * ((3 + 5) / 2 + (3 + 5 + 255) / 3))


@pytest.mark.slow  # ~90 s: renders, labels, tokenizes, trains from scratch, fine-tuned and longer, sweeps
def test_steering_experiment_runs_end_to_end_at_toy_size(tmp_path, one_thread, capsys):
    result = load_benchmark("fm_steering").main(["--tiny", "--out", str(tmp_path), "--no-write", "--scales", "0,1,3"])
    palette, metadata = result["rows"]["palette"], result["rows"]["metadata"]
    expected = ["g = 0", "g = 1", "g = 3", "own image (true tokens)", "another scene's image"]
    assert list(palette) == list(metadata) == expected
    assert all(len(row["chamfer"]) == 4 and np.isfinite(row["chamfer"]).all() for row in palette.values())
    assert all(set(row) == {"brightness", "contrast"} for row in metadata.values())
    # the reference that is the request's own image is closest to it: the measure can tell images apart
    own, other = palette["own image (true tokens)"]["chamfer"], palette["another scene's image"]["chamfer"]
    assert own.mean() < other.mean()
    assert "metadata g = 3 brightness" in result["summary"]
    use = result["condition_use"]  # rgb cross-entropy given the own vs another scene's condition
    assert set(use) == {"palette", "metadata", "rgb"} and all(0 < v < 10 for pair in use.values() for v in pair)
    info = result["palette_information"]  # the colour-association reference: beta chosen among its grid
    assert info["beta"] in (0, 1, 2, 4, 8, 16, 32) and all(0 < info[k] < 10 for k in ("marginal", "own", "other"))
    # --model measures an existing run without training one
    again = load_benchmark("fm_steering").main(
        ["--tiny", "--out", str(tmp_path), "--no-write", "--scales", "0,1", "--model", str(result["run"])]
    )
    assert again["run"] == result["run"] and list(again["rows"]["palette"])[:2] == ["g = 0", "g = 1"]
    assert sorted(p.name for p in tmp_path.glob("run-*")) == [result["run"].name]
    # --recipe/--init: the fine-tuning recipe, trained from the first run's weights, in a folder of its own
    recipe = Path(load_benchmark("fm_steering").ROOT) / "recipes" / "fm" / "steering_finetune.yaml"
    finetune = ["--tiny", "--out", str(tmp_path), "--no-write", "--scales", "0,1", "--recipe", str(recipe)]
    tuned = load_benchmark("fm_steering").main([*finetune, "--init", str(result["run"])])
    assert tuned["run"].name == "run-steering_finetune-seed0"
    assert {"palette g = 0 chamfer vs other", "palette g = 1 chamfer vs other"} <= set(tuned["summary"])
    config = json.loads((tuned["run"] / "config.json").read_text())
    assert config["recipe"]["train"]["init"] == str(result["run"])
    # --train-steps: the same recipe trained longer, in a folder of its own; measuring a run trains nothing
    longer = load_benchmark("fm_steering").main([*finetune, "--init", str(result["run"]), "--train-steps", "3"])
    assert longer["run"].name == "run-steering_finetune-3steps-seed0"
    assert json.loads((longer["run"] / "config.json").read_text())["recipe"]["train"]["steps"] == 3
    with pytest.raises(SystemExit) as stop:
        load_benchmark("fm_steering").main(
            ["--out", str(tmp_path), "--model", str(result["run"]), "--train-steps", "3"]
        )
    assert stop.value.code == 2 and "--model measures an existing run" in capsys.readouterr().err
