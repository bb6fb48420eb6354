"""GATS, eP-ALM and MiT on tiny components: zero-initialised glue is the plain LM, causality, parameter splits,
training leaves frozen weights bit-identical, glue checkpoints round-trip and check their components' hashes."""

import json

import numpy as np
import pytest
import torch
from test_compose_components import tiny_lm

from tokzoo.compose import CausalLM, Composition, TokenizerEncoder, load_composition, resolve_recipe
from tokzoo.compose.train import run_recipe
from tokzoo.datasets.scenes import generate_scene
from tokzoo.errors import CheckpointError, ConfigError
from tokzoo.tokenizers.learned import LearnedTokenizer

SETTINGS = {
    "gats": {"layers": [{"rgb": 5, "lm": 1}, {"rgb": 8, "lm": 2}], "dim": 32, "heads": 4},
    "epalm": {"vision_layers": [6, 8], "inject_layers": [2]},
    "mit": {"vision_layer": 8, "layers": [1, 2]},
}


def components():
    torch.manual_seed(0)
    tokenizer = LearnedTokenizer.from_defaults("rgb", model={"preset": "conv-tiny"}, input_size=[32, 32])
    return {"rgb": TokenizerEncoder(tokenizer, name="rgb"), "lm": CausalLM(tiny_lm("gpt2"), name="lm")}


def inputs(batch=2, length=7):
    g = torch.Generator().manual_seed(1)
    return {
        "rgb": torch.rand(batch, 3, 32, 32, generator=g) * 2 - 1,
        "lm": torch.randint(2, 60, (batch, length), generator=g),
    }


@pytest.mark.parametrize("method", ["gats", "mit"])
def test_untrained_glue_is_the_frozen_lm(method):
    comp = Composition(components(), method, SETTINGS[method])
    x = inputs()
    with torch.no_grad():
        assert torch.allclose(comp(x, torch.tensor([3, 3])), comp.lm.logits(x["lm"]), atol=1e-6)


@pytest.mark.parametrize("method", ["gats", "epalm", "mit"])
def test_no_position_sees_later_text(method):
    comp = Composition(components(), method, SETTINGS[method])
    for p in comp.glue.parameters():  # make every path non-trivial
        torch.nn.init.normal_(p, std=0.2) if p.dim() > 1 else torch.nn.init.normal_(p, std=0.5)
    x = inputs()
    changed = {**x, "lm": x["lm"].clone()}
    changed["lm"][:, 4:] = 7
    prompt = torch.tensor([3, 3])
    with torch.no_grad():
        a, b = comp(x, prompt), comp(changed, prompt)
        assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6)
        assert not torch.allclose(a[:, 4:], b[:, 4:])
        other_image = {**x, "rgb": -x["rgb"]}
        assert not torch.allclose(comp(other_image, prompt)[:, 2:], a[:, 2:])  # the answer depends on the image


def test_parameter_split_and_frozen_components():
    split = {m: Composition(components(), m, SETTINGS[m]).split() for m in SETTINGS}
    for m, s in split.items():
        assert s["parts"]["lm"]["trainable"] == s["parts"]["rgb"]["trainable"] == 0
        assert s["trainable"] == s["parts"]["glue"]["trainable"] > 0
    epalm = Composition(components(), "epalm", SETTINGS["epalm"])
    assert (
        split["epalm"]["trainable"]
        == sum(p.numel() for p in epalm.glue.projection.parameters()) + epalm.glue.prompt.numel()
    )
    full = Composition(components(), "gats", SETTINGS["gats"], train_components=True).split()
    assert full["frozen"] == 0 and full["trainable"] == full["total"]
    assert "trainable" in Composition(components(), "mit", SETTINGS["mit"]).describe_split().splitlines()[-1]


