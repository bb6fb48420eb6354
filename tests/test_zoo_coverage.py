"""`tokzoo zoo info NAME` states what each shipped tokenizer was trained on and where it is known to fail."""

import json

import pytest
from click.testing import CliRunner

from tokzoo.tokenizers.zoo import training_coverage, zoo_entries
from tokzoo_cli.main import cli

SHIPPED = sorted(name for name, entry in zoo_entries().items() if entry.learned and entry.weights_dir is not None)


def _config(name):
    return json.loads((zoo_entries()[name].weights_dir / "config.json").read_text())


def test_training_coverage_reads_the_recipe():
    recipe = {
        "data": {
            "scenes": {"n_train": 12, "n_val": 2, "seed": 3, "size": 48, "kind": "mix"},
            "samples": {"names": ["motorcycle"], "repeat": 4},
            "crop": {"scale": [0.5, 1.0]},
        }
    }
    config = {
        "input_size": [32, 32],
        "normalization": {"min_depth": 0.1, "max_depth": 100.0},
        "provenance": {"recipe": recipe, "steps": 7, "coverage": {"known_failures": ["beyond 100 m"]}},
    }
    coverage = training_coverage(config)
    assert coverage["trained_on"] == (
        "12 procedural indoor rooms and outdoor scenes, 1/2 each (48 px, seed 3) + bundled "
        "real samples (motorcycle) x 4; random-resized crops, scale 0.5-1"
    )
    assert coverage["range"].startswith("0.1-100 m") and coverage["steps"] == 7
    assert coverage["known_failures"] == ["beyond 100 m"] and coverage["input_size"] == [32, 32]
    recipe["data"]["scenes"]["kind"] = ["mix", "mix", "cluttered"]
    assert training_coverage(config)["trained_on"].startswith(
        "12 procedural scenes: 2/3 indoor rooms and outdoor scenes, 1/2 each + 1/3 cluttered rooms"
    )
    del recipe["data"]["scenes"]["kind"]
    assert training_coverage(config)["trained_on"].startswith("12 procedural indoor rooms (48 px")
    config["provenance"]["init"] = {"from": "rgb", "content_hash": "ab" * 32}
    assert training_coverage(config)["trained_on"].startswith("starting from the weights of rgb (content abababababab)")
    assert training_coverage({"provenance": {"seed": 0, "steps": 0}}) is None  # untrained: nothing to state


def test_coverage_names_every_photo_source_and_its_validation_photos():
    sources = [{"repeat": 7}, {"packages": ["gcompris-qt-data", "tuxpaint-data"], "repeat": 5, "hold_out_every": 4}]
    recipe = {"data": {"scenes": {"n_train": 12, "n_val": 2, "seed": 3, "size": 48}, "photos": sources}}
    trained = training_coverage({"provenance": {"recipe": recipe, "steps": 7}})["trained_on"]
    assert "desktop-background photos and renders (tokzoo/datasets/photos.py, ~115 images) x 7" in trained
    assert "Debian packages gcompris-qt-data, tuxpaint-data" in trained
    assert "1 in 4 left out for validation) x 5" in trained
    assert trained.count("are held out") == 1


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_tokenizer_states_its_coverage(name):
    config = _config(name)
    recorded = config["provenance"].get("coverage", {}).get("known_failures")
    assert isinstance(recorded, list) and recorded and all(isinstance(line, str) and line for line in recorded), name
    result = CliRunner().invoke(cli, ["zoo", "info", name])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    trained = next(line for line in lines if line.startswith("trained on: "))
    kind = config["provenance"]["recipe"]["data"].get("scenes", {}).get("kind", "indoor")
    kinds = kind if isinstance(kind, list) else [kind]  # a list is taken in turn
    assert ("outdoor" in trained) == any(k in ("outdoor", "mix") for k in kinds), trained
    assert f"{config['provenance']['steps']} steps" in trained
    assert f"known to fail: {recorded[0]}" in lines
    data = config["provenance"]["recipe"]["data"]
    if "path" in data:  # a folder of the trainer's machine: the weights say what it held, not where it was
        described = config["provenance"]["coverage"].get("data")
        assert described and described in trained and data["path"] not in trained, trained


def test_retrained_image_tokenizers_cover_outdoor_scenes():
    for name in ("depth", "semseg"):
        kind = _config(name)["provenance"]["recipe"]["data"]["scenes"]["kind"]
        assert "mix" in (kind if isinstance(kind, list) else [kind]), name
