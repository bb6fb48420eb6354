"""Issue 25, the older entry points' last crashes: token files whose grid is empty, too small or decodes to
gigapixels, human-pose token files (one image's humans on the first axis, was a KeyError), a labeler input whose
size made a float64 copy of gigabytes, and a tokenizer recipe with a 5,000-digit integer."""

import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner

from tokzoo.errors import ConfigError
from tokzoo.labelers.image_statistics import STATISTICS_PIXELS, occlusion_score, rgb_statistics
from tokzoo.labelers.kmeans import palette
from tokzoo_cli.main import cli


def decode(tmp_path, tokenizer, array, suffix=".npy"):
    path = tmp_path / "tokens.npy"
    np.save(path, array)
    return CliRunner().invoke(cli, ["decode", "-t", tokenizer, str(path), "-o", str(tmp_path / f"out{suffix}")])


def one_line(result, *fragments):
    assert result.exit_code == 2 and isinstance(result.exception, (SystemExit, type(None))), (
        result.output
    )  # no traceback
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


@pytest.mark.parametrize(
    "array, fragment",
    [
        (np.zeros((0,), np.int64), "no tokens per sample: nothing to decode"),
        (np.zeros((1, 0), np.int64), "no tokens per sample"),
        (
            np.zeros((1, 1000 * 1000), np.uint8),
            "a grid of 1000x1000 tokens decodes to 2048000000 activations, over the limit",
        ),
        (np.zeros((1_000_000, 64), np.uint8), "holds 1000000 samples"),
        (np.zeros((1, 3), np.int64), "3 tokens form no square grid"),
    ],
)
def test_decode_refuses_empty_and_gigapixel_grids(tmp_path, array, fragment):
    one_line(decode(tmp_path, "depth", array), "tokens.npy", fragment)
    assert not (tmp_path / "out.npy").exists()


def test_decode_of_a_small_grid_still_works(tmp_path):
    result = decode(tmp_path, "depth", np.zeros((1, 4), np.int64))
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "out.npy").shape == (16, 16)  # a 2x2 grid of an 8x-downsampling tokenizer


def test_human_pose_token_file_decodes_its_humans(tmp_path):
    """Rows are one image's humans (was `KeyError: 0` after decoding)."""
    import json

    result = decode(tmp_path, "human_pose", np.zeros((3, 8), np.int64), ".json")
    assert result.exit_code == 0, result.output
    assert len(json.loads((tmp_path / "out.json").read_text())["humans"]) == 3


@pytest.mark.parametrize("rows, fragment", [(0, "holds 0 items"), (100_000, "holds 100000 items")])
def test_human_pose_token_file_of_no_or_too_many_humans(tmp_path, rows, fragment):
    one_line(decode(tmp_path, "human_pose", np.zeros((rows, 8), np.uint8), ".json"), fragment, "1 to 1024 items")


def test_human_pose_ids_past_the_padding_id(tmp_path):
    one_line(decode(tmp_path, "human_pose", np.full((2, 8), 125, np.int64), ".json"), "token ids must lie in [0, 125)")


def peak_bytes(function, *args, **kwargs):
    tracemalloc.start()
    try:
        result = function(*args, **kwargs)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_palette_of_a_large_image_allocates_no_float64_copy_of_it():
    rgb = np.random.default_rng(0).integers(0, 255, (3000, 3000, 3), np.uint8)  # 27 MB; float64: 216 MB
    result, peak = peak_bytes(palette, rgb)
    assert peak < 60e6, peak
    small = rgb[:64, :64]
    assert palette(small) == palette(small.copy())  # unchanged for images under max_pixels
    assert 1 <= len(result["colors"]) <= 7


def test_metadata_statistics_of_a_large_image_are_bounded_and_close():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (4096, 2048, 3), np.uint8)  # 8.4 M pixels: over STATISTICS_PIXELS, stride 2
    assert 4096 * 2048 > STATISTICS_PIXELS
    stats, peak = peak_bytes(rgb_statistics, rgb)
    assert peak < 400e6, peak  # unstrided: 8.4 M x 8 bytes x ~10 planes = 670 MB
    assert stats["original_width"] == 2048 and stats["original_height"] == 4096
    assert abs(stats["brightness"] - 127) < 1 and stats["entropy"] > 7
    small = rgb[:256, :256]
    exact = rgb_statistics(small)
    assert exact["brightness"] == pytest.approx(
        float((0.299 * small[..., 0] + 0.587 * small[..., 1] + 0.114 * small[..., 2]).mean())
    )
    depth = rng.uniform(1, 2, (4096, 2048)).astype(np.float32)
    score, peak = peak_bytes(occlusion_score, depth)
    assert peak < 400e6 and 0 <= score <= 1


def test_tokenizer_recipe_with_a_5000_digit_integer(tmp_path):
    from tokzoo.tokenizers.training.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text("name: depth\nbatch_size: " + "9" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"r.yaml: a number is refused \(Exceeds the limit \(4300 digits\)"):
        load_recipe(path)
    result = CliRunner().invoke(cli, ["train", "--recipe", str(path), "--out", str(tmp_path / "run"), "-q"])
    one_line(result, "r.yaml: a number is refused")


@pytest.mark.slow
def test_pseudo_label_of_a_62_megapixel_image_under_6_gib(tmp_path):
    """metadata + palette of a 7900 x 7900 image (under the 64 M pixel limit): the float64 copies of the whole image
    ran out of the 6 GiB address space (a numpy MemoryError traceback); now labelled (peak RSS ~2 GB)."""
    from hostile_inputs import run_cli
    from PIL import Image

    image = np.zeros((7900, 7900, 3), np.uint8)
    image[:, :3950] = 200
    image[::7] = 30
    (tmp_path / "in").mkdir()
    Image.fromarray(image).save(tmp_path / "in" / "huge.png")
    result = run_cli(
        "pseudo-label", "-m", "metadata,palette", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), timeout=600
    )
    assert "Traceback" not in result.stderr and result.returncode == 0, result.stderr[-2000:]
    assert "ok 1 / failed 0 / total 1" in result.stdout + result.stderr


def test_a_trillion_scenes_is_refused_before_anything_is_listed(tmp_path):
    """--scenes 10^12 listed 10^9 shard jobs (gigabytes) before rendering the first scene."""
    from tokzoo.datasets.scenes import write_scene_shards

    for args in (
        ["tokenize", "-m", "depth", "--scenes", str(10**12), "--no-progress", "-o", str(tmp_path / "t")],
        ["scenes", "--n", str(10**12), "--out", str(tmp_path / "s")],
    ):
        one_line(CliRunner().invoke(cli, args), "1000000000000 is refused: expected an integer in [1, 10000000]")
    with pytest.raises(ConfigError, match="scenes: n 1000000000000 is refused"):
        write_scene_shards(tmp_path / "w", 10**12)
    assert not (tmp_path / "w").exists() and not (tmp_path / "s").exists()
