"""Set-valued modalities (human_pose, sam_instances) through tokzoo tokenize: crops of N_i >= 0 items
stored (n_crops, N_max, T) padded with pad_id = vocab_size; loader, inspect, show, Hugging Face."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_pipeline import snapshot  # noqa: E402  (tests/ is on sys.path under pytest)

import tokzoo
from tokzoo.crops import apply_crop
from tokzoo.indices import unpad
from tokzoo.io import decode_sample
from tokzoo.tokens import make_loader
from tokzoo.tokens.layout import read_npy_tar, read_table
from tokzoo.tokens.sources import open_input
from tokzoo_cli.main import cli

SETS = {"human_pose": "pose", "sam_instances": "sam_instances"}  # modality -> stored raw modality
# Scenes 14, 19, 20 have crops that lose an instance (pad rows inside a sample); 1 and 4 have no humans.
SCENES = ["--scenes", "21", "--scene-size", "64", "--samples-per-shard", "8", "--crops", "3", "--batch-size", "5"]


def run(*args, expect=0):
    result = CliRunner().invoke(cli, [*map(str, args)])
    assert result.exit_code == expect, result.output
    return result


def members(out: Path, folder: str) -> dict[str, np.ndarray]:
    return {k: v for tar in sorted((out / folder).glob("*.tar")) for k, v in read_npy_tar(tar)}


def expected_items(out: Path, modality: str) -> dict[str, list[np.ndarray]]:
    """Per key, per crop: the item ids the codec gives that crop on its own (apply_crop + tok.encode)."""
    entry = json.loads((out / "manifest.json").read_text())["modalities"][modality]
    tok, stored, crops = tokzoo.load_tokenizer(modality), SETS[modality], members(out, "crops")
    expected = {}
    for raw in open_input(entry["input"], [stored]).raw():
        if raw.key not in crops:  # failed
            continue
        value = decode_sample(raw).values[stored]
        expected[raw.key] = [
            tok.encode(apply_crop({stored: value}, row, tuple(entry["size"]))[stored]).numpy() for row in crops[raw.key]
        ]
    return expected


@pytest.fixture(scope="module")
def scenes_out(tmp_path_factory):
    """human_pose + sam_instances + depth on 21 scenes with 0 and 2 workers (same bytes checked below)."""
    root = tmp_path_factory.mktemp("sets")
    for workers in (0, 2):
        result = run(
            "tokenize",
            "-m",
            "human_pose,sam_instances,depth",
            "-o",
            root / f"w{workers}",
            "--workers",
            workers,
            "--no-progress",
            *SCENES,
        )
        assert "ok 21 / failed 0 / total 21" in result.output
    return root


def test_set_modalities_are_identical_across_workers_and_aligned_with_depth(scenes_out):
    w0, w2 = snapshot(scenes_out / "w0"), snapshot(scenes_out / "w2")
    assert w0 == w2 and any(name.startswith("human_pose/") for name in w0)
    keys = {
        folder: [k for tar in sorted((scenes_out / "w0" / folder).glob("*.tar")) for k, _ in read_npy_tar(tar)]
        for folder in ("depth", "crops", *SETS)
    }
    assert keys["depth"] == keys["crops"] == keys["human_pose"] == keys["sam_instances"]
    assert keys["depth"] == [f"scene_{i:06d}" for i in range(21)]


@pytest.mark.parametrize("modality", sorted(SETS))
def test_each_crop_holds_its_items_then_pad_rows(scenes_out, modality, one_thread):
    out = scenes_out / "w0"
    entry = json.loads((out / "manifest.json").read_text())["modalities"][modality]
    tok = tokzoo.load_tokenizer(modality)
    item_shape = list(tok.token_shape)
    assert entry["items"] is True and entry["pad_id"] == tok.vocab_size and entry["token_shape"] == [None, *item_shape]
    assert entry["dtype"] == "uint8" and tok.vocab_size + 1 <= 256  # the pad id fits the dtype
    stored, expected, ragged = members(out, modality), expected_items(out, modality), 0
    for key, tokens in stored.items():
        counts = [len(items) for items in expected[key]]
        assert tokens.dtype == np.uint8 and tokens.shape == (3, max(counts), *item_shape), key
        for c, items in enumerate(expected[key]):
            assert (tokens[c, len(items) :] == entry["pad_id"]).all() and (
                tokens[c, : len(items)] < tok.vocab_size
            ).all()
            np.testing.assert_array_equal(tokens[c, : len(items)], items)  # batched encode == one crop alone
            np.testing.assert_array_equal(unpad(tokens[c], entry["pad_id"]), items)
        ragged += len(set(counts)) > 1
    if modality == "sam_instances":
        assert ragged >= 2  # some crops lose an instance: pad rows inside a sample are exercised


def test_decoding_crop_0_gives_its_humans_and_a_scene_without_humans_is_ok(scenes_out):
    out = scenes_out / "w0"
    tok, stored = tokzoo.load_tokenizer("human_pose"), members(out, "human_pose")
    pad = tok.vocab_size
    pose = {r.key: decode_sample(r).values["pose"] for r in open_input(out / "_source", ["pose"]).raw()}
    for key, tokens in stored.items():
        assert len(tok.decode(unpad(tokens[0], pad))["humans"]) == len(pose[key]["humans"])
    empty = [key for key, value in pose.items() if not value["humans"]]
    assert empty and all(stored[key].shape == (3, 0, 8) for key in empty)
    table = {r["key"]: r for r in read_table(out / "human_pose" / "shard-000000.samples.jsonl")}
    assert all(table[key]["status"] == "ok" for key in empty if key in table)


def test_loader_pads_each_batch_to_its_largest_item_count(scenes_out):
    """...and gives the padding mask: the user had to know that pad = vocab_size (issue 31)."""
    out = scenes_out / "w0"
    stored = {m: members(out, m) for m in SETS}
    loader = make_loader(
        out, ["depth", "human_pose", "sam_instances"], batch_size=6, shuffle=False, crop="random", seed=3
    )
    seen = []
    for batch in loader:
        assert batch["depth"].shape[0] == len(batch["__key__"])
        for modality, tokens in stored.items():
            pad = loader.dataset.pad_ids[modality]
            items = [unpad(tokens[k][int(c)], pad) for k, c in zip(batch["__key__"], batch["__crop__"])]
            n_max = max(len(i) for i in items)
            assert batch[modality].shape == (len(items), n_max, tokens[batch["__key__"][0]].shape[2])
            for row, mask, real in zip(batch[modality].numpy(), batch["__mask__"][modality].numpy(), items):
                np.testing.assert_array_equal(row[: len(real)], real)
                assert (row[len(real) :] == pad).all()
                assert mask.dtype == bool and mask.tolist() == [True] * len(real) + [False] * (n_max - len(real))
        seen += batch["__key__"]
    assert sorted(seen) == [f"scene_{i:06d}" for i in range(21)] and loader.dataset.pad_ids["depth"] is None
    one = next(iter(make_loader(out, ["human_pose"], batch_size=2, shuffle=False, crop=0)))
    assert one["__key__"] == ["scene_000000", "scene_000001"] and one["human_pose"].shape == (2, 1, 8)
    assert (one["human_pose"][1] == 125).all()  # scene 1 has no human: its row is all padding


def test_hugging_face_reads_a_set_folder(scenes_out, tmp_path):
    import datasets

    out = scenes_out / "w0"
    ds = datasets.load_dataset(
        "webdataset", data_files={"train": str(out / "sam_instances" / "*.tar")}, cache_dir=str(tmp_path / "hf")
    )["train"]
    assert len(ds) == 21 and ds[0]["__key__"] == "scene_000000"
    np.testing.assert_array_equal(ds.with_format("numpy")[14]["npy"], members(out, "sam_instances")["scene_000014"])


def test_inspect_and_show(scenes_out, tmp_path):
    out = scenes_out / "w0"
    lines = run("inspect", out, "--samples", 2).output.splitlines()
    line = next(line for line in lines if line.startswith("human_pose:"))
    assert "tokens [N, 8] uint8 per crop" in line and "id 125" in line
    assert "  scene_000001: (3, 0, 8) uint8  crop 0: no items" in lines
    shown = run("show", out, "-k", "scene_000005", "-o", tmp_path / "s.png").output
    assert "human_pose: source crop | reconstruction" in shown and (tmp_path / "s.png").is_file()
    # Without the source, sam_instances has no boxes to paste its masks into: side by side, said in one line.
    moved = tmp_path / "moved"
    shutil.copytree(out, moved, ignore=shutil.ignore_patterns("_source"))
    manifest = json.loads((moved / "manifest.json").read_text())
    for entry in manifest["modalities"].values():
        entry["input"] = str(tmp_path / "gone")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    shown = run("show", moved, "-k", "scene_000005", "-o", tmp_path / "t.png").output
    assert "sam_instances: instance boxes are not tokens and the source crop is unavailable: 7 decoded" in shown


def human(x, y, box=None):
    """A COCO-17 human standing around (x, y), all joints visible."""
    entry = {"keypoints_2d": [[x + (j % 3) - 1, y + j // 4 - 2, 2] for j in range(17)]}
    return {**entry, "box": box} if box else entry


def test_pose_folder_counts_crops_that_lose_humans_and_fails_only_bad_files(tmp_path, one_thread):
    folder = tmp_path / "pose"
    folder.mkdir()
    poses = {
        f"corner{i}": {
            "skeleton": "coco17",
            "width": 64,
            "height": 64,
            "humans": [human(32, 32, [26, 26, 12, 12]), human(x, y, [x - 2, y - 2, 4, 4])],
        }
        for i, (x, y) in enumerate([(2, 2), (61, 2), (2, 61), (61, 61)])
    }
    poses["empty"] = {"skeleton": "coco17", "width": 64, "height": 64, "humans": []}
    poses["no_frame"] = {"skeleton": "coco17", "humans": [human(40, 40)]}
    poses["bad"] = {"skeleton": "coco17", "width": 64, "height": 64, "humans": [{"keypoints_2d": [[1, 1, 2]] * 16}]}
    for name, pose in poses.items():
        (folder / f"{name}.json").write_text(json.dumps(pose))
    out = tmp_path / "out"
    result = run(
        "tokenize",
        "-m",
        "human_pose",
        "--input",
        folder,
        "-o",
        out,
        "--crops",
        3,
        "--workers",
        0,
        "--no-progress",
        expect=0,
    )
    assert "ok 6 / failed 1 / total 7" in result.output
    table = {r["key"]: r for r in read_table(out / "human_pose" / "shard-000000.samples.jsonl")}
    assert table["bad"]["status"] == "failed" and "bad.json" in table["bad"]["error"]
    assert "\n" not in table["bad"]["error"]
    stored, crops, expected = members(out, "human_pose"), members(out, "crops"), expected_items(out, "human_pose")
    assert stored["empty"].shape == (3, 0, 8) and "bad" not in stored
    assert crops["no_frame"][0].tolist() == [0, 0, 96, 96, 0]  # no width/height: the codec's frame (image_size)
    counts = {key: [len(items) for items in expected[key]] for key in stored}
    assert any(min(c) < max(c) for c in counts.values())  # some crop lost the corner human
    for key, tokens in stored.items():
        assert tokens.shape[:2] == (3, max(counts[key]))
        for c, n in enumerate(counts[key]):
            assert (tokens[c, n:] == 125).all() and (tokens[c, :n] < 125).all()
