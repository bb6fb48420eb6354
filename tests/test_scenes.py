"""The procedural scene generator: contract, geometric consistency, determinism, shards, CLI."""

import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scene_checks import assert_scene_contract, camera_rays, dilate

from tokzoo.datasets import SCENE_CLASSES, Scenes, generate_scene, scene_preview, write_scene_shards
from tokzoo.datasets.scene_text import scene_text
from tokzoo.datasets.scenes import save_scene_preview

SKY, HUMAN = SCENE_CLASSES.index("sky"), SCENE_CLASSES.index("human")
ROOT = Path(__file__).resolve().parents[1]
ARRAYS = ("rgb", "depth", "normals", "semseg", "sam_instances", "edges")


def _same(a: dict, b: dict) -> bool:
    arrays = all(a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes() for k in ARRAYS)
    return arrays and a["pose"] == b["pose"] and a["camera"] == b["camera"]


@pytest.mark.parametrize("index", range(6))
def test_contract(index):
    s = generate_scene(index, seed=1, size=(96, 128))
    assert_scene_contract(s, (96, 128), SKY, facing_tolerance=0)
    semseg, inst = s["semseg"], s["sam_instances"]
    assert semseg.max() < len(SCENE_CLASSES) and set(np.unique(s["edges"])) <= {0, 1}
    assert ((inst > 0) == (semseg >= SCENE_CLASSES.index("sphere"))).all()
    cam = s["camera"]
    assert (cam["width"], cam["height"]) == (128, 96) and np.allclose(np.array(cam["cam_to_world"])[3], [0, 0, 0, 1])
    assert s["pose"]["skeleton"] == "coco17"
    for human in s["pose"]["humans"]:
        assert len(human["keypoints_2d"]) == len(human["keypoints_3d"]) == 17
        assert {v for _, _, v in human["keypoints_2d"]} <= {0, 1, 2}
        assert (semseg[inst == human["instance_id"]] == HUMAN).all()
    json.dumps(s["pose"]), json.dumps(s["camera"])


def test_normals_agree_with_depth():
    """Normals from finite differences of the unprojected depth match the rendered normals."""
    medians, n_used = [], 0
    for index in range(8):
        s = generate_scene(index, seed=2, size=128)
        p = s["depth"][..., None].astype(np.float64) * camera_rays(s["camera"])
        n = np.cross(p[1:-1, 2:] - p[1:-1, :-2], p[2:, 1:-1] - p[:-2, 1:-1])
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        n *= -np.sign((n * p[1:-1, 1:-1]).sum(-1, keepdims=True))
        truth = s["normals"][1:-1, 1:-1]
        near_edge = dilate(s["edges"].astype(bool) | np.isnan(s["depth"]), 2)[1:-1, 1:-1]
        ok = ~near_edge & np.isfinite(n).all(-1)
        angle = np.degrees(np.arccos(np.clip((n[ok] * truth[ok]).sum(-1), -1, 1)))
        medians.append(np.median(angle))
        n_used += ok.sum()
        # the comparison can fail: normals with their axes permuted are far off
        wrong = truth[ok][:, [2, 0, 1]]
        assert np.median(np.degrees(np.arccos(np.clip((n[ok] * wrong).sum(-1), -1, 1)))) > 20
    assert n_used > 8 * 128 * 128 * 0.5
    assert max(medians) < 5, medians


def test_visible_keypoints_lie_on_their_human():
    checked = 0
    for index in range(16):
        s = generate_scene(index, seed=3, size=160)
        cam, inst = s["camera"], s["sam_instances"]
        padded = np.pad(inst, 2)
        for human in s["pose"]["humans"]:
            kp2, kp3 = np.array(human["keypoints_2d"]), np.array(human["keypoints_3d"])
            front = kp3[:, 2] > 0
            proj = kp3[front, :2] / kp3[front, 2:] * [cam["fx"], cam["fy"]] + [cam["cx"], cam["cy"]]
            assert np.allclose(proj, kp2[front, :2], atol=1e-6)
            for (x, y, v), z in zip(kp2, kp3[:, 2]):
                inside = z > 0 and -0.5 <= x < cam["width"] - 0.5 and -0.5 <= y < cam["height"] - 0.5
                assert (v > 0) == inside
                if v == 2:
                    r, c = round(y) + 2, round(x) + 2
                    assert (padded[r - 2 : r + 3, c - 2 : c + 3] == human["instance_id"]).any()
                    checked += 1
    assert checked > 50


