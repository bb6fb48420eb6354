"""Transformer blocks of the 4M-style model: pre-norm, SwiGLU, no biases, LayerNorm eps 1e-6.

Attention goes through ``F.scaled_dot_product_attention`` (fused kernels on GPU). Masks are boolean,
True = may attend, broadcastable to (B, heads, L_query, L_key); every query row must allow at least one key.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-6


def layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=EPS, bias=False)


class Attention(nn.Module):
    """Multi-head attention of queries x (B, Lq, D) over keys/values ``context`` (B, Lk, D) (x itself if None)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        context = x if context is None else context
        q = self.q(x).view(b, n, self.heads, -1).transpose(1, 2)
        k, v = self.kv(context).view(b, context.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class SwiGLU(nn.Module):
    """x -> W2 (silu(W1 x) * W3 x); hidden width 2/3 of ``ratio * dim`` (same parameters as a 2-layer MLP)."""

    def __init__(self, dim: int, ratio: float = 4.0):
        super().__init__()
        hidden = int(2 * ratio * dim / 3)
        self.gate_up = nn.Linear(dim, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1, self.attn = layer_norm(dim), Attention(dim, heads)
        self.norm2, self.mlp = layer_norm(dim), SwiGLU(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """Self-attention among the queries (masked to stay within a modality), cross-attention to the context, MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1, self.self_attn = layer_norm(dim), Attention(dim, heads)
        self.norm2, self.cross_attn = layer_norm(dim), Attention(dim, heads)
        self.norm3, self.mlp = layer_norm(dim), SwiGLU(dim, mlp_ratio)

    def forward(
        self, x: torch.Tensor, self_mask: torch.Tensor, context: torch.Tensor, cross_mask: torch.Tensor
    ) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x), self_mask)
        x = x + self.cross_attn(self.norm2(x), cross_mask, context)
        return x + self.mlp(self.norm3(x))
