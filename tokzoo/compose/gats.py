"""GATS (Gather-Attend-Scatter, Zolna et al. 2024): a small trainable attention block between frozen models.

At each GATS layer k the components are run (in lockstep) up to the layer the recipe names for them; the
tokens of every component are **gathered** (LayerNorm + a linear map to ``dim``, plus a learned component
embedding and fixed sin-cos positions: 2-D for feature grids, 1-D for sequences), a pre-norm transformer block
**attends** over the gathered set, and its outputs are **scattered** back: a linear map per component (zero
initialised, so an untrained GATS leaves every component exactly as it was) added into that component's
residual stream.

Streams run at their own rates: every token carries a time. An LM's token t has time t; an encoder's tokens
are one frame, given at the end of the prompt (time ``prompt_len - 1``). A token attends to the tokens whose
time is not later than its own (and, with ``window``, not older than ``window`` steps), so nothing a position
reads depends on text after it: training with teacher forcing and greedy generation see the same thing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..errors import ConfigError
from ..models.vit import sincos_2d


class MaskedBlock(nn.Module):
    """Pre-norm transformer block with a boolean attention mask (B, N, N), True = may attend. (B, N, dim) -> same."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"gats: dim {dim} must be divisible by heads {heads}")
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(self.norm1(x)), "b n (t h d) -> t b h n d", t=3, h=self.heads)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None])
        x = x + self.proj(rearrange(attn, "b h n d -> b n (h d)"))
        return x + self.mlp(self.norm2(x))


def sincos_1d(n: int, dim: int, device=None) -> torch.Tensor:
    """Fixed (n, dim) sin-cos embedding of positions 0 .. n-1."""
    freqs = 1.0 / 10000 ** (torch.arange(dim // 2, device=device, dtype=torch.float32) / max(1, dim // 2))
    angles = torch.arange(n, device=device, dtype=torch.float32)[:, None] * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class GATS(nn.Module):
    """``components``: name -> Component (one of them the LM); ``layers``: one dict per GATS layer mapping each
    component name to the layer (1 .. n_layers) after which it is gathered; layers must not decrease."""

    method = "gats"

    def __init__(self, components: dict, layers: list[dict], dim: int = 64, heads: int = 4, mlp_ratio: float = 2.0,
                 window: int | None = None):  # fmt: skip
        super().__init__()
        self.names = sorted(components)
        if not layers:
            raise ConfigError("gats: 'layers' must list at least one GATS layer")
        for k, mapping in enumerate(layers):
            if sorted(mapping) != self.names:
                raise ConfigError(f"gats: layer {k} names {sorted(mapping)}, expected every component {self.names}")
            for name, index in mapping.items():
                n = components[name].n_layers
                if not isinstance(index, int) or not 1 <= index <= n:
                    raise ConfigError(f"gats: layer {k}: {name} layer {index!r} outside 1..{n}")
                if k and index < layers[k - 1][name]:
                    raise ConfigError(f"gats: layer {k}: {name} layer {index} comes before the previous GATS layer's")
        self.layers = [dict(m) for m in layers]
        self.dim, self.window = dim, window
        self.gather = nn.ModuleList()
        self.scatter = nn.ModuleList()
        for mapping in self.layers:
            widths = {name: components[name].width(index) for name, index in mapping.items()}
            self.gather.append(nn.ModuleDict({n: nn.Sequential(nn.LayerNorm(w), nn.Linear(w, dim)) for n, w in widths.items()}))
            scatter = nn.ModuleDict({n: nn.Linear(dim, w) for n, w in widths.items()})
            for linear in scatter.values():
                nn.init.zeros_(linear.weight)
                nn.init.zeros_(linear.bias)
            self.scatter.append(scatter)
        self.blocks = nn.ModuleList(MaskedBlock(dim, heads, mlp_ratio) for _ in self.layers)
        self.component_embedding = nn.ParameterDict({n: nn.Parameter(torch.randn(dim) * 0.02) for n in self.names})

    def first_layer(self, name: str) -> int:
        """The layer of component ``name`` up to which GATS neither reads nor writes it."""
        return self.layers[0][name]

    def settings(self) -> dict:
        return {"layers": self.layers, "dim": self.dim, "heads": self.blocks[0].heads,
                "mlp_ratio": self.blocks[0].mlp[0].out_features / self.dim, "window": self.window}  # fmt: skip

    def _positions(self, component, stream, n: int, device) -> torch.Tensor:
        grid = stream.extra.get("grid")
        if component.kind == "encoder" and grid is not None and self.dim % 4 == 0 and grid[0] * grid[1] == n:
            return sincos_2d(grid[0], grid[1], self.dim, device)
        return sincos_1d(n, self.dim, device)

    def _times(self, component, n: int, batch: int, prompt_len: torch.Tensor) -> torch.Tensor:
        if component.kind == "lm":
            return torch.arange(n, device=prompt_len.device).expand(batch, n)
        return (prompt_len - 1)[:, None].expand(batch, n)

    def exchange(self, k: int, components: dict, streams: dict, prompt_len: torch.Tensor) -> None:
        """Gather the tokens of every stream, attend, scatter back into each (in place)."""
        gathered, times, sizes = [], [], []
        for name in self.names:
            component, stream = components[name], streams[name]
            tokens = component.tokens(stream)
            b, n, _ = tokens.shape
            x = self.gather[k][name](tokens) + self.component_embedding[name]
            gathered.append(x + self._positions(component, stream, n, tokens.device).to(x.dtype))
            times.append(self._times(component, n, b, prompt_len))
            sizes.append(n)
        x, t = torch.cat(gathered, dim=1), torch.cat(times, dim=1)
        allowed = t[:, None, :] <= t[:, :, None]
        if self.window is not None:
            allowed &= t[:, None, :] > t[:, :, None] - self.window
        y = self.blocks[k](x, allowed)
        for name, part in zip(self.names, y.split(sizes, dim=1)):
            components[name].add(streams[name], self.scatter[k][name](part))

    def forward(self, components: dict, inputs: dict, lm_name: str, prompt_len: torch.Tensor,
                select: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, vocab) of the LM ``lm_name``; ``inputs`` name -> that component's input."""
        streams = {name: components[name].begin(inputs[name]) for name in self.names}
        for k, mapping in enumerate(self.layers):
            for name, index in mapping.items():
                components[name].run(streams[name], index)
            self.exchange(k, components, streams, prompt_len)
        lm = components[lm_name]
        return lm.finish(lm.run(streams[lm_name], lm.n_layers), select)
