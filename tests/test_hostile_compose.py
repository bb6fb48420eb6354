"""Issue 25, numbers and tampered files of composition: hostile recipes (a huge LM vocabulary aborted inside the
Rust tokenizers library), component folders whose config.json declares gigabytes or nests without end, whose
safetensors header lies about offsets, dtypes or shapes or holds no tensors, and folders of pickled weights only:
one typed line naming the file or field, nothing pickled is ever loaded."""

import json
import math
import resource
import time

import pytest
import torch
import yaml
from hostile_inputs import assert_one_line_error, run_cli
from hostile_newer import (
    PICKLE_PAYLOAD,
    big_int_json,
    deep_json,
    edit_json,
    edit_tensors,
    fifo_in_place_of,
    lie_about_offsets,
    lie_about_shape,
    pickle_with_payload,
    poison,
    relabel,
    rewrite_header,
)

from tokzoo.compose.language import CausalLM
from tokzoo.compose.recipe import resolve_recipe
from tokzoo.compose.vision import VisionTransformer
from tokzoo.errors import CheckpointError, ConfigError

GLUE = {
    "compose": {
        "method": "gats",
        "components": {"rgb": {"tokenizer": "rgb"}, "lm": {"causal_lm": "lm"}},
        "settings": {"layers": [{"rgb": 1, "lm": 1}], "dim": 32},
    }
}
LM = {"compose": {"pretrain_lm": {}}}


def glue(**settings):
    return {"compose": {**GLUE["compose"], "settings": {**GLUE["compose"]["settings"], **settings}}}


def lm(**fields):
    return {"compose": {"pretrain_lm": fields}}


