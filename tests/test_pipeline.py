"""tokzoo tokenize: layout, determinism across workers, alignment across modalities and runs, inspect/show."""

import json
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from click.testing import CliRunner
from PIL import Image

from tokzoo.datasets.scenes import generate_scene
from tokzoo.tokenizers.learned import LearnedTokenizer
from tokzoo_cli.main import cli


@pytest.fixture(scope="module")
def toks(tmp_path_factory):
    root = tmp_path_factory.mktemp("toks")
    paths = {}
    for modality, seed in (("depth", 0), ("rgb", 0), ("depth2", 1)):
        name = modality.rstrip("2")
        tok = LearnedTokenizer.from_defaults(name, seed=seed, model={"preset": "conv-tiny"}, input_size=[64, 64])
        paths[modality] = str(tok.save_pretrained(root / modality))
    return paths


def tokenize(out, modalities, *args, toks=None, expect=0):
    """``tokzoo tokenize -m modalities`` with the tiny tokenizers of ``toks``."""
    tokenizers = [f"--tokenizer={m}={toks[m]}" for m in modalities.split(",")] if toks else []
    result = CliRunner().invoke(
        cli, ["tokenize", "-o", str(out), "-m", modalities, "--no-progress", *tokenizers, *args]
    )
    assert result.exit_code == expect, result.output
    return result


def snapshot(out: Path) -> dict[str, bytes]:
    """Every output file's bytes, OUT's own path replaced; stats without their timing."""
    files = {}
    for path in sorted(out.rglob("*")):
        if path.is_file():
            data = path.read_bytes().replace(str(out).encode(), b"OUT")
            if path.name.endswith(".stats.json"):
                data = json.dumps({k: v for k, v in json.loads(data).items() if k != "seconds"}).encode()
            files[path.relative_to(out).as_posix()] = data
    return files


def keys_of(tar: Path) -> list[str]:
    return [sample["__key__"] for sample in wds.WebDataset(str(tar), shardshuffle=False)]


def write_folders(root: Path, n: int, size: int = 64) -> None:
    """4M-style modality folders root/rgb/*.png, root/depth/*.npy from scenes."""
    for i in range(n):
        scene = generate_scene(i, seed=3, size=size)
        (root / "rgb").mkdir(parents=True, exist_ok=True)
        (root / "depth").mkdir(parents=True, exist_ok=True)
        Image.fromarray(scene["rgb"]).save(root / "rgb" / f"img_{i:03d}.png")
        np.save(root / "depth" / f"img_{i:03d}.npy", scene["depth"])


SCENES = ["--scenes", "12", "--scene-size", "64", "--samples-per-shard", "5", "--crops", "2", "--batch-size", "3"]


def test_output_is_identical_for_0_1_2_workers_and_readable_by_webdataset(tmp_path, toks):
    outs = []
    for workers in (0, 1, 2):
        out = tmp_path / f"w{workers}"
        result = tokenize(out, "depth,rgb", "--workers", str(workers), *SCENES, toks=toks)
        assert "ok 12 / failed 0 / total 12" in result.output
        outs.append(snapshot(out))
    assert outs[0] == outs[1] == outs[2]

    out = tmp_path / "w0"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["modalities"]["depth"]["samples"] == {"count": 12, "ok": 12, "failed": 0, "failed_by_reason": {}}
    assert manifest["modalities"]["depth"]["complete"] and manifest["crops"]["n_crops"] == 2
    assert manifest["modalities"]["rgb"]["untrained"] is True
    assert sorted(p.name for p in (out / "depth").iterdir()) == [
        f"shard-{i:06d}.{ext}" for i in range(3) for ext in ("samples.jsonl", "stats.json", "tar")
    ]
    for folder in ("crops", "depth", "rgb"):
        assert [keys_of(out / folder / f"shard-{i:06d}.tar") for i in range(3)] == [
            [f"scene_{j:06d}" for j in range(s, min(s + 5, 12))] for s in (0, 5, 10)
        ]
    sample = next(iter(wds.WebDataset(str(out / "depth" / "shard-000000.tar"), shardshuffle=False).decode()))
    assert sample["npy"].shape == (2, 64) and sample["npy"].dtype == np.uint16
    crops = next(iter(wds.WebDataset(str(out / "crops" / "shard-000000.tar"), shardshuffle=False).decode()))["npy"]
    assert crops.dtype == np.int32 and crops.shape == (2, 5) and list(crops[0]) == [0, 0, 64, 64, 0]


def test_adding_a_modality_later_gives_the_same_shards_as_one_run(tmp_path, toks):
    source = tmp_path / "src"
    write_folders(source, 7)
    np.save(source / "depth" / "img_003.npy", np.full((64, 64), np.nan, np.float32))  # fails in depth only
    args = ["-i", str(source), "--samples-per-shard", "4", "--workers", "0"]

    together = tmp_path / "together"
    tokenize(together, "rgb,depth", *args, toks=toks)
    later = tmp_path / "later"
    assert "ok 7 / failed 0" in tokenize(later, "rgb", *args, toks=toks).output
    assert "img_003" in keys_of(later / "rgb" / "shard-000000.tar")
    result = tokenize(later, "depth", *args, toks=toks)
    assert "ok 6 / failed 1 / total 7" in result.output

    a, b = snapshot(together), snapshot(later)
    tars = [name for name in a if name.endswith(".tar") and not name.startswith("_")]
    assert len(tars) == 6 and all(a[name] == b[name] for name in tars)
    for folder in ("crops", "rgb", "depth"):
        assert "img_003" not in keys_of(later / folder / "shard-000000.tar")
    for modality in ("rgb", "depth"):
        table = [
            json.loads(line) for line in (later / modality / "shard-000000.samples.jsonl").read_text().splitlines()
        ]
        bad = [r for r in table if r["status"] == "failed"]
        assert [r["key"] for r in bad] == ["img_003"] and "img_003.npy" in bad[0]["error"]
        stats = json.loads((later / modality / "shard-000000.stats.json").read_text())
        assert (stats["count"], stats["ok"], stats["failed"]) == (4, 3, 1)


