"""Sensor-like depth corruption of training views (recipe data.sensor): stereo shadows beside near edges, edge
dropouts, blobs, noise growing with depth; seeded, off by default, training views only; recipes with cluttered
scenes and a sensor train from the CLI."""

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from tokzoo.datasets.depth_stats import discontinuities
from tokzoo.datasets.scenes import generate_scene
from tokzoo.errors import ConfigError
from tokzoo.tokenizers.training import build_tokenizer, load_recipe, validate_recipe
from tokzoo.tokenizers.training.data import TrainingData, scene_values
from tokzoo.tokenizers.training.sensor import MAX_NOISE, corrupt_depth, shadowed
from tokzoo.tokenizers.zoo import training_coverage
from tokzoo_cli.main import cli

SENSOR = {"shadow": 4.0, "edges": 0.3, "blobs": 0.01, "noise": 0.003}
TINY = {
    "name": "tiny_depth",
    "tokenizer": {
        "modality": "depth",
        "model": {"preset": "conv-tiny", "width": 8, "groups": 4},
        "latent_dim": 8,
        "quantizer": {"type": "fsq", "levels": [5, 5, 5]},
        "input_size": [32, 32],
    },
    "loss": "smooth_l1",
    "data": {
        "scenes": {"n_train": 6, "n_val": 2, "seed": 3, "size": 40, "kind": "cluttered"},
        "crop": {"scale": [0.5, 1.0], "hflip": 0.5},
        "sensor": SENSOR,
    },
    "optimizer": {"lr": 3e-3},
    "schedule": {"warmup_steps": 1},
    "batch_size": 4,
    "steps": 2,
    "seed": 0,
}

pytestmark = pytest.mark.usefixtures("one_thread")


def _recipe(**data):
    return validate_recipe({**TINY, "data": {**TINY["data"], **data}})


def test_shadow_is_a_band_beside_the_far_side_of_a_near_edge():
    z = np.full((4, 48), 4.0, np.float32)
    z[:, 20:30] = 1.0  # a near bar: disparity 8 px against 2 px behind it
    right = shadowed(z, 8.0)
    assert np.array_equal(np.flatnonzero(right[0]), np.arange(14, 20))  # 6 px on its left
    assert np.array_equal(np.flatnonzero(shadowed(z, 8.0, mirror=True)[0]), np.arange(30, 36))
    assert not shadowed(np.full((4, 48), 2.0, np.float32), 8.0).any()  # a plane hides nothing
    z[:, :5] = np.nan
    assert not shadowed(z, 8.0)[:, :5].any()


def test_corruption_is_seeded_and_puts_holes_along_edges():
    depth = generate_scene(0, 0, 64, "cluttered")["depth"]
    a = corrupt_depth(depth, SENSOR, np.random.default_rng(5))
    assert a.dtype == np.float32 and a.shape == depth.shape
    assert a.tobytes() == corrupt_depth(depth, SENSOR, np.random.default_rng(5)).tobytes()
    assert a.tobytes() != corrupt_depth(depth, SENSOR, np.random.default_rng(6)).tobytes()
    edge_only = corrupt_depth(depth, {"shadow": 4.0, "edges": 0.3}, np.random.default_rng(5))
    holes = np.isnan(edge_only) & ~np.isnan(depth)
    assert holes.mean() > 0.03
    near_edges = discontinuities(depth)
    for _ in range(3):  # within 3 px of a discontinuity
        near_edges[1:] |= near_edges[:-1].copy()
        near_edges[:-1] |= near_edges[1:].copy()
        near_edges[:, 1:] |= near_edges[:, :-1].copy()
        near_edges[:, :-1] |= near_edges[:, 1:].copy()
    assert (holes & near_edges).sum() > 0.97 * holes.sum()
    assert np.isnan(depth).sum() <= np.isnan(a).sum()  # holes add to the sky, never fill it
    assert np.array_equal(corrupt_depth(depth, {}, np.random.default_rng(5)), depth, equal_nan=True)


def test_noise_grows_with_depth_up_to_the_cap():
    z = np.concatenate([np.full((64, 64), 1.0), np.full((64, 64), 5.0), np.full((64, 64), 90.0)]).astype(np.float32)
    noisy = corrupt_depth(z, {"noise": 0.004}, np.random.default_rng(0))
    spread = [np.std(np.log(noisy[k * 64 : (k + 1) * 64] / z[k * 64 : (k + 1) * 64])) for k in range(3)]
    assert spread[0] == pytest.approx(0.004, rel=0.1) and spread[1] == pytest.approx(0.02, rel=0.1)
    assert spread[2] == pytest.approx(MAX_NOISE, rel=0.1)
    assert np.isfinite(noisy).all()