RECIPES = {  # name -> (recipe, what the one line says)
    "steps_1e9": ({**GLUE, "steps": 10**9}, "steps 1000000000 is refused: expected an integer in [0, 10000000]"),
    "batch_1e7": ({**GLUE, "batch_size": 10**7}, "batch_size 10000000 is refused"),
    "log_every_1e12": ({**GLUE, "log_every": 10**12}, "log_every"),
    "threads_1e6": ({**GLUE, "threads": 10**6}, "threads 1000000 is refused"),
    "seed_negative": ({**GLUE, "seed": -1}, "seed -1 is refused"),
    "n_train_1e9": ({**GLUE, "data": {"scene_text": {"n_train": 10**9}}}, "data.scene_text.n_train 1000000000"),
    "n_val_zero": ({**GLUE, "data": {"scene_text": {"n_val": 0}}}, "data.scene_text.n_val 0 is refused"),
    "scene_size_1e6": ({**GLUE, "data": {"scene_text": {"size": 10**6}}}, "data.scene_text.size 1000000"),
    "scenes_times_size": ({**GLUE, "data": {"scene_text": {"n_train": 900_000, "size": 1024}}}, "held in memory"),
    "caption_fraction_nan": ({**GLUE, "data": {"caption_fraction": math.nan}}, "data.caption_fraction nan"),
    "caption_fraction_2": ({**GLUE, "data": {"caption_fraction": 2}}, "data.caption_fraction 2"),
    "lr_inf": ({**GLUE, "optimizer": {"lr": math.inf}}, "optimizer.lr inf is refused"),
    "lr_1e30": ({**GLUE, "optimizer": {"lr": 1e30}}, "optimizer.lr 1e+30 is refused: expected a number in [1e-12, 10.0]"),
    "lr_nan": ({**GLUE, "optimizer": {"lr": math.nan}}, "optimizer.lr nan is refused"),
    "component_lr_nan": ({**GLUE, "optimizer": {"component_lr": math.nan}}, "optimizer.component_lr nan"),
    "warmup_1e12": ({**GLUE, "optimizer": {"warmup_steps": 10**12}}, "optimizer.warmup_steps"),
    "min_lr_ratio_5": ({**GLUE, "optimizer": {"min_lr_ratio": 5}}, "optimizer.min_lr_ratio 5 is refused"),
    "grad_clip_inf": ({**GLUE, "optimizer": {"grad_clip": math.inf}}, "optimizer.grad_clip inf"),
    "weight_decay_text": ({**GLUE, "optimizer": {"weight_decay": "lots"}}, "optimizer.weight_decay must be a number"),
    "settings_dim_1e6": (glue(dim=10**6), "compose.settings.dim 1000000 is refused"),
    "settings_heads_zero": (glue(heads=0), "compose.settings.heads 0 is refused"),
    "settings_mlp_ratio_inf": (glue(mlp_ratio=math.inf), "compose.settings.mlp_ratio inf"),
    "settings_window_1e12": (glue(window=10**12), "compose.settings.window"),
    "settings_10k_layers": (glue(layers=[{"rgb": 1, "lm": 1}] * 10_000), "lists 10000 layers, over the limit of 1024"),
    "settings_layer_1e12": (glue(layers=[{"rgb": 10**12, "lm": 1}]), "compose.settings.layers 1000000000000"),
    "settings_prompt_1e9": (glue(prompt_tokens=10**9), "compose.settings.prompt_tokens"),
    "settings_a_list": ({"compose": {**GLUE["compose"], "settings": [1, 2]}}, "compose.settings must be a mapping"),
    "components_a_list": ({"compose": {**GLUE["compose"], "components": ["lm"]}}, "compose.components must be a mapping"),
    "component_size_1e6": ({"compose": {**GLUE["compose"], "components": {"v": {"vision_model": "v", "size": 10**6},
                                                                           "lm": {"causal_lm": "lm"}}}},
                           "compose.components.v.size 1000000 is refused"),
    "train_components_text": ({"compose": {**GLUE["compose"], "train_components": "yes"}}, "train_components true or false"),
    "lm_vocab_1e9": (lm(vocab_size=10**9), "compose.pretrain_lm.vocab_size 1000000000 is refused: expected an integer in [64, 65536]"),
    "lm_vocab_5000_digits": (lm(vocab_size=10**5000), "compose.pretrain_lm.vocab_size <an integer of about 5001 digits>"),
    "lm_hidden_1e6": (lm(hidden_size=10**6), "compose.pretrain_lm.hidden_size 1000000"),
    "lm_100k_layers": (lm(layers=100_000), "compose.pretrain_lm.layers 100000 is refused"),
    "lm_negative_layers": (lm(layers=-2), "compose.pretrain_lm.layers -2 is refused"),
    "lm_heads_not_dividing": (lm(hidden_size=128, heads=3), "hidden_size 128 is not divisible by heads 3"),
    "lm_positions_1e9": (lm(max_positions=10**9), "compose.pretrain_lm.max_positions"),
    "lm_dropout_1": (lm(dropout=1.0), "compose.pretrain_lm.dropout 1.0 is refused"),
    "lm_arch_unknown": (lm(arch="rwkv"), "arch 'rwkv' is not one of gpt2, llama"),
    "lm_a_list": ({"compose": {"pretrain_lm": [1]}}, "compose.pretrain_lm must be a mapping"),
    "lm_lr_inf": ({**LM, "optimizer": {"lr": math.inf}}, "optimizer.lr inf is refused"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_hostile_compose_recipe_refused_before_anything_is_built(name):
    raw, fragment = RECIPES[name]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ConfigError) as error:
        resolve_recipe(raw, "c.yaml")
    message = str(error.value)
    assert "\n" not in message and message.startswith("c.yaml") and fragment in message, message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # kB


def test_cli_refuses_a_huge_lm_vocabulary_that_aborted_the_rust_bpe_trainer(tmp_path):
    """vocab_size 10^9 reached tokenizers' BpeTrainer, which aborts the process (exit 134): now one line, exit 2."""
    path = tmp_path / "lm.yaml"
    path.write_text(yaml.safe_dump({"steps": 1, **lm(vocab_size=10**9)}))
    result = run_cli("compose", "train", "--recipe", str(path), "--out", str(tmp_path / "lm"), timeout=120)
    assert_one_line_error(result, "lm.yaml: compose.pretrain_lm.vocab_size 1000000000 is refused")
    assert not (tmp_path / "lm").exists()


# -- component folders -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A tiny GPT-2 and a tiny ViT saved as transformers folders (config.json + model.safetensors)."""
    from transformers import GPT2Config, GPT2LMHeadModel, ViTConfig, ViTModel

    root = tmp_path_factory.mktemp("components")
    torch.manual_seed(0)
    GPT2LMHeadModel(
        GPT2Config(vocab_size=60, n_embd=32, n_layer=2, n_head=4, n_positions=32, bos_token_id=1, eos_token_id=1)
    ).save_pretrained(root / "lm", safe_serialization=True)
    ViTModel(
        ViTConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            image_size=32,
            patch_size=8,
        ),
        add_pooling_layer=False,
    ).save_pretrained(root / "vit", safe_serialization=True)
    return root


