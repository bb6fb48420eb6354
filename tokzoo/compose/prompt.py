"""``prompt``: the prompt-only baseline: trainable soft-prompt vectors before the frozen LM's text (no position
embedding), no image: what a glue of eP-ALM's size learns without perception."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .registry import Glue, register_method


@register_method("prompt")
class SoftPrompt(Glue):
    """Settings: ``prompt_tokens`` (>= 1). Trainable: the prompt vectors only; other components are not read."""

    def __init__(self, lm, prompt_tokens: int = 10):
        super().__init__()
        if isinstance(prompt_tokens, bool) or not isinstance(prompt_tokens, int) or prompt_tokens < 1:
            raise ConfigError(f"prompt: prompt_tokens must be a whole number >= 1, got {prompt_tokens!r}")
        self.prompt = nn.Parameter(torch.randn(1, prompt_tokens, lm.width(0)) * 0.02)

    @classmethod
    def build(cls, components: dict, lm_name: str, settings: dict) -> "SoftPrompt":
        return cls(components[lm_name], **settings)

    def settings(self) -> dict:
        return {"prompt_tokens": self.prompt.shape[1]}

    def forward(
        self, components: dict, inputs: dict, lm_name: str, prompt_len: torch.Tensor, select: torch.Tensor | None = None
    ) -> torch.Tensor:
        ids = inputs[lm_name]
        return components[lm_name].logits_with_prefix(ids, self.prompt.expand(ids.shape[0], -1, -1), select)
