"""Shared by the Ray and S3 tests: a real Ray cluster of several nodes on this machine, tiny tokenizers, input
tars with one bad sample, and running `tokzoo tokenize` in-process or as a separate driver process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import webdataset as wds
from click.testing import CliRunner

from tokzoo.datasets.scenes import write_scene_shards
from tokzoo.tokenizers.learned import LearnedTokenizer
from tokzoo_cli.main import cli

STORE = 100 * 1024 * 1024  # object store per node: small, the machine is shared
ARGS = ["--crops", "2", "--batch-size", "4", "--no-progress"]


def start_cluster(head_cpus: int = 2, node_cpus: int = 1):
    """A head node and one more node (separate raylets and object stores) started from this process."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": head_cpus, "include_dashboard": False, "object_store_memory": STORE},
    )
    cluster.add_node(num_cpus=node_cpus, object_store_memory=STORE)
    cluster.wait_for_nodes()
    return cluster


@pytest.fixture(scope="module")
def ray_cluster():
    pytest.importorskip("ray", reason="the Ray extra is not installed (pip install 'tokzoo[ray]')")
    cluster = start_cluster()
    yield cluster
    cluster.shutdown()


@pytest.fixture(scope="module")
def toks(tmp_path_factory):
    root = tmp_path_factory.mktemp("toks")
    return {
        m: str(
            LearnedTokenizer.from_defaults(m, model={"preset": "conv-tiny"}, input_size=[32, 32]).save_pretrained(
                root / m
            )
        )
        for m in ("depth", "rgb")
    }


@pytest.fixture(scope="module")
def raw_tars(tmp_path_factory) -> Path:
    """Four input tars: three of 6 scenes (32 px), and one of 2 samples whose second has an rgb that is not an image."""
    root = tmp_path_factory.mktemp("raw")
    write_scene_shards(root, 18, seed=5, size=32, samples_per_shard=6)
    first = next(iter(wds.WebDataset(str(root / "shard-000000.tar"), shardshuffle=False)))
    with wds.TarWriter(str(root / "shard-000003.tar"), encoder=False, mtime=0.0) as tar:
        for key, rgb in (("good", first["rgb.png"]), ("broken", b"this is not a png")):
            tar.write({"__key__": key, "rgb.png": rgb, "depth.npy": first["depth.npy"]})
    return root


def command(out, toks, source, *extra) -> list[str]:
    return [
        "tokenize",
        "-i",
        str(source),
        "-o",
        str(out),
        "-m",
        "depth,rgb",
        *[f"--tokenizer={m}={toks[m]}" for m in ("depth", "rgb")],
        *ARGS,
        *extra,
    ]


def run(args: list[str]):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def start_driver(args: list[str], env: dict | None = None) -> subprocess.Popen:
    """`tokzoo ARGS` as its own process (a driver that can be killed)."""
    return subprocess.Popen(
        [sys.executable, "-c", "from tokzoo_cli.main import main; main()", *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def snapshot(out: Path) -> dict[str, bytes]:
    """Every output file's bytes, OUT's own path replaced; stats without their timing."""
    files = {}
    for path in sorted(Path(out).rglob("*")):
        if path.is_file():
            data = path.read_bytes().replace(str(out).encode(), b"OUT")
            if path.name.endswith(".stats.json"):
                data = json.dumps({k: v for k, v in json.loads(data).items() if k != "seconds"}).encode()
            files[path.relative_to(out).as_posix()] = data
    return files


def table(out: Path, modality: str = "rgb") -> list[dict]:
    return [
        json.loads(line)
        for p in sorted((Path(out) / modality).glob("*.samples.jsonl"))
        for line in p.read_text().splitlines()
    ]
