"""Object storage: tokenize from s3:// input tars into an s3:// OUT through fsspec (s3fs), against moto's S3 server
started on 127.0.0.1 inside the test (never a real cloud). Same bytes as a local OUT, the completion markers last,
nothing staged left behind, a driver killed inside a commit on S3 resumed by the rerun; and the storage paths."""

import os

import pytest
from ray_support import command, raw_tars, run, snapshot, start_driver, toks  # noqa: F401 (fixtures)

from tokzoo.pipeline.writer import CRASH_ENV

pytest.importorskip("s3fs", reason="s3fs is in the ray extra (pip install 'tokzoo[ray]')")
pytest.importorskip("moto", reason="moto[server] is in the dev extra")

BUCKET = "tokzoo-test"


@pytest.fixture(scope="module")
def s3_env():
    """A moto S3 server on 127.0.0.1 and the FSSPEC_S3_* settings that point fsspec (this process and children,
    Ray workers through the driver's forwarded environment) at it."""
    import fsspec.config
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    settings = {"endpoint_url": f"http://{host}:{port}", "key": "testing", "secret": "testing"}
    env = {f"FSSPEC_S3_{k.upper()}": v for k, v in settings.items()}
    saved_env, saved_conf = {k: os.environ.get(k) for k in env}, fsspec.config.conf.get("s3")
    os.environ.update(env)
    fsspec.config.conf["s3"] = settings
    fs = fsspec.filesystem("s3", use_listings_cache=False)
    fs.mkdir(BUCKET)
    yield env
    for k, v in saved_env.items():
        os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    fsspec.config.conf.pop("s3") if saved_conf is None else fsspec.config.conf.__setitem__("s3", saved_conf)
    server.stop()


@pytest.fixture(scope="module")
def s3_input(s3_env, raw_tars):  # noqa: F811
    import fsspec

    fs = fsspec.filesystem("s3", use_listings_cache=False)
    for path in sorted(raw_tars.glob("*.tar")):
        fs.put_file(str(path), f"{BUCKET}/raw/{path.name}")
    return f"s3://{BUCKET}/raw/shard-{{000000..000003}}.tar"


def bucket_snapshot(prefix: str) -> dict[str, bytes]:
    """Every object under s3://BUCKET/prefix, downloaded into a folder and snapshotted like a local OUT."""
    import fsspec

    fs = fsspec.filesystem("s3", use_listings_cache=False)
    files = {}
    for key in sorted(fs.find(f"{BUCKET}/{prefix}")):
        files[key[len(f"{BUCKET}/{prefix}/") :]] = fs.cat_file(key).replace(f"s3://{BUCKET}/{prefix}".encode(), b"OUT")
    return files


def normalised(files: dict[str, bytes]) -> dict[str, bytes]:
    import json

    return {
        k: (
            json.dumps({x: y for x, y in json.loads(v).items() if x != "seconds"}).encode()
            if k.endswith(".stats.json")
            else v
        )
        for k, v in files.items()
    }


@pytest.fixture(scope="module")
def local_from_s3(tmp_path_factory, toks, s3_input):  # noqa: F811
    out = tmp_path_factory.mktemp("local") / "out"
    run(command(out, toks, s3_input, "--workers", "0"))
    return snapshot(out)


def test_s3_input_to_s3_output_matches_a_local_output(toks, s3_input, local_from_s3, raw_tars, tmp_path):  # noqa: F811
    result = run(command(f"s3://{BUCKET}/tokens", toks, s3_input, "--workers", "0"))
    assert "ok 19 / failed 1 / total 20" in result.stdout
    stored = normalised(bucket_snapshot("tokens"))
    assert stored == local_from_s3
    assert not [k for k in stored if k.endswith(".tmp") or k.startswith("_commit")]
    # the tokens of s3 input equal those of the same tars read from the local disk (only source names differ)
    local_input = tmp_path / "from-disk"
    run(command(local_input, toks, raw_tars / "shard-{000000..000003}.tar", "--workers", "0"))
    disk = snapshot(local_input)
    assert {k: v for k, v in disk.items() if k.endswith(".tar")} == {
        k: v for k, v in stored.items() if k.endswith(".tar")
    }
    assert b"s3://tokzoo-test/raw/shard-000003.tar:broken" in stored["rgb/shard-000003.samples.jsonl"]


