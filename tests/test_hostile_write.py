"""Class 6 of issue 10: OS errors while writing (full disk, file size limit) end the run with one line naming the
file; what was committed stays, and a rerun after the cause is gone completes with the same bytes."""

import errno
import io
import json
import tarfile
from pathlib import Path

import pytest
from hostile_inputs import assert_one_line_error, run_cli

from tokzoo.errors import TokzooError
from tokzoo.pipeline import TokenizeJob, tokenize


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Three input tars of 2, 2 and 8 scenes: the last one's token tars are twice the size of the others'."""
    from tokzoo.datasets.scenes import write_scene_shards

    root = tmp_path_factory.mktemp("write")
    write_scene_shards(root / "all", 12, seed=0, size=32, samples_per_shard=12)
    with tarfile.open(root / "all" / "shard-000000.tar") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    keys = sorted({m.name.split(".")[0] for m, _ in members})
    (root / "in").mkdir()
    for index, chunk in enumerate((keys[:2], keys[2:4], keys[4:])):
        with tarfile.open(root / "in" / f"part-{index}.tar", "w") as tar:
            for member, data in members:
                if member.name.split(".")[0] in chunk:
                    tar.addfile(member, io.BytesIO(data))
    return root / "in"


def dataset(out: Path) -> dict:
    """Every file of a token dataset; stats without their timing."""
    files = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name.endswith(".stats.json"):
            data = json.dumps({k: v for k, v in json.loads(data).items() if k != "seconds"}).encode()
        files[path.relative_to(out).as_posix()] = data
    return files


def job(scenes, out):
    return TokenizeJob(["rgb", "depth"], out, str(scenes), size=(32, 32), crops=2, workers=0, progress=False)


def test_full_disk_mid_run_then_rerun_completes(scenes, tmp_path, monkeypatch):
    """Fault injection: the 11th file write fails with ENOSPC (the manifest, 8 files of shard 0, then shard 1's), raised
    by the file object's write as the OS would."""
    from tokzoo.io import writes

    reference = tmp_path / "reference"
    tokenize(job(scenes, reference))
    out, calls, write_content = tmp_path / "out", [0], writes._write_content

    def full_disk(file, content):
        calls[0] += 1
        if calls[0] == 11:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_content(file, content)

    monkeypatch.setattr(writes, "_write_content", full_disk)
    with pytest.raises(
        TokzooError,
        match=r"shard-000001\..*\.tmp: cannot write \(No space left on device\); finished "
        "shards are kept",
    ) as error:
        tokenize(job(scenes, out))
    assert "\n" not in str(error.value)
    assert (out / "rgb" / "shard-000000.stats.json").is_file() and not (
        out / "rgb" / "shard-000001.stats.json"
    ).exists()
    monkeypatch.setattr(writes, "_write_content", write_content)
    summary = tokenize(job(scenes, out))
    assert summary.written == 2 and dataset(out) == dataset(reference)


@pytest.mark.slow
def test_cli_file_size_limit_then_rerun(scenes, tmp_path):
    """Through the CLI: RLIMIT_FSIZE 16 kB makes the 8-scene shard's 20 kB tars fail with EFBIG, a real write error."""
    args = [
        "tokenize",
        "-m",
        "rgb,depth",
        "--input",
        str(scenes),
        "--size",
        "32",
        "--crops",
        "2",
        "--no-progress",
        "--workers",
        "0",
    ]
    reference, out = tmp_path / "reference", tmp_path / "out"
    assert run_cli(*args, "-o", str(reference)).returncode == 0
    result = run_cli(*args, "-o", str(out), file_size=16_000)
    assert_one_line_error(result, "shard-000002.", "cannot write (File too large)", "rerun the same command")
    assert sorted(p.name for p in (out / "rgb").glob("*.stats.json")) == [
        "shard-000000.stats.json",
        "shard-000001.stats.json",
    ]
    result = run_cli(*args, "-o", str(out))
    assert result.returncode == 0 and "(1 written by this run)" in result.stdout, result.stderr[-2000:]
    assert dataset(out) == dataset(reference)
