"""GATS (Gather-Attend-Scatter, Zolna et al. 2024): a small trainable attention block between frozen models.

At each GATS layer k the components are run (in lockstep) up to the layer the recipe names for them; the
tokens of every component are **gathered** (LayerNorm + a linear map to ``dim``, plus a learned component
embedding and fixed sin-cos positions: 2-D for feature grids, 1-D for sequences), a pre-norm transformer block
**attends** over the gathered set, and its outputs are **scattered** back: a linear map per component (zero
initialised, so an untrained GATS leaves every component exactly as it was) added into that component's
residual stream.

Streams run at their own rates: every token carries a time and its step within its own stream. An LM's token
t has time t and step t; an encoder's tokens come in frames: one image is one frame given at the end of the
prompt (time ``prompt_len - 1``, step 0), :class:`.components.Frames` are several, each at its own time (step =
frame index). A token attends to the tokens whose time is not later than its own, so nothing a position reads
depends on text after it: training with teacher forcing and greedy generation see the same thing.

Settings (the paper's choices are the defaults):

- ``layers``: the number of GATS layers K, each component read at depths spaced in proportion to its own
  depth (GATS layer k at ``round(n * k / K)`` of a component's n layers, k = 1 .. K), or one dict per GATS
  layer naming the layer of every component (not decreasing);
- ``window``: ``{component: N}``, the local context of each stream: a token sees the N most recent steps of
  that stream (LM tokens, encoder frames) among those not later than itself; a stream not named is kept whole;
- ``time_window``: the other rule, for the ablation: only tokens less than this many time steps old (text then
  loses an image given earlier);
- ``write``: steering, the components that receive the scatter (default every one).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..errors import ConfigError
from ..tokenizers.models.vit import sincos_2d
from .components import Frames, Stream
from .registry import Glue, register_method


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


def proportional_layers(components: dict, k: int) -> list[dict]:
    """``k`` GATS layers reading each component at ``round(n * j / k)`` (j = 1 .. k) of its ``n`` layers."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"gats: layers must be a positive number of GATS layers or a list of dicts, got {k!r}")
    return [{name: max(1, round(c.n_layers * j / k)) for name, c in components.items()} for j in range(1, k + 1)]


def visible(
    times: torch.Tensor, steps: torch.Tensor, streams: torch.Tensor, windows: list, time_window=None
) -> torch.Tensor:
    """bool (B, N, N): may token i attend to token j? ``times``, ``steps`` (B, N), ``streams`` (N,) the stream index of
    each token, ``windows[s]`` stream s's window N_s (None: whole). Causal in time; per stream, only the N_s most
    recent steps among those not later than the query; with ``time_window``, only the last time steps."""
    earlier = times[:, None, :] <= times[:, :, None]
    allowed = earlier.clone()
    for s, window in enumerate(windows):
        if window is None:
            continue
        member = streams == s
        # the newest step of stream s a query can see: max over its earlier members
        newest = torch.where(earlier & member, steps[:, None, :], torch.full_like(steps[:, None, :], -1)).amax(-1)
        allowed[:, :, member] &= steps[:, None, member] > (newest[:, :, None] - window)
    if time_window is not None:
        allowed &= times[:, None, :] > times[:, :, None] - time_window
    return allowed


