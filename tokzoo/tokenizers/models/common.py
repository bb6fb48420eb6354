"""Helpers shared by the model families: latent-grid arithmetic and the inference layout."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tokzoo.errors import ShapeError


def spatial_grid(input_shape: Sequence[int], factor: int) -> tuple[int, int]:
    """Latent grid (h, w) of an input whose last two sizes are (H, W), downsampled by ``factor``.

    Raises ShapeError (source "input") when the shape has fewer than two sizes or H, W do not divide.
    """
    if len(input_shape) < 2:
        raise ShapeError("input", f"expected a shape ending in (height, width), got {tuple(input_shape)}")
    height, width = (int(s) for s in input_shape[-2:])
    if height <= 0 or width <= 0 or height % factor or width % factor:
        raise ShapeError(
            "input",
            f"size {height}x{width} is not a positive multiple of the model's downsampling {factor}",
        )
    return height // factor, width // factor


def prepare_for_inference(module: nn.Module) -> nn.Module:
    """Put ``module`` in eval mode with its 4-D weights in channels_last, the fastest CPU conv layout.

    Inputs need no conversion (convolutions follow their weights' layout); image outputs come back
    channels_last-strided, same values and shape. Returns the module.
    """
    module.eval()
    return module.to(memory_format=torch.channels_last)
