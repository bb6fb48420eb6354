"""Bad and tricky inputs through `tokzoo tokenize`: every sample is accounted for, every failure named."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tokzoo.tokenizers.learned import LearnedTokenizer
from tokzoo_cli.main import cli


@pytest.fixture(scope="module")
def toks(tmp_path_factory):
    root = tmp_path_factory.mktemp("toks")
    return {
        m: str(
            LearnedTokenizer.from_defaults(m, model={"preset": "conv-tiny"}, input_size=[32, 32]).save_pretrained(
                root / m
            )
        )
        for m in ("depth", "rgb")
    }


def tokenize(src: Path, out: Path, modalities: str, toks) -> tuple[str, dict[str, list[dict]]]:
    args = [
        "tokenize",
        "-i",
        str(src),
        "-o",
        str(out),
        "-m",
        modalities,
        "--workers",
        "1",
        "--batch-size",
        "4",
        "--samples-per-shard",
        "6",
        "--no-progress",
        *[f"--tokenizer={m}={toks[m]}" for m in modalities.split(",")],
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    tables = {
        m: [json.loads(line) for p in sorted((out / m).glob("*.samples.jsonl")) for line in p.read_text().splitlines()]
        for m in modalities.split(",")
    }
    return result.output, tables


def image(mode: str, size=(40, 48), **save) -> Image.Image:
    rng = np.random.default_rng(0)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65535, size[::-1], dtype=np.uint16))
    return Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).convert(mode)


def test_bad_and_tricky_rgb_files(tmp_path, toks):
    src = tmp_path / "rgb"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    good = {
        "cmyk.jpg": "CMYK",
        "gray16.png": "I;16",
        "palette.png": "P",
        "rgba.png": "RGBA",
        "name.with.dots.png": "RGB",
        "name with spaces.png": "RGB",
        "nöt ascii.png": "RGB",
        "a/same.png": "RGB",
        "b/same.png": "RGB",
    }
    for name, mode in good.items():
        image(mode).save(src / name)
    png = (src / "rgba.png").read_bytes()
    bad = {
        "empty.png": b"",
        "truncated.png": png[: len(png) // 2],
        "random.png": np.random.default_rng(1).bytes(300),
        "text.png": b"this is not a picture\n",
    }
    for name, data in bad.items():
        (src / name).write_bytes(data)

    output, tables = tokenize(src, tmp_path / "out", "rgb", toks)
    table = tables["rgb"]
    assert f"ok {len(good)} / failed {len(bad)} / total {len(good) + len(bad)}" in output
    failed = {Path(r["source"]).name: r["error"] for r in table if r["status"] == "failed"}
    assert sorted(failed) == sorted(bad)
    assert all(name in error for name, error in failed.items())
    keys = [r["key"] for r in table]
    assert len(set(keys)) == len(keys) and not any("." in k or " " in k for k in keys)
    assert len([k for k in keys if "same" in k]) == 2


def test_bad_depth_and_mismatched_modalities_keep_folders_aligned(tmp_path, toks):
    src = tmp_path / "src"
    (src / "rgb").mkdir(parents=True)
    (src / "depth").mkdir()
    rng = np.random.default_rng(2)
    stems = [f"s{i:02d}" for i in range(10)]
    for stem in stems:
        Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(src / "rgb" / f"{stem}.png")
        np.save(src / "depth" / f"{stem}.npy", rng.uniform(0.5, 9, (48, 40)).astype(np.float32))
    np.save(src / "depth" / "s01.npy", np.full((48, 40), np.nan, np.float32))  # no valid depth at all
    np.save(src / "depth" / "s02.npy", np.ones((48, 40, 2), np.float32))  # wrong shape
    np.save(src / "depth" / "s03.npy", np.ones((24, 20), np.float32))  # other size than its rgb
    (src / "depth" / "s04.npy").write_bytes(b"")  # zero bytes
    (src / "depth" / "s05.npy").unlink()  # missing
    (src / "rgb" / "s06.png").write_bytes(b"GIF89a not really")  # broken rgb
    np.save(src / "depth" / "s07.npy", np.where(np.arange(40) < 2, 1.0, np.nan)[None].repeat(48, 0).astype(np.float32))

    output, tables = tokenize(src, tmp_path / "out", "rgb,depth", toks)
    assert "ok 4 / failed 6 / total 10" in output
    for modality in ("rgb", "depth"):
        status = {r["key"]: r["status"] for r in tables[modality]}
        assert [k for k, s in status.items() if s == "ok"] == ["s00", "s07", "s08", "s09"]
    errors = {r["key"]: r["error"] for r in tables["depth"]}
    assert "s01.npy" in errors["s01"] and "s02.npy" in errors["s02"] and "s04.npy" in errors["s04"]
    assert "differ in size" in errors["s03"] and "missing" in errors["s05"] and "s06.png" in errors["s06"]
    assert errors == {r["key"]: r["error"] for r in tables["rgb"]}

    import webdataset as wds

    out = tmp_path / "out"
    keys = {
        f: [
            [s["__key__"] for s in wds.WebDataset(str(out / f / f"shard-00000{i}.tar"), shardshuffle=False)]
            for i in (0, 1)
        ]
        for f in ("crops", "rgb", "depth")
    }
    assert keys["crops"] == keys["rgb"] == keys["depth"] == [["s00"], ["s07", "s08", "s09"]]