def lm_config(**fields):
    return lambda f: edit_json(f / "config.json", lambda c: c.update(fields))


def only_pickled_weights(folder):
    (folder / "model.safetensors").unlink()
    pickle_with_payload(folder / "pytorch_model.bin", folder / PICKLE_PAYLOAD)


LM_FOLDERS = {  # name -> (damage to the LM folder, what the one line says)
    "100k_layers": (lm_config(n_layer=100_000), "config.json: n_layer 100000 is refused: expected an integer in [1, 256]"),
    "vocab_1e9": (lm_config(vocab_size=10**9), "config.json: vocab_size 1000000000 is refused"),
    "width_1e6": (lm_config(n_embd=10**6), "config.json: n_embd 1000000 is refused"),
    "positions_1e9": (lm_config(n_positions=10**9), "config.json: n_positions 1000000000"),
    "heads_zero": (lm_config(n_head=0), "config.json: n_head 0 is refused"),
    "negative_layers": (lm_config(n_layer=-4), "config.json: n_layer -4 is refused"),
    "width_text": (lm_config(n_embd="wide"), "config.json: n_embd 'wide' is refused"),
    "nested_vocab": (lm_config(text_config={"vocab_size": 10**9}), "text_config.vocab_size 1000000000"),
    "many_parameters": (lm_config(n_embd=16384, n_layer=256, n_head=128), "parameters is refused: over the limit"),
    "config_deep": (lambda f: (f / "config.json").write_text(deep_json()), "config.json: JSON nests too deeply"),
    "config_5000_digits": (lambda f: (f / "config.json").write_text(big_int_json("n_layer")), "integer of 5000 digits"),
    "config_17_mib": (lambda f: (f / "config.json").write_text('{"pad": "' + "x" * (17 << 20) + '"}'),
                      "over the limit of 16777216"),
    "config_a_list": (lambda f: (f / "config.json").write_text("[1, 2]"), "config.json: not a JSON object"),
    "config_fifo": (lambda f: fifo_in_place_of(f / "config.json"), "not a transformers model folder (no config.json)"),
    "only_pickled_bin": (only_pickled_weights, "no model.safetensors (pickled weights are not loaded) (pytorch_model.bin"),
    "weights_fifo": (lambda f: fifo_in_place_of(f / "model.safetensors"), "no model.safetensors"),
    "weights_no_tensors": (lambda f: edit_tensors(f / "model.safetensors", lambda t: t.clear()),
                           "model.safetensors: holds no tensors (the model would run with random weights)"),
    "weights_missing_tensor": (lambda f: edit_tensors(f / "model.safetensors", lambda t: t.pop(sorted(t)[0])),
                               "model.safetensors: missing tensor(s)"),
    "weights_relabelled_i32": (lambda f: relabel(f / "model.safetensors", "I32", "transformer.wte.weight"),
                               "tensor 'transformer.wte.weight' has dtype I32, expected a floating-point dtype"),
    "weights_offsets_lie": (lambda f: lie_about_offsets(f / "model.safetensors"), "not a readable safetensors file"),
    "weights_shape_lie": (lambda f: lie_about_shape(f / "model.safetensors"), "model.safetensors"),
    "weights_header_length_lie": (lambda f: (f / "model.safetensors").write_bytes(
        (1 << 60).to_bytes(8, "little") + (f / "model.safetensors").read_bytes()[8:]), "not a readable safetensors file"),
    "weights_truncated": (lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:2000]),
                          "not a readable safetensors file"),
    "weights_nan": (lambda f: edit_tensors(f / "model.safetensors", poison), "holds NaN or infinite values"),
    "weights_extra_dtype_lie": (lambda f: rewrite_header(f / "model.safetensors", lambda h: h["transformer.wpe.weight"].update(
        dtype="F64")), "not a readable safetensors file"),
    "vocab_json_garbage": (lambda f: (f / "vocab.json").write_text('{"model": 7}'), "vocab.json: not a tokenizers vocabulary"),
    "vocab_json_fifo": (lambda f: fifo_in_place_of(f / "vocab.json"), "vocab.json: not a regular file (FIFO)"),
}  # fmt: skip


