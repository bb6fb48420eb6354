"""Colour jitter of rgb training views (recipe data.colour): chroma rotated and scaled, luma and greys kept,
seeded, off by default, training views only, rgb only."""

import numpy as np
import pytest

from tokzoo.errors import ConfigError
from tokzoo.tokenizers.training import build_tokenizer, validate_recipe
from tokzoo.tokenizers.training.colour import jitter_colour
from tokzoo.tokenizers.training.data import TrainingData

RGB = {
    "name": "tiny_rgb",
    "tokenizer": {
        "modality": "rgb",
        "model": {"preset": "conv-tiny", "width": 8, "groups": 4},
        "latent_dim": 8,
        "quantizer": {"type": "fsq", "levels": [5, 5, 5]},
        "input_size": [32, 32],
    },
    "loss": "mse",
    "data": {
        "scenes": {"n_train": 4, "n_val": 2, "seed": 3, "size": 40},
        "colour": {"hue": 60, "saturation": [0.5, 1.5]},
    },
    "optimizer": {"lr": 1e-3},
    "schedule": {"warmup_steps": 1},
    "batch_size": 4,
    "steps": 1,
    "seed": 0,
}


def luma(view):
    return view.astype(np.float64) @ [0.299, 0.587, 0.114]


def test_jitter_moves_chroma_and_keeps_luma_and_greys():
    rng = np.random.default_rng(0)
    view = rng.integers(40, 216, (16, 16, 3), dtype=np.uint8)
    view[0] = 128  # a grey row
    spec = {"hue": 90, "saturation": [0.5, 1.5]}
    out = jitter_colour(view, spec, np.random.default_rng(1))
    assert out.dtype == np.uint8 and out.shape == view.shape
    assert np.abs(out.astype(int) - view).mean() > 5  # the colours moved
    assert np.abs(luma(out) - luma(view)).max() < 2.5  # brightness kept (rounding and clipping aside)
    assert np.array_equal(out[0], view[0])  # greys have no chroma to move
    assert np.array_equal(out, jitter_colour(view, spec, np.random.default_rng(1)))  # seeded
    assert np.array_equal(jitter_colour(view, {}, np.random.default_rng(1)), view)  # off: identity


def test_training_views_only_and_off_by_default():
    recipe = validate_recipe(RGB)
    codec = build_tokenizer(recipe).codec
    plain = TrainingData(validate_recipe({**RGB, "data": {"scenes": RGB["data"]["scenes"]}}), codec)
    jittered = TrainingData(recipe, codec)
    assert plain.colour is None
    assert not np.array_equal(plain.batch(2).numpy(), jittered.batch(2).numpy())
    assert np.array_equal(jittered.batch(2).numpy(), TrainingData(recipe, codec).batch(2).numpy())
    for a, b in zip(plain.validation_batches(), jittered.validation_batches()):
        assert np.array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize(
    "colour, message",
    [
        ({"hue": 200}, "data.colour.hue"),
        ({"saturation": [1.5, 0.5]}, "data.colour.saturation"),
        ({"contrast": 1}, "data.colour"),
    ],
)
def test_bad_colour_is_a_one_line_config_error(colour, message):
    with pytest.raises(ConfigError, match=message):
        validate_recipe({**RGB, "data": {**RGB["data"], "colour": colour}})


def test_colour_jitter_is_for_rgb_only():
    depth = {**RGB, "tokenizer": {**RGB["tokenizer"], "modality": "depth"}, "loss": "smooth_l1"}
    with pytest.raises(ConfigError, match="data.colour: colour jitter applies to rgb"):
        validate_recipe(depth)
