"""tokzoo train: exact resume, determinism, safetensors + JSON checkpoints, recipes that parse, bad recipes."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file

from tokzoo.errors import CheckpointError, ConfigError
from tokzoo.modalities import get_modality
from tokzoo.tokenizers.training import build_tokenizer, learning_rate, load_recipe, train, validate_recipe
from tokzoo.tokenizers.zoo import zoo_entries
from tokzoo_cli.main import cli

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.yaml"))
# Tokenizers of features computed here (the scene ViT's), trained on pseudo-labelled folders given with --data.
FEATURE_RECIPES = sorted((Path(__file__).parent.parent / "recipes" / "features").glob("*.yaml"))

TINY = {
    "name": "tiny_depth",
    "tokenizer": {
        "modality": "depth",
        "model": {"preset": "conv-tiny", "width": 8, "groups": 4},
        "latent_dim": 8,
        "quantizer": {"type": "fsq", "levels": [5, 5, 5]},
        "input_size": [32, 32],
    },
    "loss": "smooth_l1",
    "data": {"scenes": {"n_train": 8, "n_val": 2, "seed": 3, "size": 40}, "crop": {"scale": [0.5, 1.0], "hflip": 0.5}},
    "optimizer": {"lr": 3e-3, "betas": [0.9, 0.99], "weight_decay": 1e-4},
    "schedule": {"warmup_steps": 2, "min_lr_ratio": 0.1},
    "batch_size": 4,
    "steps": 6,
    "seed": 0,
    "ema": {"decay": 0.9},
    "grad_clip": 1.0,
    "checkpoint_every": 3,
    "log_every": 2,
}


pytestmark = pytest.mark.usefixtures("one_thread")  # CPU runs are bit-reproducible per thread count


def test_resumed_run_follows_the_uninterrupted_loss_curve(tmp_path):
    recipe = validate_recipe(TINY)
    full = train(recipe, tmp_path / "full", progress=False)
    checkpoint = tmp_path / "full" / "checkpoints" / "step-000003"
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        "ema.safetensors",
        "model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ]
    names = {n for n, _ in full.tokenizer.named_parameters()}
    optimizer = load_file(str(checkpoint / "optimizer.safetensors"))  # the run-folder format: by parameter name
    assert optimizer and {k.rsplit(".", 1)[0] for k in optimizer} <= names
    assert json.loads((checkpoint / "trainer_state.json").read_text())["step"] == 3
    log = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6] and all(r["loss"] > 0 and r["lr"] > 0 for r in log)

    resumed = train(recipe, tmp_path / "resumed", resume=checkpoint, progress=False)
    assert len(resumed.losses) == len(full.losses) == 6
    torch.testing.assert_close(torch.tensor(resumed.losses), torch.tensor(full.losses), rtol=1e-6, atol=1e-7)
    assert full.losses[3:] != full.losses[:3]  # the resumed part really trained
    for name, value in full.tokenizer.state_dict().items():
        torch.testing.assert_close(resumed.tokenizer.state_dict()[name], value, rtol=1e-6, atol=1e-7)
    resumed_log = [json.loads(line) for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in resumed_log] == [4, 6]


def test_a_checkpoint_of_the_older_format_is_refused_in_one_line(tmp_path):
    """Checkpoints before the run-folder format (state.json, optimizer by index) cannot be resumed: one line saying so."""
    recipe = validate_recipe({**TINY, "steps": 3})
    train(recipe, tmp_path / "run", progress=False)
    checkpoint = tmp_path / "run" / "checkpoints" / "step-000003"
    (checkpoint / "trainer_state.json").rename(checkpoint / "state.json")  # what an older tokzoo left
    for resume in (checkpoint, tmp_path / "run"):
        with pytest.raises(CheckpointError) as error:
            train(recipe, tmp_path / "again", resume=resume, progress=False)
        message = str(error.value)
        assert "\n" not in message and message.startswith(f"{checkpoint}: a checkpoint of an older tokzoo")
        assert "train again without --resume" in message


def test_same_seed_same_weights_and_provenance(tmp_path):
    recipe = validate_recipe({**TINY, "steps": 3, "checkpoint_every": 0})
    a = train(recipe, tmp_path / "a", progress=False)
    b = train(recipe, tmp_path / "b", progress=False)
    assert a.losses == b.losses
    assert a.tokenizer.content_hash() == b.tokenizer.content_hash()
    config = json.loads((tmp_path / "a" / "tokenizer" / "config.json").read_text())
    assert config["untrained"] is False
    assert config["provenance"]["recipe"] == recipe and config["provenance"]["steps"] == 3
    assert config["provenance"]["seed"] == 0 and config["provenance"]["final_loss"] > 0


def test_init_starts_from_another_tokenizer_at_another_input_size(tmp_path):
    source = train(validate_recipe({**TINY, "steps": 3, "checkpoint_every": 0}), tmp_path / "a", progress=False)
    larger = {**TINY["tokenizer"], "input_size": [48, 48]}
    frozen = {"lr": 0.0, "betas": [0.9, 0.99], "weight_decay": 0.0}  # lr 0: the weights stay the initial ones
    recipe = {**TINY, "tokenizer": larger, "optimizer": frozen, "steps": 2, "checkpoint_every": 0, "ema": None}
    tuned = train(validate_recipe({**recipe, "init": str(source.directory)}), tmp_path / "b", progress=False)
    assert all(torch.equal(tuned.tokenizer.state_dict()[k], v) for k, v in source.tokenizer.state_dict().items())
    assert tuned.tokenizer.config["input_size"] == [48, 48]
    assert tuned.tokenizer.config["provenance"]["init"]["content_hash"] == source.tokenizer.content_hash()
    scratch = train(validate_recipe(recipe), tmp_path / "c", progress=False)
    assert scratch.tokenizer.content_hash() != tuned.tokenizer.content_hash()
    other = {**TINY["tokenizer"], "quantizer": {"type": "fsq", "levels": [8, 5, 5]}}
    with pytest.raises(ConfigError, match="init: .*quantizer"):
        train(validate_recipe({**TINY, "tokenizer": other, "init": str(source.directory)}), tmp_path / "d")


def test_init_grows_a_decoder_that_has_more_blocks(tmp_path):
    source = train(validate_recipe({**TINY, "steps": 3, "checkpoint_every": 0}), tmp_path / "a", progress=False)
    model = {**TINY["tokenizer"]["model"], "decoder_blocks_per_level": [0, 2, 1, 2]}
    frozen = {"lr": 0.0, "betas": [0.9, 0.99], "weight_decay": 0.0}
    recipe = {**TINY, "tokenizer": {**TINY["tokenizer"], "model": model}, "optimizer": frozen, "ema": None}
    grown = train(
        validate_recipe({**recipe, "steps": 1, "checkpoint_every": 0, "init": str(source.directory)}),
        tmp_path / "b",
        progress=False,
    ).tokenizer
    depth = torch.rand(2, 32, 32) * 20 + 0.5
    with torch.no_grad():
        same = grown.decode(source.tokenizer.encode(depth)), source.tokenizer.decode(source.tokenizer.encode(depth))
    assert torch.allclose(torch.as_tensor(same[0]), torch.as_tensor(same[1]), atol=1e-5, equal_nan=True)
    assert sum(p.numel() for p in grown.decoder.parameters()) > sum(
        p.numel() for p in source.tokenizer.decoder.parameters()
    )
    wider = {**TINY["tokenizer"], "model": {**model, "width": 16}}
    with pytest.raises(ConfigError, match="init: .*model"):
        train(validate_recipe({**TINY, "tokenizer": wider, "init": str(source.directory)}), tmp_path / "c")


def test_resume_refuses_a_different_recipe(tmp_path):
    recipe = validate_recipe(TINY)
    train(validate_recipe({**TINY, "steps": 3}), tmp_path / "run", progress=False)
    changed = {**recipe, "seed": 1}
    with pytest.raises(Exception, match="different recipe"):
        train(changed, tmp_path / "other", resume=tmp_path / "run")


def test_schedule_warms_up_then_decays_to_the_floor():
    recipe = validate_recipe({**TINY, "steps": 100, "schedule": {"warmup_steps": 10, "min_lr_ratio": 0.1}})
    lrs = [learning_rate(recipe, s) for s in range(100)]
    assert lrs[0] == pytest.approx(3e-4) and lrs[9] == pytest.approx(3e-3)
    assert all(x >= y for x, y in zip(lrs[9:], lrs[10:]))
    assert learning_rate(recipe, 100) == pytest.approx(3e-4)


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_parses_and_builds_its_tokenizer(path):
    recipe = load_recipe(path)
    assert recipe["name"] == path.stem
    tokenizer = build_tokenizer(recipe, str(path))
    zoo_name = path.stem.removesuffix("_4m")  # recipes/<name>_4m.yaml: zoo tokenizer <name> at 4M's size
    assert tokenizer.modality == zoo_entries()[zoo_name].modality
    assert "quantizer" in path.read_text().split("name:")[0].lower()  # the header comment explains the quantizer


@pytest.mark.parametrize("path", FEATURE_RECIPES, ids=[p.stem for p in FEATURE_RECIPES])
def test_every_feature_recipe_builds_its_tokenizer_and_matches_its_zoo_default(path):
    recipe = load_recipe(path)
    assert recipe["name"] == path.stem and "path" in recipe["data"]
    tokenizer = build_tokenizer(recipe, str(path))
    assert tokenizer.modality in ("dense_features", "global_feature")
    assert "quantizer" in path.read_text().split("name:")[0].lower()
    if path.stem in zoo_entries():  # `load_tokenizer(name, untrained_ok=True)` builds what the recipe trains
        default = get_modality(tokenizer.modality).default_tokenizer(path.stem)
        assert {**recipe["tokenizer"], "loss": recipe["loss"]} == {"modality": tokenizer.modality, **default}


def test_every_learned_zoo_tokenizer_has_a_recipe():
    learned = {name for name, entry in zoo_entries().items() if entry.learned}
    assert learned <= {p.stem for p in RECIPES + FEATURE_RECIPES}
    assert "scene_vit_global" in {p.stem for p in FEATURE_RECIPES}


BAD = {
    "unknown top-level field": (lambda r: r.update(epochs=3), "unknown field(s) ['epochs']"),
    "unknown tokenizer field": (lambda r: r["tokenizer"].update(depth=2), "tokenizer: unknown field(s)"),
    "missing field": (lambda r: r.pop("steps"), "missing field(s) ['steps']"),
    "lr not a number": (lambda r: r["optimizer"].update(lr="fast"), "optimizer.lr"),
    "two data sources": (lambda r: r["data"].update(path="/data"), "exactly one source"),
    "crop scale reversed": (lambda r: r["data"]["crop"].update(scale=[0.9, 0.5]), "data.crop.scale"),
    "wrong loss": (lambda r: r.update(loss="mse"), "trains with its modality loss 'smooth_l1'"),
    "unknown preset": (lambda r: r["tokenizer"]["model"].update(preset="conv-huge"), "unknown model preset"),
    "bad quantizer": (lambda r: r["tokenizer"]["quantizer"].update(levels=[2, 2]), "FSQ levels"),
    "unknown bundled sample": (lambda r: r["data"].update(samples={"names": ["nope"]}), "data.samples.names"),
    "samples repeat 0": (lambda r: r["data"].update(samples={"repeat": 0}), "data.samples.repeat"),
    "init not a name": (lambda r: r.update(init=3), "init: must be a zoo name or a tokenizer folder"),
    "ema with a VQ codebook": (
        lambda r: (r.update(ema={"decay": 0.99}), r["tokenizer"].update(quantizer={"type": "vq", "codebook_size": 64})),
        "use ema with fsq or lfq quantizers only",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_recipe_is_one_line_config_error(tmp_path, case):
    mutate, expected = BAD[case]
    recipe = json.loads(json.dumps(TINY))
    mutate(recipe)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(ConfigError) as info:
        build_tokenizer(load_recipe(path), str(path))
    message = str(info.value)
    assert expected in message and str(path) in message and "\n" not in message


def test_cli_reports_bad_recipe_on_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ntokenizer: [1, 2\n")
    result = CliRunner().invoke(cli, ["train", "--recipe", str(path)])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "not valid YAML" in result.output
    assert result.output.count("\n") == 1


def test_cli_trains_and_saves_a_loadable_tokenizer(tmp_path):
    import tokzoo

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, "steps": 2, "checkpoint_every": 0}))
    result = CliRunner().invoke(
        cli, ["train", "--recipe", str(path), "--out", str(tmp_path / "run"), "-q", "--no-eval"]
    )
    assert result.exit_code == 0, result.output
    tokenizer = tokzoo.load_tokenizer(tmp_path / "run" / "tokenizer")
    assert tokenizer.name == "tiny_depth" and tokenizer.config["untrained"] is False
    assert sorted(p.name for p in (tmp_path / "run" / "tokenizer").iterdir()) == ["config.json", "model.safetensors"]


def test_cli_resumes_a_run_from_its_latest_checkpoint(tmp_path):
    """The README's `tokzoo train ... --resume runs/depth`: the log goes on where the checkpoint left it."""
    path, run = tmp_path / "tiny.yaml", tmp_path / "run"
    path.write_text(yaml.safe_dump(TINY))
    first = CliRunner().invoke(
        cli, ["train", "--recipe", str(path), "--out", str(run), "--steps", "3", "-q", "--no-eval"]
    )
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(
        cli, ["train", "--recipe", str(path), "--out", str(run), "--resume", str(run), "-q", "--no-eval"]
    )
    assert again.exit_code == 0, again.output
    assert again.output.startswith("tiny_depth: 6 steps")
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [2, 3, 4, 6]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000003", "step-000006"]


def test_bundled_real_samples_join_the_training_split_only():
    from tokzoo.tokenizers.training.data import TrainingData

    recipe = validate_recipe({**TINY, "data": {**TINY["data"], "samples": {"names": ["motorcycle"], "repeat": 3}}})
    data = TrainingData(recipe, build_tokenizer(recipe).codec)
    assert len(data.train) == 8 + 3 and len(data.val) == 2
    assert data.train[-1].shape == (500, 741)  # the Middlebury motorcycle depth, cropped per batch
    assert data.batch(0).shape == (4, 2, 32, 32)
