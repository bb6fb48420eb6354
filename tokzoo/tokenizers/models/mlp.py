"""MLP encoder/decoder for vectors (global embeddings, poses) with multi-head codes.

Hyperparameters (JSON-able): ``hidden`` width, ``depth`` hidden layers (>= 1), ``n_tokens`` codes
per vector. The encoder's last layer projects to n_tokens x latent_dim.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from torch import nn

from tokzoo.errors import ConfigError, ShapeError


def _mlp(in_features: int, hidden: int, depth: int, out_features: int) -> nn.Sequential:
    """Linear to ``hidden``, then ``depth - 1`` (LayerNorm, SiLU, Linear) hidden layers, then a projection."""
    layers: list[nn.Module] = [nn.Linear(in_features, hidden)]
    for _ in range(depth - 1):
        layers += [nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, hidden)]
    layers += [nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, out_features)]
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """(B, in_channels) -> (B, latent_dim, n_tokens)."""

    def __init__(self, in_channels: int, latent_dim: int, hidden: int = 1024, depth: int = 2, n_tokens: int = 16):
        super().__init__()
        if depth < 1:
            raise ConfigError(f"MLP depth must be >= 1, got {depth}")
        self.in_channels = in_channels
        self.n_tokens = n_tokens
        self.downsample = 1
        self.net = _mlp(in_channels, hidden, depth, n_tokens * latent_dim)

    def token_grid(self, input_shape: Sequence[int]) -> tuple[int]:
        """(n_tokens,) for an input shape ending in C == in_channels; ShapeError otherwise."""
        if len(input_shape) < 1 or int(input_shape[-1]) != self.in_channels:
            raise ShapeError("input", f"expected vectors of {self.in_channels} values, got shape {tuple(input_shape)}")
        return (self.n_tokens,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.token_grid(x.shape)
        return rearrange(self.net(x), "b (n d) -> b d n", n=self.n_tokens)


class MLPDecoder(nn.Module):
    """(B, latent_dim, n_tokens) -> (B, out_channels)."""

    def __init__(self, out_channels: int, latent_dim: int, hidden: int = 1024, depth: int = 2, n_tokens: int = 16):
        super().__init__()
        if depth < 1:
            raise ConfigError(f"MLP depth must be >= 1, got {depth}")
        self.net = _mlp(n_tokens * latent_dim, hidden, depth, out_channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(rearrange(z, "b d n -> b (n d)"))
