"""Modalities with nothing to crop (structured values, vectors, feature maps) tokenize on their own;
feature maps are refused beside pixel-cropped modalities instead of being silently misaligned."""

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from tokzoo.tokens import make_loader
from tokzoo_cli.main import cli


def tokenize(*args):
    return CliRunner().invoke(cli, ["tokenize", "--untrained", "--no-progress", *map(str, args)])


def test_palette_alone(tmp_path):
    (tmp_path / "pal").mkdir()
    for i in range(3):
        (tmp_path / "pal" / f"p{i}.json").write_text(json.dumps({"colors": [[i, 20, 30], [200, 100, i]]}))
    result = tokenize("-m", "palette", "--input", tmp_path / "pal", "-o", tmp_path / "out", "--crops", 2)
    assert result.exit_code == 0 and "ok 3 / failed 0 / total 3" in result.output, result.output
    batch = next(iter(make_loader(tmp_path / "out", ["palette"], batch_size=3, shuffle=False, crop=1)))
    assert batch["palette"].shape == (3, 22)


def test_dense_features_alone_and_refused_beside_pixel_crops(tmp_path):
    rng = np.random.default_rng(0)
    for folder in ("features/dense_features", "features/rgb"):
        (tmp_path / folder).mkdir(parents=True)
    for i in range(2):
        np.save(
            tmp_path / "features/dense_features" / f"v{i}.npy", rng.standard_normal((16, 16, 768)).astype(np.float32)
        )
        Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(
            tmp_path / "features/rgb" / f"v{i}.png"
        )
    alone = tokenize(
        "-m",
        "dense_features",
        "-t",
        "dense_features=dinov2_b14",
        "--input",
        tmp_path / "features/dense_features",
        "-o",
        tmp_path / "dense",
    )
    assert alone.exit_code == 0 and "ok 2 / failed 0 / total 2" in alone.output, alone.output
    mixed = tokenize(
        "-m",
        "dense_features,rgb",
        "-t",
        "dense_features=dinov2_b14",
        "--input",
        tmp_path / "features",
        "-o",
        tmp_path / "mixed",
        "--size",
        32,
    )
    assert mixed.exit_code == 2
    assert mixed.output.startswith("error: dense_features cannot follow the pixel crops of rgb")
    assert len(mixed.output.strip().splitlines()) == 1
