"""eP-ALM (Shukor et al. 2023): a frozen LM given perception through one linear projection and one soft prompt.

The frozen encoder runs on its own; the "class token" of each chosen encoder layer (a ViT's first token;
for a feature map without one, the mean over positions, optionally over a ``pool`` x ``pool`` grid of cells
for that many tokens) is mapped into the LM's width by one linear projection (shared by all chosen layers;
their widths must match). The LM runs with ``prompt_tokens`` trainable soft-prompt vectors prepended (no
position embedding); before each of its ``inject_layers`` the projected class token(s) take a slot after
the soft prompt: inserted at the first of them, overwritten at the next ones, the chosen encoder layers
spread over the injection layers in order (as the eP-ALM code spreads its last ViT layers over the last
OPT layers). Trainable: the projection and the soft prompt only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .registry import Glue, register_method


@register_method("epalm")
class EPALM(Glue):
    """See the module docstring; ``inject_layers: [1]`` with one vision layer is the input-level baseline (the
    projected class token enters with the text embeddings and stays, as a prefix token, through every block)."""

    def __init__(
        self,
        lm,
        encoder,
        vision_layers: list[int] | None = None,
        inject_layers: list[int] | None = None,
        prompt_tokens: int = 1,
        pool: int = 1,
    ):
        super().__init__()
        self.encoder_name = encoder.name
        n_v, n_l = encoder.n_layers, lm.n_layers
        self.vision_layers = [v if v >= 0 else n_v + 1 + v for v in (vision_layers or [-1])]
        self.inject_layers = list(inject_layers or range(n_l // 2 + 1, n_l + 1))
        if any(not 0 <= v <= n_v for v in self.vision_layers):
            raise ConfigError(f"epalm: vision_layers {vision_layers} outside 0..{n_v} (negative counts from the end)")
        if any(not 1 <= i <= n_l for i in self.inject_layers) or sorted(set(self.inject_layers)) != self.inject_layers:
            raise ConfigError(f"epalm: inject_layers {inject_layers} must be increasing LM layers in 1..{n_l}")
        widths = {encoder.width(v) for v in self.vision_layers}
        if len(widths) != 1:
            raise ConfigError(
                f"epalm: vision_layers {self.vision_layers} have different widths {sorted(widths)}; "
                "one shared projection needs one width"
            )
        if prompt_tokens < 0 or pool < 1:
            raise ConfigError(f"epalm: prompt_tokens must be >= 0 and pool >= 1, got {prompt_tokens}, {pool}")
        self.pool = pool
        self.projection = nn.Linear(widths.pop(), lm.width(0))
        self.prompt = nn.Parameter(torch.randn(1, prompt_tokens, lm.width(0)) * 0.02)

    def first_layer(self, name: str) -> int:
        return min(self.vision_layers) if name == self.encoder_name else 0

    def settings(self) -> dict:
        return {
            "vision_layers": self.vision_layers,
            "inject_layers": self.inject_layers,
            "prompt_tokens": self.prompt.shape[1],
            "pool": self.pool,
        }

    def class_tokens(self, encoder, stream) -> torch.Tensor:
        """The current layer's (B, pool**2, C) class tokens: the encoder's class token (its tokens' mean when it has
        none) or, with ``pool`` > 1, the mean of each cell of a pool x pool grid over its grid tokens."""
        grid = stream.extra.get("grid")
        tokens = encoder.grid_tokens(stream)
        if self.pool == 1 or grid is None or grid[0] * grid[1] != tokens.shape[1]:
            return encoder.class_token(stream)
        b, n, c = tokens.shape
        fmap = tokens.transpose(1, 2).reshape(b, c, *grid)
        return F.adaptive_avg_pool2d(fmap, self.pool).flatten(2).transpose(1, 2)

    def visual_tokens(self, encoder, inputs) -> list[torch.Tensor]:
        """Projected class tokens (B, pool**2, D) of each chosen encoder layer, in order."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not encoder.frozen):
            stream = encoder.begin(inputs)
            pooled = {}
            for index in sorted(set(self.vision_layers)):
                encoder.run(stream, index)
                pooled[index] = self.class_tokens(encoder, stream)
        return [self.projection(pooled[v]) for v in self.vision_layers]

    def forward(
        self, components: dict, inputs: dict, lm_name: str, prompt_len: torch.Tensor, select: torch.Tensor | None = None
    ) -> torch.Tensor:
        lm, encoder = components[lm_name], components[self.encoder_name]
        visual = self.visual_tokens(encoder, inputs[self.encoder_name])
        ids = inputs[lm_name]
        stream = lm.begin(ids, prefix=self.prompt.expand(ids.shape[0], -1, -1) if self.prompt.shape[1] else None)
        n_inject, n_vis = len(self.inject_layers), len(visual)
        per = max(1, n_inject // n_vis)
        for index in range(1, lm.n_layers + 1):
            if index in self.inject_layers:
                j = min(self.inject_layers.index(index) // per, n_vis - 1)
                lm.set_prefix(stream, visual[j], slot=self.prompt.shape[1])
            lm.step(stream, index)
        return lm.finish(stream, select)
