"""``xattn``: gated decoupled cross-attention from the frozen LM's queries over the encoder's tokens (a Flamingo /
IP-Adapter-like method; this was tokzoo's first "MiT", which the paper's mechanism in :mod:`.mit` replaces).

In each chosen LM block the frozen attention runs as before; beside it, the block's own (frozen) queries
attend over the encoder's tokens through **trainable** key and value projections, in a separate softmax
(decoupled from the text keys). Each head's result is **rescaled adaptively**: a learned per-head logit
temperature (``exp(s_h)``, s_h = 0 at the start) and a learned per-head gate (``tanh(g_h)``, g_h = 0 at the
start, so an untrained glue is the frozen LM exactly). The heads are merged by the block's frozen output
projection and added to its attention output, before its MLP. Trainable: a LayerNorm on the encoder tokens,
per chosen block the key/value projections, gates and temperatures.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .registry import Glue, register_method


class Infusion(nn.Module):
    """One LM block's infusion: encoder tokens (B, N, C) and the block's queries -> (B, T, D) before output projection."""

    def __init__(self, channels: int, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.key, self.value = nn.Linear(channels, width), nn.Linear(channels, width)
        self.gate = nn.Parameter(torch.zeros(heads))
        self.log_temperature = nn.Parameter(torch.zeros(heads))

    def forward(self, queries: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        b, h, t, d = queries.shape
        k = self.key(features).view(b, -1, h, d).transpose(1, 2)
        v = self.value(features).view(b, -1, h, d).transpose(1, 2)
        # softmax(q k^T exp(s_h) / sqrt(d)): sdpa applies the 1 / sqrt(d) itself
        attn = F.scaled_dot_product_attention(queries * self.log_temperature.exp()[None, :, None, None], k, v)
        attn = attn * torch.tanh(self.gate)[None, :, None, None]
        return attn.transpose(1, 2).reshape(b, t, h * d)


@register_method("xattn")
class CrossAttention(Glue):
    """Settings: ``vision_layer`` (encoder layer read; negative counts from the end), ``layers`` (LM blocks)."""

    def __init__(self, lm, encoder, vision_layer: int = -1, layers: list[int] | None = None):
        super().__init__()
        self.encoder_name = encoder.name
        n_v, n_l = encoder.n_layers, lm.n_layers
        self.vision_layer = vision_layer if vision_layer >= 0 else n_v + 1 + vision_layer
        self.layers = list(layers or range(1, n_l + 1))
        if not 0 <= self.vision_layer <= n_v:
            raise ConfigError(f"xattn: vision_layer {vision_layer} outside 0..{n_v} (negative counts from the end)")
        if any(not 1 <= i <= n_l for i in self.layers):
            raise ConfigError(f"xattn: layers {layers} outside the LM's 1..{n_l}")
        channels = encoder.width(self.vision_layer)
        self.norm = nn.LayerNorm(channels)
        self.infusions = nn.ModuleDict({str(i): Infusion(channels, lm.width(i), lm.heads) for i in self.layers})

    def first_layer(self, name: str) -> int:
        return self.vision_layer if name == self.encoder_name else 0

    def settings(self) -> dict:
        return {"vision_layer": self.vision_layer, "layers": self.layers}

    def features(self, encoder, inputs) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not encoder.frozen):
            tokens = encoder.tokens(encoder.run(encoder.begin(inputs), self.vision_layer))
        return self.norm(tokens)

    def forward(
        self, components: dict, inputs: dict, lm_name: str, prompt_len: torch.Tensor, select: torch.Tensor | None = None
    ) -> torch.Tensor:
        lm, encoder = components[lm_name], components[self.encoder_name]
        features = self.features(encoder, inputs[self.encoder_name])
        stream = lm.begin(inputs[lm_name])
        for index in range(1, lm.n_layers + 1):
            extra = None
            if index in self.layers:
                infusion = self.infusions[str(index)]

                def extra(x, index=index, infusion=infusion):
                    return lm.project_out(index, infusion(lm.queries(index, x), features))

            lm.step(stream, index, attention_extra=extra)
        return lm.finish(stream, select)
