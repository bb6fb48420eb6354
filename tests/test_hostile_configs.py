"""Class 7 of issue 10: hostile tokenizer configs, recipes and size options are refused up front, in one line
naming the limit, before any allocation (no multi-GB allocation from a 1 kB config)."""

import json
import resource
import time
from pathlib import Path

import pytest
import yaml
from hostile_inputs import assert_one_line_error, run_cli

from tokzoo.errors import CheckpointError, ConfigError, InputError
from tokzoo.tokenizers.training.recipe import validate_recipe
from tokzoo.tokenizers.zoo import load_tokenizer

BASE = json.loads(
    (Path(__file__).parents[1] / "tokzoo" / "tokenizers" / "weights" / "depth" / "config.json").read_text()
)
MODEL = BASE["model"]

CONFIGS = {  # name -> (changes to the shipped depth config, what the refusal says)
    "100k_blocks": ({"model": {**MODEL, "blocks_per_level": [0, 1, 1, 100_000]}}, "model.blocks_per_level 100000"),
    "billion_level_fsq": ({"quantizer": {"type": "fsq", "levels": [1_000_000_000]}}, "in [2, 1048576]"),
    "overflowing_levels": ({"quantizer": {"type": "fsq", "levels": [1024] * 12}}, "over the limit of 1048576"),
    "too_many_levels": ({"quantizer": {"type": "fsq", "levels": [5] * 40}}, "a list of 1 to 16 integers"),
    "huge_vq": ({"quantizer": {"type": "vq", "codebook_size": 1 << 40}}, "quantizer.codebook_size"),
    "deep_residual": (
        {"quantizer": {"type": "residual_fsq", "levels": [5, 5], "num_quantizers": 10**6}},
        "quantizer.num_quantizers",
    ),
    "huge_width": ({"model": {**MODEL, "width": 10**9}}, "model.width 1000000000"),
    "wide_and_big_input": ({"model": {**MODEL, "width": 4096}, "input_size": [4096, 4096]}, "activations per sample"),
    "huge_input": ({"input_size": [10**6, 10**6]}, "input_size"),
    "huge_latent": ({"latent_dim": 10**7}, "latent_dim 10000000"),
    "many_parameters": (
        {"model": {**MODEL, "width": 2048, "channel_mults": [1, 2, 4, 8], "blocks_per_level": 8}},
        "parameters is refused: over the limit",
    ),
    "deep_vit": (
        {"model": {"family": "vit", "patch_size": 16, "width": 96, "depth": 100_000, "heads": 3, "mlp_ratio": 4.0}},
        "model.depth 100000",
    ),
    "huge_mlp": ({"model": {"family": "mlp", "hidden": 10**9, "depth": 2, "n_tokens": 8}}, "model.hidden"),
    "text_width": ({"model": {**MODEL, "width": "wide"}}, "model.width 'wide'"),
    "float_levels": ({"quantizer": {"type": "fsq", "levels": [5.5, 5]}}, "quantizer.levels 5.5"),
    "levels_text": ({"quantizer": {"type": "fsq", "levels": "8,5,5"}}, "quantizer.levels '8,5,5'"),
    "model_list": ({"model": [1, 2]}, "'model' must be a mapping"),
    "quantizer_number": ({"quantizer": 7}, "quantizer 7"),
    "bool_latent": ({"latent_dim": True}, "latent_dim True"),
}


def hostile_config(folder: Path, name: str) -> Path:
    changes, _ = CONFIGS[name]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({**BASE, **changes}))
    return folder


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_hostile_config_refused_before_allocation(tmp_path, name):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as error:
        load_tokenizer(hostile_config(tmp_path / name, name))
    assert time.perf_counter() - start < 5
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) < 200_000  # kB: nothing big allocated
    message = str(error.value)
    assert "\n" not in message and "config.json" in message and CONFIGS[name][1] in message, message