def test_same_seed_same_bytes_other_seed_differs():
    a = generate_scene(7, seed=5, size=64)
    assert _same(a, generate_scene(7, seed=5, size=64))
    assert not _same(a, generate_scene(7, seed=6, size=64))
    assert not _same(a, generate_scene(8, seed=5, size=64))
    code = "from tokzoo.datasets import generate_scene as g; import sys; s = g(7, 5, 64); sys.stdout.buffer.write(s['rgb'].tobytes() + s['depth'].tobytes())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT)}
    )
    assert out.stdout == a["rgb"].tobytes() + a["depth"].tobytes()


def _members(path):
    with tarfile.open(path) as tar:
        return [(m.name, m.mtime, tar.extractfile(m).read()) for m in tar.getmembers()]


def test_shards_are_deterministic_and_decode(tmp_path):
    serial = write_scene_shards(tmp_path / "a", n=5, seed=4, size=48, samples_per_shard=2)
    pooled = write_scene_shards(tmp_path / "b", n=5, seed=4, size=48, samples_per_shard=2, workers=2)
    assert [p.name for p in serial] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert [p.read_bytes() for p in serial] == [p.read_bytes() for p in pooled]
    other = write_scene_shards(tmp_path / "c", n=5, seed=9, size=48, samples_per_shard=2)
    assert serial[0].read_bytes() != other[0].read_bytes()

    members = _members(serial[1])
    exts = [
        "camera.json",
        "captions.txt",
        "depth.npy",
        "edges.png",
        "normals.npy",
        "pose.json",
        "rgb.png",
        "sam_instances.png",
        "semseg.png",
    ]
    assert [name for name, _, _ in members] == [f"scene_00000{i}.{e}" for i in (2, 3) for e in exts]
    assert {mtime for _, mtime, _ in members} == {0}
    data = {name: blob for name, _, blob in members}
    s = generate_scene(3, seed=4, size=48)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data["scene_000003.rgb.png"]))), s["rgb"])
    assert np.array_equal(np.load(io.BytesIO(data["scene_000003.depth.npy"])), s["depth"], equal_nan=True)
    assert np.array_equal(np.load(io.BytesIO(data["scene_000003.normals.npy"])), s["normals"], equal_nan=True)
    inst = np.asarray(Image.open(io.BytesIO(data["scene_000003.sam_instances.png"])))
    assert np.array_equal(inst.astype(np.uint16), s["sam_instances"])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data["scene_000003.edges.png"]))), s["edges"] * 255)
    assert json.loads(data["scene_000003.pose.json"]) == s["pose"]
    assert data["scene_000003.captions.txt"].decode() == scene_text(s)["caption"] + "\n"


def test_scenes_iterable_and_preview(tmp_path):
    items = list(Scenes(3, seed=2, size=32))
    assert [k for k, _ in items] == ["scene_000000", "scene_000001", "scene_000002"]
    assert _same(items[2][1], generate_scene(2, seed=2, size=32))
    preview = scene_preview(items[0][1])
    assert preview.dtype == np.uint8 and preview.shape == (32, 32 * 7, 3)
    assert Image.open(save_scene_preview(items[0][1], tmp_path / "p.png")).size == (32 * 7, 32)


def _scenes_command():
    try:
        from tokzoo_cli.scenes import scenes_command
    except ImportError:  # the cli/ folder is not installed as tokzoo_cli in this checkout
        spec = importlib.util.spec_from_file_location("tokzoo_cli_scenes", ROOT / "cli" / "scenes.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        scenes_command = module.scenes_command
    return scenes_command


def test_cli_writes_shards(tmp_path):
    from click.testing import CliRunner

    args = ["--n", "3", "--size", "32", "--seed", "1", "--out", str(tmp_path), "--samples-per-shard", "2"]
    result = CliRunner().invoke(_scenes_command(), args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-000000.tar", "shard-000001.tar"]
    assert "3 scenes" in result.output and "shard-000001.tar" in result.output


def test_rewriting_a_folder_never_mixes_runs(tmp_path):
    """A second run with fewer scenes used to overwrite shard 0 and keep the old shards 1..: one silently mixed
    dataset. Files beside the shards (a folder no longer read as shards) are refused too; the same run again is fine,
    and a killed run's partial shard is never left under a shard-*.tar name."""
    from tokzoo.errors import ConfigError

    out = tmp_path / "scenes"
    write_scene_shards(out, 4, size=16, samples_per_shard=2)
    first = (out / "shard-000000.tar").read_bytes()
    (out / "shard-000001.tar.partial").write_bytes(b"killed")  # what a kill mid-shard leaves
    write_scene_shards(out, 4, size=16, samples_per_shard=2)
    assert (out / "shard-000000.tar").read_bytes() == first and not list(out.glob("*.partial"))
    with pytest.raises(ConfigError, match="holds shard-000001.tar, which this run would not rewrite"):
        write_scene_shards(out, 2, size=16, samples_per_shard=2)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="notes.txt"):
        write_scene_shards(tmp_path / "notes", 2, size=16)
