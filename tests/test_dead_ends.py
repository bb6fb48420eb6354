"""Dead ends a new user met (issue 31, item 8), each from the command that hit it."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tokzoo_cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_inspect_reads_pseudo_label_output(photos, tmp_path):
    """`tokzoo inspect labelled/` said 'no manifest.json' although `browse` showed the same folder."""
    labelled = tmp_path / "labelled"
    assert run("pseudo-label", "-m", "edges,palette", "--input", photos, "-o", labelled, "--no-progress").exit_code == 0
    result = run("inspect", labelled)
    assert result.exit_code == 0, result.output
    assert '"labelers"' in result.output and "canny -> edges" in result.output
    assert "p0: edges.png (" in result.output and "palette.json (" in result.output
    assert f"tokzoo tokenize -m edges,palette --input {labelled}" in result.output


def test_browse_of_a_folder_of_photos_shows_them_as_rgb(photos, tmp_path):
    """`tokzoo browse photos/` said to pass modalities=['rgb'], which no flag accepts."""
    result = run("browse", photos, "-o", tmp_path / "site", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "3 samples (ok 3, failed 0)" in result.output


@pytest.mark.parametrize("command", [["pseudo-label", "-m", "edges"], ["tokenize", "-m", "rgb"]])
def test_an_empty_input_folder_leaves_no_output_folder(tmp_path, command):
    (tmp_path / "empty").mkdir()
    result = run(*command, "--input", tmp_path / "empty", "-o", tmp_path / "out", "--no-progress")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "no samples" in result.output and "nothing written" in result.output
    assert not (tmp_path / "out").exists()


@pytest.fixture
def odd_photos(photos):
    """The photos plus a 1x1 image and a 300x10 strip: both were upscaled and marked ok."""
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(photos / "tiny.png")
    Image.fromarray(np.zeros((300, 10, 3), np.uint8)).save(photos / "strip.png")
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return photos


def _reasons(table):
    return {r["key"]: r["error"] for r in map(json.loads, table.read_text().splitlines()) if r["status"] == "failed"}


def test_tokenize_filters_small_and_elongated_images_and_counts_failures_by_reason(odd_photos, tmp_path):
    out = tmp_path / "tokens"
    result = run(
        "tokenize",
        "-m",
        "rgb",
        "--input",
        odd_photos,
        "-o",
        out,
        "--min-image-size",
        8,
        "--max-aspect-ratio",
        5,
        "--workers",
        0,
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert (
        "ok 3 / failed 3 / total 6 (failed: 1 smaller than --min-image-size, 1 aspect ratio over --max-aspect-ratio, "
        "1 unreadable or invalid)"
    ) in result.output
    failed = _reasons(out / "rgb" / "shard-000000.samples.jsonl")
    assert sorted(failed) == ["broken", "strip", "tiny"] and "image 1x1" in failed["tiny"]
    stats = json.loads((out / "rgb" / "shard-000000.stats.json").read_text())
    assert stats["failed_by_reason"] == {
        "smaller than --min-image-size": 1,
        "aspect ratio over --max-aspect-ratio": 1,
        "unreadable or invalid": 1,
    }
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["modalities"]["rgb"]["samples"]["failed_by_reason"] == stats["failed_by_reason"]


def test_pseudo_label_filters_and_counts_the_same_way(odd_photos, tmp_path):
    out = tmp_path / "labelled"
    result = run(
        "pseudo-label",
        "-m",
        "palette",
        "--input",
        odd_photos,
        "-o",
        out,
        "--min-image-size",
        8,
        "--max-aspect-ratio",
        5,
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert "ok 3 / failed 3 / total 6 (failed: 1 smaller than --min-image-size, 1 aspect ratio over" in result.output
    stats = json.loads((out / ".pseudo-label" / "shard-000000.stats.json").read_text())
    assert stats["failed_by_reason"]["smaller than --min-image-size"] == 1
    unfiltered = run("pseudo-label", "-m", "palette", "--input", odd_photos, "-o", tmp_path / "all", "--no-progress")
    assert "ok 5 / failed 1 / total 6 (failed: 1 unreadable or invalid)" in unfiltered.output
