"""Issue 25, numbers and tampered files of ``tokzoo fm``: hostile recipes are refused before anything is built,
tampered run folders (weights, optimizer, trainer state, config, log) and token datasets give one typed line naming
the file or field, training stops on a non-finite loss, and generation refuses what would hang or mislead."""

import json
import math
import resource
import shutil
import time

import pytest
import torch
import yaml
from click.testing import CliRunner
from hostile_inputs import assert_one_line_error, run_cli, tamper_dataset
from hostile_newer import (
    deep_json,
    edit_json,
    edit_tensors,
    fifo_in_place_of,
    lie_about_offsets,
    lie_about_shape,
    poison,
    relabel,
)

from tokzoo.errors import CheckpointError, ConfigError, InputError, InvalidValueError, TokzooError
from tokzoo.fm.checkpoint import load_model, read_state
from tokzoo.fm.evaluate import example_rows
from tokzoo.fm.generate import DecodeSettings
from tokzoo.fm.recipe import load_recipe, parse_recipe
from tokzoo.fm.train import train
from tokzoo.tokens.spec import specs_from_manifest
from tokzoo_cli.main import cli


def recipe(**changes) -> dict:
    base = {
        "data": {"modalities": ["rgb", "depth"]},
        "model": {"preset": "fm-tiny"},
        "masking": {
            "input_tokens": 8,
            "target_tokens": 8,
            "mixture": [{"name": "all", "input_alpha": 0.5, "target_alpha": 0.5}],
        },
        "train": {"steps": 2, "batch_size": 4, "lr": 1.0e-3, "warmup_steps": 1, "num_workers": 0},
    }
    for path, value in changes.items():
        section, _, field = path.partition("__")
        base[section] = {**base[section], field: value}
    return base


MIXTURE = [{"name": "all", "input_alpha": 0.5, "target_alpha": 0.5}]
RECIPES = {  # name -> (recipe changes, what the one line says)
    "lr_inf": ({"train__lr": math.inf}, "train.lr inf is refused"),
    "lr_nan": ({"train__lr": math.nan}, "train.lr nan is refused"),
    "lr_1e30": ({"train__lr": 1e30}, "train.lr 1e+30 is refused: expected a number in [1e-12, 10.0]"),
    "lr_zero": ({"train__lr": 0}, "train.lr 0 is refused"),
    "lr_text": ({"train__lr": "fast"}, "train.lr must be a number"),
    "steps_1e9": ({"train__steps": 10**9}, "train.steps 1000000000 is refused: expected an integer in [1, 10000000]"),
    "steps_5000_digits": ({"train__steps": 10**5000}, "train.steps <an integer of about 5001 digits> is refused"),
    "steps_float": ({"train__steps": 1e9}, "train.steps must be an integer"),
    "batch_1e7": ({"train__batch_size": 10**7}, "train.batch_size 10000000 is refused"),
    "micro_batch_1e7": ({"train__micro_batch_size": 10**7}, "train.micro_batch_size"),
    "warmup_1e12": ({"train__warmup_steps": 10**12}, "train.warmup_steps"),
    "seed_2e70": ({"train__seed": 2**70}, "train.seed"),
    "workers_1e6": ({"train__num_workers": 10**6}, "train.num_workers 1000000"),
    "checkpoint_every_1e12": ({"train__checkpoint_every": 10**12}, "train.checkpoint_every"),
    "grad_clip_inf": ({"train__grad_clip": math.inf}, "train.grad_clip inf"),
    "weight_decay_nan": ({"train__weight_decay": math.nan}, "train.weight_decay nan"),
    "negative_layers": ({"model__encoder_layers": -3}, "encoder_layers -3 is refused: expected an integer in [1, 256]"),
    "zero_layers": ({"model__decoder_layers": 0}, "decoder_layers 0 is refused"),
    "100k_layers": ({"model__decoder_layers": 100_000}, "decoder_layers 100000 is refused"),
    "dim_1e6": ({"model__dim": 10**6}, "dim 1000000 is refused: expected an integer in [4, 8192]"),
    "dim_float": ({"model__dim": 64.5}, "dim 64.5 is refused"),
    "heads_zero": ({"model__heads": 0}, "heads 0 is refused"),
    "heads_text": ({"model__heads": "two"}, "heads 'two' is refused"),
    "mlp_ratio_inf": ({"model__mlp_ratio": math.inf}, "mlp_ratio inf is refused"),
    "dim_not_divisible": ({"model__dim": 66}, "width 66 must be divisible by 4"),
    "preset_a_mapping": ({"model__preset": {"dim": 64}}, "unknown model preset {'dim': 64}"),  # found by fuzz.py
    "max_items_1e9": ({"data__max_items": 10**9}, "data.max_items 1000000000"),
    "input_tokens_1e9": ({"masking__input_tokens": 10**9}, "masking.input_tokens 1000000000"),
    "target_tokens_1e9": ({"masking__target_tokens": 10**9}, "masking.target_tokens"),
    "data_weight_nan": ({"data__weights": [math.nan]}, "data.weights nan"),
    "alpha_inf": ({"masking__mixture": [{**MIXTURE[0], "input_alpha": math.inf}]}, "input_alpha inf"),
    "alpha_1e300": ({"masking__mixture": [{**MIXTURE[0], "target_alpha": {"rgb": 1e300}}]}, "target_alpha.rgb"),
    "weight_nan": ({"masking__mixture": [{**MIXTURE[0], "weight": math.nan}]}, "weight nan"),
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_hostile_fm_recipe_refused_before_anything_is_built(name):
    changes, fragment = RECIPES[name]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ConfigError) as error:
        parse_recipe(recipe(**changes), "r.yaml")
    message = str(error.value)
    assert "\n" not in message and message.startswith("r.yaml: ") and fragment in message, message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # kB


