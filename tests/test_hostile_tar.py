"""Class 1 of issue 10: hostile tar archives (huge declared sizes, bombs, looping pax headers, truncation, nesting)
fail their samples with one line each; nothing is read past the size limit, nothing hangs."""

import json
import tarfile
from pathlib import Path

import pytest
from hostile_inputs import END, header, hostile_tars, padded, pax_block, pax_record, png_bytes, run_cli, tar_of

from tokzoo.errors import ConfigError, CorruptFileError
from tokzoo.io import TarReader
from tokzoo.io.tarwalk import walk_tar

EXPECTED = {  # tar -> what its bad sample's error says
    "huge_plain": "past the end of the file",
    "huge_pax": "past the end of the file",
    "huge_base256": "past the end of the file",
    "negative_base256": "negative size",
    "negative_pax_size": "not a non-negative integer",
    "pax_negative_length": "no valid length",
    "pax_zero_length": "declares length 0",
    "pax_overlong_length": "declares length 999",
    "huge_pax_header": "(limit 1048576)",
    "gnu_sparse": "GNU sparse member refused",
    "truncated_member": "past the end of the file",
    "truncated_boundary": "no end-of-archive block",
    "nested": "not an image",
    "garbage": "bad tar header checksum",
    "empty": "file is empty",
    "gzip_bomb": "too large to skip in a compressed stream",
    "sparse_file": "over the limit of 268435456",
}


@pytest.fixture(scope="module")
def tars(tmp_path_factory):
    return hostile_tars(tmp_path_factory.mktemp("tars"))


def test_every_hostile_tar_fails_its_samples_with_a_reason(tars):
    assert set(EXPECTED) | {"good"} == set(tars)
    for name, path in tars.items():
        reader = TarReader(str(path), ["rgb"])
        len(reader)  # counting reads every header too
        samples = list(reader)
        errors = [message for s in samples for message in s.errors.values()]
        if name == "good":
            assert [s.ok for s in samples] == [True]
            continue
        assert any(EXPECTED[name] in e for e in errors), (name, errors)
        assert all(str(path) in e for e in errors), (name, errors)
        assert all("\n" not in e for e in errors)


def test_member_limit_is_checked_before_reading(tmp_path):
    good = png_bytes()
    path = tmp_path / "two.tar"
    path.write_bytes(tar_of([("a.rgb.png", good), ("b.rgb.png", good + bytes(5000))]))
    a, b = TarReader(str(path), ["rgb"], max_member_bytes=len(good) + 10)
    assert a.ok and f"declares {len(good) + 5000} bytes, over the limit of {len(good) + 10}" in b.errors["rgb"]
    with pytest.raises(ConfigError, match="max_member_bytes must be a positive number"):
        TarReader(str(path), ["rgb"], max_member_bytes=0)


def test_walker_never_moves_backwards(tmp_path):
    """A pax size that would send tarfile (Python 3.11.7) back to the same header forever ends in one error."""
    path = tmp_path / "loop.tar"
    path.write_bytes(pax_block(pax_record("size", "-512")) + header("loop.rgb.png", 0) + END)
    with pytest.raises(CorruptFileError, match="not a non-negative integer"):
        list(walk_tar(path, max_skip=0))
    path.write_bytes(pax_block(pax_record("path", "long/" * 40 + "x.rgb.png")) + header("x", 3) + padded(b"abc") + END)
    assert [(m.name, read()) for m, read in walk_tar(path, max_skip=0)] == [("long/" * 40 + "x.rgb.png", b"abc")]


def test_gnu_long_names_and_formats_read_like_tarfile(tmp_path):
    members = [("d/" + "n" * 150 + ".rgb.png", b"1" * 700), ("é.rgb.png", b"")]
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        path = tmp_path / f"{fmt}.tar"
        path.write_bytes(tar_of(members, fmt))
        assert [(m.name, read()) for m, read in walk_tar(path, 0)] == members


@pytest.mark.parametrize("workers", [0])
def test_tokenize_cli_on_hostile_tars(tmp_path, tars, workers):
    """Through the CLI, under a 6 GiB address-space limit (torch alone maps 3.5 GB) and a timeout: the run goes on
    past every bad tar, each sample is accounted for, the good ones are tokenized."""
    out = tmp_path / "tokens"
    result = run_cli(
        "tokenize",
        "-m",
        "rgb",
        "--input",
        str(tars["good"].parent),
        "-o",
        str(out),
        "--size",
        "32",
        "--workers",
        str(workers),
        "--no-progress",
        timeout=240,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    records = [
        json.loads(line)
        for table in sorted((out / "rgb").glob("*.samples.jsonl"))
        for line in table.read_text().splitlines()
    ]
    ok = sorted(r["key"] for r in records if r["status"] == "ok")
    assert ok == ["good", "ok_j", "ok_m", "ok_n", "ok_o"]
    failed = [r["error"] for r in records if r["status"] == "failed"]
    for name, fragment in EXPECTED.items():
        assert any(fragment in e and f"{name}.tar" in e for e in failed), name
    assert f"ok 5 / failed {len(failed)} / total {len(records)}" in result.stdout


@pytest.mark.slow
def test_eval_and_pseudo_label_cli_on_hostile_tars(tmp_path, tars):
    result = run_cli("eval", "-t", "rgb", "--data", str(tars["good"].parent), "--n", "8", "--no-progress", timeout=300)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    result = run_cli(
        "pseudo-label",
        "-m",
        "edges",
        "--input",
        str(tars["good"].parent),
        "-o",
        str(tmp_path / "lab"),
        "--no-progress",
        timeout=300,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "ok 5 /" in result.stdout


@pytest.mark.slow
def test_train_cli_on_hostile_tars(tmp_path, tars):
    recipe = Path(__file__).parents[1] / "recipes" / "rgb.yaml"
    result = run_cli(
        "train",
        "--recipe",
        str(recipe),
        "--data",
        str(tars["good"].parent),
        "--steps",
        "1",
        "--out",
        str(tmp_path / "run"),
        "--no-eval",
        "-q",
        timeout=600,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