def test_bad_settings_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="rgb layer 99 outside 1..9"):
        Composition(components(), "gats", {"layers": [{"rgb": 99, "lm": 1}]})
    with pytest.raises(ConfigError, match="unknown method 'lora'"):
        Composition(components(), "lora", {})
    with pytest.raises(ConfigError, match="different widths"):
        Composition(components(), "epalm", {"vision_layers": [3, 8]})
    with pytest.raises(ConfigError, match="settings"):
        Composition(components(), "mit", {"vision_layers": 8})
    with pytest.raises(ConfigError, match="unknown key 'stepz'"):
        resolve_recipe({"stepz": 3, "compose": {"components": {"lm": {"causal_lm": "x"}}}})


@pytest.fixture(scope="module")
def text_lm(tmp_path_factory):
    """The text-LM recipe at toy size: a 2-block GPT-2 with its own 300-id BPE, 3 steps on 8 scenes of 32 px."""
    out = tmp_path_factory.mktemp("compose") / "text_lm"
    recipe = resolve_recipe(
        {
            "steps": 3,
            "batch_size": 4,
            "log_every": 1,
            "threads": 1,
            "data": {"scene_text": {"n_train": 8, "n_val": 4, "size": 32}},
            "compose": {"pretrain_lm": {"vocab_size": 300, "hidden_size": 32, "layers": 2, "heads": 4}},
        }
    )
    metrics = run_recipe(recipe, out, log=lambda *_: None)
    assert (out / "model.safetensors").is_file() and (out / "vocab.json").is_file()
    assert metrics["parameters"] > 0 and metrics["text_cross_entropy"] > 0
    return out


def glue_recipe(method: str, lm_dir, train_components=False, steps=3) -> dict:
    return resolve_recipe(
        {
            "seed": 0,
            "steps": steps,
            "batch_size": 4,
            "log_every": 1,
            "threads": 1,
            "data": {"scene_text": {"n_train": 8, "n_val": 4, "size": 32}},
            "compose": {
                "method": method,
                "train_components": train_components,
                "components": {"rgb": {"tokenizer": "rgb"}, "lm": {"causal_lm": str(lm_dir)}},
                "settings": {
                    "gats": {"layers": [{"rgb": 6, "lm": 1}, {"rgb": 8, "lm": 2}], "dim": 32},
                    "epalm": {},
                    "mit": {"vision_layer": 8},
                }[method],
            },
        }
    )


@pytest.mark.parametrize("method", ["gats", "epalm", "mit"])
def test_training_leaves_frozen_weights_bit_identical(method, text_lm, tmp_path):
    lines = []
    recipe = glue_recipe(method, text_lm)
    reference = {
        n: c.model.state_dict() for n, c in {"lm": CausalLM.from_pretrained(text_lm), "rgb": components_rgb()}.items()
    }
    metrics = run_recipe(recipe, tmp_path / method, log=lines.append)
    split = lines[0].splitlines()  # printed first: each part, then the total with percentages
    assert split[0].startswith("lm: 0 trainable") and split[-1].startswith("trainable ") and "%" in split[-1]
    assert metrics["components_unchanged"] == {"lm": True, "rgb": True}
    assert metrics["components_before"] == metrics["components_after"]
    loaded = load_composition(tmp_path / method)
    for name, state in reference.items():
        after = loaded.components[name].model.state_dict()
        assert all(torch.equal(state[k], after[k]) for k in state)
    # the checkpoint holds the glue only, and reproduces the trained glue
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / method / "glue.safetensors"))
    assert all(k.startswith("glue.") for k in saved)
    assert sum(v.numel() for v in saved.values()) == metrics["split"]["trainable"]
    assert not all(torch.count_nonzero(v) == 0 for v in saved.values())
    assert all(torch.equal(saved[k], dict(loaded.named_parameters())[k]) for k in saved)
    # the trained glue reads the image: one prompt over two scenes gives two answers' distributions
    # (an untrained glue gives the plain LM's, the same for both: test_untrained_glue_is_the_frozen_lm)
    images = loaded.components["rgb"].normalize(np.stack([generate_scene(i, 0, 32)["rgb"] for i in (0, 1)]))
    ids = torch.randint(2, 60, (1, 6), generator=torch.Generator().manual_seed(0)).expand(2, 6)
    with torch.no_grad():
        logits = loaded.eval()({"lm": ids, "rgb": images}, torch.tensor([6, 6]))
    assert not torch.allclose(logits[0, -1], logits[1, -1])
    if method != "gats":
        return
    # same recipe and seed -> the same glue
    run_recipe(recipe, tmp_path / "again", log=lambda *_: None)
    again = load_file(str(tmp_path / "again" / "glue.safetensors"))
    assert all(torch.equal(saved[k], again[k]) for k in saved)