def test_recipe_file_with_a_5000_digit_integer(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe()).replace("steps: 2", "steps: " + "9" * 5000))
    with pytest.raises(ConfigError, match=r"r.yaml: a number is refused \(Exceeds the limit \(4300 digits\)"):
        load_recipe(path)


# -- run folders -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A 2-modality token dataset (8 scenes at 32 px) and an fm-tiny run of a 3-step recipe stopped after 2."""
    root = tmp_path_factory.mktemp("hostile_fm")
    result = CliRunner().invoke(
        cli,
        [
            "tokenize",
            "-m",
            "rgb,depth",
            "--scenes",
            "8",
            "--scene-size",
            "32",
            "--samples-per-shard",
            "8",
            "--no-progress",
            "-o",
            str(root / "tokens"),
        ],
    )
    assert result.exit_code == 0, result.output
    train(parse_recipe(recipe(train__steps=3)), root / "tokens", root / "run", steps=2, progress=False)
    return root


def copy_run(made, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(made / "run", run)
    return run


def nan_moment(tensors):
    name = sorted(k for k in tensors if k.endswith(".exp_avg"))[0]
    tensors[name] = torch.full_like(tensors[name], math.nan)


def negative_moment(tensors):
    name = sorted(k for k in tensors if k.endswith(".exp_avg_sq"))[0]
    tensors[name] = -torch.ones_like(tensors[name])


def state(value):
    return lambda run: (run / "trainer_state.json").write_text(json.dumps(value))


def config(change):
    return lambda run: edit_json(run / "config.json", change)


def modality(field, value):
    return config(lambda c: c["modalities"][0].update({field: value}))


RUNS = {  # name -> (damage to the run folder, what reads it: load or resume, error type, fragment)
    "weights_truncated": (lambda r: (r / "model.safetensors").write_bytes((r / "model.safetensors").read_bytes()[:900]),
                          "load", CheckpointError, "model.safetensors: corrupt or truncated"),
    "weights_empty_file": (lambda r: (r / "model.safetensors").write_bytes(b""), "load", CheckpointError,
                           "model.safetensors: corrupt or truncated"),
    "weights_relabelled_i32": (lambda r: relabel(r / "model.safetensors"), "load", CheckpointError,
                               "has dtype int32, expected float32"),
    "weights_offsets_lie": (lambda r: lie_about_offsets(r / "model.safetensors"), "load", CheckpointError,
                            "model.safetensors: corrupt or truncated"),
    "weights_shape_lie": (lambda r: lie_about_shape(r / "model.safetensors"), "load", CheckpointError, "has shape"),
    "weights_one_nan": (lambda r: edit_tensors(r / "model.safetensors", poison), "load", CheckpointError,
                        "holds NaN or infinite values"),
    "weights_all_nan": (lambda r: edit_tensors(r / "model.safetensors", lambda t: poison(t, every=True)), "load",
                        CheckpointError, "holds NaN or infinite values"),
    "weights_inf": (lambda r: edit_tensors(r / "model.safetensors", lambda t: poison(t, math.inf)), "load",
                    CheckpointError, "holds NaN or infinite values"),
    "weights_no_tensors": (lambda r: edit_tensors(r / "model.safetensors", lambda t: t.clear() or t.update(x=torch.zeros(1))),
                           "load", CheckpointError, "missing tensor(s)"),
    "weights_fifo": (lambda r: fifo_in_place_of(r / "model.safetensors"), "load", CheckpointError, "missing"),
    "config_dim_1e6": (config(lambda c: c["model"].update(dim=10**6)), "load", CheckpointError,
                       "config.json: model: dim 1000000 is refused"),
    "config_negative_layers": (config(lambda c: c["model"].update(encoder_layers=-1)), "load", CheckpointError,
                               "encoder_layers -1 is refused"),
    "config_100k_layers": (config(lambda c: c["model"].update(decoder_layers=100_000)), "load", CheckpointError,
                           "decoder_layers 100000 is refused"),
    "config_heads_not_dividing": (config(lambda c: c["model"].update(heads=3)), "load", CheckpointError,
                                  "must be divisible by 4 and by heads (3)"),
    "config_vocab_1e12": (modality("vocab_size", 10**12), "load", CheckpointError, "vocab_size 1000000000000 is refused"),
    "config_grid_huge": (modality("grid", [100_000, 100_000]), "load", CheckpointError, "grid 100000 is refused"),
    "config_grid_text": (modality("grid", "8x8"), "load", CheckpointError, "grid"),
    "config_kind_unknown": (modality("kind", "video"), "load", CheckpointError, "kind 'video' is not one of"),
    "config_unknown_field": (modality("evil", 1), "load", CheckpointError, "bad model or modalities field"),
    "config_modalities_ints": (config(lambda c: c.update(modalities=[1, 2])), "load", CheckpointError,
                               "bad model or modalities field"),
    "config_many_parameters": (config(lambda c: c["model"].update(dim=8192, encoder_layers=256)), "load",
                               CheckpointError, "parameters is refused: over the limit of 1,000,000,000"),
    "config_deep": (lambda r: (r / "config.json").write_text(deep_json()), "load", CheckpointError, "nests too deeply"),
    "config_fifo": (lambda r: fifo_in_place_of(r / "config.json"), "load", CheckpointError, "not a trained model folder"),
    "state_empty_list": (state([]), "resume", CheckpointError, "trainer_state.json: not a trainer state"),
    "state_text": (state("step 2"), "resume", CheckpointError, "not a trainer state"),
    "state_negative_step": (state({"step": -5, "position": {"consumed": [64]}}), "resume", CheckpointError,
                            "step -5 is refused"),
    "state_huge_position": (state({"step": 2, "position": {"consumed": [10**15]}}), "resume", CheckpointError,
                            "position.consumed"),
    "state_float_step": (state({"step": 2.5, "position": {"consumed": [64]}}), "resume", CheckpointError,
                         "step 2.5 is refused"),
    "state_older_trainer": (state({"step": 2, "position": {"epoch": 0, "batch": 2}}), "resume", CheckpointError,
                            "written by an older trainer"),
    "state_deep": (lambda r: (r / "trainer_state.json").write_text(deep_json()), "resume", CheckpointError,
                   "nests too deeply"),
    "optimizer_nan_moments": (lambda r: edit_tensors(r / "optimizer.safetensors", nan_moment), "resume",
                              CheckpointError, "optimizer.safetensors: tensor"),
    "optimizer_negative_moments": (lambda r: edit_tensors(r / "optimizer.safetensors", negative_moment), "resume",
                                   CheckpointError, "out of range (negative second moment or step)"),
    "optimizer_relabelled": (lambda r: relabel(r / "optimizer.safetensors", "I32",
                                               "context_proj.weight.exp_avg"), "resume", CheckpointError,
                             "has dtype int32, expected float32"),
    "optimizer_truncated": (lambda r: (r / "optimizer.safetensors").write_bytes(b"\x08" + bytes(20)), "resume",
                            CheckpointError, "optimizer.safetensors: corrupt or truncated"),
    "log_garbage": (lambda r: (r / "log.jsonl").write_text('{"step": 1}\n[1, 2]\n'), "resume", CheckpointError,
                    "log.jsonl: a line is not a log record"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(RUNS))
def test_tampered_fm_run_gives_one_typed_line(made, tmp_path, name):
    damage, stage, error_type, fragment = RUNS[name]
    run = copy_run(made, tmp_path)
    damage(run)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(error_type) as error:
        if stage == "load":
            load_model(run)
        else:
            train(parse_recipe(recipe(train__steps=3)), made / "tokens", run, progress=False)
    message = str(error.value)
    assert "\n" not in message and str(run) in message and fragment in message, message
    assert time.perf_counter() - start < 60
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300_000  # kB: nothing declared was allocated


def test_a_valid_state_still_resumes(made, tmp_path):
    run = copy_run(made, tmp_path)
    assert read_state(run) == {"step": 2, "position": {"consumed": [8]}}  # 2 steps of 4 samples
    record = train(parse_recipe(recipe(train__steps=3)), made / "tokens", run, progress=False)
    assert record["step"] == 3 and math.isfinite(record["loss"])


# -- token datasets ----------------------------------------------------------------------------------------------
def manifest_entry(field, value):
    return lambda m: m["modalities"]["depth"].update({field: value})


MANIFESTS = {
    "vocab_1e12": (manifest_entry("vocab_size", 10**12), "vocab_size 1000000000000 is refused"),
    "token_shape_1e9": (manifest_entry("token_shape", [10**9]), "is refused"),
    "token_shape_missing": (lambda m: m["modalities"]["depth"].pop("token_shape"), "field 'token_shape' missing"),
    "vocab_text": (manifest_entry("vocab_size", "many"), "field 'vocab_size' has the wrong type"),
    "entry_a_list": (lambda m: m["modalities"].update(depth=[1, 2]), "modality 'depth' is not an object"),
    "size_huge": (manifest_entry("size", [10**6, 10**6]), "size 1000000 is refused"),
}


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_hostile_manifest_refused_before_a_model_is_built(made, tmp_path, name):
    change, fragment = MANIFESTS[name]
    tokens = tmp_path / "tokens"
    shutil.copytree(made / "tokens", tokens)
    edit_json(tokens / "manifest.json", change)
    with pytest.raises(InputError) as error:
        specs_from_manifest(tokens, ["rgb", "depth"])
    assert "\n" not in str(error.value) and "manifest.json" in str(error.value) and fragment in str(error.value)


def test_token_ids_outside_the_vocabulary_stop_training(made, tmp_path):
    tokens = tmp_path / "tokens"
    shutil.copytree(made / "tokens", tokens)
    tamper_dataset(tokens, "ids_out_of_range")
    with pytest.raises(InvalidValueError, match="rgb/shard-000000.tar.*token ids .* outside the"):
        train(parse_recipe(recipe()), tokens, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_run_and_data_of_other_modalities_or_vocabularies(made, tmp_path):
    run = copy_run(made, tmp_path)
    with pytest.raises(InputError, match="no modality 'normals' in this token dataset"):
        train(parse_recipe(recipe(data__modalities=["rgb", "normals"])), made / "tokens", tmp_path / "other")
    tokens = tmp_path / "tokens"
    shutil.copytree(made / "tokens", tokens)
    edit_json(tokens / "manifest.json", lambda m: m["modalities"]["depth"].update(vocab_size=126))
    with pytest.raises(
        ConfigError, match="modality 'depth' has vocabulary 126 .* the model was trained on vocabulary 125"
    ):
        example_rows(load_model(run), tokens, ["scene_000000"], ["rgb"], ["depth"], DecodeSettings(steps=1))


GENERATE = {  # name -> (sources, targets, settings, fragment)
    "from_rgb_to_rgb": (["rgb"], ["rgb"], DecodeSettings(), "--to rgb: also given with --from"),
    "steps_1e9": (["rgb"], ["depth"], DecodeSettings(steps=10**9), "--steps 1000000000 is refused"),
    "temperature_nan": (["rgb"], ["depth"], DecodeSettings(temperature=math.nan), "--temperature nan is refused"),
    "temperature_inf": (["rgb"], ["depth"], DecodeSettings(temperature=math.inf), "--temperature inf is refused"),
    "seed_1e30": (["rgb"], ["depth"], DecodeSettings(seed=10**30), "--seed"),
    "unknown_modality": (["rgb"], ["normals"], DecodeSettings(), "modality 'normals' is not one this model knows"),
}


@pytest.mark.parametrize("name", sorted(GENERATE))
def test_generation_refuses_what_would_hang_or_mislead(made, name):
    sources, targets, settings, fragment = GENERATE[name]
    start = time.perf_counter()
    with pytest.raises(ConfigError) as error:
        example_rows(load_model(made / "run"), made / "tokens", ["scene_000000"], sources, targets, settings)
    assert fragment in str(error.value) and "\n" not in str(error.value)
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize("what", ["weights", "loss"])
def test_training_that_diverges_stops_and_saves_nothing_non_finite(made, tmp_path, monkeypatch, what):
    """A step that leaves an infinite weight (checked before each checkpoint) or gives a NaN loss (checked every
    step) ends the run in one line; the folder keeps no non-finite model."""
    import tokzoo.fm.train as fm_train

    original = fm_train.train_step

    def exploding(model, optimizer, batch, cfg, step, **kwargs):
        result = original(model, optimizer, batch, cfg, step, **kwargs)
        if step == 1 and what == "weights":
            with torch.no_grad():
                next(model.parameters()).fill_(math.inf)
        if step == 1 and what == "loss":
            result["losses"]["depth"] = math.nan
        return result

    monkeypatch.setattr(fm_train, "train_step", exploding)
    with pytest.raises(ConfigError, match=r"run: training diverged at step 2 .* lower train.lr"):
        train(
            parse_recipe(recipe(train__steps=3, train__checkpoint_every=1)),
            made / "tokens",
            tmp_path / "run",
            progress=False,
        )
    load_model(tmp_path / "run")  # the step-1 checkpoint, finite
    assert json.loads((tmp_path / "run" / "trainer_state.json").read_text())["step"] == 1


def test_every_refusal_is_a_typed_error():
    assert all(issubclass(e, TokzooError) for _, _, e, _ in RUNS.values())


# -- through the CLI, under RLIMIT_AS -----------------------------------------------------------------------------
def test_cli_fm_train_refuses_an_infinite_lr(made, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe(train__lr=1e30)))
    result = run_cli(
        "fm",
        "train",
        "--recipe",
        str(path),
        "--data",
        str(made / "tokens"),
        "--out",
        str(tmp_path / "o"),
        "--no-progress",
        timeout=120,
    )
    assert_one_line_error(result, "r.yaml: train.lr 1e+30 is refused")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_cli_fm_generate_refuses_a_nan_model_and_a_billion_steps(made, tmp_path):
    run = copy_run(made, tmp_path)
    common = ["--data", str(made / "tokens"), "--key", "scene_000000", "-o", str(tmp_path / "g.png")]
    result = run_cli(
        "fm",
        "generate",
        "--model",
        str(run),
        "--from",
        "rgb",
        "--to",
        "depth",
        "--steps",
        "1000000000",
        *common,
        timeout=120,
    )
    assert_one_line_error(result, "--steps 1000000000 is refused: expected an integer in [1, 4096]")
    edit_tensors(run / "model.safetensors", lambda t: poison(t, every=True))
    result = run_cli("fm", "generate", "--model", str(run), "--from", "rgb", "--to", "depth", *common, timeout=120)
    assert_one_line_error(result, "model.safetensors: tensor", "holds NaN or infinite values")
    assert not (tmp_path / "g.png").exists()


@pytest.mark.slow
def test_cli_fm_train_resume_of_a_config_declaring_a_huge_model(made, tmp_path):
    run = copy_run(made, tmp_path)
    edit_json(run / "config.json", lambda c: c["modalities"][0].update(vocab_size=10**9))
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe(train__steps=3)))
    result = run_cli(
        "fm",
        "train",
        "--recipe",
        str(path),
        "--data",
        str(made / "tokens"),
        "--out",
        str(run),
        "--no-progress",
        timeout=120,
    )
    assert_one_line_error(result, "config.json", "vocab_size 1000000000 is refused")
