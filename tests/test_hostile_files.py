"""Classes 2 and 3 of issue 10: special files in input folders (FIFOs, devices, symlinks to them or out of the
folder, sparse giants) and folders of one non-image modality with bad files: each fails its sample with a
reason, the run goes on, nothing blocks or is read past the size limit."""

import json

import pytest
from hostile_inputs import (
    assert_one_line_error,
    bad_depth_files,
    bad_metadata_files,
    bad_pose_files,
    run_cli,
    special_files,
)

from tokzoo.errors import InputError
from tokzoo.io import FolderReader, ModalityFoldersReader, read_modality


def records(out, modality):
    return {
        json.loads(line)["key"]: json.loads(line)
        for table in sorted((out / modality).glob("*.samples.jsonl"))
        for line in table.read_text().splitlines()
    }


def check(table, expected):
    assert set(table) == set(expected), sorted(set(table) ^ set(expected))
    for key, reason in expected.items():
        if reason is None:
            assert table[key]["status"] == "ok", table[key]
        else:
            assert table[key]["status"] == "failed" and reason in table[key]["error"], (reason, table[key])
            assert "\n" not in table[key]["error"]


@pytest.fixture
def depth_folder(tmp_path):
    folder = tmp_path / "in"
    expected = bad_depth_files(folder)
    expected.update(special_files(folder, tmp_path / "elsewhere"))
    return folder, expected


def test_folder_readers_refuse_special_files_without_opening_them(depth_folder):
    folder, expected = depth_folder
    samples = {s.key: s for s in FolderReader(folder, "depth")}
    check(
        {k: {"status": "ok" if s.ok else "failed", "error": "; ".join(s.errors.values())} for k, s in samples.items()},
        expected,
    )
    (folder.parent / "modal").mkdir()
    (folder.parent / "modal" / "depth").symlink_to(folder)  # the modality folder itself may be a link
    samples = {s.key: s for s in ModalityFoldersReader(folder.parent / "modal", ["depth"])}
    assert "outside the input folder" in samples["escape"].errors["depth"] and samples["inside"].ok


@pytest.mark.parametrize("name, kind", [("fifo", "FIFO"), ("zero", "character device"), ("sock", "socket")])
def test_read_modality_refuses_special_paths(depth_folder, name, kind):
    """A path given directly (``tokzoo encode``) is followed, but only a regular file is opened and read."""
    folder, _ = depth_folder
    with pytest.raises(InputError, match=f"not a regular file \\({kind}\\)"):
        read_modality("depth", folder / f"{name}.npy")


def test_tokenize_cli_on_a_depth_folder_with_special_and_bad_files(depth_folder, tmp_path):
    """One CLI run under RLIMIT_AS 6 GiB and a timeout: a FIFO would block it forever, /dev/zero exhaust memory."""
    folder, expected = depth_folder
    out = tmp_path / "tokens"
    result = run_cli(
        "tokenize", "-m", "depth", "--input", str(folder), "-o", str(out), "--size", "32", "--no-progress", timeout=240
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    check(records(out, "depth"), expected)


def test_pose_and_metadata_folders_fail_samples_not_the_run(tmp_path):
    from tokzoo.pipeline import TokenizeJob, tokenize

    for modality, build in (("human_pose", bad_pose_files), ("metadata", bad_metadata_files)):
        expected = build(tmp_path / modality)
        out = tmp_path / f"{modality}-tokens"
        summary = tokenize(TokenizeJob([modality], out, str(tmp_path / modality), workers=0, progress=False))
        assert summary.ok == 1 and summary.failed == len(expected) - 1
        check(records(out, modality), expected)


@pytest.mark.slow
def test_cli_entry_points_on_bad_single_modality_folders(tmp_path, depth_folder):
    for modality, build in (("human_pose", bad_pose_files), ("metadata", bad_metadata_files)):
        expected = build(tmp_path / modality)
        out = tmp_path / f"{modality}-tokens"
        result = run_cli(
            "tokenize", "-m", modality, "--input", str(tmp_path / modality), "-o", str(out), "--no-progress"
        )
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
        check(records(out, modality), expected)
    folder, _ = depth_folder
    for name, fragment in (("fifo", "FIFO"), ("zero", "character device"), ("sparse", "over the limit")):
        result = run_cli(
            "encode", "-t", "depth", str(folder / f"{name}.npy"), "-o", str(tmp_path / "t.npy"), timeout=120
        )
        assert_one_line_error(result, f"{name}.npy", fragment)
    result = run_cli("eval", "-t", "depth", "--data", str(folder), "--n", "4", "--no-progress", timeout=300)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