def components_rgb():
    import tokzoo

    return TokenizerEncoder(tokzoo.load_tokenizer("rgb"))


def test_full_finetuning_changes_the_components_and_checkpoints_them(text_lm, tmp_path):
    metrics = run_recipe(
        glue_recipe("gats", text_lm, train_components=True, steps=2), tmp_path / "full", log=lambda *_: None
    )
    assert metrics["components_unchanged"] == {"lm": False, "rgb": False}
    assert metrics["split"]["frozen"] == 0
    loaded = load_composition(tmp_path / "full")  # components rebuilt from their specs, then the trained tensors
    assert (
        loaded.components["lm"].content_hash()
        == json.loads((tmp_path / "full" / "compose.json").read_text())["components"]["lm"]["sha256_after"]
    )


def test_component_lr_trains_the_components_slower_than_the_glue(text_lm, tmp_path):
    from tokzoo.compose.train import _parameter_groups, build_composition

    recipe = glue_recipe("gats", text_lm, train_components=True, steps=2)
    recipe["optimizer"]["component_lr"] = recipe["optimizer"]["lr"] / 10
    composition = build_composition(recipe)
    glue_group, component_group = _parameter_groups(composition, recipe["optimizer"])
    assert {id(p) for p in glue_group["params"]} == {id(p) for p in composition.glue.parameters()}
    assert {id(p) for p in component_group["params"]} == {id(p) for p in composition.components.parameters()}
    assert (glue_group["lr"], component_group["lr"]) == (recipe["optimizer"]["lr"], recipe["optimizer"]["component_lr"])
    start = CausalLM.from_pretrained(text_lm).model.state_dict()

    def lm_change(component_lr):
        run = {**recipe, "optimizer": {**recipe["optimizer"], "component_lr": component_lr}}
        run_recipe(run, tmp_path / str(component_lr), log=lambda *_: None)
        after = load_composition(tmp_path / str(component_lr)).components["lm"].model.state_dict()
        return max(float((after[k] - start[k]).abs().max()) for k in start)

    slow, same = lm_change(recipe["optimizer"]["lr"] / 100), lm_change(recipe["optimizer"]["lr"])
    assert 0 < slow < same / 10  # Adam's steps scale with the group's lr
    with pytest.raises(ConfigError, match="component_lr needs compose.train_components"):
        resolve_recipe({**glue_recipe("gats", text_lm), "optimizer": {"component_lr": 1e-4}})
    with pytest.raises(ConfigError, match="component_lr must be a positive number"):
        resolve_recipe({**glue_recipe("gats", text_lm, train_components=True), "optimizer": {"component_lr": "fast"}})
    with pytest.raises(ConfigError, match=r"optimizer.lr must be a positive number, got '5e-3' \(YAML reads"):
        resolve_recipe({**glue_recipe("gats", text_lm), "optimizer": {"lr": "5e-3"}})


def test_loading_checks_component_hashes(text_lm, tmp_path):
    run_recipe(glue_recipe("epalm", text_lm, steps=1), tmp_path / "epalm", log=lambda *_: None)
    other = CausalLM.from_pretrained(text_lm)
    with torch.no_grad():
        next(other.model.parameters()).mul_(1.01)
    with pytest.raises(CheckpointError) as error:
        load_composition(tmp_path / "epalm", components={"lm": other})
    assert "component 'lm'" in str(error.value) and "\n" not in str(error.value)
    (tmp_path / "epalm" / "glue.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_composition(tmp_path / "epalm")
    with pytest.raises(CheckpointError, match="missing"):
        load_composition(tmp_path / "nothing")
