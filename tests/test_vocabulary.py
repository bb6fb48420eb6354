"""One modality vocabulary across commands and files (issue 31, item 1), from the user's commands."""

import io
import json
import tarfile

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tokzoo_cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def photos(tmp_path):
    """Three small real photographs (scikit-image's), as a user's folder of JPEGs."""
    data = pytest.importorskip("skimage.data")
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(data, name)()).resize((96, 72)).save(folder / f"{name}.jpg")
    return folder


def members(tar):
    with tarfile.open(tar) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers()}


def test_one_shot_pseudo_label_then_tokenize_with_defaults(photos, tmp_path):
    """`tokzoo pseudo-label -m edges,instances,palette,metadata --input photos/ -o pl/ --tokenize` failed after
    labelling: pseudo-label wrote `instances`, tokenize wanted `sam_instances`."""
    pl = tmp_path / "pl"
    result = run(
        "pseudo-label",
        "-m",
        "edges,instances,palette,metadata",
        "--input",
        str(photos),
        "-o",
        str(pl),
        "--tokenize",
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert "instances -> sam_instances" in result.stderr  # the old name is read, the canonical one shown
    stored = members(pl / "shard-000000.tar")
    assert sorted(n for n in stored if n.startswith("coffee.")) == [
        "coffee.edges.png",
        "coffee.metadata.json",
        "coffee.palette.json",
        "coffee.rgb.jpg",
        "coffee.sam_instances.png",
    ]
    manifest = json.loads((tmp_path / "pl-tokens" / "manifest.json").read_text())
    assert sorted(manifest["modalities"]) == ["edges", "metadata", "palette", "sam_instances"]
    assert manifest["modalities"]["edges"]["name"] == "canny_edges"
    assert all(entry["samples"]["ok"] == 3 for entry in manifest["modalities"].values())
    for name in ("edges", "sam_instances", "palette", "metadata"):
        assert f"tokens {name}: " in result.stdout


def test_tokenize_edges_uses_the_default_edges_tokenizer(tmp_path):
    """`tokzoo tokenize -m edges` said 'not a zoo name' though --help promised a default tokenizer."""
    out = tmp_path / "tok"
    result = run(
        "tokenize",
        "-m",
        "edges",
        "-o",
        str(out),
        "--scenes",
        "2",
        "--scene-size",
        "64",
        "--workers",
        "0",
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["modalities"]["edges"]["name"] == "canny_edges"


def test_a_modality_without_a_default_tokenizer_names_the_fix(tmp_path):
    result = run("tokenize", "-m", "dense_features", "-o", str(tmp_path / "tok"), "--scenes", "1", "--no-progress")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "--tokenizer dense_features=" in result.output
    assert not (tmp_path / "tok").exists()


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_old_instances_shards_and_folders_are_still_read(tmp_path):
    """Shards and folders written before the rename (`k.instances.png`, `instances/`) read as sam_instances."""
    from tokzoo.io import open_reader

    ids = np.zeros((40, 40), np.uint16)
    ids[5:20, 5:30], ids[22:38, 10:35] = 1, 2
    rgb = np.full((40, 40, 3), 90, np.uint8)
    tar = tmp_path / "old.tar"
    with tarfile.open(tar, "w") as t:
        for name, blob in (("a.rgb.png", _png(rgb)), ("a.instances.png", _png(ids))):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            t.addfile(info, io.BytesIO(blob))
    (sample,) = list(open_reader(str(tar)))
    assert sample.ok and np.array_equal(sample.values["sam_instances"], ids)

    folders = tmp_path / "folders"
    for modality, array in (("rgb", rgb), ("instances", ids)):
        (folders / modality).mkdir(parents=True)
        (folders / modality / "a.png").write_bytes(_png(array))
    (sample,) = list(open_reader(str(folders)))
    assert sample.ok and np.array_equal(sample.values["sam_instances"], ids)

    out = tmp_path / "tok"
    result = run("tokenize", "-m", "instances", "--input", str(tar), "-o", str(out), "--workers", "0", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "instances -> sam_instances" in result.stderr
    assert json.loads((out / "manifest.json").read_text())["modalities"]["sam_instances"]["samples"]["ok"] == 1

    exported = run(
        "export",
        str(out),
        str(tmp_path / "4m"),
        "--to",
        "4m",
        "-m",
        "instances",
        "--allow-pickled-sets",
        "--no-progress",
    )
    assert exported.exit_code == 0, exported.output
    assert "note: --modality read as instances -> sam_instances" in exported.stderr
    assert "sam_instances -> " in exported.stdout


def test_fm_from_and_to_read_the_old_name_with_a_note(capsys):
    from tokzoo_cli.fm import _modalities

    assert _modalities("rgb,instances", "--to") == ["rgb", "sam_instances"]
    assert "note: --to read as instances -> sam_instances" in capsys.readouterr().err
