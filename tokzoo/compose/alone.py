"""``none``: the LM alone, no glue (the components-alone baseline)."""

from __future__ import annotations

import torch

from .registry import Glue, register_method


@register_method("none")
class NoGlue(Glue):
    """What the LM does without seeing any other component."""

    takes_frames = True

    @classmethod
    def build(cls, components: dict, lm_name: str, settings: dict) -> "NoGlue":
        return cls(**settings)

    def forward(
        self, components: dict, inputs: dict, lm_name: str, prompt_len: torch.Tensor, select: torch.Tensor | None = None
    ) -> torch.Tensor:
        return components[lm_name].logits(inputs[lm_name], select)
