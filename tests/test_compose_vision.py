"""transformers vision transformers (ViT, DINOv2, CLIP vision) as components: layer by layer = the model's own
hidden states, the input contract, loading from a folder, and eP-ALM reading the class token."""

import json

import numpy as np
import pytest
import torch
from test_compose_methods import glue_recipe, text_lm  # noqa: F401 (a fixture)

from tokzoo.compose import VisionTransformer, build_component
from tokzoo.compose.epalm import EPALM
from tokzoo.errors import CheckpointError, ConfigError


def tiny_vision(family: str):
    from transformers import CLIPVisionConfig, CLIPVisionModel, Dinov2Config, Dinov2Model, ViTConfig, ViTModel

    torch.manual_seed(0)
    common = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=32, patch_size=8
    )
    if family == "vit":
        return ViTModel(ViTConfig(**common), add_pooling_layer=False).eval()
    if family == "dinov2":
        return Dinov2Model(Dinov2Config(**common)).eval()
    return CLIPVisionModel(CLIPVisionConfig(**common)).eval()


def rgb(n=2, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("family", ["vit", "dinov2", "clip"])
def test_layers_are_the_models_hidden_states(family):
    model = tiny_vision(family)
    component = VisionTransformer(model).freeze()
    x = component.normalize(rgb())
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    with torch.no_grad():
        states = component.hidden_states(x)
        reference = model(pixel_values=x, output_hidden_states=True)
    assert len(states) == component.n_layers + 1 == 4
    assert all(s.shape == (2, 1 + 16, 32) for s in states)
    for ours, theirs in zip(states[:3], reference.hidden_states):  # embedding (CLIP: after its pre-norm), blocks
        assert torch.allclose(ours, theirs, atol=1e-5)
    final = reference.last_hidden_state if family != "clip" else component.final_norm(reference.last_hidden_state)
    assert torch.allclose(states[-1], final, atol=1e-5)  # the final norm
    stream = component.run(component.begin(x), 2)
    assert torch.equal(component.class_token(stream), stream.h[:, :1])
    assert component.grid_tokens(stream).shape == (2, 16, 32) and stream.extra["grid"] == (4, 4)


def test_other_sizes_interpolate_positions_and_bad_input_is_refused():
    component = VisionTransformer(tiny_vision("vit"), size=48).freeze()
    x = component.normalize(rgb(size=64))
    assert x.shape == (2, 3, 48, 48)
    with torch.no_grad():
        assert component.hidden_states(x)[-1].shape == (2, 1 + 36, 32)
    with pytest.raises(ConfigError, match="rgb uint8"):
        component.normalize(rgb().astype(np.float32))
    with pytest.raises(ConfigError, match="multiple of the patch size"):
        VisionTransformer(tiny_vision("vit"), size=36)


def test_loads_from_a_folder_with_its_normalisation(tmp_path):
    model = tiny_vision("dinov2")
    model.save_pretrained(tmp_path / "dino", safe_serialization=True)
    (tmp_path / "dino" / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.0, 0.0, 0.0], "image_std": [1.0, 1.0, 1.0]})
    )
    component = build_component("vision", {"vision_model": str(tmp_path / "dino")})
    assert (
        isinstance(component, VisionTransformer) and component.content_hash() == VisionTransformer(model).content_hash()
    )
    image = rgb(1)
    assert torch.allclose(component.normalize(image), torch.from_numpy(image).permute(0, 3, 1, 2).float() / 255)
    (tmp_path / "dino" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        build_component("vision", {"vision_model": str(tmp_path / "dino")})
    with pytest.raises(ConfigError, match="expected one of"):
        build_component("vision", {"vision_model": str(tmp_path / "dino"), "layers": 3})


def test_epalm_reads_the_class_token_of_a_vit():
    from test_compose_components import tiny_lm

    from tokzoo.compose import CausalLM

    encoder = VisionTransformer(tiny_vision("vit"), name="rgb").freeze()
    lm = CausalLM(tiny_lm("gpt2"), name="lm").freeze()
    glue = EPALM(lm, encoder, vision_layers=[3], inject_layers=[2])
    x = encoder.normalize(rgb())
    with torch.no_grad():
        (visual,) = glue.visual_tokens(encoder, x)
        last = encoder.hidden_states(x)[-1]
    assert torch.allclose(visual, glue.projection(last[:, :1]), atol=1e-6)


VISION_SETTINGS = {
    "gats": {"layers": [{"rgb": 1, "lm": 1}, {"rgb": 3, "lm": 2}], "dim": 32},
    "epalm": {"vision_layers": [2, 3]},
    "mit": {"vision_layer": 3},
}


@pytest.mark.parametrize("method", ["gats", "epalm", "mit"])
def test_glue_trains_on_a_frozen_vision_model_folder(method, text_lm, tmp_path):  # noqa: F811
    from tokzoo.compose import load_composition
    from tokzoo.compose.train import run_recipe
    from tokzoo.datasets.scenes import generate_scene

    tiny_vision("vit").save_pretrained(tmp_path / "vit", safe_serialization=True)
    recipe = glue_recipe(method, text_lm)
    recipe["compose"]["components"]["rgb"] = {"vision_model": str(tmp_path / "vit")}
    recipe["compose"]["settings"] = VISION_SETTINGS[method]
    metrics = run_recipe(recipe, tmp_path / method, log=lambda *_: None)
    assert metrics["components_unchanged"] == {"lm": True, "rgb": True}
    loaded = load_composition(tmp_path / method)
    assert loaded.components["rgb"].content_hash() == VisionTransformer(tiny_vision("vit")).content_hash()
    images = loaded.components["rgb"].normalize(np.stack([generate_scene(i, 0, 32)["rgb"] for i in (0, 1)]))
    ids = torch.randint(2, 60, (1, 6), generator=torch.Generator().manual_seed(0)).expand(2, 6)
    with torch.no_grad():
        logits = loaded.eval()({"lm": ids, "rgb": images}, torch.tensor([6, 6]))
    assert not torch.allclose(logits[0, -1], logits[1, -1])  # the trained glue reads the image


def test_half_precision_folders_run_in_float32_and_bad_sizes_are_config_errors(tmp_path):
    tiny_vision("vit").half().save_pretrained(tmp_path / "vit16", safe_serialization=True)
    (tmp_path / "vit16" / "preprocessor_config.json").write_text(json.dumps({"crop_size": {"height": 16, "width": 16}}))
    component = build_component("vision", {"vision_model": str(tmp_path / "vit16")})
    assert component.size == 16  # the preprocessor's crop size
    with torch.no_grad():
        last = component.hidden_states(component.normalize(rgb()))[-1]
    assert last.dtype == torch.float32 and last.shape == (2, 1 + 4, 32)
    for bad in ("abc", 0, -16, 24.5):
        with pytest.raises(ConfigError, match="size must be a positive whole number"):
            build_component("vision", {"vision_model": str(tmp_path / "vit16"), "size": bad})
    (tmp_path / "vit16" / "preprocessor_config.json").write_text(json.dumps({"image_mean": 0.5}))
    with pytest.raises(CheckpointError, match="must be 3 numbers"):
        build_component("vision", {"vision_model": str(tmp_path / "vit16")})
