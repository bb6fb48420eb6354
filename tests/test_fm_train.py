"""Training the 4M-style model: exact resume, accumulation and 2-process DDP (gloo) equal one process,
checkpoints are safetensors + JSON, and bad input gives one-line errors."""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from tokzoo.fm.recipe import load_recipe, parse_recipe
from tokzoo.fm.train import train
from tokzoo_cli.main import cli

MODALITIES = ["rgb", "depth", "normals", "semseg"]


def recipe_dict(**train_fields):
    return {
        "data": {"modalities": ["rgb", "depth", "semseg"]},
        "model": {"preset": "fm-tiny"},
        "masking": {
            "input_tokens": 32,
            "target_tokens": 32,
            "mixture": [
                {"name": "rgb->all", "input_alpha": {"rgb": 1000}, "target_alpha": 0.5},
                {"name": "all->all", "input_alpha": 0.5, "target_alpha": 0.5},
            ],
        },
        "train": {"steps": 4, "batch_size": 8, "lr": 1.0e-3, "warmup_steps": 1, "num_workers": 0, **train_fields},
    }


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    out = tmp_path_factory.mktemp("fm") / "tokens"
    result = CliRunner().invoke(
        cli,
        [
            "tokenize",
            "-m",
            ",".join(MODALITIES),
            "--scenes",
            "16",
            "--scene-size",
            "64",
            "--samples-per-shard",
            "8",
            "--no-progress",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def log_records(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def log_losses(run):
    """The log without what depends on the machine or the process (speed, bytes this process read)."""
    return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "data_bytes")} for r in log_records(run)]


def test_resume_reproduces_the_loss_curve_exactly(tokens, tmp_path, one_thread):
    recipe = parse_recipe(recipe_dict(checkpoint_every=2))
    train(recipe, tokens, tmp_path / "straight", progress=False)
    train(recipe, tokens, tmp_path / "resumed", steps=2, progress=False)
    assert len(log_losses(tmp_path / "resumed")) == 2
    train(recipe, tokens, tmp_path / "resumed", progress=False)
    assert log_losses(tmp_path / "resumed") == log_losses(tmp_path / "straight")  # the same floats, step by step
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(tmp_path / "resumed" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    optimizer = load_file(tmp_path / "straight" / "optimizer.safetensors")
    assert float(optimizer["mask_token.step"]) == 4 and "decoder.0.mlp.down.weight.exp_avg_sq" in optimizer
    state = json.loads((tmp_path / "straight" / "trainer_state.json").read_text())
    assert state["step"] == 4 and state["position"] == {"consumed": [32]}  # 4 steps of 8 samples from the one dataset


def test_resume_is_exact_with_a_mixture_a_prefetch_worker_and_held_out_scoring(tokens, tmp_path, one_thread):
    fields = dict(num_workers=1, checkpoint_every=2, eval_every=2, eval_samples=8, steps=6)
    raw = recipe_dict(**fields)
    raw["data"]["weights"] = [3, 1]  # two datasets (the same folder twice: two streams), as the breadth runs mix
    recipe, data = parse_recipe(raw), [tokens, tokens]
    train(recipe, data, tmp_path / "straight", progress=False, eval_data=tokens)
    train(recipe, data, tmp_path / "resumed", steps=2, progress=False, eval_data=tokens)
    train(recipe, data, tmp_path / "resumed", progress=False, eval_data=tokens)
    straight = log_losses(tmp_path / "straight")
    assert straight == log_losses(tmp_path / "resumed") and "eval" in straight[1]
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(tmp_path / "resumed" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    state = json.loads((tmp_path / "resumed" / "trainer_state.json").read_text())
    assert sum(state["position"]["consumed"]) == 6 * 8 and min(state["position"]["consumed"]) > 0


def test_gradient_accumulation_equals_the_whole_batch(tokens, tmp_path, one_thread):
    train(parse_recipe(recipe_dict(steps=2)), tokens, tmp_path / "whole", progress=False)
    train(parse_recipe(recipe_dict(steps=2, micro_batch_size=2)), tokens, tmp_path / "accumulated", progress=False)
    a, b = (
        load_file(tmp_path / "whole" / "model.safetensors"),
        load_file(tmp_path / "accumulated" / "model.safetensors"),
    )
    # atol 1e-5 = 1% of one step's update (lr 1e-3). Adam turns float-rounding noise in a near-zero gradient
    # element into an update of up to lr per step, so a handful of elements (data-dependent: 0-1 of 265k here)
    # may differ by up to 2 steps x lr; a real accumulation error would move most elements
    beyond = sum(int((~torch.isclose(a[k], b[k], rtol=1e-4, atol=1e-5)).sum()) for k in a)
    assert beyond <= 1e-4 * sum(v.numel() for v in a.values()), beyond
    assert all(torch.allclose(a[k], b[k], rtol=0, atol=2 * 1e-3) for k in a)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # computed differently (4 micro-batches), same result


@pytest.mark.slow  # two fresh torch processes: ~25-40 s on the shared 2-core machine
def test_two_process_ddp_equals_one_process(tokens, tmp_path, one_thread):
    """torchrun, 2 CPU processes with gloo, each half of the global batch == 1 process with all of it."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps(recipe_dict(steps=3)))  # JSON is YAML
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys, torch
        torch.set_num_threads(1)
        from tokzoo.fm.recipe import load_recipe
        from tokzoo.fm.train import train
        train(load_recipe({str(recipe)!r}), {str(tokens)!r}, sys.argv[1], progress=False)
    """)
    )
    train(parse_recipe(recipe_dict(steps=3)), tokens, tmp_path / "one", progress=False)
    launched = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert launched.returncode == 0, launched.stderr[-2000:]
    a, b = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5) for k in a)  # tolerance: see the accumulation test
    one, two = log_losses(tmp_path / "one"), log_losses(tmp_path / "two")
    assert [r["step"] for r in two] == [1, 2, 3]
    assert all(abs(x["loss"] - y["loss"]) < 1e-5 for x, y in zip(one, two))
    # each process read only its half of every global batch: rank 0 logs its own bytes, half of one process's
    one_bytes, two_bytes = (
        [r["data_bytes"] for r in log_records(tmp_path / "one")],
        [r["data_bytes"] for r in log_records(tmp_path / "two")],
    )
    assert [2 * b for b in two_bytes] == one_bytes and one_bytes[-1] > 0