def load_lm(folder):
    from tokzoo.compose.train import lm_tokenizer

    return lm_tokenizer(CausalLM.from_pretrained(folder))


@pytest.mark.parametrize("name", sorted(LM_FOLDERS))
def test_hostile_lm_folder_gives_one_typed_line(folders, tmp_path, name):
    import shutil

    damage, fragment = LM_FOLDERS[name]
    folder = tmp_path / "lm"
    shutil.copytree(folders / "lm", folder)
    damage(folder)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises((CheckpointError, ConfigError)) as error:
        load_lm(folder)
    message = str(error.value)
    assert "\n" not in message and str(folder) in message and fragment in message, message
    assert time.perf_counter() - start < 60
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300_000  # kB
    assert not (folder / PICKLE_PAYLOAD).exists()  # nothing was unpickled


def test_an_intact_lm_folder_loads(folders):
    lm = CausalLM.from_pretrained(folders / "lm")
    assert lm.n_layers == 2 and lm.vocab_size == 60


VISION_FOLDERS = {
    "image_size_1e6": (lm_config(image_size=10**6), "config.json: image_size 1000000 is refused"),
    "patch_size_zero": (lm_config(patch_size=0), "config.json: patch_size 0 is refused"),
    "100k_layers": (lm_config(num_hidden_layers=100_000), "config.json: num_hidden_layers 100000 is refused"),
    "channels_1e6": (lm_config(num_channels=10**6), "config.json: num_channels 1000000"),
    "preprocessor_fifo": (lambda f: fifo_in_place_of(f / "preprocessor_config.json"), "not a regular file (FIFO)"),
    "preprocessor_deep": (lambda f: (f / "preprocessor_config.json").write_text(deep_json()), "nests too deeply"),
    "weights_relabelled": (lambda f: relabel(f / "model.safetensors", "I32", "embeddings.patch_embeddings.projection.weight"),
                           "has dtype I32, expected a floating-point dtype"),
    "weights_all_nan": (lambda f: edit_tensors(f / "model.safetensors", lambda t: poison(t, every=True)),
                        "holds NaN or infinite values"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(VISION_FOLDERS))
def test_hostile_vision_folder_gives_one_typed_line(folders, tmp_path, name):
    import shutil

    damage, fragment = VISION_FOLDERS[name]
    folder = tmp_path / "vit"
    shutil.copytree(folders / "vit", folder)
    damage(folder)
    with pytest.raises((CheckpointError, ConfigError)) as error:
        VisionTransformer.from_pretrained(folder)
    message = str(error.value)
    assert "\n" not in message and str(folder) in message and fragment in message, message


@pytest.mark.slow
def test_cli_compose_with_an_lm_folder_of_100k_layers_and_one_of_pickles(folders, tmp_path):
    import shutil

    for name in ("100k_layers", "only_pickled_bin"):
        folder = tmp_path / name
        shutil.copytree(folders / "lm", folder)
        LM_FOLDERS[name][0](folder)
        recipe = tmp_path / f"{name}.yaml"
        recipe.write_text(
            yaml.safe_dump(
                {"steps": 1, "compose": {"method": "none", "components": {"lm": {"causal_lm": str(folder)}}}}
            )
        )
        result = run_cli(
            "compose", "train", "--recipe", str(recipe), "--out", str(tmp_path / f"out_{name}"), timeout=120
        )
        assert_one_line_error(result, str(folder), LM_FOLDERS[name][1])
        assert not (folder / PICKLE_PAYLOAD).exists()


def test_pickled_weights_beside_no_config_are_never_touched(tmp_path):
    pickle_with_payload(tmp_path / "pytorch_model.bin", tmp_path / PICKLE_PAYLOAD)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    with pytest.raises(CheckpointError, match=r"no model.safetensors \(pickled weights are not loaded\)"):
        CausalLM.from_pretrained(tmp_path)
    assert not (tmp_path / PICKLE_PAYLOAD).exists()


# -- saved compositions (compose.json + glue.safetensors) ---------------------------------------------------------
@pytest.fixture(scope="module")
def saved(folders, tmp_path_factory):
    from tokzoo.compose.composition import Composition, build_component

    specs = {"lm": {"causal_lm": str(folders / "lm")}, "rgb": {"tokenizer": "rgb"}}
    components = {name: build_component(name, spec) for name, spec in specs.items()}
    torch.manual_seed(0)
    composition = Composition(components, "gats", {"layers": [{"rgb": 1, "lm": 1}], "dim": 16}, False, specs)
    return composition.save(tmp_path_factory.mktemp("glue") / "glue")


SAVED = {  # name -> (damage, what the one line says)
    "settings_dim_1e6": (
        lambda d: edit_json(d / "compose.json", lambda c: c["settings"].update(dim=10**6)),
        "compose.json: compose.settings.dim 1000000 is refused",
    ),
    "settings_layers_1e4": (
        lambda d: edit_json(d / "compose.json", lambda c: c["settings"].update(layers=[{"rgb": 1, "lm": 1}] * 10_000)),
        "lists 10000 layers, over the limit of 1024",
    ),
    "components_a_list": (
        lambda d: edit_json(d / "compose.json", lambda c: c.update(components=["lm"])),
        "compose.json: 'components' must map names",
    ),
    "component_without_hash": (
        lambda d: edit_json(d / "compose.json", lambda c: c["components"]["lm"].pop("sha256")),
        "compose.json: 'components' must map names",
    ),
    "method_a_number": (
        lambda d: edit_json(d / "compose.json", lambda c: c.update(method=7)),
        "compose.method must be",
    ),
    "glue_nan": (lambda d: edit_tensors(d / "glue.safetensors", poison), "glue.safetensors: tensor"),
    "glue_relabelled": (lambda d: relabel(d / "glue.safetensors"), "expected float32"),
    "glue_offsets_lie": (lambda d: lie_about_offsets(d / "glue.safetensors"), "not a readable safetensors file"),
}


@pytest.mark.parametrize("name", sorted(SAVED))
def test_tampered_composition_checkpoint_gives_one_typed_line(saved, tmp_path, name):
    import shutil

    from tokzoo.compose.composition import load_composition

    damage, fragment = SAVED[name]
    folder = tmp_path / "glue"
    shutil.copytree(saved, folder)
    damage(folder)
    with pytest.raises(CheckpointError) as error:
        load_composition(folder)
    message = str(error.value)
    assert "\n" not in message and str(folder) in message and fragment in message, message


def test_an_intact_composition_checkpoint_loads(saved):
    from tokzoo.compose.composition import load_composition

    assert load_composition(saved).method == "gats"


def test_train_vocab_refuses_a_vocabulary_that_aborts_the_rust_trainer():
    """tokenizers' BpeTrainer at vocab_size 10^9 allocated 71 GB and aborted the process (exit 134)."""
    from tokzoo.tokenizers.text import train_vocab

    with pytest.raises(
        ConfigError,
        match=r"train_vocab: vocab_size 1000000000 is refused: expected an integer in "
        r"\[64, 65536\]",
    ):
        train_vocab(["a red cube"], vocab_size=10**9)