def test_training_views_only_and_off_by_default():
    codec = build_tokenizer(_recipe()).codec
    plain = TrainingData({**_recipe(), "data": {k: v for k, v in _recipe()["data"].items() if k != "sensor"}}, codec)
    noisy = TrainingData(_recipe(), codec)
    assert plain.sensor is None
    clean, corrupted = plain.batch(3), noisy.batch(3)
    assert clean.shape == corrupted.shape == (4, 2, 32, 32)
    assert (corrupted[:, 1] < 0).sum() > (clean[:, 1] < 0).sum()  # more invalid pixels (validity channel)
    assert not np.array_equal(clean.numpy(), corrupted.numpy())
    assert np.array_equal(corrupted.numpy(), TrainingData(_recipe(), codec).batch(3).numpy())  # seeded per step
    for a, b in zip(plain.validation_batches(), noisy.validation_batches()):
        assert np.array_equal(a.numpy(), b.numpy())  # validation stays exact


def test_a_list_of_kinds_is_taken_in_turn():
    values = scene_values("depth", range(4), 3, 24, ["mix", "cluttered"])
    for i, kind in enumerate(["mix", "cluttered", "mix", "cluttered"]):
        assert values[i].tobytes() == generate_scene(i, 3, 24, kind)["depth"].tobytes()
    recipe = _recipe(scenes={**TINY["data"]["scenes"], "kind": ["mix", "mix", "cluttered"]})
    coverage = training_coverage({"provenance": {"recipe": recipe, "steps": 2}})["trained_on"]
    assert "scenes: 2/3 indoor rooms and outdoor scenes, 1/2 each + 1/3 cluttered rooms" in coverage
    assert coverage.endswith("sensor-like holes and noise (shadow 4, edges 0.3, blobs 0.01, noise 0.003)")


BAD = {
    "sensor on rgb": (
        lambda r: r.update(tokenizer={**r["tokenizer"], "modality": "rgb"}, loss="mse"),
        "data.sensor: sensor corruption applies to depth training data, not 'rgb'",
    ),
    "unknown sensor field": (lambda r: r["data"]["sensor"].update(speckle=1), "data.sensor: unknown field(s)"),
    "edges over 1": (
        lambda r: r["data"]["sensor"].update(edges=2),
        "data.sensor.edges: expected a number in [0.0, 1.0]",
    ),
    "unknown kind in a list": (
        lambda r: r["data"]["scenes"].update(kind=["mix", "attic"]),
        "data.scenes.kind: expected one of indoor, outdoor, mix, cluttered or a list of them",
    ),
    "empty kind list": (lambda r: r["data"]["scenes"].update(kind=[]), "data.scenes.kind"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sensor_or_kind_is_one_line_config_error(tmp_path, case):
    mutate, expected = BAD[case]
    recipe = json.loads(json.dumps(TINY))
    mutate(recipe)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    assert expected in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_cli_trains_on_cluttered_scenes_with_a_sensor(tmp_path):
    path = tmp_path / "clutter.yaml"
    path.write_text(yaml.safe_dump(TINY))
    result = CliRunner().invoke(
        cli, ["train", "--recipe", str(path), "--out", str(tmp_path / "run"), "-q", "--no-eval", "--threads", "1"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("tiny_depth: 2 steps")
    config = json.loads((tmp_path / "run" / "tokenizer" / "config.json").read_text())
    assert config["provenance"]["recipe"]["data"]["sensor"] == SENSOR


def test_the_readme_data_example_is_a_valid_depth_recipe():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    block = (root / "README.md").read_text().split("closer to real sensors")[1].split("```yaml")[1].split("```")[0]
    recipe = load_recipe(root / "recipes" / "depth.yaml")
    recipe["data"] = yaml.safe_load(block)["data"]
    data = validate_recipe(recipe, "README")["data"]
    assert data["scenes"]["kind"] == ["mix", "mix", "cluttered"] and data["sensor"]["shadow"] == 4.0


def test_cli_data_keeps_the_recipes_sensor(tmp_path):
    from tokzoo.datasets.scenes import write_scene_shards

    write_scene_shards(tmp_path / "shards", n=3, seed=1, size=40, kind="cluttered")
    path = tmp_path / "clutter.yaml"
    path.write_text(yaml.safe_dump(TINY))
    args = ["train", "--recipe", str(path), "--data", str(tmp_path / "shards"), "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(cli, [*args, "-q", "--no-eval", "--threads", "1"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "run" / "tokenizer" / "config.json").read_text())["provenance"]["recipe"]["data"]
    assert data["path"] == str(tmp_path / "shards") and data["sensor"] == SENSOR and "scenes" not in data
