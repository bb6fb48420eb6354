"""Pictures that explain themselves (issue 31, item 5): labelled rows and columns, a scale, tiles that fill their
cells, and pictures of palette and metadata."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tokzoo.viz import LEGIBLE_SIDE, labelled_grid, metadata_picture, palette_picture
from tokzoo_cli.main import cli


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_small_tiles_fill_their_cells_at_a_legible_size():
    """On photos `show` put 64-px reconstructions in the corner of 226-px cells; 134 x 134 PNGs had no labels."""
    big, small = np.full((128, 128, 3), 200, np.uint8), np.zeros((64, 64, 3), np.uint8)
    picture = labelled_grid([[big, small]], ["source", "reconstruction"], ["depth"])
    body = picture[-132:, -(2 * 130 + 2) :]  # cells of 128 px (the larger tile), 2 px gaps and margins
    assert (body[2:130, 2:130] == 200).all() and (body[2:130, 132:260] == 0).all()  # the 64 px tile fills its cell
    assert (picture[:-132] < 100).any() and (picture[:, : -(2 * 130 + 2)] < 100).any()  # header and row label
    tiny = labelled_grid([[small[:32, :32]]], ["a"], ["b"])
    assert (tiny[-130:-2, -130:-2] == 0).all() and (tiny[-131, -130:-2] == 255).all()  # 32 px drawn 4x: 128 px
    assert labelled_grid([[small]], ["a"], ["b"], scale=3).shape[0] > 3 * 64


def test_palette_and_metadata_pictures_show_their_values():
    swatches = palette_picture({"colors": [[250, 10, 10], [10, 10, 250]]})
    assert (swatches == [250, 10, 10]).all(axis=2).any() and (swatches == [10, 10, 250]).all(axis=2).any()
    lines = metadata_picture({"brightness": 100.25, "num_instances": 37})
    assert lines.shape[0] >= 2 * 16 and (lines < 100).any()


@pytest.fixture(scope="module")
def labelled_tokens(tmp_path_factory):
    root = tmp_path_factory.mktemp("pictures")
    (root / "photos").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(root / "photos" / f"p{i}.png")
    run(
        "pseudo-label",
        "-m",
        "edges,palette,metadata",
        "--input",
        root / "photos",
        "-o",
        root / "pl",
        "--tokenize",
        "--no-progress",
    )
    return root / "pl-tokens"


def test_show_labels_every_modality_including_palette_and_metadata(labelled_tokens, tmp_path):
    output = run("show", labelled_tokens, "--key", "p1", "-o", tmp_path / "p1.png")
    assert "no picture" not in output
    picture = np.asarray(Image.open(tmp_path / "p1.png"))
    label_column = picture[:, :40] < 100  # the row labels: edges, metadata, palette, one text band each
    bands = np.flatnonzero(np.diff(label_column.any(axis=(1, 2)).astype(int)) == 1)
    assert len(bands) == 3 and picture.shape[1] > 2 * LEGIBLE_SIDE
    larger = np.asarray(Image.open(_show(labelled_tokens, tmp_path, 4)))
    assert larger.shape[0] > picture.shape[0] and larger.shape[1] > picture.shape[1]


def _show(tokens, tmp_path, scale):
    path = tmp_path / f"scale{scale}.png"
    run("show", tokens, "--key", "p1", "-o", path, "--scale", scale)
    return path
