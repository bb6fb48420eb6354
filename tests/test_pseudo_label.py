"""``tokzoo pseudo-label`` then ``tokzoo tokenize``: aligned shards, ok + failed = total, resume, one-line errors."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import skimage  # noqa: E402,F401  (dev extra: tokzoo[samples])
from click.testing import CliRunner
from PIL import Image

from tokzoo.datasets import write_scene_shards
from tokzoo.io import open_reader, write_modality
from tokzoo_cli.main import cli

LABELLED = ["normals", "edges", "palette", "metadata"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def members(tar_path) -> dict[str, set[str]]:
    """key -> set of modalities in one shard."""
    out: dict[str, set[str]] = {}
    with tarfile.open(tar_path) as tar:
        for name in tar.getnames():
            key, modality, _ = name.split(".")
            out.setdefault(key, set()).add(modality)
    return out


def check_aligned(out, tokens, expected_ok, expected_total):
    """Every labelled sample has every modality; status tables and token shards agree with each other."""
    stats = [json.loads(p.read_text()) for p in sorted((out / ".pseudo-label").glob("*.stats.json"))]
    assert sum(s["ok"] for s in stats) == expected_ok and sum(s["count"] for s in stats) == expected_total
    assert all(s["ok"] + s["failed"] == s["count"] for s in stats)
    labelled = {}
    for tar in sorted(out.glob("shard-*.tar")):
        labelled.update(members(tar))
    assert len(labelled) == expected_ok and all({"rgb", *LABELLED} <= m for m in labelled.values())
    tables = [
        json.loads(line)
        for p in sorted((out / ".pseudo-label").glob("*.samples.jsonl"))
        for line in p.read_text().splitlines()
    ]
    assert [r["key"] for r in tables if r["status"] == "ok"] == list(labelled)
    assert all(r["error"] for r in tables if r["status"] == "failed")
    for modality in LABELLED:
        keys = [
            k
            for tar in sorted((tokens / modality).glob("*.tar"))
            for k in [n[:-4] for n in tarfile.open(tar).getnames()]
        ]
        assert keys == list(labelled), modality
        token_stats = [json.loads(p.read_text()) for p in (tokens / modality).glob("*.stats.json")]
        assert sum(s["ok"] for s in token_stats) == expected_ok
    return labelled, tables


def test_scenes_label_tokenize_resume(tmp_path):
    write_scene_shards(tmp_path / "scenes", 5, size=48, samples_per_shard=3)
    # A sixth sample without depth: normals cannot be made, so it must be listed as failed everywhere.
    scene = next(iter(tarfile.open(tmp_path / "scenes" / "shard-000001.tar")))
    with tarfile.open(tmp_path / "scenes" / "shard-000001.tar", "a") as tar:
        rgb = write_modality("rgb", np.full((48, 48, 3), 90, np.uint8), ".png")
        info = tarfile.TarInfo("nodepth.rgb.png")
        info.size = len(rgb)
        tar.addfile(info, io.BytesIO(rgb))
    assert scene.name.startswith("scene_000003")
    out, tokens = tmp_path / "labelled", tmp_path / "tokens"
    args = [
        "pseudo-label",
        "-m",
        ",".join(LABELLED),
        "-i",
        tmp_path / "scenes",
        "-o",
        out,
        "--no-progress",
        "--batch-size",
        2,
    ]
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "ok 5 / failed 1 / total 6" in result.output
    first = (out / "shard-000000.tar").read_bytes()
    tok = run(
        "tokenize",
        "-m",
        ",".join(LABELLED),
        "-t",
        "edges=canny_edges",
        "-i",
        out,
        "-o",
        tokens,
        "--untrained",
        "--size",
        32,
        "--workers",
        0,
        "--no-progress",
    )
    assert tok.exit_code == 0, tok.output
    labelled, tables = check_aligned(out, tokens, 5, 6)
    assert "needs depth" in next(r["error"] for r in tables if r["key"] == "nodepth")
    # the labelled values follow the contract and the scenes' geometry (camera from the input is used)
    sample = next(iter(open_reader(out / "shard-000000.tar", ["normals", "depth", "edges", "metadata"])))
    assert (
        sample.ok and sample.values["normals"].dtype == np.float32 and set(np.unique(sample.values["edges"])) <= {0, 1}
    )
    assert set(sample.values["metadata"]) >= {"brightness", "walkability", "geometric_complexity", "num_instances"}
    # resume: nothing to do, same bytes; other settings refused in one line; --overwrite redoes it
    again = run(*args)
    assert "(0 written by this run)" in again.output and (out / "shard-000000.tar").read_bytes() == first
    changed = run(*args, "--labeler", "sam_instances=slic")
    assert changed.exit_code == 2 and "other settings" in changed.output and "--overwrite" in changed.output
    assert run(*args, "--overwrite").exit_code == 0 and (out / "shard-000000.tar").read_bytes() == first


def test_real_photos_with_one_depth_map(tmp_path):
    from tokzoo.datasets.samples import load_sample

    images = tmp_path / "photos"
    for name in ("astronaut", "coffee", "china", "motorcycle"):
        sample = load_sample(name)
        (images / "rgb").mkdir(parents=True, exist_ok=True)
        Image.fromarray(sample["rgb"]).save(images / "rgb" / f"{name}.jpg", quality=90)
        if "depth" in sample:  # only the stereo photo has measured depth (and its camera)
            (images / "depth").mkdir(exist_ok=True)
            (images / "camera").mkdir(exist_ok=True)
            np.save(images / "depth" / f"{name}.npy", sample["depth"])
            (images / "camera" / f"{name}.json").write_text(json.dumps(sample["camera"]))
    out, tokens = tmp_path / "labelled", tmp_path / "tokens"
    result = run(
        "pseudo-label",
        "-m",
        ",".join(LABELLED),
        "-i",
        images,
        "-o",
        out,
        "--no-progress",
        "--tokenize",
        "--tokens-output",
        tokens,
        "--untrained",
        "--size",
        32,
    )
    assert result.exit_code == 0, result.output
    assert "ok 1 / failed 3 / total 4" in result.output and "tokens: ok 1 / failed 0 / total 1" in result.output
    labelled, _ = check_aligned(out, tokens, 1, 4)
    assert list(labelled) == ["motorcycle"]
    with tarfile.open(out / "shard-000000.tar") as tar:  # the photo is passed through untouched
        assert tar.extractfile("motorcycle.rgb.jpg").read() == (images / "rgb" / "motorcycle.jpg").read_bytes()


def test_plain_folder_of_photos_and_user_errors(tmp_path):
    from tokzoo.datasets.samples import load_sample

    (tmp_path / "photos").mkdir()
    Image.fromarray(load_sample("chelsea")["rgb"][::4, ::4]).save(tmp_path / "photos" / "cat.png")
    (tmp_path / "photos" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    result = run("pseudo-label", "-m", "edges,palette,metadata", "-i", tmp_path / "photos", "-o", out, "--no-progress")
    assert result.exit_code == 0 and "ok 1 / failed 1 / total 2" in result.output, result.output
    assert list(members(out / "shard-000000.tar")) == ["cat"]
    bad = run("pseudo-label", "-m", "depth", "-i", tmp_path / "photos", "-o", tmp_path / "o2")
    assert bad.exit_code == 2 and "no default labeler for 'depth'" in bad.output
    assert run("pseudo-label", "-m", "edges", "-i", tmp_path / "photos", "-o", tmp_path / "photos").exit_code == 2
    assert "expected MODALITY=NAME" in run("pseudo-label", "-m", "edges", "-i", tmp_path, "-o", out, "-l", "x").output


def test_plain_photos_cannot_give_normals_without_a_depth_labeler(tmp_path):
    """normals_from_depth needs depth; a folder of images holds none: one line up front, OUT left untouched
    (a rerun with --labeler depth=... must not be refused as 'other settings')."""
    (tmp_path / "photos").mkdir()
    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(tmp_path / "photos" / "a.png")
    out = tmp_path / "out"
    result = run("pseudo-label", "-m", "normals,edges", "-i", tmp_path / "photos", "-o", out, "--no-progress")
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "normals_from_depth needs depth" in result.output
    assert "--labeler depth=" in result.output and not out.exists()


def test_tokenize_options_are_checked_before_labelling(tmp_path):
    """A bad --size for --tokenize used to surface only after the whole input was labelled; --size without
    --tokenize was silently ignored."""
    (tmp_path / "photos").mkdir()
    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(tmp_path / "photos" / "a.png")
    out = tmp_path / "out"
    base = ["pseudo-label", "-m", "edges", "-i", tmp_path / "photos", "-o", out, "--no-progress"]
    for extra, message in [
        (["--tokenize", "--size", "abc"], "--size 'abc': expected N or HxW"),
        (["--tokenize", "-t", "edges"], "expected MODALITY=ZOO_NAME_OR_DIR"),
        (["--size", "32"], "--size only applies with --tokenize"),
    ]:
        result = run(*base, *extra)
        assert result.exit_code == 2 and result.output.count("\n") == 1 and message in result.output, result.output
        assert not out.exists()


def test_labeler_options_reach_the_labeler_and_are_recorded(tmp_path):
    """-O MODALITY.OPTION=VALUE sets a labeler's option (Canny's sigma changes the edges); unknown options and
    options for modalities not labelled are one line; the options are part of OUT's settings."""
    (tmp_path / "photos").mkdir()
    photo = np.zeros((64, 64, 3), np.uint8)
    photo[16:48, 16:48] = 200
    photo[24:40, 24:40] = 90
    Image.fromarray(photo).save(tmp_path / "photos" / "a.png")
    edges = {}
    for sigma in ("1", "6"):
        out = tmp_path / f"out{sigma}"
        result = run(
            "pseudo-label",
            "-m",
            "edges",
            "-i",
            tmp_path / "photos",
            "-o",
            out,
            "--no-progress",
            "-O",
            f"edges.sigma={sigma}",
        )
        assert result.exit_code == 0, result.output
        manifest = json.loads((out / ".pseudo-label" / "manifest.json").read_text())
        assert manifest["labeler_options"] == {"edges": {"sigma": int(sigma)}}
        assert list(members(out / "shard-000000.tar")) == ["a"]
        with tarfile.open(out / "shard-000000.tar") as tar:
            edges[sigma] = np.array(Image.open(io.BytesIO(tar.extractfile("a.edges.png").read())))
    assert edges["1"].shape == edges["6"].shape == (64, 64) and not np.array_equal(edges["1"], edges["6"])
    rerun = run(
        "pseudo-label",
        "-m",
        "edges",
        "-i",
        tmp_path / "photos",
        "-o",
        tmp_path / "out1",
        "--no-progress",
        "-O",
        "edges.sigma=2",
    )
    assert rerun.exit_code == 2 and "labelled with other settings" in rerun.output
    base = ["pseudo-label", "-m", "edges", "-i", tmp_path / "photos", "-o", tmp_path / "o3", "--no-progress"]
    for option, message in [
        ("edges.radius=3", "labeler 'canny' has no option 'radius'; its options: sigma, low, high"),
        ("palette.max_colors=3", "labeler options for 'palette', which is neither labelled"),
        ("edges=3", "expected MODALITY.OPTION=VALUE"),
    ]:
        result = run(*base, "-O", option)
        assert result.exit_code == 2 and result.output.count("\n") == 1 and message in result.output, result.output
