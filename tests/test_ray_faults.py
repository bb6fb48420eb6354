"""Faults on a real Ray cluster of two nodes: a CPU task's worker or an encoder actor SIGKILLed mid-shard is retried
(restarted) and the output is the local engine's, without duplicates or gaps; a driver SIGKILLed mid-run resumes
from its committed shards on the rerun; the S3 round trip through the cluster. Slow: each run starts Ray workers."""

import pytest
from ray_support import command, raw_tars, ray_cluster, run, snapshot, start_driver, table, toks  # noqa: F401
from test_s3_storage import BUCKET, bucket_snapshot, local_from_s3, normalised, s3_env, s3_input  # noqa: F401

from tokzoo.pipeline.writer import CRASH_ENV
from tokzoo.scale.tokenize import KILL_ENV

pytestmark = pytest.mark.slow

SOURCE = "shard-{000000..000003}.tar"


@pytest.fixture(scope="module")
def local_out(tmp_path_factory, toks, raw_tars):  # noqa: F811
    out = tmp_path_factory.mktemp("local") / "out"
    run(command(out, toks, raw_tars / SOURCE, "--workers", "0"))
    return out


@pytest.mark.parametrize("stage", ["prepare", "encode"])
def test_a_worker_killed_mid_shard_is_retried_without_duplicates_or_gaps(
    tmp_path, toks, raw_tars, local_out, ray_cluster, monkeypatch, stage
):  # noqa: F811
    marker = tmp_path / "kill-me"
    marker.write_text("the first task (actor call) to find this file deletes it and SIGKILLs its process")
    monkeypatch.setenv(KILL_ENV, f"{stage}:{marker}")
    out = tmp_path / "out"
    result = run(command(out, toks, raw_tars / SOURCE, "--engine", "ray", "--address", ray_cluster.address))
    assert not marker.exists()  # a process was killed
    assert snapshot(out) == snapshot(local_out)
    keys = [r["key"] for r in table(out)]
    assert len(keys) == len(set(keys)) == 20
    if stage == "encode":  # the actor was restarted: a new process, which loaded the models again
        assert "restarted after a process died" in result.stderr, result.stderr


def test_a_killed_driver_resumes_from_committed_shards(tmp_path, toks, raw_tars, local_out, ray_cluster):  # noqa: F811
    out = tmp_path / "out"
    args = command(out, toks, raw_tars / SOURCE, "--engine", "ray", "--address", ray_cluster.address)
    # renames: manifest 1; per shard 8 (journal, crops, 2 tars, 2 tables, 2 stats): the 14th is inside the 2nd commit
    driver = start_driver(args, {CRASH_ENV: "14"})
    _, err = driver.communicate(timeout=300)
    assert driver.returncode == -9, err.decode()[-2000:]
    done = sorted(p.name for p in (out / "rgb").glob("*.stats.json"))
    journals = list((out / "_commit").glob("shard-*.json"))  # commits past their commit point: replayed on rerun
    assert 1 <= len(done) + len(journals) < 4  # killed mid-run: some shards committed, not all
    result = run(args)
    assert f"({4 - len(done) - len(journals)} written by this run)" in result.stdout
    assert snapshot(out) == snapshot(local_out)


def test_s3_round_trip_through_the_cluster(toks, s3_input, local_from_s3, ray_cluster):  # noqa: F811
    """CPU tasks on both nodes fetch the input tars from S3, the driver commits to S3: the local engine's bytes."""
    result = run(
        command(
            f"s3://{BUCKET}/ray-tokens",
            toks,
            s3_input,
            "--engine",
            "ray",
            "--address",
            ray_cluster.address,
            "--actors",
            "2",
        )
    )
    assert "ok 19 / failed 1 / total 20" in result.stdout
    assert normalised(bucket_snapshot("ray-tokens")) == local_from_s3
