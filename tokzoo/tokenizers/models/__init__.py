"""Model families chosen by name, and one table of named sizes.

``FAMILIES[family] -> (Encoder, Decoder)``; ``PRESETS[name] -> dict(family=..., **hyperparameters)``.
Hyperparameters are plain JSON values: a model is rebuilt from its ``config.json`` entry alone.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from tokzoo.errors import ConfigError
from tokzoo.tokenizers.models.common import prepare_for_inference
from tokzoo.tokenizers.models.conv import ConvDecoder, ConvEncoder
from tokzoo.tokenizers.models.mlp import MLPDecoder, MLPEncoder
from tokzoo.tokenizers.models.vit import ViTDecoder, ViTEncoder

__all__ = [
    "FAMILIES",
    "PRESETS",
    "build_decoder",
    "build_encoder",
    "hyperparameters",
    "prepare_for_inference",
    "resolve_preset",
]

FAMILIES: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "conv": (ConvEncoder, ConvDecoder),
    "vit": (ViTEncoder, ViTDecoder),
    "mlp": (MLPEncoder, MLPDecoder),
}

PRESETS: dict[str, dict[str, Any]] = {
    # <= 3 MB of float32 weights for encoder + decoder, trainable on CPU.
    # No blocks at full resolution: a stride-2 stem keeps CPU encoding compute-bound (benchmarks/RESULTS.md).
    "conv-tiny": dict(family="conv", width=32, channel_mults=[1, 1, 2, 2], blocks_per_level=[0, 1, 1, 1], groups=8),
    "conv-small": dict(
        family="conv", width=32, channel_mults=[1, 1, 2, 2, 2], blocks_per_level=[0, 1, 1, 1, 1], groups=8
    ),
    "conv-base": dict(family="conv", width=128, channel_mults=[1, 1, 2, 2, 4], blocks_per_level=2, groups=32),
    "vit-tiny": dict(family="vit", patch_size=16, width=96, depth=2, heads=3, mlp_ratio=4.0),
    "vit-small": dict(family="vit", patch_size=16, width=384, depth=6, heads=6, mlp_ratio=4.0),
    "vit-base": dict(family="vit", patch_size=16, width=768, depth=12, heads=12, mlp_ratio=4.0),
    "mlp-small": dict(family="mlp", hidden=256, depth=2, n_tokens=8),
    "mlp-base": dict(family="mlp", hidden=1024, depth=3, n_tokens=16),
}

_POSITIONAL = {"in_channels", "out_channels", "latent_dim"}


def _own(cls: type[nn.Module]) -> dict[str, Any]:
    params = inspect.signature(cls).parameters
    return {name: p.default for name, p in params.items() if name not in _POSITIONAL}


def hyperparameters(family: str) -> dict[str, Any]:
    """The family's hyperparameter names (its encoder's and decoder's) with their defaults; ConfigError on an
    unknown family."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown model family {family!r}; valid families: {', '.join(FAMILIES)}")
    encoder, decoder = FAMILIES[family]
    return _own(decoder) | _own(encoder)


def _check_hp(family: str, hp: dict[str, Any]) -> None:
    valid = hyperparameters(family)
    unknown = sorted(set(hp) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown hyperparameter(s) {', '.join(unknown)} for model family {family!r}; valid: {', '.join(valid)}"
        )


def build_encoder(family: str, in_channels: int, latent_dim: int, **hp: Any) -> nn.Module:
    """Encoder of ``family``: (B, C, H, W) -> (B, latent_dim, h, w), or (B, C) -> (B, latent_dim, n) for mlp."""
    _check_hp(family, hp)
    cls = FAMILIES[family][0]
    return cls(in_channels, latent_dim, **{k: v for k, v in hp.items() if k in _own(cls)})


def build_decoder(family: str, out_channels: int, latent_dim: int, **hp: Any) -> nn.Module:
    """Decoder of ``family``, the inverse of its encoder's shapes."""
    _check_hp(family, hp)
    cls = FAMILIES[family][1]
    return cls(out_channels, latent_dim, **{k: v for k, v in hp.items() if k in _own(cls)})


def resolve_preset(name: str, **overrides: Any) -> dict[str, Any]:
    """``dict(family=..., **hyperparameters)`` of preset ``name`` with ``overrides`` applied.

    Raises ConfigError on an unknown preset or an override the preset's family does not take.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; valid presets: {', '.join(PRESETS)}")
    config = dict(PRESETS[name])
    _check_hp(config["family"], overrides)
    return config | overrides
