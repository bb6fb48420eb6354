"""Every registered glue method on tiny random components (a ViT with a class token, a GPT-2 / Llama LM): trains with
the components frozen and bit-identical; MiT's gate and infusion formulas; GATS's per-stream windows, steering,
proportional depths and frames; the prompt-only and visual-prefix baselines."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_compose_components import tiny_lm
from test_compose_vision import tiny_vision

from tokzoo.compose import METHODS, CausalLM, Composition, Frames, VisionTransformer
from tokzoo.compose.gats import proportional_layers, visible
from tokzoo.compose.mit import Infusion, head_gate
from tokzoo.compose.registry import Glue, register_method
from tokzoo.errors import ConfigError

SETTINGS = {
    "gats": {"layers": 2, "dim": 32, "heads": 4, "window": {"vision": 1}},
    "epalm": {"vision_layers": [2, 3], "inject_layers": [2]},
    "mit": {"vision_layer": 3, "layers": [1, 2]},
    "xattn": {"vision_layer": 3, "layers": [1, 2]},
    "prefix": {"vision_layer": 3},
    "prompt": {"prompt_tokens": 3},
    "none": {},
}


def components(arch="gpt2"):
    return {"vision": VisionTransformer(tiny_vision("vit"), name="vision"), "lm": CausalLM(tiny_lm(arch), name="lm")}


def inputs(batch=2, length=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {
        "vision": torch.randn(batch, 3, 32, 32, generator=g),
        "lm": torch.randint(2, 60, (batch, length), generator=g),
    }


def test_every_registered_method_is_tested():
    assert set(METHODS) == set(SETTINGS)


@pytest.mark.parametrize("method", sorted(SETTINGS))
def test_each_method_trains_with_its_components_frozen_and_bit_identical(method):
    torch.manual_seed(0)
    comp = Composition(components(), method, SETTINGS[method])
    hashes = {n: c.content_hash() for n, c in comp.components.items()}
    params = [p for p in comp.parameters() if p.requires_grad]
    assert all(p.requires_grad is False for c in comp.components.values() for p in c.parameters())
    if method == "none":
        assert params == []
        return
    before = [p.detach().clone() for p in params]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    x, target = inputs(), torch.randint(2, 60, (2, 7))
    for _ in range(3):
        comp.train()
        loss = F.cross_entropy(comp(x, torch.tensor([3, 4])).flatten(0, 1), target.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert {n: c.content_hash() for n, c in comp.components.items()} == hashes
    assert any(not torch.equal(a, b) for a, b in zip(before, params))  # the glue learned
    assert (
        comp.split()["trainable"] == sum(p.numel() for p in params)
        and comp.split()["parts"]["vision"]["trainable"] == 0
    )


@pytest.mark.parametrize("method", ["gats", "mit", "xattn"])
def test_untrained_glue_is_the_frozen_lm(method):
    comp = Composition(components(), method, SETTINGS[method])
    x = inputs()
    with torch.no_grad():
        assert torch.allclose(comp(x, torch.tensor([3, 3])), comp.lm.logits(x["lm"]), atol=1e-5)


@pytest.mark.parametrize("method", ["mit", "prefix", "epalm", "gats"])
def test_the_answer_depends_on_the_image_and_never_on_later_text(method):
    comp = Composition(components(), method, SETTINGS[method])
    for p in comp.glue.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = inputs()
    later = {**x, "lm": x["lm"].clone()}
    later["lm"][:, 4:] = 7
    prompt = torch.tensor([3, 3])
    with torch.no_grad():
        a = comp(x, prompt)
        assert torch.allclose(a[:, :4], comp(later, prompt)[:, :4], atol=1e-5)
        assert not torch.allclose(comp({**x, "vision": -x["vision"]}, prompt)[:, 2:], a[:, 2:])


def test_prompt_only_ignores_the_image():
    comp = Composition(components(), "prompt", SETTINGS["prompt"])
    x = inputs()
    with torch.no_grad():
        assert torch.equal(comp(x, torch.tensor([3, 3])), comp({**x, "vision": -x["vision"]}, torch.tensor([3, 3])))
    assert comp.split()["trainable"] == 3 * 32


# -- MiT ---------------------------------------------------------------------------------------------------
def test_mit_gate_is_sigmoid_of_head_bias_plus_cosine():
    torch.manual_seed(0)
    values, image, bias = torch.randn(2, 4, 5, 8), torch.randn(2, 4, 8), torch.randn(4)
    gate = head_gate(values, image, bias, adaptive=True)
    for b in range(2):
        for h in range(4):
            for t in range(5):
                v, i = values[b, h, t], image[b, h]
                expected = 1 / (1 + np.exp(-(float(bias[h]) + float(v @ i / (v.norm() * i.norm())))))
                assert abs(float(gate[b, h, t, 0]) - expected) < 1e-6
    fixed = head_gate(values, image, bias, adaptive=False)
    assert torch.allclose(fixed, torch.sigmoid(bias)[None, :, None, None].expand(2, 4, 5, 1))


def test_mit_infuses_keys_values_and_the_ffn_by_multiply_and_add():
    torch.manual_seed(0)
    infusion = Infusion(dim=6, heads=2, head_dim=4, ffn_width=10, adaptive=True, ffn=True)
    assert torch.equal(infusion.gate_bias, torch.ones(2))  # L starts at 1
    for p in infusion.parameters():
        torch.nn.init.normal_(p)
    k, v, image = torch.randn(3, 2, 5, 4), torch.randn(3, 2, 5, 4), torch.randn(3, 6)
    k2, v2 = infusion.kv(k, v, image)
    g = head_gate(v, infusion.value_image(image).view(3, 2, 4), infusion.gate_bias, True)
    per_head = lambda lin: lin(image).view(3, 2, 1, 4)  # noqa: E731
    assert torch.allclose(k2, k + (k * per_head(infusion.key_mul) + per_head(infusion.key_add)) * g, atol=1e-6)
    assert torch.allclose(v2, v + (v * per_head(infusion.value_mul) + per_head(infusion.value_add)) * g, atol=1e-6)
    hidden = torch.randn(3, 5, 10)
    assert torch.allclose(infusion.hidden(hidden, image), hidden * infusion.ffn(image)[:, None], atol=1e-6)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_infused_step_with_identities_is_the_block(arch):
    lm = CausalLM(tiny_lm(arch)).freeze()
    ids = torch.randint(2, 60, (2, 6))
    with torch.no_grad():
        a, b = lm.begin(ids, prefix=torch.randn(2, 2, 32)), None
        b = lm.begin(ids)
        b.h = a.h.clone()
        b.extra = dict(a.extra)
        for index in (1, 2):
            lm.step(a, index)
            lm.step_infused(b, index, lambda k, v: (k, v), lambda x: x)
        assert torch.allclose(a.h, b.h, atol=1e-5)


def test_mit_adds_no_token_and_its_gate_ablation_is_a_setting():
    comp = Composition(components("llama"), "mit", {**SETTINGS["mit"], "adaptive_gate": False})
    assert comp.glue.settings()["adaptive_gate"] is False
    assert all(inf.value_image is None for inf in comp.glue.infusions.values())
    adaptive = Composition(components("llama"), "mit", SETTINGS["mit"])
    assert adaptive.split()["trainable"] > comp.split()["trainable"]
    x = inputs()
    with torch.no_grad():
        assert comp(x, torch.tensor([3, 3])).shape == (2, 7, 60)


# -- GATS ----------------------------------------------------------------------------------------------------
def constructed_stream():
    """8 text tokens (times = steps = 0..7) and 3 frames of 2 tokens each, seen after tokens 1, 4 and 6."""
    text_t = torch.arange(8)
    frame_t = torch.tensor([1, 4, 6]).repeat_interleave(2)
    times = torch.cat([text_t, frame_t])[None]
    steps = torch.cat([text_t, torch.arange(3).repeat_interleave(2)])[None]
    streams = torch.cat([torch.zeros(8, dtype=torch.long), torch.ones(6, dtype=torch.long)])
    return times, steps, streams


def frames_seen(allowed, query):
    """The frame indices text token ``query`` may attend to."""
    return sorted({j // 2 for j in range(6) if allowed[0, query, 8 + j]})


def test_per_stream_window_counts_within_each_stream():
    times, steps, streams = constructed_stream()
    allowed = visible(times, steps, streams, [None, 1])  # the most recent frame, whatever the text did since
    assert [frames_seen(allowed, t) for t in range(8)] == [[], [0], [0], [0], [1], [1], [2], [2]]
    assert bool(allowed[0, 7, :8].all()) and not bool(allowed[0, 3, 4])  # the text stream: whole, causal
    two = visible(times, steps, streams, [3, 2])
    assert frames_seen(two, 5) == [0, 1] and frames_seen(two, 7) == [1, 2]
    assert [int(j) for j in torch.nonzero(two[0, 5, :8])] == [3, 4, 5]  # the 3 most recent text tokens
    # the time window: text more than 2 steps after a frame loses it
    timed = visible(times, steps, streams, [None, None], time_window=2)
    assert [frames_seen(timed, t) for t in range(8)] == [[], [0], [0], [], [1], [1], [2], [2]]
    assert frames_seen(visible(times, steps, streams, [None, None]), 7) == [0, 1, 2]


def test_gats_frames_arrive_at_their_times_and_windows_drop_old_frames():
    torch.manual_seed(0)
    comp = Composition(components(), "gats", {"layers": [{"vision": 3, "lm": 2}], "dim": 32, "window": {"vision": 1}})
    for p in comp.glue.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = inputs(length=8)
    frames = torch.randn(2, 3, 3, 32, 32)
    times = torch.tensor([[1, 4, 6], [1, 4, 6]])
    prompt = torch.tensor([8, 8])
    with torch.no_grad():
        a = comp({**x, "vision": Frames(frames, times)}, prompt)
        changed = frames.clone()
        changed[:, 2] = -changed[:, 2]  # the last frame: seen from position 6
        b = comp({**x, "vision": Frames(changed, times)}, prompt)
        assert torch.allclose(a[:, :6], b[:, :6], atol=1e-5) and not torch.allclose(a[:, 6:], b[:, 6:])
        first = frames.clone()
        first[:, 0] = -first[:, 0]  # frame 0: seen by positions 1-3 only (one GATS layer, writing the LM's last block)
        c = comp({**x, "vision": Frames(first, times)}, prompt)
        assert torch.allclose(a[:, 4:], c[:, 4:], atol=1e-5) and not torch.allclose(a[:, 1:4], c[:, 1:4])


def test_gats_steering_and_proportional_depths():
    comps = components()
    assert proportional_layers(comps, 2) == [{"vision": round(3 / 2), "lm": 1}, {"vision": 3, "lm": 2}]
    assert Composition(components(), "gats", {"layers": 2, "dim": 32}).glue.layers == proportional_layers(comps, 2)
    steered = Composition(components(), "gats", {"layers": 1, "dim": 32, "write": ["lm"]})
    assert all(set(s) == {"lm"} for s in steered.glue.scatter)
    assert steered.glue.settings()["write"] == ["lm"]
    with pytest.raises(ConfigError, match="write"):
        Composition(components(), "gats", {"layers": 1, "write": ["audio"]})
    with pytest.raises(ConfigError, match="window"):
        Composition(components(), "gats", {"layers": 1, "window": {"vision": 0}})
    with pytest.raises(ConfigError, match="time_window: N is the time-step rule"):
        Composition(components(), "gats", {"layers": 1, "window": 8})
    with pytest.raises(ConfigError, match="positive number of GATS layers"):
        Composition(components(), "gats", {"layers": 0})


def test_a_method_is_one_class_and_one_registration_line():
    @register_method("test_constant")
    class Constant(Glue):
        def __init__(self, lm, encoder):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(60))

        def forward(self, components, inputs, lm_name, prompt_len, select=None):
            return components[lm_name].logits(inputs[lm_name], select) + self.bias

    try:
        comp = Composition(components(), "test_constant", {})
        assert comp.method == "test_constant" and comp.split()["trainable"] == 60
        with pytest.raises(ValueError, match="twice"):
            register_method("test_constant")(Constant)
    finally:
        METHODS.pop("test_constant")
    with pytest.raises(ConfigError, match="unknown method 'lora'"):
        Composition(components(), "lora", {})


# -- the pretrained vision component ----------------------------------------------------------------------------------
def test_scene_targets_are_read_off_the_render():
    from tokzoo.compose.vision_pretrain import COLOURS, MAX_COUNT, THING_CLASSES, scene_targets
    from tokzoo.datasets.scene_layout import SCENE_CLASSES
    from tokzoo.datasets.scene_text import scene_text
    from tokzoo.datasets.scenes import generate_scene

    sample = generate_scene(3, seed=0, size=32)
    t = scene_targets(sample, patch=8)
    assert t["colour"].shape == t["log_depth"].shape == (16,) and t["semantic"].shape == (16, len(SCENE_CLASSES))
    human = SCENE_CLASSES.index("human")  # the shares count every pixel: a person's limbs too
    assert np.isclose(t["semantic"][:, human].sum() * 64, (sample["semseg"] == human).sum())
    assert np.allclose(t["semantic"].sum(1), 1)
    things = scene_text(sample)["things"]
    present = {THING_CLASSES[i] for i in np.nonzero(t["present"][: len(THING_CLASSES)])[0]}
    assert present == {x["cls"] for x in things}
    for i, name in enumerate(THING_CLASSES):
        assert t["counts"][i] == min(MAX_COUNT, sum(x["cls"] == name for x in things))
    nearest = min(things, key=lambda x: x["depth"])
    assert THING_CLASSES[int(t["nearest"]) - 1] == nearest["cls"]
    objects = [x for x in things if x["cls"] != "person"]
    assert COLOURS[int(t["nearest_colour"])] == min(objects, key=lambda x: x["depth"])["colour"]
    assert np.all(t["log_depth"] <= np.log(30.0) + 1e-6)


def test_side_and_colour_targets_answer_scene_texts_questions():
    import torch

    from tokzoo.compose.vision_pretrain import COLOURS, OBJECT_CLASSES, SIDES, scene_targets, side_labels
    from tokzoo.datasets.scene_text import scene_text
    from tokzoo.datasets.scenes import generate_scene

    asked = 0
    for index in range(12):
        sample = generate_scene(index, seed=0, size=32)
        t = scene_targets(sample, patch=8)
        sides = side_labels(torch.from_numpy(t["centre_offset"])[None])[0]
        qa = dict(scene_text(sample)["qa"])
        for i, name in enumerate(OBJECT_CLASSES):
            question = f"is the {name} on the left or on the right?"
            assert (question in qa) == (sides[i] > 0) == (t["colour_of"][i] > 0)
            if question in qa:
                asked += 1
                assert SIDES[sides[i]] == qa[question]
                assert COLOURS[t["colour_of"][i]] == qa[f"what colour is the {name}?"]
    assert asked >= 6
    assert side_labels(torch.tensor([[float("nan"), -0.5, 0.0, -0.0]])).tolist() == [[0, 1, 2, 2]]


def test_mirror_flips_the_chosen_images_and_their_patch_targets():
    from tokzoo.compose.vision_pretrain import mirror, render_pretraining_set

    data = render_pretraining_set(2, seed=5, size=32, patch=8)
    images = torch.from_numpy(data["rgb"]).permute(0, 3, 1, 2).float()
    targets = {k: v for k, v in data.items() if k != "rgb"}
    out_images, out = mirror(images, targets, np.array([True, False]))
    assert torch.equal(out_images[0], images[0].flip(-1)) and torch.equal(out_images[1], images[1])
    assert np.array_equal(out["semantic"][0].reshape(4, 4, -1), targets["semantic"][0].reshape(4, 4, -1)[:, ::-1])
    assert np.array_equal(out["log_depth"][0].reshape(4, 4), targets["log_depth"][0].reshape(4, 4)[:, ::-1])
    assert np.array_equal(out["colour"][1], targets["colour"][1]) and out["present"] is targets["present"]
    np.testing.assert_array_equal(out["centre_offset"][0], -targets["centre_offset"][0])  # sides swap (NaN stays)
    np.testing.assert_array_equal(out["centre_offset"][1], targets["centre_offset"][1])


def test_pixel_targets_are_each_patchs_semseg_and_mirror_with_the_image():
    from tokzoo.compose.vision_pretrain import mirror, scene_targets
    from tokzoo.datasets.scenes import generate_scene

    sample = generate_scene(3, seed=5, size=32)
    pixels = scene_targets(sample, patch=8)["semantic_pixels"]  # (16 patches, 64 pixels)
    assert pixels.shape == (16, 64) and pixels.dtype == np.uint8
    assert np.array_equal(pixels[6].reshape(8, 8), sample["semseg"][8:16, 16:24])  # patch (row 1, column 2)
    mirrored = dict(sample, semseg=sample["semseg"][:, ::-1].copy(), sam_instances=sample["sam_instances"][:, ::-1].copy(),
                    rgb=sample["rgb"][:, ::-1].copy(), depth=sample["depth"][:, ::-1].copy())  # fmt: skip
    targets = {k: v[None] for k, v in scene_targets(sample, patch=8).items()}
    _, out = mirror(torch.zeros(1, 3, 32, 32), targets, np.array([True]))
    assert np.array_equal(out["semantic_pixels"][0], scene_targets(mirrored, patch=8)["semantic_pixels"])


def test_pretrain_vision_writes_a_folder_that_loads_as_a_component(tmp_path):
    from tokzoo.compose import build_component, resolve_recipe
    from tokzoo.compose.train import run_recipe

    recipe = resolve_recipe(
        {
            "steps": 2,
            "batch_size": 4,
            "log_every": 1,
            "threads": 1,
            "data": {"scenes": {"n": 8, "n_val": 4}},
            "compose": {"pretrain_vision": {"size": 32, "patch": 8, "width": 32, "layers": 2}},
        }
    )
    metrics = [run_recipe(recipe, tmp_path / name, log=lambda *_: None) for name in ("a", "b")]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert metrics[0]["streams"] == {"train": [7000001, 8], "held_out": [7000002, 4]}
    assert 0 <= metrics[0]["held_out"]["nearest"] <= 1 and 0 <= metrics[0]["held_out"]["present_person"] <= 1
    component = build_component("vision", {"vision_model": str(tmp_path / "a")}).freeze()
    assert component.size == 32 and component.n_layers == 3
    with torch.no_grad():
        stream = component.run(component.begin(np.zeros((2, 32, 32, 3), np.uint8)), 3)
    assert component.class_token(stream).shape == (2, 1, 32) and component.grid_tokens(stream).shape == (2, 16, 32)


def random_heads_and_targets(pixel_semantic: bool = False) -> tuple[dict, dict]:
    """Random head outputs (seed 0) for 4 scenes of stream 0 at 32 px, patch 8, and those scenes' targets."""
    from tokzoo.compose.vision_pretrain import render_pretraining_set

    data = render_pretraining_set(4, seed=0, size=32, patch=8)
    target = {k: torch.from_numpy(v) for k, v in data.items() if k != "rgb"}
    torch.manual_seed(0)
    out = {"semantic": torch.randn(4, 16, 10), "colour": torch.randn(4, 16, 8), "log_depth": torch.randn(4, 16),
           "present": torch.randn(4, 11), "counts": torch.randn(4, 4, 5), "nearest": torch.randn(4, 5),
           "nearest_colour": torch.randn(4, 8)}  # fmt: skip
    if pixel_semantic:
        out["pixel_semantic"] = torch.randn(4, 16, 64, 10)
    return out, target