@register_method("gats")
class GATS(Glue):
    """``components``: name -> Component (one of them the LM); settings as in the module docstring."""

    takes_frames = True

    def __init__(
        self,
        components: dict,
        layers: int | list[dict] = 2,
        dim: int = 64,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        window: dict | None = None,
        time_window: int | None = None,
        write: list[str] | None = None,
    ):
        super().__init__()
        self.names = sorted(components)
        if not isinstance(layers, list):
            layers = proportional_layers(components, layers)
        if not layers:
            raise ConfigError("gats: 'layers' must list at least one GATS layer")
        for k, mapping in enumerate(layers):
            if not isinstance(mapping, dict) or sorted(mapping) != self.names:
                raise ConfigError(
                    f"gats: layer {k} names {sorted(mapping) if isinstance(mapping, dict) else mapping}, "
                    f"expected every component {self.names}"
                )
            for name, index in mapping.items():
                n = components[name].n_layers
                if not isinstance(index, int) or not 1 <= index <= n:
                    raise ConfigError(f"gats: layer {k}: {name} layer {index!r} outside 1..{n}")
                if k and index < layers[k - 1][name]:
                    raise ConfigError(f"gats: layer {k}: {name} layer {index} comes before the previous GATS layer's")
        if window is not None and not isinstance(window, dict):
            raise ConfigError(
                f"gats: window must map components to N (counted within each stream), got {window!r}; "
                "time_window: N is the time-step rule"
            )
        window = dict(window or {})
        for name, n in window.items():
            if name not in components or not (n is None or (isinstance(n, int) and not isinstance(n, bool) and n >= 1)):
                raise ConfigError(f"gats: window {{{name}: {n!r}}}: needs a component name and a whole number >= 1")
        self.write = sorted(write) if write is not None else list(self.names)
        if not self.write or set(self.write) - set(self.names):
            raise ConfigError(f"gats: write {write!r} must name some of the components {self.names}")
        self.layers = [dict(m) for m in layers]
        self.dim, self.window, self.time_window = dim, window, time_window
        self.gather = nn.ModuleList()
        self.scatter = nn.ModuleList()
        for mapping in self.layers:
            widths = {name: components[name].width(index) for name, index in mapping.items()}
            self.gather.append(
                nn.ModuleDict({n: nn.Sequential(nn.LayerNorm(w), nn.Linear(w, dim)) for n, w in widths.items()})
            )
            scatter = nn.ModuleDict({n: nn.Linear(dim, widths[n]) for n in self.write})
            for linear in scatter.values():
                nn.init.zeros_(linear.weight)
                nn.init.zeros_(linear.bias)
            self.scatter.append(scatter)
        self.blocks = nn.ModuleList(MaskedBlock(dim, heads, mlp_ratio) for _ in self.layers)
        self.component_embedding = nn.ParameterDict({n: nn.Parameter(torch.randn(dim) * 0.02) for n in self.names})

    @classmethod
    def build(cls, components: dict, lm_name: str, settings: dict) -> "GATS":
        return cls(components, **settings)

    def first_layer(self, name: str) -> int:
        """The layer of component ``name`` up to which GATS neither reads nor writes it."""
        return self.layers[0][name]

    def settings(self) -> dict:
        return {
            "layers": self.layers,
            "dim": self.dim,
            "heads": self.blocks[0].heads,
            "mlp_ratio": self.blocks[0].mlp[0].out_features / self.dim,
            "window": self.window,
            "time_window": self.time_window,
            "write": self.write,
        }

    def _positions(self, component, stream, n: int, device) -> torch.Tensor:
        grid = stream.extra.get("grid")
        if component.kind == "encoder" and grid is not None and self.dim % 4 == 0 and grid[0] * grid[1] == n:
            return sincos_2d(grid[0], grid[1], self.dim, device)
        return sincos_1d(n, self.dim, device)

    def _clock(self, component, n: int, batch: int, prompt_len: torch.Tensor, frames) -> tuple:
        """(times, steps) int64 (B, n) of a stream's n gathered tokens (``frames``: its (B, F) frame times or None)."""
        if component.kind == "lm":
            t = torch.arange(n, device=prompt_len.device).expand(batch, n)
            return t, t
        if frames is None:
            frames = (prompt_len - 1)[:, None]
        per = n // frames.shape[1]
        steps = torch.arange(frames.shape[1], device=frames.device).repeat_interleave(per).expand(batch, n)
        return frames.repeat_interleave(per, dim=1), steps

    def exchange(self, k: int, components: dict, streams: dict, prompt_len: torch.Tensor, frames: dict) -> None:
        """Gather the tokens of every stream, attend, scatter back into the steered ones (in place)."""
        gathered, times, steps, sizes, owners = [], [], [], [], []
        batch = prompt_len.shape[0]
        for s, name in enumerate(self.names):
            component, stream = components[name], streams[name]
            tokens = component.tokens(stream)
            per_frame = tokens.shape[1]
            x = self.gather[k][name](tokens) + self.component_embedding[name]
            x = x + self._positions(component, stream, per_frame, tokens.device).to(x.dtype)
            if name in frames:  # (B * F, n, dim) -> (B, F * n, dim), each frame marked by its index
                n_frames = frames[name].shape[1]
                x = x.view(batch, n_frames, per_frame, -1) + sincos_1d(n_frames, self.dim, x.device)[:, None].to(
                    x.dtype
                )
                x = x.reshape(batch, n_frames * per_frame, -1)
            gathered.append(x)
            t, st = self._clock(component, x.shape[1], batch, prompt_len, frames.get(name))
            times.append(t)
            steps.append(st)
            sizes.append(x.shape[1])
            owners.append(torch.full((x.shape[1],), s, device=x.device))
        windows = [self.window.get(name) for name in self.names]
        allowed = visible(torch.cat(times, 1), torch.cat(steps, 1), torch.cat(owners), windows, self.time_window)
        y = self.blocks[k](torch.cat(gathered, dim=1), allowed)
        for name, part in zip(self.names, y.split(sizes, dim=1)):
            if name in self.write:
                delta = self.scatter[k][name](part)
                if name in frames:
                    delta = delta.reshape(-1, delta.shape[1] // frames[name].shape[1], delta.shape[-1])
                components[name].add(streams[name], delta)

    def forward(
        self, components: dict, inputs: dict, lm_name: str, prompt_len: torch.Tensor, select: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (B, T, vocab) of the LM ``lm_name``; ``inputs`` name -> that component's input (an encoder's may be
        :class:`.components.Frames`: its frames run as one batch, their tokens gathered per sample)."""
        streams, frames = {}, {}
        for name in self.names:
            given = inputs[name]
            if isinstance(given, Frames):  # images (B, F, ...), or cached states already flattened (a Stream)
                frames[name] = given.times
                given = given.images if isinstance(given.images, Stream) else given.images.flatten(0, 1)
            streams[name] = components[name].begin(given)
        for k, mapping in enumerate(self.layers):
            for name, index in mapping.items():
                components[name].run(streams[name], index)
            self.exchange(k, components, streams, prompt_len, frames)
        lm = components[lm_name]
        return lm.finish(lm.run(streams[lm_name], lm.n_layers), select)