def write_recipe(path, **changes):
    raw = recipe_dict(steps=1)
    raw["data"].update(changes)
    path.write_text(json.dumps(raw))
    return path


def test_bad_input_gives_one_line_errors(tokens, tmp_path):
    runner = CliRunner()

    def fails(args, message):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output

    captions = write_recipe(tmp_path / "captions.yaml", modalities=["rgb", "captions"])
    fails(
        ["fm", "train", "-r", str(captions), "--data", str(tokens), "-o", str(tmp_path / "x")],
        "no modality 'captions' in this token dataset (it has: depth, normals, rgb, semseg)",
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    manifest = json.loads((tokens / "manifest.json").read_text())
    for entry in manifest["modalities"].values():
        entry["samples"] = {"count": 3, "ok": 0, "failed": 3}
    (empty / "manifest.json").write_text(json.dumps(manifest))
    fails(
        ["fm", "train", "-r", str(write_recipe(tmp_path / "ok.yaml")), "--data", str(empty), "-o", str(tmp_path / "x")],
        "holds no samples: the dataset is empty",
    )
    fails(
        ["fm", "train", "-r", str(tmp_path / "missing.yaml"), "--data", str(tokens), "-o", str(tmp_path / "x")],
        "missing.yaml: no such file, nor a shipped recipe",
    )

    run = tmp_path / "run"
    assert (
        runner.invoke(
            cli,
            ["fm", "train", "-r", str(tmp_path / "ok.yaml"), "--data", str(tokens), "-o", str(run), "--no-progress"],
        ).exit_code
        == 0
    )
    other = tmp_path / "other-vocab"
    shutil.copytree(tokens, other, ignore=shutil.ignore_patterns("_source"))
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["modalities"]["depth"]["vocab_size"] = 1000
    (other / "manifest.json").write_text(json.dumps(manifest))
    fails(
        [
            "fm",
            "generate",
            "-m",
            str(run),
            "--data",
            str(other),
            "--key",
            "scene_000000",
            "--from",
            "rgb",
            "--to",
            "depth",
            "-o",
            str(tmp_path / "g.png"),
        ],
        "modality 'depth' has vocabulary 1000 and token grid [8, 8], the model was trained on vocabulary 125",
    )
    fails(["fm", "train", "-r", str(tmp_path / "ok.yaml"), "--data", str(other), "-o", str(run)], "has vocabulary 1000")
    fails(["fm", "train", "-r", str(captions), "--data", str(tokens), "-o", str(run)], "no modality 'captions'")
    write_recipe(tmp_path / "changed.yaml", modalities=["rgb", "depth"])
    fails(
        ["fm", "train", "-r", str(tmp_path / "changed.yaml"), "--data", str(tokens), "-o", str(run)],
        "holds a run of another recipe",
    )
    state = json.loads((run / "trainer_state.json").read_text())
    (run / "trainer_state.json").write_text(json.dumps({**state, "position": {"epoch": 0, "batch": 1}}))
    fails(
        ["fm", "train", "-r", str(tmp_path / "ok.yaml"), "--data", str(tokens), "-o", str(run)],
        "written by an older trainer",
    )
    fails(
        [
            "fm",
            "generate",
            "-m",
            str(tmp_path / "nowhere"),
            "--data",
            str(tokens),
            "--key",
            "k",
            "--from",
            "rgb",
            "--to",
            "depth",
            "-o",
            str(tmp_path / "g.png"),
        ],
        "not a trained model folder",
    )


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).resolve().parents[1] / "recipes" / "fm").glob("*.yaml")), ids=lambda p: p.name
)
def test_shipped_fm_recipes_parse_and_train_on_the_scene_modalities(path):
    recipe = load_recipe(path)
    if path.name.startswith("breadth"):  # benchmarks/fm_breadth.py's pair: same model, budgets and schedule
        twin = load_recipe(path.with_name("breadth-4.yaml" if path.name == "breadth-10.yaml" else "breadth-10.yaml"))
        assert (recipe.model, recipe.masking.budget_ranges(), recipe.train) == (
            twin.model,
            twin.masking.budget_ranges(),
            twin.train,
        )
        assert len(recipe.modalities) in (4, 11) and set(MODALITIES) <= set(recipe.modalities)
        return
    if path.name == "directions_finetune.yaml":  # breadth-10 plus rgb -> captions and captions -> semseg alone
        wide = load_recipe(path.with_name("breadth-10.yaml"))
        assert (recipe.modalities, recipe.model, recipe.masking.budget_ranges()) == (
            wide.modalities,
            wide.model,
            wide.masking.budget_ranges(),
        )
        extra = {c.name for c in recipe.masking.mixture} - {c.name for c in wide.masking.mixture}
        assert extra == {"rgb->captions", "captions->semseg"} and recipe.train.lr < wide.train.lr
        return
    if path.name == "steering.yaml":  # benchmarks/fm_steering.py: rgb from a palette or metadata, with guidance
        assert list(recipe.modalities) == ["rgb", "palette", "metadata"]
        keep = {c.name: c.keep for c in recipe.masking.mixture}  # conditions whole, as generation gives them
        assert keep["palette->rgb"] == {"palette": "all"} and keep["metadata->rgb"] == {"metadata": "all"}
        return
    if path.name == "steering_finetune.yaml":  # the same mixture, from a trained run's weights (train.init)
        steering = load_recipe(path.with_name("steering.yaml"))
        assert (recipe.modalities, recipe.model, recipe.masking) == (
            steering.modalities,
            steering.model,
            steering.masking,
        )
        assert recipe.train.steps < steering.train.steps and recipe.train.lr < steering.train.lr
        return
    assert set(recipe.modalities) <= set(MODALITIES) and recipe.train.steps >= 1
    highest_target = recipe.masking.budget_ranges()[1][1]
    assert highest_target <= 64 * len(recipe.modalities)  # the scenes' modalities hold 64 tokens each


