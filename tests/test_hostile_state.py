"""Classes 4 and 5 of issue 10: tampered token datasets (sparse / oversized members, truncated tars, ids out of
range, duplicate keys) and corrupt resume state (manifest, stats, tables, crops, journals) through inspect, show,
tokzoo.tokens and a resumed tokenize: a typed one-line error that says how to recover, or a safe rebuild."""

import shutil

import pytest
from hostile_inputs import TAMPERINGS, assert_one_line_error, run_cli, tamper_dataset

from tokzoo.errors import ConfigError, InvalidValueError, TokzooError
from tokzoo.pipeline import TokenizeJob, tokenize
from tokzoo.pipeline.report import inspect_lines, show_rows
from tokzoo.tokens import make_loader

REBUILT = {
    "sparse_member",
    "truncated_tar",
    "duplicate_key",
    "stats_not_json",
    "stats_wrong_counts",
    "table_truncated",
    "crops_truncated",
}
"""Damage a resumed run repairs by tokenizing the shard again (the other tamperings are refused with a hint)."""
HINTS = {
    "manifest_not_json": "pass --overwrite",
    "manifest_wrong_types": "pass --overwrite",
    "crops_outside": "a symlink",
    "journal_outside": "is not a file of that shard inside",
    "journal_not_json": "and rerun",
}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from tokzoo.datasets.scenes import write_scene_shards

    root = tmp_path_factory.mktemp("state")
    write_scene_shards(root / "scenes", 4, seed=0, size=32, samples_per_shard=4)
    job = TokenizeJob(
        ["rgb", "depth"], root / "base", str(root / "scenes"), size=(32, 32), crops=2, workers=0, progress=False
    )
    tokenize(job)
    return root, job


def copy(base, how):
    root, job = base
    out = root / f"t_{how}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(job.output, out, symlinks=True)
    tamper_dataset(out, how)
    return out, TokenizeJob(**{**job.__dict__, "output": out})


def files(out):
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and not p.name.endswith(".stats.json")
    }


@pytest.mark.parametrize("how", TAMPERINGS)
def test_tampered_dataset_gives_typed_errors_or_a_rebuild(base, how):
    out, job = copy(base, how)
    for read in (
        lambda: inspect_lines(out),
        lambda: show_rows(out, "scene_000000"),
        lambda: list(make_loader(out, ["rgb", "depth"], 2, shuffle=False)),
    ):
        try:
            read()
        except TokzooError as error:
            assert "\n" not in str(error) and str(out) in str(error), str(error)
    if how == "ids_out_of_range":  # well-formed shards: resume keeps them (it checks structure, not every id) ...
        tokenize(job)
        with pytest.raises(InvalidValueError, match="rgb/shard-000000.tar: token ids in .* outside the"):
            list(make_loader(out, ["rgb", "depth"], 4, shuffle=False))  # ... and every reader refuses the ids
        with pytest.raises(InvalidValueError, match="rgb/shard-000000.tar: token ids"):  # as itself from a worker
            list(make_loader(out, ["rgb", "depth"], 4, shuffle=False, num_workers=1))
        with pytest.raises(InvalidValueError, match="rgb/shard-000000.tar:scene_000000.npy: token ids"):
            show_rows(out, "scene_000000")
    elif how in REBUILT:
        tokenize(job)  # a rerun repairs the shard: same bytes as the untouched dataset
        assert files(out) == files(base[1].output)
        assert len(list(make_loader(out, ["rgb", "depth"], 2))) == 2
    else:
        with pytest.raises(ConfigError, match=HINTS[how]) as error:
            tokenize(job)
        assert "\n" not in str(error.value)
        job.overwrite = True
        if how == "journal_outside":
            assert (out.parent / "victim.txt.tmp").exists() and not (out.parent / "victim.txt").exists()
        tokenize(job)  # --overwrite always recovers
        assert files(out) == files(base[1].output)


def test_cli_inspect_on_a_sparse_member_under_a_memory_limit(base):
    out, _ = copy(base, "sparse_member")  # 8 GiB declared and present as holes
    assert_one_line_error(
        run_cli("inspect", str(out), timeout=120), "rgb/shard-000000.tar", "8589934592 bytes, over the limit"
    )


