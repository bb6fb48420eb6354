"""Outdoor procedural scenes: contract, depth range, sky, geometric consistency, labels, determinism, mix, CLI."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scene_checks import assert_scene_contract, camera_rays, dilate

from tokzoo.datasets import SCENE_CLASSES, generate_scene
from tokzoo.datasets.scene_outdoor import MAX_DEPTH
from tokzoo.datasets.scenes import SCENE_CLASS_COLORS, Scenes, is_outdoor
from tokzoo.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
ARRAYS = ("rgb", "depth", "normals", "semseg", "sam_instances", "edges")
CLS = {name: i for i, name in enumerate(SCENE_CLASSES)}
OBJECTS = {CLS[c] for c in ("sphere", "box", "cylinder", "human", "building", "tree")}
SCENES = [generate_scene(i, seed=4, size=(64, 80), kind="outdoor") for i in range(12)]


def test_room_class_ids_are_unchanged_and_outdoor_ones_follow():
    assert SCENE_CLASSES[:7] == ("floor", "wall", "sky", "sphere", "box", "cylinder", "human")
    assert SCENE_CLASSES[7:] == ("terrain", "building", "tree") and len(SCENE_CLASS_COLORS) == len(SCENE_CLASSES)


@pytest.mark.parametrize("index", range(len(SCENES)))
def test_contract_sky_and_labels(index):
    s = SCENES[index]
    assert_scene_contract(s, (64, 80), CLS["sky"], facing_tolerance=1e-4)  # grazing rays: rounding
    depth, semseg, inst = s["depth"], s["semseg"], s["sam_instances"]
    sky = semseg == CLS["sky"]
    assert (depth[~sky] <= MAX_DEPTH).all()
    assert set(np.unique(semseg)) <= {CLS["sky"], CLS["terrain"], *OBJECTS}  # no floor or wall outdoors
    assert ((inst > 0) == np.isin(semseg, list(OBJECTS))).all()  # terrain and sky carry no instance
    for i in np.unique(inst[inst > 0]):
        assert len(np.unique(semseg[inst == i])) == 1  # one class per instance (a tree's trunk and crown too)
    for human in s["pose"]["humans"]:
        assert (semseg[inst == human["instance_id"]] == CLS["human"]).all()
        assert len(human["keypoints_2d"]) == 17


def test_depth_covers_every_decade_of_the_contract():
    depth = np.concatenate([s["depth"].ravel() for s in SCENES])
    valid = depth[np.isfinite(depth)]
    counts = [np.sum((valid >= lo) & (valid < 10 * lo)) for lo in (0.1, 1.0, 10.0)]
    assert min(counts) > 0.01 * valid.size, counts  # each decade holds > 1% of the valid pixels
    assert valid.max() > 80 and valid.min() < 0.6
    assert np.mean([np.isnan(s["depth"]).any() for s in SCENES]) > 0.5  # most views show sky
    classes = set(np.concatenate([np.unique(s["semseg"]) for s in SCENES]))
    assert {CLS["terrain"], CLS["building"], CLS["tree"]} <= classes


def test_normals_agree_with_depth():
    """Normals from finite differences of the unprojected depth match the rendered normals (terrain included)."""
    medians, terrain_px = [], 0
    for index in range(6):
        s = generate_scene(index, seed=2, size=128, kind="outdoor")
        p = s["depth"][..., None].astype(np.float64) * camera_rays(s["camera"])
        n = np.cross(p[1:-1, 2:] - p[1:-1, :-2], p[2:, 1:-1] - p[:-2, 1:-1])
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        n *= -np.sign((n * p[1:-1, 1:-1]).sum(-1, keepdims=True))
        truth = s["normals"][1:-1, 1:-1]
        near_edge = dilate(s["edges"].astype(bool) | np.isnan(s["depth"]), 2)[1:-1, 1:-1]
        ok = ~near_edge & np.isfinite(n).all(-1)
        angle = np.degrees(np.arccos(np.clip((n[ok] * truth[ok]).sum(-1), -1, 1)))
        medians.append(np.median(angle))
        terrain_px += np.sum(ok & (s["semseg"][1:-1, 1:-1] == CLS["terrain"]))
        wrong = truth[ok][:, [2, 0, 1]]  # the comparison can fail: permuted axes are far off
        assert np.median(np.degrees(np.arccos(np.clip((n[ok] * wrong).sum(-1), -1, 1)))) > 20
    assert terrain_px > 6 * 128 * 128 * 0.2
    assert max(medians) < 5, medians


def test_sunlit_and_shadowed_terrain_differ():
    """Objects cast shadows: terrain pixels of one albedo are darker in shadow, so the rgb of terrain varies
    far more than its shading by slope alone would explain in at least some scenes."""
    spreads = []
    for s in SCENES:
        terrain = s["semseg"] == CLS["terrain"]
        if terrain.sum() > 100:
            luminance = s["rgb"][terrain].astype(float).mean(-1)
            spreads.append(np.percentile(luminance, 95) - np.percentile(luminance, 5))
    assert max(spreads) > 40


def test_determinism_kinds_and_mix():
    a = generate_scene(3, seed=9, size=48, kind="outdoor")
    b = generate_scene(3, seed=9, size=48, kind="outdoor")
    assert all(a[k].tobytes() == b[k].tobytes() for k in ARRAYS) and a["pose"] == b["pose"]
    assert a["rgb"].tobytes() != generate_scene(4, seed=9, size=48, kind="outdoor")["rgb"].tobytes()
    assert a["rgb"].tobytes() != generate_scene(3, seed=9, size=48)["rgb"].tobytes()  # indoor is another stream
    code = (
        "from tokzoo.datasets import generate_scene as g; import sys; s = g(3, 9, 48, 'outdoor'); "
        "sys.stdout.buffer.write(s['rgb'].tobytes() + s['depth'].tobytes())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT)}
    )
    assert out.stdout == a["rgb"].tobytes() + a["depth"].tobytes()
    flags = [is_outdoor(i, 9, "mix") for i in range(40)]
    assert 10 < sum(flags) < 30
    for i in (flags.index(True), flags.index(False)):
        mixed = generate_scene(i, 9, 32, "mix")
        same = generate_scene(i, 9, 32, "outdoor" if flags[i] else "indoor")
        assert mixed["rgb"].tobytes() == same["rgb"].tobytes()
    with pytest.raises(ConfigError, match="scene kind must be one of indoor, outdoor, mix, cluttered, got 'beach'"):
        generate_scene(0, kind="beach")
    with pytest.raises(ConfigError):
        Scenes(2, kind="beach")


def test_cli_writes_outdoor_shards_and_recipe_takes_a_kind(tmp_path):
    from tokzoo.io.readers import open_reader
    from tokzoo.tokenizers.training.recipe import load_recipe, validate_recipe
    from tokzoo_cli.main import cli

    result = CliRunner().invoke(
        cli, ["scenes", "--n", "2", "--size", "24", "--kind", "outdoor", "--out", str(tmp_path / "s")]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 2 scenes (outdoor, 24x24" in result.output
    samples = list(open_reader(str(tmp_path / "s"), ["depth", "semseg"]))
    assert len(samples) == 2
    assert np.array_equal(samples[1].values["semseg"], generate_scene(1, 0, 24, "outdoor")["semseg"])
    bad = CliRunner().invoke(cli, ["scenes", "--n", "1", "--kind", "beach", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "beach" in bad.output
    recipe = load_recipe(ROOT / "recipes" / "depth.yaml")
    recipe["data"]["scenes"]["kind"] = "outdoorz"
    with pytest.raises(
        ConfigError,
        match=r"data\.scenes\.kind: expected one of indoor, outdoor, mix, cluttered or a list of them, got 'outdoorz'",
    ):
        validate_recipe(recipe, "r.yaml")
