"""Exponential moving average of a model's parameters; buffers (VQ codebooks, themselves EMAs) are copied."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """``tensors`` shadows ``model.state_dict()``: parameters decay towards the model, buffers copy it."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.parameters = {name for name, _ in model.named_parameters()}
        self.tensors = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for name, value in model.state_dict().items():
            shadow = self.tensors[name]
            if name in self.parameters:
                shadow.lerp_(value.detach(), 1 - self.decay)
            else:
                shadow.copy_(value)

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, value in tensors.items():
            self.tensors[name].copy_(value)

    def copy_to(self, model: nn.Module) -> None:
        model.load_state_dict(self.tensors)
