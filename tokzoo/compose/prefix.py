"""``prefix``: the visual-prefix baseline: the encoder's patch tokens through one linear map, prepended to the frozen
LM's input (no position embedding; the text's positions start at 0). Every LM block then also runs over the
h * w image tokens: the compute MiT claims to save."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .registry import Glue, register_method


@register_method("prefix")
class VisualPrefix(Glue):
    """Settings: ``vision_layer`` (negative counts from the end). Trainable: a LayerNorm and one linear map."""

    def __init__(self, lm, encoder, vision_layer: int = -1):
        super().__init__()
        self.encoder_name = encoder.name
        n_v = encoder.n_layers
        self.vision_layer = vision_layer if vision_layer >= 0 else n_v + 1 + vision_layer
        if not 0 <= self.vision_layer <= n_v:
            raise ConfigError(f"prefix: vision_layer {vision_layer} outside 0..{n_v} (negative counts from the end)")
        channels = encoder.width(self.vision_layer)
        self.map = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, lm.width(0)))

    def first_layer(self, name: str) -> int:
        return self.vision_layer if name == self.encoder_name else 0

    def settings(self) -> dict:
        return {"vision_layer": self.vision_layer}

    def forward(
        self, components: dict, inputs: dict, lm_name: str, prompt_len: torch.Tensor, select: torch.Tensor | None = None
    ) -> torch.Tensor:
        lm, encoder = components[lm_name], components[self.encoder_name]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not encoder.frozen):
            tokens = encoder.grid_tokens(encoder.run(encoder.begin(inputs[self.encoder_name]), self.vision_layer))
        return lm.logits_with_prefix(inputs[lm_name], self.map(tokens), select)
