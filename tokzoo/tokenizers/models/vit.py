"""ViT encoder/decoder for image-like modalities, with fixed 2-D sin-cos positions for any grid.

Hyperparameters (JSON-able): ``patch_size`` (also the downsampling), ``width``, ``depth``, ``heads``,
``mlp_ratio``. The decoder mirrors the encoder with the same hyperparameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from tokzoo.errors import ConfigError
from tokzoo.tokenizers.models.common import spatial_grid


def sincos_2d(h: int, w: int, dim: int, device=None) -> torch.Tensor:
    """Fixed (h * w, dim) position embedding: sin/cos of row and column at dim / 4 frequencies each."""
    freqs = 1.0 / 10000 ** (torch.arange(dim // 4, device=device, dtype=torch.float32) / (dim // 4))
    rows, cols = torch.meshgrid(
        torch.arange(h, device=device, dtype=torch.float32),
        torch.arange(w, device=device, dtype=torch.float32),
        indexing="ij",
    )
    angles_r = rows.reshape(-1, 1) * freqs
    angles_c = cols.reshape(-1, 1) * freqs
    return torch.cat([angles_r.sin(), angles_r.cos(), angles_c.sin(), angles_c.cos()], dim=1)


class Block(nn.Module):
    """Pre-norm transformer block: attention then MLP, both residual. (B, N, width) -> same."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(self.norm1(x)), "b n (t h d) -> t b h n d", t=3, h=self.heads)
        attn = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(rearrange(attn, "b h n d -> b n (h d)"))
        return x + self.mlp(self.norm2(x))


class _Trunk(nn.Module):
    """Positions + transformer blocks + final LayerNorm over a (B, h * w, width) token grid."""

    def __init__(self, width: int, depth: int, heads: int, mlp_ratio: float):
        super().__init__()
        if width % heads or width % 4:
            raise ConfigError(f"ViT width {width} must be divisible by heads ({heads}) and by 4 (sin-cos positions)")
        self.width = width
        self.blocks = nn.Sequential(*(Block(width, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + sincos_2d(h, w, self.width, x.device).to(x.dtype)
        return self.norm(self.blocks(x))


class ViTEncoder(nn.Module):
    """(B, in_channels, H, W) -> (B, latent_dim, H / patch_size, W / patch_size)."""

    def __init__(
        self,
        in_channels: int,
        latent_dim: int,
        patch_size: int = 16,
        width: int = 768,
        depth: int = 12,
        heads: int = 12,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        self.downsample = patch_size
        self.patch_embed = nn.Linear(in_channels * patch_size**2, width)
        self.trunk = _Trunk(width, depth, heads, mlp_ratio)
        self.to_latent = nn.Linear(width, latent_dim)

    def token_grid(self, input_shape: Sequence[int]) -> tuple[int, int]:
        """(h, w) patch grid for an input shape ending in (H, W); ShapeError if they do not divide."""
        return spatial_grid(input_shape, self.downsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.token_grid(x.shape)
        p = self.downsample
        patches = rearrange(x, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=p, p2=p)
        tokens = self.trunk(self.patch_embed(patches), h, w)
        return rearrange(self.to_latent(tokens), "b (h w) d -> b d h w", h=h, w=w)


class ViTDecoder(nn.Module):
    """(B, latent_dim, h, w) -> (B, out_channels, h * patch_size, w * patch_size); mirrors ViTEncoder."""

    def __init__(
        self,
        out_channels: int,
        latent_dim: int,
        patch_size: int = 16,
        width: int = 768,
        depth: int = 12,
        heads: int = 12,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        self.upsample = patch_size
        self.from_latent = nn.Linear(latent_dim, width)
        self.trunk = _Trunk(width, depth, heads, mlp_ratio)
        self.to_patches = nn.Linear(width, out_channels * patch_size**2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h, w = z.shape[-2:]
        tokens = self.trunk(self.from_latent(rearrange(z, "b d h w -> b (h w) d")), h, w)
        p = self.upsample
        return rearrange(self.to_patches(tokens), "b (h w) (p1 p2 c) -> b c (h p1) (w p2)", h=h, p1=p, p2=p)