def test_other_tokenizer_for_a_modality_in_out_is_refused_unless_overwrite(tmp_path, toks):
    out = tmp_path / "out"
    tokenize(out, "depth", "--scenes", "3", "--scene-size", "64", "--workers", "0", toks=toks)
    other = [
        "-m",
        "depth",
        f"--tokenizer=depth={toks['depth2']}",
        "--scenes",
        "3",
        "--scene-size",
        "64",
        "--workers",
        "0",
    ]
    refused = CliRunner().invoke(cli, ["tokenize", "-o", str(out), "--no-progress", *other])
    assert refused.exit_code == 2
    assert refused.output.count("\n") == 1 and refused.output.startswith(
        f"error: {out / 'depth'} was made by tokenizer"
    )
    crops = CliRunner().invoke(cli, ["tokenize", "-o", str(out), "--no-progress", *other, "--crops", "2"])
    assert crops.exit_code == 2 and crops.output.count("\n") == 1
    assert f"{out} was cropped with n_crops 1 (--crops, --seed), this run asks for n_crops 2" in crops.output
    tokenize(out, "depth", *other[2:], "--overwrite")
    assert json.loads((out / "manifest.json").read_text())["modalities"]["depth"]["tokenizer"] == toks["depth2"]


def test_foreign_folder_and_all_failed_are_one_line_errors(tmp_path, toks):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("keep me")
    result = CliRunner().invoke(cli, ["tokenize", "-o", str(foreign), "-m", "depth", "--overwrite", "--no-progress"])
    assert result.exit_code == 2 and "not a tokzoo token dataset" in result.output
    assert (foreign / "thesis.txt").exists()

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.npy").write_bytes(b"")
    (bad / "b.npy").write_bytes(b"not numpy")
    result = tokenize(tmp_path / "out", "depth", "-i", str(bad), "--workers", "0", toks=toks, expect=2)
    assert "ok 0 / failed 2 / total 2" in result.output and "error: nothing written" in result.output


def test_inspect_and_show(tmp_path, toks):
    out = tmp_path / "out"
    tokenize(out, "rgb,depth", "--scenes", "4", "--scene-size", "80", "--size", "64", "--workers", "0", toks=toks)
    result = CliRunner().invoke(cli, ["inspect", str(out)])
    assert result.exit_code == 0, result.output
    assert "depth: 1 complete shards, ok 4, failed 0, tokens [64] uint16" in result.output
    assert "scene_000000: (1, 64) uint16" in result.output

    png = tmp_path / "show.png"
    result = CliRunner().invoke(cli, ["show", str(out), "--key", "scene_000002", "--output", str(png)])
    assert result.exit_code == 0, result.output
    assert "not available" not in result.output
    picture = np.asarray(Image.open(png))
    body = 2 + 2 * 130  # rows depth, rgb; columns source | reconstruction; 64 px tiles drawn 2x, labels above and left
    assert picture.shape[0] > body and picture.shape[1] > body and (picture[: picture.shape[0] - body] < 100).any()
    missing = CliRunner().invoke(cli, ["show", str(out), "--key", "nope", "--output", str(png)])
    assert missing.exit_code == 2 and "nope: no such key" in missing.output


def test_rendering_the_built_in_scenes_shows_a_bar(tmp_path, toks, capsys):
    """Without --input the scenes are rendered first (seconds to minutes): that phase has its own bar, with a total."""
    from tokzoo.pipeline import TokenizeJob
    from tokzoo.pipeline import tokenize as run_tokenize

    run_tokenize(
        TokenizeJob(
            modalities=["depth"],
            output=tmp_path / "out",
            tokenizers={"depth": toks["depth"]},
            scenes=3,
            scene_size=64,
            workers=0,
            progress=True,
        )
    )
    err = capsys.readouterr().err
    assert "rendering scenes" in err and "3/3" in err and "scene/s" in err
    assert "tokenize" in err and "sample/s" in err


def test_typos_are_refused_before_out_is_touched(tmp_path, toks):
    """A wrong --input used to leave OUT with a manifest naming it, kept as the input by every later run; a wrong
    --modality was reported as a bad zoo tokenizer name; a --size the model cannot take failed late as 'input: ...'."""
    out = tmp_path / "out"
    for args, message in [
        (["-m", "depth", "--input", str(tmp_path / "nothere")], "nothere: not a directory"),
        (["-m", "dept"], "--modality 'dept': not a modality tokzoo tokenizes; known: "),
        (["-m", "depth", f"--tokenizer=depth={toks['depth']}", "--size", "33"], "--size 33x33 does not fit tokenizer"),
    ]:
        result = CliRunner().invoke(cli, ["tokenize", "-o", str(out), "--no-progress", *args])
        assert result.exit_code == 2 and result.output.count("\n") == 1 and message in result.output, result.output
        assert not out.exists()
    write_folders(tmp_path / "in", 2)
    tokenize(out, "depth", "--input", tmp_path / "in", "--workers", "0", toks=toks)
    assert json.loads((out / "manifest.json").read_text())["modalities"]["depth"]["input"] == str(tmp_path / "in")
