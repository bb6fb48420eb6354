"""Thread defaults chosen from the machine, the same for `train`, `fm train` and `eval` (issue 31, item 4)."""

import os

import pytest
import torch
from click.testing import CliRunner

from tokzoo_cli import machine
from tokzoo_cli.main import cli


@pytest.fixture
def machine_state(monkeypatch):
    """Pretend 2 CPUs at a given load; restores torch's thread count after."""
    threads = torch.get_num_threads()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})

    def at_load(load):
        monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))

    yield at_load
    torch.set_num_threads(threads)


@pytest.mark.parametrize("load, expected", [(0.0, 2), (0.6, 1), (1.4, 1), (10.7, 1)])
def test_default_threads_leave_busy_cpus_alone(machine_state, load, expected):
    """With torch's default (both cores) a 30-step `fm train` on a busy 2-core machine took 58.7 s, 15.8 s with
    --threads 1."""
    machine_state(load)
    assert machine.default_threads() == expected


def test_train_uses_and_reports_the_machine_default(machine_state, tmp_path):
    from tokzoo.datasets import write_scene_shards

    write_scene_shards(tmp_path / "scenes", 8, size=64)  # the recipe's own data renders 1024 scenes first
    machine_state(10.7)
    torch.set_num_threads(2)
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--recipe",
            "depth",
            "--data",
            str(tmp_path / "scenes"),
            "--steps",
            "1",
            "--no-eval",
            "-q",
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 1
    assert "threads: 1, this machine's idle CPUs at load 10.7 (--threads N to choose)" in result.output


def test_the_same_thread_and_device_options_in_train_fm_train_and_eval():
    def options(*path):
        command = cli
        for name in path:
            command = command.commands[name]
        return {p.name: (p.default, p.help) for p in command.params if p.name in ("threads", "device")}

    train, fm_train = options("train"), options("fm", "train")
    assert train == fm_train and set(train) == {"threads", "device"}
    assert train["threads"][0] is None and train["device"][0] is None
    assert options("eval")["threads"][0] is None


def test_a_second_ddp_rank_prints_nothing(tmp_path, monkeypatch):
    """Under torchrun every rank printed the final line; only rank 0 (or a run without torchrun) speaks now."""
    tokens = tmp_path / "tokens"
    made = CliRunner().invoke(
        cli,
        [
            "tokenize",
            "-m",
            "rgb,depth,normals,semseg",
            "--scenes",
            "16",
            "--scene-size",
            "64",
            "--workers",
            "0",
            "--no-progress",
            "-o",
            str(tokens),
        ],
    )
    assert made.exit_code == 0, made.output

    def fm_train(out):
        args = [
            "fm",
            "train",
            "--recipe",
            "fm/scenes-cpu",
            "--data",
            str(tokens),
            "--out",
            str(tmp_path / out),
            "--steps",
            "1",
            "--threads",
            "1",
            "--no-progress",
        ]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        return result.output

    assert fm_train("alone").startswith("step 1: loss ")
    monkeypatch.setenv("RANK", "1")  # WORLD_SIZE unset: the trainer runs alone, the command plays rank 1's part
    assert fm_train("rank1") == ""
