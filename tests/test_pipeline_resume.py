"""Killing `tokzoo tokenize` (SIGKILL) at any point and rerunning gives exactly an uninterrupted run's output; a
second run (tokenize, pseudo-label, scenes) into a folder another run is writing waits for it, then finishes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tokzoo.datasets.scenes import generate_scene
from tokzoo.pipeline.writer import CRASH_ENV
from tokzoo.tokenizers.learned import LearnedTokenizer
from tokzoo_cli.main import cli

ARGS = [
    "--scenes",
    "12",
    "--scene-size",
    "64",
    "--samples-per-shard",
    "4",
    "--crops",
    "2",
    "--workers",
    "0",
    "--no-progress",
]


@pytest.fixture(scope="module")
def toks(tmp_path_factory):
    root = tmp_path_factory.mktemp("toks")
    return {
        m: str(
            LearnedTokenizer.from_defaults(m, model={"preset": "conv-tiny"}, input_size=[64, 64]).save_pretrained(
                root / m
            )
        )
        for m in ("depth", "rgb")
    }


def command(out, modalities, toks, *extra):
    return [
        "tokenize",
        "-o",
        str(out),
        "-m",
        modalities,
        *[f"--tokenizer={m}={toks[m]}" for m in modalities.split(",")],
        *extra,
    ]


def run_inline(args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result


def start(args, crash_after=None):
    env = {**os.environ, **({CRASH_ENV: str(crash_after)} if crash_after else {})}
    return subprocess.Popen(
        [sys.executable, "-c", "from tokzoo_cli.main import main; main()", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def snapshot(out: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(out.rglob("*")):
        if path.is_file() and not path.relative_to(out).as_posix().startswith("_source"):
            data = path.read_bytes().replace(str(out).encode(), b"OUT")
            if path.name.endswith(".stats.json"):
                data = json.dumps({k: v for k, v in json.loads(data).items() if k != "seconds"}).encode()
            files[path.relative_to(out).as_posix()] = data
    return files


@pytest.fixture(scope="module")
def reference(tmp_path_factory, toks):
    out = tmp_path_factory.mktemp("reference") / "out"
    run_inline(command(out, "depth,rgb", toks, *ARGS))
    return snapshot(out)


# renames: manifest 1; per shard: journal, crops, 2 tars, 2 tables, 2 stats = 8; final manifest 1.
@pytest.mark.parametrize("crash_after", [5, 20])
def test_killed_inside_a_commit_then_rerun_equals_uninterrupted(tmp_path, toks, reference, crash_after):
    out = tmp_path / "out"
    process = start(command(out, "depth,rgb", toks, *ARGS), crash_after)
    assert process.wait(timeout=300) == -signal.SIGKILL, process.stderr.read().decode()
    assert snapshot(out) != reference
    run_inline(command(out, "depth,rgb", toks, *ARGS))
    assert snapshot(out) == reference
    assert not list(out.rglob("*.tmp")) and not list((out / "_commit").iterdir())


def test_killed_from_outside_after_the_first_shard_then_rerun_equals_uninterrupted(tmp_path, toks, reference):
    out = tmp_path / "out"
    process = start(command(out, "depth,rgb", toks, *ARGS))
    while not any((out / "rgb").glob("shard-*.stats.json")):  # the first finished shard, whichever it is
        assert process.poll() is None, "finished before it could be killed"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    result = run_inline(command(out, "depth,rgb", toks, *ARGS))
    assert "shards: 3 (3 written" not in result.output  # shard 0 was kept, not redone
    assert snapshot(out) == reference


def test_killed_while_rewriting_old_folders_for_a_new_modality(tmp_path, toks):
    source = tmp_path / "src"
    for i in range(6):
        scene = generate_scene(i, seed=5, size=64)
        for modality in ("rgb", "depth"):
            (source / modality).mkdir(parents=True, exist_ok=True)
        Image.fromarray(scene["rgb"]).save(source / "rgb" / f"s{i}.png")
        np.save(source / "depth" / f"s{i}.npy", scene["depth"])
    (source / "depth" / "s1.npy").write_bytes(b"\x93NUMPY truncated")
    args = ["-i", str(source), "--samples-per-shard", "4", "--workers", "0", "--no-progress"]

    together = tmp_path / "together"
    run_inline(command(together, "rgb,depth", toks, *args))
    later = tmp_path / "later"
    run_inline(command(later, "rgb", toks, *args))
    # renames of the depth run: manifest, journal, crops, depth tar, depth table, rgb tar | rgb table, 2 stats
    process = start(command(later, "depth", toks, *args), crash_after=6)
    assert process.wait(timeout=300) == -signal.SIGKILL, process.stderr.read().decode()
    assert "ok 5 / failed 1 / total 6" in run_inline(command(later, "depth", toks, *args)).output
    a, b = snapshot(together), snapshot(later)
    assert [n for n in a if n.endswith(".tar")] == [n for n in b if n.endswith(".tar")]
    assert all(a[n] == b[n] for n in a if n.endswith(".tar"))
    rgb_table = (later / "rgb" / "shard-000000.samples.jsonl").read_text()
    assert '"key": "s1", "source"' in rgb_table and "s1.npy" in rgb_table and '"failed"' in rgb_table


def test_ctrl_c_with_workers_is_one_line_and_resumes(tmp_path, toks):
    """Ctrl-C reaches the whole process group: the worker processes used to print a KeyboardInterrupt traceback
    each and the run ended with click's bare 'Aborted!'. Now one line saying how to resume, exit 130.
    160 scenes (40 shards, ~3 s of tokenizing after the first shard lands), so that work is left to interrupt."""
    options = [{"12": "160", "0": "2"}.get(a, a) for a in ARGS]  # 160 scenes, --workers 2
    run_inline(command(tmp_path / "reference", "depth,rgb", toks, *options))
    reference = snapshot(tmp_path / "reference")
    out = tmp_path / "out"
    args = command(out, "depth,rgb", toks, *options)
    process = subprocess.Popen(
        [sys.executable, "-c", "from tokzoo_cli.main import main; main()", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        # a test suite started in the background (`make test &`) inherits SIGINT ignored, and so would the run
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    while not any((out / "rgb").glob("shard-*.stats.json")):  # the first finished shard, whichever it is
        assert process.poll() is None, "finished before it could be interrupted"
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGINT)
    code, stderr = process.wait(timeout=60), process.stderr.read().decode()
    assert code == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines() == [
        "error: interrupted; finished shards are kept; rerun the same command to resume"
    ], stderr
    run_inline(args)
    assert snapshot(out) == reference


def test_rerun_of_a_finished_folder_keeps_it_complete_throughout(tmp_path, toks, monkeypatch):
    """A rerun over a finished OUT (same settings) never marks its modalities incomplete, not even while it
    checks the shards: a trainer started meanwhile reads it (two benchmark processes raced on this)."""
    from tokzoo.pipeline import run as pipeline_run

    out = tmp_path / "out"
    run_inline(command(out, "depth,rgb", toks, *ARGS))
    before = snapshot(out)
    seen = []
    original = pipeline_run.LocalEngine.tokenize

    def watching(self, work):
        seen.append(
            {m: e["complete"] for m, e in json.loads((out / "manifest.json").read_text())["modalities"].items()}
        )
        return original(self, work)

    monkeypatch.setattr(pipeline_run.LocalEngine, "tokenize", watching)
    run_inline(command(out, "depth,rgb", toks, *ARGS))
    assert seen == [{"depth": True, "rgb": True}]
    assert snapshot(out) == before


def test_a_rerun_that_must_write_marks_the_modality_incomplete_first(tmp_path, toks, monkeypatch):
    """The input grew by a shard: before the rerun writes it the manifest stops calling the folder complete, so a
    run killed there leaves no 'complete' folder with stale counts; finished, it counts every shard."""
    from tokzoo.pipeline import run as pipeline_run

    run_inline(["scenes", "--n", "12", "--size", "64", "--samples-per-shard", "4", "--out", str(tmp_path / "all")])
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for name in ("shard-000000.tar", "shard-000001.tar"):
        (scenes / name).write_bytes((tmp_path / "all" / name).read_bytes())
    out = tmp_path / "out"
    args = ["--input", str(scenes), "--samples-per-shard", "4", "--workers", "0", "--no-progress"]
    run_inline(command(out, "depth,rgb", toks, *args))
    (scenes / "shard-000002.tar").write_bytes((tmp_path / "all" / "shard-000002.tar").read_bytes())

    def killed(*a, **k):
        raise RuntimeError("killed while committing the new shard")

    monkeypatch.setattr(pipeline_run, "commit_shard", killed)
    assert CliRunner().invoke(cli, command(out, "depth,rgb", toks, *args)).exit_code != 0
    entries = json.loads((out / "manifest.json").read_text())["modalities"]
    assert not entries["depth"]["complete"] and not entries["rgb"]["complete"]
    monkeypatch.undo()
    run_inline(command(out, "depth,rgb", toks, *args))
    entries = json.loads((out / "manifest.json").read_text())["modalities"]
    assert entries["depth"]["complete"] and entries["depth"]["shards"] == 3 and entries["depth"]["samples"]["ok"] == 12


def _wait_for_note(process, timeout=120.0) -> str:
    """The first stderr line of ``process`` (the lock note), or fail after ``timeout`` seconds."""
    import select

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 1.0)
        if ready:
            return process.stderr.readline().decode()
        assert process.poll() is None, "the run ended instead of waiting for the lock"
    raise AssertionError("no lock note on stderr")


def test_a_second_run_into_the_same_folder_waits_for_the_first(tmp_path, toks, reference):
    from tokzoo.io.output_lock import OutputLock

    out = tmp_path / "out"
    out.mkdir()
    with OutputLock(out):  # stands for another run in progress
        second = start(command(out, "depth,rgb", toks, *ARGS))
        note = _wait_for_note(second)
        assert "another tokzoo run is writing it; waiting" in note and str(out) in note
        time.sleep(0.5)
        assert second.poll() is None and not any(out.iterdir())  # nothing read or written while it waits
    assert second.wait(timeout=300) == 0, second.stderr.read().decode()[-2000:]
    assert snapshot(out) == reference


def test_two_runs_into_one_folder_at_once_both_finish_with_one_output(tmp_path, toks, reference):
    out = tmp_path / "out"
    runs = [start(command(out, "depth,rgb", toks, *ARGS)) for _ in range(2)]
    for process in runs:
        assert process.wait(timeout=300) == 0, process.stderr.read().decode()[-2000:]
    assert snapshot(out) == reference


def test_a_pseudo_label_run_waits_for_the_one_writing_its_folder(tmp_path):
    from tokzoo.io.output_lock import OutputLock

    scenes, out = tmp_path / "scenes", tmp_path / "labelled"
    run_inline(["scenes", "--n", "4", "--size", "32", "--out", str(scenes), "--no-progress"])
    out.mkdir()
    with OutputLock(out):
        labelling = start(["pseudo-label", "-m", "edges", "-i", str(scenes), "-o", str(out), "--no-progress"])
        assert "waiting for it to finish" in _wait_for_note(labelling)
    assert labelling.wait(timeout=300) == 0, labelling.stderr.read().decode()[-2000:]
    assert json.loads((out / ".pseudo-label" / "manifest.json").read_text())["samples"]["ok"] == 4


def test_scenes_into_a_folder_another_run_is_writing_waits(tmp_path):
    from tokzoo.io.output_lock import OutputLock

    out = tmp_path / "scenes"
    out.mkdir()
    with OutputLock(out):
        rendering = start(["scenes", "--n", "2", "--size", "16", "-o", str(out), "--no-progress"])
        assert "waiting for it to finish" in _wait_for_note(rendering)
        assert not any(out.iterdir())
    assert rendering.wait(timeout=120) == 0, rendering.stderr.read().decode()[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["shard-000000.tar"]
