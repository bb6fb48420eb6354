"""Cluttered rooms (kind "cluttered"): contract, labels, normals, depth range, structure vs plain rooms,
determinism, and the other kinds left byte-identical."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scene_checks import assert_scene_contract, camera_rays, dilate

from tokzoo.datasets import SCENE_CLASSES, generate_scene
from tokzoo.datasets.depth_stats import depth_structure, discontinuities, thin_structures
from tokzoo.datasets.scenes import SCENE_KINDS, Scenes

ROOT = Path(__file__).resolve().parents[1]
ARRAYS = ("rgb", "depth", "normals", "semseg", "sam_instances", "edges")
CLS = {name: i for i, name in enumerate(SCENE_CLASSES)}
OBJECTS = {CLS[c] for c in ("sphere", "box", "cylinder", "human")}
SCENES = [generate_scene(i, seed=1, size=(64, 80), kind="cluttered") for i in range(8)]


@pytest.mark.parametrize("index", range(len(SCENES)))
def test_contract_and_labels(index):
    s = SCENES[index]
    assert_scene_contract(s, (64, 80), CLS["sky"], facing_tolerance=1e-4)
    semseg, inst = s["semseg"], s["sam_instances"]
    assert set(np.unique(semseg)) <= {CLS[c] for c in ("floor", "wall", "sky")} | OBJECTS  # room classes only
    assert ((inst > 0) == np.isin(semseg, list(OBJECTS))).all()
    assert set(np.unique(s["edges"])) <= {0, 1}
    for human in s["pose"]["humans"]:
        assert (semseg[inst == human["instance_id"]] == CLS["human"]).all() and len(human["keypoints_2d"]) == 17


def test_many_objects_at_room_depths():
    depth = np.concatenate([s["depth"].ravel() for s in SCENES])
    valid = depth[np.isfinite(depth)]
    assert np.mean((valid > 0.5) & (valid < 10)) > 0.9 and np.mean((valid >= 1) & (valid <= 6)) > 0.5
    assert valid.min() < 1.0  # wires and near clusters
    counts = [len(np.unique(s["sam_instances"])) - 1 for s in SCENES]
    assert np.median(counts) >= 8, counts  # visible instances per 64 x 80 view
    classes = set(np.concatenate([np.unique(s["semseg"]) for s in SCENES]))
    assert {CLS["sphere"], CLS["box"], CLS["cylinder"]} <= classes


def test_normals_agree_with_depth_away_from_edges():
    medians = []
    for index in range(4):
        s = generate_scene(index, seed=2, size=128, kind="cluttered")
        p = s["depth"][..., None].astype(np.float64) * camera_rays(s["camera"])
        n = np.cross(p[1:-1, 2:] - p[1:-1, :-2], p[2:, 1:-1] - p[:-2, 1:-1])
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        n *= -np.sign((n * p[1:-1, 1:-1]).sum(-1, keepdims=True))
        truth = s["normals"][1:-1, 1:-1]
        ok = ~dilate(s["edges"].astype(bool) | np.isnan(s["depth"]), 2)[1:-1, 1:-1] & np.isfinite(n).all(-1)
        assert ok.sum() > 0.2 * 126 * 126
        medians.append(np.median(np.degrees(np.arccos(np.clip((n[ok] * truth[ok]).sum(-1), -1, 1)))))
        wrong = truth[ok][:, [2, 0, 1]]  # the comparison can fail: permuted axes are far off
        assert np.median(np.degrees(np.arccos(np.clip((n[ok] * wrong).sum(-1), -1, 1)))) > 20
    assert max(medians) < 5, medians


def test_far_more_discontinuities_and_thin_structures_than_plain_rooms():
    def mean_structure(kind):
        stats = [depth_structure(generate_scene(i, 0, 64, kind)["depth"]) for i in range(12)]
        return {k: np.mean([s[k] for s in stats]) for k in stats[0]}

    indoor, cluttered = mean_structure("indoor"), mean_structure("cluttered")
    assert cluttered["thin"] > 4 * indoor["thin"], (indoor, cluttered)
    assert cluttered["discontinuities"] > 1.5 * indoor["discontinuities"], (indoor, cluttered)
    assert cluttered["invalid"] < indoor["invalid"]  # walls and a ceiling: little sky


def test_structure_statistics_on_known_maps():
    plane = 1 / (0.2 + 0.01 * np.arange(32)[:, None] + 0.003 * np.arange(32)[None, :])  # inverse depth affine
    assert not discontinuities(plane).any() and not thin_structures(plane).any()
    scene = np.full((32, 32), 4.0)
    scene[:, 16:] = 2.0  # a step
    scene[8, :] = 1.0  # a one-pixel wire in front
    steps = discontinuities(scene)
    assert steps[20, 15] and steps[20, 16] and not steps[20, 5]
    thin = thin_structures(scene)
    assert thin[8].all() and thin.sum() == 32  # the wire, not the step
    scene[0, 0] = np.nan
    assert depth_structure(scene)["invalid"] == 1 / 32**2


def test_deterministic_and_its_own_stream():
    a = generate_scene(3, seed=9, size=48, kind="cluttered")
    b = generate_scene(3, seed=9, size=48, kind="cluttered")
    assert all(a[k].tobytes() == b[k].tobytes() for k in ARRAYS) and a["pose"] == b["pose"]
    assert a["depth"].tobytes() != generate_scene(4, seed=9, size=48, kind="cluttered")["depth"].tobytes()
    assert a["depth"].tobytes() != generate_scene(3, seed=9, size=48)["depth"].tobytes()
    code = (
        "from tokzoo.datasets import generate_scene as g; import sys; s = g(3, 9, 48, 'cluttered'); "
        "sys.stdout.buffer.write(s['rgb'].tobytes() + s['depth'].tobytes())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT)}
    )
    assert out.stdout == a["rgb"].tobytes() + a["depth"].tobytes()
    assert "cluttered" in SCENE_KINDS and len(Scenes(2, kind="cluttered")) == 2


# Digests of scenes 0-3 (seed 3, 48 px) taken before the cluttered kind was added: labels, edges and depth to
# 0.1 mm. Adding kinds must not change what the other kinds draw (the shipped tokenizers trained on them).
BEFORE = {
    "indoor": ["a378a19b12763fa3", "124680ea4edf52b2", "685d7a77afb7cf51", "9ac10e1e58af782e"],
    "outdoor": ["a0c118c8f48a3666", "9bf46e56fb6692f9", "14bffee2a800e84e", "0a6651f7620c36e2"],
}


@pytest.mark.parametrize("kind", sorted(BEFORE))
def test_other_kinds_draw_what_they_drew_before(kind):
    digests = []
    for index in range(4):
        s = generate_scene(index, 3, 48, kind)
        h = hashlib.sha256()
        for key in ("semseg", "sam_instances", "edges"):
            h.update(s[key].tobytes())
        h.update(np.round(np.nan_to_num(s["depth"], nan=-1.0), 4).astype(np.float32).tobytes())
        digests.append(h.hexdigest()[:16])
    assert digests == BEFORE[kind]
