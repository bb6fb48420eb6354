"""tokzoo tokenize --engine ray on a real Ray cluster of two nodes started here: the same bytes as the local engine,
bad samples accounted for alike, one model load per actor; and the one-line refusals (no Ray, too few CPUs,
a model too big for one GPU)."""

import builtins

import pytest
from click.testing import CliRunner
from ray_support import command, raw_tars, ray_cluster, run, snapshot, table, toks  # noqa: F401 (fixtures)

from tokzoo_cli.main import cli


@pytest.fixture(scope="module")
def local_out(tmp_path_factory, toks, raw_tars):  # noqa: F811
    out = tmp_path_factory.mktemp("local") / "out"
    run(command(out, toks, raw_tars / "shard-{000000..000003}.tar", "--workers", "0"))
    return out


def test_ray_engine_on_two_nodes_writes_the_local_engines_bytes(tmp_path, toks, raw_tars, local_out, ray_cluster):  # noqa: F811
    out = tmp_path / "out"
    result = run(
        command(
            out,
            toks,
            raw_tars / "shard-{000000..000003}.tar",
            "--engine",
            "ray",
            "--address",
            ray_cluster.address,
            "--actors",
            "2",
            "--progress",
        )
    )
    assert snapshot(out) == snapshot(local_out)
    assert "tokenize: 100%" in result.stderr and "20/20" in result.stderr and "sample/s" in result.stderr
    records = table(out)
    assert len(records) == 20 and [r["key"] for r in records if r["status"] == "failed"] == ["broken"]
    assert "ok 19 / failed 1 / total 20" in result.stdout
    # the per-node summary: CPU tasks ran on both nodes' workers or one, each actor loaded its models once
    lines = result.stderr.splitlines()
    actors = [line for line in lines if line.startswith("encoder actor")]
    assert len(actors) == 2 and all("1 model load(s) in 1 process(es)" in line for line in actors), result.stderr
    assert sum(int(line.split(": ")[1].split(" shards")[0]) for line in actors) == 4
    assert any(line.startswith("node ") and "prepared" in line for line in lines)

    rerun = run(
        command(out, toks, raw_tars / "shard-{000000..000003}.tar", "--engine", "ray", "--address", ray_cluster.address)
    )
    assert "(0 written by this run)" in rerun.stdout and snapshot(out) == snapshot(local_out)


def test_more_gpus_than_the_cluster_has_are_refused_in_one_line(tmp_path, toks, raw_tars, ray_cluster):  # noqa: F811
    result = CliRunner().invoke(
        cli,
        command(
            tmp_path / "out",
            toks,
            raw_tars / "shard-000000.tar",
            "--engine",
            "ray",
            "--address",
            ray_cluster.address,
            "--gpus",
            "1",
        ),
    )
    assert result.exit_code == 2 and result.output.strip().endswith("error: --gpus 1: the Ray cluster has 0 GPUs")


def test_without_ray_the_engine_says_how_to_install_it(tmp_path, toks, raw_tars, monkeypatch):  # noqa: F811
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, command(out, toks, raw_tars / "shard-000000.tar", "--engine", "ray"))
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: --engine ray needs Ray, which is not installed; install it with: pip install 'tokzoo[ray]'"
    )
    assert not out.exists()  # refused before OUT was touched


def test_engine_options_need_the_ray_engine(tmp_path, toks, raw_tars):  # noqa: F811
    result = CliRunner().invoke(cli, command(tmp_path / "o", toks, raw_tars / "shard-000000.tar", "--gpus", "2"))
    assert result.exit_code == 2 and "error: --gpus only applies with --engine ray" in result.output


def test_a_model_too_big_for_one_gpu_is_refused_in_one_line():
    from tokzoo.errors import ConfigError
    from tokzoo.scale.gpu import check_fits

    check_fits("tokenizer 'rgb'", 10 * 2**30, 80 * 2**30)
    with pytest.raises(ConfigError) as refused:
        check_fits("tokenizer 'huge' (rgb)", 70 * 2**30, 80 * 2**30)
    message = str(refused.value)
    assert "\n" not in message and "tokenizer 'huge' (rgb) has 70.0 GiB of weights" in message
    assert "too big for one actor's GPU (80.0 GiB" in message


def test_cpu_actors_that_would_take_every_cpu_are_refused():
    from tokzoo.errors import ConfigError
    from tokzoo.scale.scheduler import check_cpus

    class TwoCpus:  # what check_cpus reads of the ray module
        @staticmethod
        def cluster_resources():
            return {"CPU": 2.0}

    check_cpus(TwoCpus, 1)
    with pytest.raises(ConfigError, match="--actors 2 on CPUs would take all 2 CPUs of the Ray cluster"):
        check_cpus(TwoCpus, 2)
