"""Convolutional encoder/decoder for image-like modalities (ResNet blocks, any channel count).

Hyperparameters (JSON-able): ``width`` channels of the first level, ``channel_mults`` one multiplier
per level (the downsampling is ``2 ** (len(channel_mults) - 1)``), ``blocks_per_level`` residual
blocks per level (one int for all levels, or a list from full resolution down; the decoder mirrors it),
``groups`` GroupNorm groups, ``decoder_blocks_per_level`` (optional) the decoder's own block counts
(more decoding capacity at the same tokens; the encoder ignores it). A first level with no blocks
merges the stem into the first stride-2 conv (and, in the decoder, the last upsampling into the
output conv): no full-resolution feature maps, which is what makes the tiny presets fast on CPU.

:func:`grown_state_dict` starts a decoder with more blocks from a trained one with fewer: the
shared layers keep their weights, the added blocks start as identities.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tokzoo.errors import ConfigError
from tokzoo.tokenizers.models.common import spatial_grid


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, channels), channels, eps=1e-6)


class ResBlock(nn.Module):
    """(GroupNorm, SiLU, 3x3 conv) twice plus a skip (1x1 conv when channels change). (B, Ci, H, W) -> (B, Co, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(
            _norm(in_channels, groups),
            nn.SiLU(),
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            _norm(out_channels, groups),
            nn.SiLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


def _levels(width: int, channel_mults: Sequence[int], blocks_per_level: int | Sequence[int]) -> list[tuple[int, int]]:
    """(channels, residual blocks) per level, from full resolution down."""
    blocks = [blocks_per_level] * len(channel_mults) if isinstance(blocks_per_level, int) else list(blocks_per_level)
    if len(blocks) != len(channel_mults):
        raise ConfigError(
            f"blocks_per_level {blocks_per_level} needs one entry per channel_mults level ({len(channel_mults)})"
        )
    return [(width * m, n) for m, n in zip(channel_mults, blocks)]


class ConvEncoder(nn.Module):
    """(B, in_channels, H, W) -> (B, latent_dim, H / downsample, W / downsample)."""

    def __init__(
        self,
        in_channels: int,
        latent_dim: int,
        width: int = 64,
        channel_mults: Sequence[int] = (1, 2, 2, 4),
        blocks_per_level: int | Sequence[int] = 1,
        groups: int = 32,
    ):
        super().__init__()
        levels = _levels(width, channel_mults, blocks_per_level)
        self.downsample = 2 ** (len(levels) - 1)
        strided_stem = levels[0][1] == 0 and len(levels) > 1
        current = levels[0][0]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, current, 3, stride=2 if strided_stem else 1, padding=1)]
        for level, (level_width, n_blocks) in enumerate(levels):
            for _ in range(n_blocks):
                layers.append(ResBlock(current, level_width, groups))
                current = level_width
            if level < len(levels) - 1 and not (level == 0 and strided_stem):
                layers.append(nn.Conv2d(current, current, 3, stride=2, padding=1))
        layers += [_norm(current, groups), nn.SiLU(), nn.Conv2d(current, latent_dim, 1)]
        self.layers = nn.Sequential(*layers)

    def token_grid(self, input_shape: Sequence[int]) -> tuple[int, int]:
        """(h, w) latent grid for an input shape ending in (H, W); ShapeError if they do not divide."""
        return spatial_grid(input_shape, self.downsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.token_grid(x.shape)
        return self.layers(x)


class ConvDecoder(nn.Module):
    """(B, latent_dim, h, w) -> (B, out_channels, h * upsample, w * upsample); mirrors ConvEncoder."""

    def __init__(
        self,
        out_channels: int,
        latent_dim: int,
        width: int = 64,
        channel_mults: Sequence[int] = (1, 2, 2, 4),
        blocks_per_level: int | Sequence[int] = 1,
        groups: int = 32,
        decoder_blocks_per_level: int | Sequence[int] | None = None,
    ):
        super().__init__()
        # the stem shortcut follows the encoder's first level, so extra decoder blocks keep the token grid
        strided_stem = _levels(width, channel_mults, blocks_per_level)[0][1] == 0 and len(channel_mults) > 1
        own = blocks_per_level if decoder_blocks_per_level is None else decoder_blocks_per_level
        levels = _levels(width, channel_mults, own)[::-1]
        if strided_stem and levels[-1][1]:
            raise ConfigError(
                "decoder_blocks_per_level: the full-resolution level needs 0 blocks when the encoder's has 0"
            )
        self.upsample = 2 ** (len(levels) - 1)
        current = levels[0][0]
        layers: list[nn.Module] = [nn.Conv2d(latent_dim, current, 3, padding=1)]
        self.roles = ["in"]
        """One name per layer, the same for the same layer of decoders that differ only in block counts."""
        for level, (level_width, n_blocks) in enumerate(levels):
            for block in range(n_blocks):
                layers.append(ResBlock(current, level_width, groups))
                self.roles.append(f"level{level}.block{block}")
                current = level_width
            if level < len(levels) - (2 if strided_stem else 1):
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(current, current, 3, padding=1)]
                self.roles += [f"level{level}.upsample", f"level{level}.upsample_conv"]
        layers += [_norm(current, groups), nn.SiLU()]
        self.roles += ["out_norm", "out_act"]
        if strided_stem:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            self.roles.append("out_upsample")
        layers.append(nn.Conv2d(current, out_channels, 3, padding=1))
        self.roles.append("out")
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)


def grown_state_dict(grown: ConvDecoder, trained: ConvDecoder) -> dict[str, torch.Tensor]:
    """``grown``'s state dict holding ``trained``'s weights: layers of the same role are copied, residual blocks
    that ``trained`` lacks become identities (their last conv zeroed), so both decoders compute the same function.
    ConfigError when a shared layer's shapes differ or ``trained`` has a layer ``grown`` lacks."""
    index = {role: i for i, role in enumerate(grown.roles)}
    missing = [role for role in trained.roles if role not in index]
    if missing:
        raise ConfigError(f"init: the trained decoder has layers the recipe's lacks: {', '.join(missing)}")
    state = {name: tensor.clone() for name, tensor in grown.state_dict().items()}
    for role, layer in zip(trained.roles, trained.layers):
        prefix = f"layers.{index[role]}."
        for name, tensor in layer.state_dict().items():
            if state[prefix + name].shape != tensor.shape:
                raise ConfigError(f"init: decoder layer {role}.{name}: shape {tuple(tensor.shape)} vs the recipe's")
            state[prefix + name] = tensor.clone()
    shared = set(trained.roles)
    for i, role in enumerate(grown.roles):
        if role not in shared:
            last = f"layers.{i}.body.5."
            state[last + "weight"].zero_()
            state[last + "bias"].zero_()
    return state
