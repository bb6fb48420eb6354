"""Model families: shapes, errors, rebuild from JSON hyperparameters, bf16 autocast."""

from __future__ import annotations

import json

import pytest
import torch

from tokzoo.errors import ConfigError, ShapeError
from tokzoo.tokenizers.models import (
    FAMILIES,
    PRESETS,
    build_decoder,
    build_encoder,
    prepare_for_inference,
    resolve_preset,
)

IMAGE_PRESETS = ["conv-tiny", "conv-small", "vit-tiny"]
LATENT = 8


def _pair(preset: str, channels: int, **overrides):
    config = resolve_preset(preset, **overrides)
    family = config.pop("family")
    torch.manual_seed(0)
    return build_encoder(family, channels, LATENT, **config), build_decoder(family, channels, LATENT, **config)


@pytest.mark.parametrize("preset", IMAGE_PRESETS)
@pytest.mark.parametrize("channels, size", [(3, (32, 32)), (1, (32, 64)), (5, (64, 48))])
def test_image_round_trip_shapes(preset, channels, size):
    enc, dec = _pair(preset, channels)
    x = torch.randn(2, channels, *size)
    z = enc(x)
    f = enc.downsample
    assert z.shape == (2, LATENT, size[0] // f, size[1] // f)
    assert enc.token_grid(x.shape) == tuple(z.shape[-2:])
    assert enc.token_grid(size) == tuple(z.shape[-2:])
    assert dec(z).shape == x.shape


@pytest.mark.parametrize("blocks", [1, [1, 0, 2, 1], [0, 0, 0, 1]])
def test_conv_block_layouts_round_trip(blocks):
    enc, dec = _pair("conv-tiny", 2, blocks_per_level=blocks)
    x = torch.randn(1, 2, 24, 40)
    z = enc(x)
    assert z.shape == (1, LATENT, 3, 5)
    assert dec(z).shape == x.shape


def test_a_grown_decoder_starts_as_the_trained_one_and_then_trains_its_new_blocks():
    from tokzoo.tokenizers.models.conv import grown_state_dict

    enc, trained = _pair("conv-tiny", 3, channel_mults=[1, 2, 2], blocks_per_level=[0, 1, 1])
    with torch.no_grad():  # a "trained" decoder: not the initialisation a fresh build would repeat
        for p in trained.parameters():
            p.add_(0.1 * torch.randn_like(p))
    _, grown = _pair(
        "conv-tiny", 3, channel_mults=[1, 2, 2], blocks_per_level=[0, 1, 1], decoder_blocks_per_level=[0, 2, 3]
    )
    assert len(grown.layers) == len(trained.layers) + 3
    z = enc(torch.randn(2, 3, 32, 32))
    assert not torch.allclose(grown(z), trained(z))
    grown.load_state_dict(grown_state_dict(grown, trained))
    assert torch.allclose(grown(z), trained(z), atol=1e-6)
    grown(z).square().mean().backward()  # the added blocks learn: their zeroed last conv gets a gradient
    added = [i for i, role in enumerate(grown.roles) if role not in trained.roles]
    assert all(grown.layers[i].body[5].weight.grad.abs().sum() > 0 for i in added)
    with pytest.raises(ConfigError, match="lacks"):
        trained.load_state_dict(grown_state_dict(trained, grown))
    with pytest.raises(ConfigError, match="full-resolution level"):
        _pair("conv-tiny", 3, channel_mults=[1, 2, 2], blocks_per_level=[0, 1, 1], decoder_blocks_per_level=[1, 1, 1])


def test_conv_blocks_per_level_length_must_match():
    with pytest.raises(ConfigError, match="blocks_per_level"):
        _pair("conv-tiny", 3, blocks_per_level=[1, 1])


@pytest.mark.parametrize("preset", IMAGE_PRESETS)
def test_image_non_divisible_size_raises(preset):
    enc, _ = _pair(preset, 3)
    bad = (enc.downsample * 2 + 4, enc.downsample * 2)
    with pytest.raises(ShapeError, match=r"^input: .*\b%d\b" % enc.downsample):
        enc.token_grid(bad)
    with pytest.raises(ShapeError):
        enc(torch.zeros(1, 3, *bad))


def test_downsampling_of_presets():
    assert _pair("conv-tiny", 3)[0].downsample == 8
    assert _pair("conv-small", 3)[0].downsample == 16
    assert _pair("vit-tiny", 3)[0].downsample == 16


@pytest.mark.parametrize("channels", [1, 7, 768])
def test_mlp_round_trip_shapes(channels):
    enc, dec = _pair("mlp-small", channels)
    x = torch.randn(3, channels)
    z = enc(x)
    n = PRESETS["mlp-small"]["n_tokens"]
    assert z.shape == (3, LATENT, n)
    assert enc.token_grid(x.shape) == (n,)
    assert dec(z).shape == x.shape


def test_mlp_wrong_width_raises():
    enc, _ = _pair("mlp-small", 6)
    with pytest.raises(ShapeError, match="^input: "):
        enc(torch.zeros(2, 5))


@pytest.mark.parametrize("preset", ["conv-tiny", "vit-tiny", "mlp-small"])
def test_rebuild_from_json_config(preset):
    config = resolve_preset(preset)
    rebuilt = json.loads(json.dumps(config))
    family = rebuilt.pop("family")
    for build, original in zip((build_encoder, build_decoder), _pair(preset, 4)):
        model = build(family, 4, LATENT, **rebuilt)
        want = {k: v.shape for k, v in original.state_dict().items()}
        assert {k: v.shape for k, v in model.state_dict().items()} == want
        model.load_state_dict(original.state_dict())


@pytest.mark.parametrize("preset", ["conv-tiny", "vit-tiny", "mlp-small"])
def test_init_is_deterministic(preset):
    (e1, d1), (e2, d2) = _pair(preset, 3), _pair(preset, 3)
    for a, b in ((e1, e2), (d1, d2)):
        for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(v, w), k


@pytest.mark.parametrize("preset", ["conv-tiny", "vit-tiny", "mlp-small"])
def test_bf16_autocast(preset):
    enc, dec = _pair(preset, 3)
    x = torch.randn(2, 3) if preset.startswith("mlp") else torch.randn(2, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = enc(x)
        y = dec(z)
    assert y.shape == x.shape
    assert torch.isfinite(y.float()).all()
    ref = dec(enc(x))
    assert torch.allclose(y.float(), ref, atol=0.1 * ref.abs().max().item() + 0.05)


def test_prepare_for_inference_keeps_outputs():
    enc, _ = _pair("conv-tiny", 3)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        ref = enc.eval()(x)
        fast = prepare_for_inference(enc)(x)
    assert not fast.requires_grad
    assert torch.allclose(fast, ref, atol=1e-5)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in enc.parameters() if p.dim() == 4)


def test_unknown_preset_family_and_hyperparameter():
    with pytest.raises(ConfigError, match="conv-tiny") as info:
        resolve_preset("conv-huge")
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="patch_size"):
        resolve_preset("vit-tiny", patch=8)
    with pytest.raises(ConfigError, match="conv, vit, mlp"):
        build_encoder("unet", 3, LATENT)
    with pytest.raises(ConfigError, match="width"):
        build_decoder("conv", 3, LATENT, widht=8)
    assert resolve_preset("vit-tiny", patch_size=8)["patch_size"] == 8


def test_presets_are_json_and_small_ones_fit_3mb():
    for name, config in PRESETS.items():
        assert config["family"] in FAMILIES
        assert json.loads(json.dumps(config)) == config, name
    for name in ["conv-tiny", "conv-small", "vit-tiny", "mlp-small"]:
        enc, dec = _pair(name, 3)
        n_bytes = 4 * sum(p.numel() for m in (enc, dec) for p in m.parameters())
        assert n_bytes <= 3_000_000, (name, n_bytes)
