"""The README's dataset tour, step by step at small scale: scenes -> tokenize -> inspect -> show -> loader."""

import torch
from click.testing import CliRunner
from PIL import Image

from tokzoo.tokens import make_loader
from tokzoo_cli.main import cli


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_readme_dataset_tour(tmp_path):
    scenes, tokens = tmp_path / "scenes", tmp_path / "tokens"
    run("scenes", "--count", 6, "--size", 64, "-o", scenes)
    summary = run(
        "tokenize",
        "-m",
        "depth,rgb",
        "--untrained",
        "--input",
        scenes,
        "--size",
        32,
        "--crops",
        2,
        "-o",
        tokens,
        "--no-progress",
    )
    assert "ok 6 / failed 0 / total 6" in summary
    listing = run("inspect", tokens)
    assert "depth: 1 complete shards, ok 6, failed 0" in listing and "rgb: 1 complete shards, ok 6" in listing
    run("show", tokens, "--key", "scene_000003", "-o", tmp_path / "scene3.png")
    assert Image.open(tmp_path / "scene3.png").size[0] > 64

    batches = list(make_loader(tokens, ["depth", "rgb"], batch_size=4, num_workers=0, shuffle=False))
    keys = [key for batch in batches for key in batch["__key__"]]
    assert keys == [f"scene_{i:06d}" for i in range(6)]
    first = batches[0]
    assert first["depth"].dtype == first["rgb"].dtype == torch.int64
    assert first["depth"].shape[0] == 4 and first["rgb"].shape[0] == 4


def test_readme_labeler_table_names_registered_labelers_of_that_modality():
    """Every labeler the README's table names exists and labels the modality of its row."""
    import re
    from pathlib import Path

    from tokzoo.labelers import DEFAULTS, LABELERS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("| modality | classical (default) | model-backed |") :]
    rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
    assert len(rows) >= 8
    for row in rows:
        modalities, classical, models = [cell.strip() for cell in row.strip("|").split("|")]
        wanted = {m.strip() for m in modalities.split("(")[0].split(",")}
        for cell, is_default in ((classical, True), (models, False)):
            for name in re.findall(r"`([a-z0-9_*]+)", cell):
                matches = [n for n in LABELERS if re.fullmatch(name.replace("*", ".+"), n)]
                assert matches, name
                assert all(LABELERS[n].modality in wanted for n in matches), (name, wanted)
                if is_default:
                    assert DEFAULTS[LABELERS[name].modality] == name
