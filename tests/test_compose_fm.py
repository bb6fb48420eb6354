"""The encoder of a trained tokzoo.fm model as a frozen component: its layer states are the model's encoder states,
it is selected in a recipe by its run folder, training glue on it leaves it bit-identical, hashes are checked."""

import pytest
import torch
from test_compose_methods import text_lm  # noqa: F401  (the module-scoped toy text LM fixture)

import tokzoo
from tokzoo.compose import FMEncoder, build_component, load_composition, resolve_recipe
from tokzoo.compose.train import run_recipe
from tokzoo.errors import CheckpointError, ConfigError
from tokzoo.fm.checkpoint import load_model, save_checkpoint
from tokzoo.fm.masking import MaskedBatch
from tokzoo.fm.model import FMConfig, FourM
from tokzoo.tokens.spec import ModalitySpec


def tiny_fm(rgb_hash: str, seed: int = 0) -> FourM:
    """rgb tokens of the shipped tokenizer on 32 px scenes (4 x 4 grid) and a depth modality; 2 encoder blocks."""
    torch.manual_seed(seed)
    specs = [
        ModalitySpec("rgb", "image", 240, (4, 4), tokenizer="rgb", content_hash=rgb_hash, size=(32, 32)),
        ModalitySpec("depth", "image", 30, (4, 4)),
    ]
    return FourM(specs, FMConfig(dim=32, encoder_layers=2, decoder_layers=1, heads=2))


@pytest.fixture(scope="module")
def fm_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("fm") / "run"
    save_checkpoint(run, tiny_fm(tokzoo.load_tokenizer("rgb").content_hash()), {"note": "test"})
    return run


def test_layer_states_are_the_fm_encoders(fm_run):
    component = FMEncoder.from_run(fm_run).freeze()
    model = load_model(fm_run).eval()
    ids = torch.randint(0, 240, (3, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        states = component.hidden_states(ids)
        tokens = {"rgb": ids, "depth": torch.zeros(3, 16, dtype=torch.long)}
        only_rgb = {"rgb": torch.ones(3, 16, dtype=torch.bool), "depth": torch.zeros(3, 16, dtype=torch.bool)}
        batch = MaskedBatch(
            tokens,
            {m: torch.ones(3, 16, dtype=torch.bool) for m in tokens},
            only_rgb,
            {m: ~v for m, v in only_rgb.items()},
        )
        expected, keep = model.encoder_hidden_states(batch)
    assert component.n_layers == 3 and [s.shape for s in states] == [(3, 16, 32)] * 4
    assert keep.all() and len(expected) == 3
    for mine, theirs in zip(states, expected):  # the model's states carry the context token first
        assert torch.allclose(mine, theirs[:, 1:], atol=1e-5)
    assert torch.allclose(states[3], model.encoder_norm(expected[-1])[:, 1:], atol=1e-5)
    # raw images go through the run's rgb tokenizer, as the fm training data did
    images = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8).numpy()
    assert torch.equal(component.normalize(images), tokzoo.load_tokenizer("rgb").encode(images).reshape(2, -1).cpu())
    # the decoder is no part of the component
    assert component.n_parameters() < model.num_parameters()
    assert not any(name.startswith("decoder") for name in component.model.state_dict())


def test_bad_runs_are_one_line_errors(tmp_path, fm_run):
    with pytest.raises(CheckpointError, match="not a trained model folder"):
        build_component("vision", {"fm": str(tmp_path / "nothing")})
    stale = tmp_path / "stale"
    save_checkpoint(stale, tiny_fm("0" * 64), {})
    with pytest.raises(ConfigError) as error:
        FMEncoder.from_run(stale)
    assert "rgb tokenizer 'rgb' has content hash" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="no modality 'normals'"):
        FMEncoder(load_model(fm_run), modality="normals")
    with pytest.raises(ConfigError, match="17 tokens per sample"):
        FMEncoder.from_run(fm_run).begin(torch.zeros(1, 17, dtype=torch.long))


def fm_recipe(method: str, lm_dir, run, steps=3) -> dict:
    settings = {
        "gats": {"layers": [{"rgb": 1, "lm": 1}, {"rgb": 3, "lm": 2}], "dim": 32},
        "epalm": {"vision_layers": [2, 3]},
    }[method]
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
                "components": {"rgb": {"fm": str(run)}, "lm": {"causal_lm": str(lm_dir)}},
                "settings": settings,
            },
        }
    )


@pytest.mark.parametrize("method", ["gats", "epalm"])
def test_glue_training_leaves_the_fm_encoder_bit_identical(method, text_lm, fm_run, tmp_path):  # noqa: F811
    before = {k: v.clone() for k, v in FMEncoder.from_run(fm_run).model.state_dict().items()}
    metrics = run_recipe(fm_recipe(method, text_lm, fm_run), tmp_path / method, log=lambda *_: None)
    assert metrics["components_unchanged"] == {"lm": True, "rgb": True}
    assert metrics["split"]["parts"]["rgb"]["trainable"] == 0 and metrics["split"]["parts"]["glue"]["trainable"] > 0
    loaded = load_composition(tmp_path / method)
    after = loaded.components["rgb"].model.state_dict()
    assert isinstance(loaded.components["rgb"], FMEncoder) and loaded.components["rgb"].frozen
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_loading_checks_the_fm_encoders_hash(text_lm, fm_run, tmp_path):  # noqa: F811
    run_recipe(fm_recipe("epalm", text_lm, fm_run, steps=1), tmp_path / "epalm", log=lambda *_: None)
    retrained = tmp_path / "retrained"
    save_checkpoint(retrained, tiny_fm(tokzoo.load_tokenizer("rgb").content_hash(), seed=1), {})
    with pytest.raises(CheckpointError) as error:
        load_composition(tmp_path / "epalm", components={"rgb": FMEncoder.from_run(retrained, name="rgb")})
    assert "component 'rgb'" in str(error.value) and "\n" not in str(error.value)
    # the encoder's hash covers its own tensors: changing only the decoder leaves it the same component
    model = load_model(fm_run)
    with torch.no_grad():
        next(model.decoder.parameters()).add_(1.0)
    assert FMEncoder(model, tokzoo.load_tokenizer("rgb")).content_hash() == FMEncoder.from_run(fm_run).content_hash()


def test_shipped_fm_recipe_selects_the_fm_component(text_lm, fm_run, tmp_path):  # noqa: F811
    import yaml

    recipe = yaml.safe_load(open("recipes/compose/gats_fm.yaml"))
    assert recipe["compose"]["components"]["rgb"] == {"fm": "runs/compose/fm_scenes"}
    recipe.update(steps=1, batch_size=2, data={"scene_text": {"n_train": 4, "n_val": 2, "size": 32}})
    recipe["compose"]["components"] = {"rgb": {"fm": str(fm_run)}, "lm": {"causal_lm": str(text_lm)}}
    recipe["compose"]["settings"].update(
        layers=[{"rgb": 1, "lm": 1}, {"rgb": 3, "lm": 2}]
    )  # the toy fm: 2 blocks + norm
    metrics = run_recipe(resolve_recipe(recipe), tmp_path / "gats_fm", log=lambda *_: None)
    assert metrics["components_unchanged"] == {"lm": True, "rgb": True}
