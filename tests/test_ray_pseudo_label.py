"""tokzoo pseudo-label --engine ray on a two-node Ray cluster: the local engine's OUT byte for byte (tars, tables,
stats, manifest), a bad sample failed alike, one labeler load per actor, an actor killed mid-shard restarted.
Slow: it starts its own cluster and Ray workers."""

import pytest
from ray_support import raw_tars, ray_cluster, run, snapshot  # noqa: F401 (fixtures)

from tokzoo.scale.tokenize import KILL_ENV

pytestmark = pytest.mark.slow


def label(out, source, *extra):
    return [
        "pseudo-label",
        "-i",
        str(source),
        "-o",
        str(out),
        "-m",
        "edges,normals",
        "--batch-size",
        "4",
        "--no-progress",
        *extra,
    ]


def test_ray_pseudo_label_writes_the_local_engines_bytes(tmp_path, raw_tars, ray_cluster, monkeypatch):  # noqa: F811
    source = raw_tars / "shard-{000000..000003}.tar"
    local = tmp_path / "local"
    run(label(local, source))
    out = tmp_path / "ray"
    result = run(label(out, source, "--engine", "ray", "--address", ray_cluster.address, "--actors", "2"))
    assert snapshot(out) == snapshot(local)
    assert "ok 19 / failed 1 / total 20" in result.stdout
    actors = [line for line in result.stderr.splitlines() if line.startswith("labeler actor")]
    assert actors and all("1 model load(s) in 1 process(es)" in line for line in actors), result.stderr

    marker = tmp_path / "kill-me"
    marker.write_text("x")
    monkeypatch.setenv(KILL_ENV, f"encode:{marker}")
    killed = tmp_path / "killed"
    result = run(label(killed, source, "--engine", "ray", "--address", ray_cluster.address))
    assert not marker.exists() and "restarted after a process died" in result.stderr
    assert snapshot(killed) == snapshot(local)
