"""``tokzoo eval-labels``: the numbers exist, are in range, and say the labelers work on the scenes."""

from __future__ import annotations

import json

import skimage  # noqa: E402,F401  (dev extra: tokzoo[samples])
from click.testing import CliRunner

from tokzoo_cli.main import cli


def test_eval_labels_json_and_table():
    runner = CliRunner()
    result = runner.invoke(cli, ["eval-labels", "--n", "3", "--size", "64", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)["results"]  # the progress bar goes to stderr
    cam, guess = r["normals_from_depth (scene camera)"], r["normals_from_depth (60 deg guess)"]
    assert cam["median_deg"] < 1 and cam["mean_deg"] < 5 and cam["coverage"] > 0.9
    assert guess["mean_deg"] > cam["mean_deg"]  # wrong intrinsics must cost accuracy
    assert 0.4 < r["canny"]["f1_2px"] <= 1 and r["canny"]["f1_1px"] <= r["canny"]["f1_2px"]
    assert r["kmeans_palette"]["colour_error"] < 5 and 0 < r["kmeans_palette"]["repaint_rms"] < 40
    assert r["metadata"]["geometric_complexity_abs_error"] < 0.05
    assert 0.8 < r["slic"]["asa_semseg"] <= 1
    table = runner.invoke(cli, ["eval-labels", "--n", "1", "--size", "32"], catch_exceptions=False)
    assert table.exit_code == 0 and "| canny | f1_2px |" in table.output


def test_eval_labels_shows_a_progress_bar():
    """eval-labels printed nothing for ~23 s (16 scenes) before its table."""
    runner = CliRunner()
    shown = runner.invoke(cli, ["eval-labels", "--n", "2", "--size", "32"], catch_exceptions=False)
    assert shown.exit_code == 0 and "eval-labels: 100%" in shown.stderr and "2/2" in shown.stderr
    assert "scene/s" in shown.stderr or "s/scene" in shown.stderr
    assert "eval-labels" not in shown.stdout
    quiet = runner.invoke(cli, ["eval-labels", "--n", "1", "--size", "32", "--no-progress"], catch_exceptions=False)
    assert quiet.exit_code == 0 and quiet.stderr == ""