def test_pretraining_goes_on_from_a_folder_and_weights_people(tmp_path):
    from tokzoo.compose import resolve_recipe
    from tokzoo.compose.train import run_recipe
    from tokzoo.compose.vision_pretrain import head_losses

    def recipe(steps, **spec):
        return resolve_recipe({"steps": steps, "batch_size": 4, "log_every": 1, "threads": 1,
                               "data": {"scenes": {"n": 8, "n_val": 4}},
                               "compose": {"pretrain_vision": {"size": 32, "patch": 8, "width": 32, "layers": 2, **spec}}})  # fmt: skip

    run_recipe(recipe(2), tmp_path / "a", log=lambda *_: None)
    run_recipe(recipe(0, init=str(tmp_path / "a")), tmp_path / "b", log=lambda *_: None)  # no step: the same weights
    for name in ("model.safetensors", "heads.safetensors"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    with pytest.raises(ConfigError, match="init"):
        run_recipe(recipe(1, init=str(tmp_path / "missing")), tmp_path / "c", log=lambda *_: None)
    (tmp_path / "a" / "heads.safetensors").unlink()  # a ViT folder without heads (the shipped scene ViT's layout)
    lines = []
    run_recipe(recipe(0, init=str(tmp_path / "a")), tmp_path / "d", log=lines.append)
    assert (tmp_path / "d" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert (tmp_path / "d" / "heads.safetensors").read_bytes() != (tmp_path / "b" / "heads.safetensors").read_bytes()
    assert any("new heads" in line for line in lines)
    out, target = random_heads_and_targets()
    plain, weighted = head_losses(out, target), head_losses(out, target, person_weight=5.0)
    assert weighted["present"] > plain["present"] and weighted["colour"] == plain["colour"]
    no_people = dict(target, semantic=target["semantic"].clone())
    no_people["semantic"][..., 6] = 0  # the human class's share moved to the floor's
    no_people["semantic"][..., 0] += target["semantic"][..., 6]
    assert torch.isclose(head_losses(out, no_people)["semantic"], head_losses(out, no_people, 5.0)["semantic"])


def test_pretrain_vision_recipe_errors_are_one_line():
    from tokzoo.compose import resolve_recipe

    with pytest.raises(ConfigError, match="unknown key 'depth'"):
        resolve_recipe({"compose": {"pretrain_vision": {"depth": 3}}})
    with pytest.raises(ConfigError, match="multiple of patch"):
        resolve_recipe({"compose": {"pretrain_vision": {"size": 30}}})
    with pytest.raises(ConfigError, match="stands alone"):
        resolve_recipe({"compose": {"pretrain_vision": {}, "method": "gats"}})
    with pytest.raises(ConfigError, match="person_weight"):
        resolve_recipe({"compose": {"pretrain_vision": {"person_weight": 0}}})
    with pytest.raises(ConfigError, match="attributes must be true or false"):
        resolve_recipe({"compose": {"pretrain_vision": {"attributes": "yes"}}})
    with pytest.raises(ConfigError, match="pixel_semantic must be true or false"):
        resolve_recipe({"compose": {"pretrain_vision": {"pixel_semantic": 1}}})


def test_attribute_heads_train_and_start_fresh_on_a_folder_without_them(tmp_path):
    from safetensors.torch import load_file

    from tokzoo.compose import resolve_recipe
    from tokzoo.compose.train import run_recipe

    def recipe(steps, **spec):
        return resolve_recipe({"steps": steps, "batch_size": 4, "log_every": 1, "threads": 1,
                               "data": {"scenes": {"n": 8, "n_val": 4}},
                               "compose": {"pretrain_vision": {"size": 32, "patch": 8, "width": 32, "layers": 2, **spec}}})  # fmt: skip

    plain = run_recipe(recipe(1), tmp_path / "plain", log=lambda *_: None)
    assert "side" not in plain["held_out"]
    lines = []
    grown = run_recipe(recipe(1, attributes=True, init=str(tmp_path / "plain")), tmp_path / "grown", log=lines.append)
    assert any("new heads: colour_of, side" in line for line in lines)
    assert 0 <= grown["held_out"]["side"] <= 1 and 0 <= grown["held_out"]["colour_of"] <= 1
    saved = load_file(str(tmp_path / "grown" / "heads.safetensors"))
    assert saved["side.weight"].shape == (3 * 3, 32) and saved["colour_of.weight"].shape == (3 * 8, 32)
    with pytest.raises(ConfigError, match="init"):  # heads that have more than the recipe asks for: another layout
        run_recipe(recipe(0, init=str(tmp_path / "grown")), tmp_path / "back", log=lambda *_: None)
    lines = []
    pixels = run_recipe(recipe(1, pixel_semantic=True, init=str(tmp_path / "plain")), tmp_path / "px", log=lines.append)
    assert any("new heads: pixel_semantic" in line for line in lines)
    assert load_file(str(tmp_path / "px" / "heads.safetensors"))["pixel_semantic.weight"].shape == (64 * 10, 32)
    held_out = pixels["held_out"]
    assert 0 <= held_out["pixel_semantic"] <= 1 and 0 <= held_out["human_pixel_recall"] <= 1


def test_pixel_head_loss_is_the_pixels_cross_entropy_with_people_weighted():
    from tokzoo.compose.vision_pretrain import head_losses

    out, target = random_heads_and_targets(pixel_semantic=True)
    loss = head_losses(out, target)["pixel_semantic"]
    labels = target["semantic_pixels"].long().flatten()
    expected = -torch.log_softmax(out["pixel_semantic"].reshape(-1, 10), -1)[torch.arange(len(labels)), labels].mean()
    assert torch.isclose(loss, expected)
    assert (target["semantic_pixels"] == 6).any()  # people in these scenes: their weight changes the loss
    assert not torch.isclose(head_losses(out, target, person_weight=5.0)["pixel_semantic"], loss)


# -- the multi-frame task -----------------------------------------------------------------------------------------
def test_frames_are_one_room_seen_turning_and_questions_need_an_earlier_view():
    from tokzoo.datasets.scene_frames import FrameTextSet, frame_questions, generate_frames
    from tokzoo.datasets.scene_text import visible_things
    from tokzoo.datasets.scenes import generate_scene

    frames = generate_frames(4, seed=0, size=32, n_frames=3)
    assert np.array_equal(
        frames[1]["rgb"], generate_scene(4, seed=0, size=32)["rgb"]
    )  # the middle view: the layout's own
    assert not np.array_equal(frames[0]["rgb"], frames[2]["rgb"])
    for question, answer in frame_questions(frames):
        assert question.startswith("in view one,") and answer
    s = FrameTextSet(12, seed=3, size=32, n_frames=2)
    assert s.images.shape == (12, 2, 32, 32, 3) and sum(len(q) for q in s.qa) > 0
    first = visible_things(generate_frames(0, seed=3, size=32, n_frames=2)[0])
    if ("in view one, was there a person?", "yes") in s.qa[0]:
        assert any(t["cls"] == "person" for t in first)


@pytest.fixture(scope="module")
def long_text_lm(tmp_path_factory):
    """The toy text LM of test_compose_methods with 128 positions (the frame prompts run past 64 ids of a 300-id BPE)."""
    from tokzoo.compose import resolve_recipe
    from tokzoo.compose.train import run_recipe

    out = tmp_path_factory.mktemp("compose") / "text_lm"
    run_recipe(
        resolve_recipe(
            {
                "steps": 2,
                "batch_size": 4,
                "log_every": 1,
                "threads": 1,
                "data": {"scene_text": {"n_train": 8, "n_val": 4, "size": 32}},
                "compose": {
                    "pretrain_lm": {"vocab_size": 300, "hidden_size": 32, "layers": 2, "heads": 4, "max_positions": 128}
                },
            }
        ),
        out,
        log=lambda *_: None,
    )
    return out


def test_gats_trains_on_the_multi_frame_task_with_per_stream_windows(tmp_path, long_text_lm):
    from tokzoo.compose import resolve_recipe
    from tokzoo.compose.task import SceneTask
    from tokzoo.compose.train import build_composition, frame_set, train_composition

    folder = tmp_path / "vision"
    tiny_vision("vit").save_pretrained(str(folder), safe_serialization=True)
    lm_folder = long_text_lm
    recipe = resolve_recipe(
        {
            "steps": 2,
            "batch_size": 4,
            "log_every": 1,
            "threads": 1,
            "data": {"scene_text": {"n_train": 10, "n_val": 6, "size": 32, "frames": 3}, "caption_fraction": 0},
            "compose": {
                "method": "gats",
                "components": {"vision": {"vision_model": str(folder)}, "lm": {"causal_lm": str(lm_folder)}},
                "settings": {"layers": 1, "dim": 32, "window": {"vision": 1}},
            },
        }
    )
    task = SceneTask(frame_set(10, 0, 32, 3), build_composition(recipe).components["vision"].normalize)
    batch = task.batch(task.questions[:2])
    assert batch["images"].shape[:2] == (2, 3) and batch["frame_times"].shape == (2, 3)
    for e in task.examples[:2]:  # frame k is seen right after "view k."
        assert [task.tokenizer.decode(torch.tensor(e.prompt[: t + 1]))[0].strip() for t in e.frame_times][
            -1
        ] == "view one. view two. view three."
    metrics = train_composition(recipe, tmp_path / "out", log=lambda *_: None)
    assert all(metrics["components_unchanged"].values()) and metrics["task"]["n_questions"] > 0
    assert set(metrics["task"]["answer_kinds"]) <= {
        "frames_person",
        "frames_nearest",
        "frames_colour",
        "frames_leftmost",
    }
    with pytest.raises(ConfigError, match="needs compose.method gats"):
        resolve_recipe({**recipe, "compose": {**recipe["compose"], "method": "mit", "settings": {}}})


def test_head_accuracy_counts_human_patches_found_and_claimed():
    from tokzoo.compose.vision_pretrain import head_accuracy, render_pretraining_set

    data = render_pretraining_set(6, seed=1000003, size=32, patch=8)
    truth = torch.from_numpy(data["semantic"]).argmax(-1)  # (6, 16) majority class per patch
    human = truth == 6
    assert human.any()

    class Answer(torch.nn.Module):  # the per-patch semantic head says "human" on the given patches, else not human
        def __init__(self, said):
            super().__init__()
            self.said = said

        def forward(self, tokens):
            cls = torch.where(self.said, torch.tensor(6), truth.masked_fill(human, 0))
            n = len(tokens)
            return {"semantic": F.one_hot(cls, 10).float(), "colour": torch.zeros(n, 16, 8),
                    "log_depth": torch.zeros(n, 16), "present": torch.zeros(n, 11), "counts": torch.zeros(n, 4, 5),
                    "nearest": torch.zeros(n, 5), "nearest_colour": torch.zeros(n, 8)}  # fmt: skip

    vision = VisionTransformer(tiny_vision("vit"), name="vision", source="test")
    exact = head_accuracy(vision, Answer(human), data)
    assert exact["human_patch_recall"] == exact["human_patch_precision"] == 1.0
    half = human.clone()
    half[int(human.nonzero()[0, 0])] = False  # one scene's human patches missed
    missed = head_accuracy(vision, Answer(half | ~human), data)  # ... and every other patch called human
    assert missed["human_patch_recall"] == pytest.approx(int((half & human).sum()) / int(human.sum()))
    assert missed["human_patch_precision"] == pytest.approx(int((half & human).sum()) / int((half | ~human).sum()))


def test_head_accuracy_scores_sides_and_colours_on_the_classes_shown_once():
    from tokzoo.compose.vision_pretrain import head_accuracy, render_pretraining_set, side_labels

    data = render_pretraining_set(6, seed=1000003, size=32, patch=8)
    sides = side_labels(torch.from_numpy(data["centre_offset"]))  # (6, 3)
    assert (sides > 0).any() and (sides == 0).any()

    class Answer(torch.nn.Module):  # right sides everywhere (also "none"); a colour that is never the truth
        def forward(self, tokens):
            n = len(tokens)
            wrong = (torch.from_numpy(data["colour_of"]) + 1) % 8
            return {"semantic": torch.zeros(n, 16, 10), "colour": torch.zeros(n, 16, 8),
                    "log_depth": torch.zeros(n, 16), "present": torch.zeros(n, 11), "counts": torch.zeros(n, 4, 5),
                    "nearest": torch.zeros(n, 5), "nearest_colour": torch.zeros(n, 8),
                    "side": F.one_hot(sides, 3).float(), "colour_of": F.one_hot(wrong, 8).float()}  # fmt: skip

    vision = VisionTransformer(tiny_vision("vit"), name="vision", source="test")
    scores = head_accuracy(vision, Answer(), data)
    assert scores["side"] == 1.0 and scores["colour_of"] == 0.0


def test_the_benchmarks_vision_chain_goes_on_from_each_link(tmp_path, monkeypatch):
    from benchmark_scripts import load_benchmark
    from safetensors.torch import load_file

    methods = load_benchmark("compose_methods")
    (tmp_path / "recipes" / "compose").mkdir(parents=True)
    for name, steps, extra in (("first", 1, ""), ("second", 0, ", pixel_semantic: true, init: nowhere")):
        (tmp_path / "recipes" / "compose" / f"{name}.yaml").write_text(
            f"steps: {steps}\nbatch_size: 4\nlog_every: 1\nthreads: 1\ndata:\n  scenes: {{n: 8, n_val: 4}}\n"
            f"compose:\n  pretrain_vision: {{size: 32, patch: 8, width: 32, layers: 2{extra}}}\n"
        )
    monkeypatch.setattr(methods, "ROOT", tmp_path)
    monkeypatch.setattr(methods, "VISION_CHAIN", ("first", "second"))
    methods.build_vision(tmp_path / "runs" / "vision")
    first, last = tmp_path / "runs" / "vision_first", tmp_path / "runs" / "vision"
    # the second link (0 steps) starts from the first's ViT, not from its recipe's init, and grows its new head
    assert (first / "model.safetensors").read_bytes() == (last / "model.safetensors").read_bytes()
    assert "pixel_semantic.weight" in load_file(str(last / "heads.safetensors"))
    stamp = (last / "model.safetensors").stat().st_mtime_ns
    methods.build_vision(last)  # a folder with a model is kept
    assert (last / "model.safetensors").stat().st_mtime_ns == stamp