RECIPE = {
    "name": "depth",
    "loss": "smooth_l1",
    "data": {"scenes": {"n_train": 8, "n_val": 2, "seed": 0, "size": 64}},
    "tokenizer": {
        "modality": "depth",
        "model": {"preset": "conv-tiny"},
        "latent_dim": 8,
        "quantizer": {"type": "fsq", "levels": [5, 5, 5]},
        "input_size": [64, 64],
    },
    "optimizer": {"lr": 1e-3},
    "schedule": {"warmup_steps": 1},
    "batch_size": 4,
    "steps": 2,
    "seed": 0,
}
RECIPES = {
    "huge_batch": ({"batch_size": 10**7}, "batch_size 10000000"),
    "batch_times_resolution": ({"batch_size": 4096, "resolution": [2048, 2048]}, "pixels per step"),
    "huge_resolution": ({"resolution": [10**6, 10**6]}, "resolution"),
    "billion_scenes": ({"data": {"scenes": {"n_train": 10**9, "n_val": 0, "seed": 0, "size": 256}}}, "held in memory"),
    "huge_scenes": ({"data": {"scenes": {"n_train": 8, "n_val": 0, "seed": 0, "size": 10**6}}}, "data.scenes.size"),
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_hostile_recipe_refused(name):
    changes, fragment = RECIPES[name]
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[")) as error:
        validate_recipe({**RECIPE, **changes}, "r.yaml")
    assert "\n" not in str(error.value) and str(error.value).startswith("r.yaml: ")


def test_cli_refuses_a_hostile_config(tmp_path):
    """Through the CLI under RLIMIT_AS 6 GiB: a 100k-block config (building it would take minutes and gigabytes)."""
    depth = tmp_path / "d.npy"
    import numpy as np

    np.save(depth, np.ones((64, 64), np.float32))
    result = run_cli(
        "encode",
        "-t",
        str(hostile_config(tmp_path / "blocks", "100k_blocks")),
        str(depth),
        "-o",
        str(tmp_path / "t.npy"),
        timeout=120,
    )
    assert_one_line_error(result, "config.json", "model.blocks_per_level 100000", "[0, 32]")


@pytest.mark.slow
def test_cli_train_refuses_a_hostile_recipe(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {**RECIPE, "tokenizer": {**RECIPE["tokenizer"], "quantizer": {"type": "fsq", "levels": [10**9]}}}
        )
    )
    result = run_cli("train", "--recipe", str(recipe), "--out", str(tmp_path / "run"), "-q", timeout=120)
    assert_one_line_error(result, "tokenizer config: quantizer.levels 1000000000", "[2, 1048576]")


@pytest.mark.slow
def test_cli_size_options_refused(tmp_path):
    for args, fragment in (
        (["tokenize", "-m", "depth", "--size", "100000", "-o", str(tmp_path / "a")], "--size '100000'"),
        (["tokenize", "-m", "depth", "--crops", "1000000", "-o", str(tmp_path / "b")], "--crops"),
        (
            ["tokenize", "-m", "depth", "--crops", "1000", "--size", "4096", "-o", str(tmp_path / "c")],
            "over the limit of 8589934592",
        ),
        (
            [
                "decode",
                "-t",
                "depth",
                "--input-size",
                "99999x99999",
                str(tmp_path / "t.npy"),
                "-o",
                str(tmp_path / "x.npy"),
            ],
            "",
        ),
    ):
        result = run_cli(*args, timeout=120)
        assert_one_line_error(result, fragment)
        assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_weights_with_an_extra_8_gib_tensor_are_refused_from_the_header(tmp_path):
    """model.safetensors declaring an extra 8 GiB tensor (present as holes): refused by name before any data is read."""
    import shutil
    import struct

    folder = tmp_path / "tok"
    shutil.copytree(Path(__file__).parents[1] / "tokzoo" / "tokenizers" / "weights" / "depth", folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    length = struct.unpack("<Q", data[:8])[0]
    header, body = json.loads(data[8 : 8 + length]), data[8 + length :]
    header["evil"] = {"dtype": "F32", "shape": [1 << 31], "data_offsets": [len(body), len(body) + (8 << 30)]}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(weights, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + body)
        f.truncate(8 + len(text) + len(body) + (8 << 30))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match=r"model.safetensors: unexpected tensor\(s\) \['evil'\]"):
        load_tokenizer(folder)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000


def test_recipe_and_config_files_that_block_or_explode(tmp_path):
    """A FIFO recipe or config.json would block a read forever; a YAML alias bomb expands a 1 kB file to 10^9 values."""
    import os

    from tokzoo.tokenizers.training.recipe import load_recipe

    os.mkfifo(tmp_path / "fifo.yaml")
    with pytest.raises(ConfigError, match="fifo.yaml: not a regular file \\(FIFO\\)"):
        load_recipe(tmp_path / "fifo.yaml")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    (tmp_path / "bomb.yaml").write_text(bomb)
    with pytest.raises(ConfigError, match="expands to over 100000 values"):
        load_recipe(tmp_path / "bomb.yaml")
    folder = tmp_path / "tok"
    folder.mkdir()
    os.mkfifo(folder / "config.json")
    with pytest.raises(CheckpointError, match="config.json: not a regular file \\(FIFO\\)"):
        load_tokenizer(folder)


def test_every_recipe_and_run_reader_refuses_fifos_bombs_and_garbage(tmp_path):
    """The multimodal trainer's and the composition's recipes and run folders go through the same guarded readers."""
    import os

    from tokzoo.compose.composition import read_compose_config
    from tokzoo.compose.recipe import is_compose_recipe_file, read_recipe
    from tokzoo.fm.checkpoint import read_run_config
    from tokzoo.fm.recipe import load_recipe as load_fm_recipe
    from tokzoo.tokens.spec import dataset_manifest

    os.mkfifo(tmp_path / "fifo.yaml")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(8)
    )
    (tmp_path / "bomb.yaml").write_text(bomb)
    for read in (load_fm_recipe, read_recipe):
        with pytest.raises(ConfigError, match="fifo.yaml: not a regular file \\(FIFO\\)"):
            read(tmp_path / "fifo.yaml")
        with pytest.raises(ConfigError, match="expands to over 100000 values"):
            read(tmp_path / "bomb.yaml")
    assert not is_compose_recipe_file(tmp_path / "fifo.yaml")
    for name in ("run_fifo", "run_garbage"):
        (tmp_path / name).mkdir()
    for config in ("config.json", "compose.json"):  # the fm run's and the composition's
        os.mkfifo(tmp_path / "run_fifo" / config)
        (tmp_path / "run_garbage" / config).write_bytes(b'{"format": "tokzoo-fm", ' + b"[" * 100_000)
    for read in (read_run_config, read_compose_config):
        with pytest.raises(CheckpointError, match="run_fifo.*(not a regular file|not a trained model folder|missing)"):
            read(tmp_path / "run_fifo")  # refused, never opened: a FIFO would block the read
        with pytest.raises(
            CheckpointError, match="(config|compose).json: (not valid UTF-8 JSON|JSON nests too deeply)"
        ):
            read(tmp_path / "run_garbage")
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / "manifest.json").write_text('{"modalities": [1, 2]}')
    with pytest.raises(InputError, match="manifest.json: not a tokzoo manifest"):
        dataset_manifest(tmp_path / "tokens")