def test_train_init_starts_from_another_runs_weights(tokens, tmp_path, one_thread):
    """``train.init: RUN``: a run on more modalities starts from RUN's trunk and the shared modalities' embeddings
    (4M's fine-tuning); the new modality's embedding and modality row start as initialised."""
    from tokzoo.errors import ConfigError
    from tokzoo.fm.checkpoint import initialise_from, load_model
    from tokzoo.fm.model import FourM
    from tokzoo.tokens.spec import specs_from_manifest

    base = tmp_path / "base"
    train(parse_recipe(recipe_dict(steps=2), "base"), str(tokens), str(base))
    source = load_model(base)
    wide = FourM(specs_from_manifest(tokens, ["rgb", "depth", "semseg", "normals"]), source.config)
    before = {k: v.clone() for k, v in wide.state_dict().items()}
    copied, fresh = initialise_from(wide, source)
    theirs, mine = source.state_dict(), wide.state_dict()
    assert "embeddings.normals.weight" in fresh and "embeddings.rgb.weight" in copied
    assert all(torch.equal(mine[k], theirs[k]) for k in copied if k != "modality_embedding")
    assert torch.equal(mine["modality_embedding"][:3], theirs["modality_embedding"])  # rows by modality name
    assert torch.equal(mine["modality_embedding"][3], before["modality_embedding"][3])
    assert all(torch.equal(mine[k], before[k]) for k in fresh)

    recipe = recipe_dict(steps=1, lr=1e-12, weight_decay=0.0, init=str(base))  # ~no step: it keeps its start
    recipe["data"]["modalities"] = ["rgb", "depth", "semseg", "normals"]
    run = tmp_path / "wide"
    train(parse_recipe(recipe, "wide"), str(tokens), str(run))
    trained = load_model(run).state_dict()
    assert all(torch.allclose(trained[k], theirs[k], atol=1e-8) for k in copied if k != "modality_embedding")
    with pytest.raises(ConfigError, match="train.init"):
        parse_recipe(recipe_dict(init=""), "bad")
    narrow = recipe_dict(steps=1, init=str(base))
    narrow["model"]["dim"] = 32  # fm-tiny is wider: nothing of the trunk fits, so init would silently do nothing
    with pytest.raises(ConfigError, match="shares no trunk weight"):
        train(parse_recipe(narrow, "narrow"), str(tokens), str(tmp_path / "narrow"))