@pytest.mark.slow
def test_cli_show_and_resume_on_hostile_state(base):
    out, _ = copy(base, "sparse_member")
    result = run_cli("show", str(out), "-k", "scene_000001", "-o", str(out.parent / "s.png"), timeout=120)
    assert_one_line_error(result, "rgb/shard-000000.tar", "8589934592 bytes, over the limit")
    out, job = copy(base, "journal_outside")
    result = run_cli(
        "tokenize",
        "-m",
        "rgb,depth",
        "--input",
        job.input,
        "-o",
        str(out),
        "--size",
        "32",
        "--crops",
        "2",
        "--no-progress",
        timeout=180,
    )
    assert_one_line_error(result, "_commit/shard-000000.json", "not a commit journal", "--overwrite")
    assert not (out.parent / "victim.txt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("how", TAMPERINGS)
def test_cli_inspect_show_and_resume_on_each_tampering(base, how):
    out, job = copy(base, how)
    for args in (
        ["inspect", str(out)],
        ["show", str(out), "-k", "scene_000000", "-o", str(out.parent / f"{how}.png")],
        [
            "tokenize",
            "-m",
            "rgb,depth",
            "--input",
            job.input,
            "-o",
            str(out),
            "--size",
            "32",
            "--crops",
            "2",
            "--no-progress",
        ],
    ):
        result = run_cli(*args, timeout=180)
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        assert result.returncode in (0, 2), result.stderr[-2000:]
        if result.returncode == 2:
            assert_one_line_error(result)


def test_pseudo_label_relabels_a_truncated_shard(tmp_path):
    """pseudo-label's markers are checked too: a tar cut short under its stats.json is labelled again."""
    from tokzoo.datasets.scenes import write_scene_shards
    from tokzoo.pipeline.pseudo_label import LabelJob, pseudo_label

    write_scene_shards(tmp_path / "scenes", 4, seed=0, size=32, samples_per_shard=2)
    job = LabelJob(["edges"], str(tmp_path / "scenes"), tmp_path / "labelled", progress=False)
    pseudo_label(job)
    shard = tmp_path / "labelled" / "shard-000001.tar"
    whole = shard.read_bytes()
    shard.write_bytes(whole[: len(whole) // 2])
    summary = pseudo_label(job)
    assert summary.written == 1 and shard.read_bytes() == whole
    (tmp_path / "labelled" / ".pseudo-label" / "shard-000000.stats.json").write_text('{"count": "x"}')
    assert pseudo_label(job).written == 1


@pytest.mark.parametrize("damage", ["{ truncated", '{"step": 3, "rng": "nope", "losses": 5}', "[]"])
def test_train_resume_from_a_damaged_state_json(tmp_path, damage):
    """tokzoo train --resume: a damaged trainer_state.json is one CheckpointError that says where else to resume from."""
    from tokzoo.errors import CheckpointError
    from tokzoo.tokenizers.training.loop import train
    from tokzoo.tokenizers.training.recipe import validate_recipe

    recipe = validate_recipe(
        {
            "name": "tiny_depth",
            "loss": "smooth_l1",
            "batch_size": 2,
            "steps": 2,
            "seed": 0,
            "checkpoint_every": 1,
            "tokenizer": {
                "modality": "depth",
                "model": {"preset": "conv-tiny", "width": 8, "groups": 4},
                "latent_dim": 8,
                "quantizer": {"type": "fsq", "levels": [5, 5, 5]},
                "input_size": [32, 32],
            },
            "data": {"scenes": {"n_train": 4, "n_val": 0, "seed": 3, "size": 32}},
            "optimizer": {"lr": 3e-3},
            "schedule": {"warmup_steps": 1},
        }
    )
    train(recipe, tmp_path / "run", progress=False)
    checkpoint = tmp_path / "run" / "checkpoints" / "step-000001"
    (checkpoint / "trainer_state.json").write_text(damage)
    with pytest.raises(
        CheckpointError, match="trainer_state.json: (unreadable|damaged).*resume from an earlier"
    ) as error:
        train(recipe, tmp_path / "again", resume=checkpoint, progress=False)
    assert "\n" not in str(error.value)