@pytest.mark.slow
def test_driver_killed_inside_a_commit_on_s3_resumes(toks, s3_input, s3_env, local_from_s3):  # noqa: F811
    out = f"s3://{BUCKET}/resumed"
    # renames: manifest 1; per shard: journal, crops, 2 tars, 2 tables, 2 stats = 8: the 12th is inside shard 1's
    killed = start_driver(command(out, toks, s3_input, "--workers", "0"), {CRASH_ENV: "12"})
    killed.communicate(timeout=300)
    assert killed.returncode == -9
    left = bucket_snapshot("resumed")
    assert any(k.startswith("_commit/") for k in left)  # a journal: the commit point passed, renames unfinished
    assert "rgb/shard-000001.stats.json" not in left
    run(command(out, toks, s3_input, "--workers", "0"))
    assert normalised(bucket_snapshot("resumed")) == local_from_s3


@pytest.mark.slow
def test_pseudo_label_from_s3_to_s3_matches_a_local_output(s3_input, tmp_path):
    args = ["-m", "edges,normals", "--batch-size", "4", "--no-progress", "-i", s3_input]
    run(["pseudo-label", *args, "-o", str(tmp_path / "local")])
    result = run(["pseudo-label", *args, "-o", f"s3://{BUCKET}/labelled"])
    assert "ok 19 / failed 1 / total 20" in result.stdout
    stored = bucket_snapshot("labelled")
    assert normalised(stored) == snapshot(tmp_path / "local") and ".pseudo-label/shard-000003.stats.json" in stored


def test_a_url_prefix_of_tars_is_an_input(s3_input):
    from tokzoo.errors import InputError
    from tokzoo.tokens.sources import open_input

    reader = open_input(f"s3://{BUCKET}/raw/", ["rgb", "depth"])
    assert reader.shards == [f"s3://{BUCKET}/raw/shard-{i:06d}.tar" for i in range(4)]
    with pytest.raises(InputError, match="no .tar objects under this URL"):
        open_input(f"s3://{BUCKET}/nothing-here/", ["rgb"])


def test_object_paths_behave_like_local_paths(s3_env):
    from tokzoo.pipeline.writer import ShardCommit, recover, write_atomic
    from tokzoo.storage import ObjectPath, as_path, is_url

    out = as_path(f"s3://{BUCKET}/paths/")
    assert isinstance(out, ObjectPath) and str(out) == f"s3://{BUCKET}/paths" and is_url(out)
    assert not is_url("/tmp/x") and not is_url("file:///tmp/x") and str(as_path("file:///tmp/x")) == "/tmp/x"
    write_atomic(out / "a" / "one.json", b"1")
    assert (out / "a" / "one.json").read_bytes() == b"1" and not (out / "a" / "one.json.tmp").exists()
    commit = ShardCommit(out, 0)
    commit.stage(out / "a" / "shard-000000.tar", b"2")
    commit.stage(out / "a" / "shard-000000.stats.json", b"{}")
    assert [p.name for p in (out / "a").glob("*.tmp")] == ["shard-000000.stats.json.tmp", "shard-000000.tar.tmp"]
    commit.commit()
    assert sorted(p.name for p in (out / "a").iterdir()) == ["one.json", "shard-000000.stats.json", "shard-000000.tar"]
    (out / "a" / "shard-000001.tar.tmp").write_bytes(b"staged, never journaled")
    recover(out)
    assert not (out / "a" / "shard-000001.tar.tmp").exists() and (out / "a" / "shard-000000.tar").is_file()
