"""Same-bit baselines a tokenizer must beat. The budget is the tokenizer's bits per sample,
``n_tokens x log2(vocab_size)``, with the tokens an input of that size gets.

- ``downsample_bicubic`` (every modality): the normalised model input (``codec.to_model``; channels beyond
  the decoder's ``out_channels``, such as semseg's ignore channel, dropped) is area-averaged onto the
  token grid, each value is quantised uniformly to ``L = floor(2 ** (budget / values))`` levels (at least 2)
  between the set's per-channel min and max (the range is shared side information, not counted), then
  upsampled bicubically (linearly for vectors) and decoded with ``codec.from_model``. Its bits per sample
  are ``values x log2(L)``: at most the budget, unless even 2 levels exceed it (then reported as is).
  ``grid`` picks another (h, w) for the same budget: a finer grid at fewer levels, or a coarser one at more;
  ``best_grid_bicubic`` tries a range of grids and keeps the best on the scored set (an oracle choice, so a
  stronger baseline than the token grid).
- ``jpeg`` (rgb): per image, the lowest PIL JPEG quality whose file has at least the budget's bytes
  (quality 1 when even that is larger, 95 when none reaches it); its bits per sample are the actual mean
  file size x 8.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def bits_per_sample(tokenizer, size: tuple[int, int] | None = None) -> float:
    """``n_tokens x log2(vocab_size)`` at the config's input size, or at ``size`` (h, w) for a fully convolutional
    tokenizer given inputs of another size (its token grid follows the input)."""
    shape = tokenizer.token_shape if size is None else tokenizer.token_shape_for(list(size))
    return math.prod(shape) * math.log2(tokenizer.vocab_size)


def same_bit_levels(budget: float, values: int) -> int:
    """The most levels L with ``values x log2(L) <= budget``; exact where the budget is a whole number of levels
    (1000 codes over 3 values is 10 levels, which ``floor(2 ** (budget / values))`` rounds down to 9)."""
    levels = math.floor(2 ** (budget / values))
    return levels + 1 if values * math.log2(levels + 1) <= budget * (1 + 1e-12) else levels


def downsample_bicubic(tokenizer, values: np.ndarray, grid: tuple[int, ...] | None = None):
    """(reconstruction, bits per sample) of the downsample + quantise + upsample baseline; ``grid`` (h, w) or
    (n,) replaces the token grid."""
    codec = tokenizer.codec
    # a list: one image per to_model call (per-image modalities: rows are instances / humans)
    x = torch.cat([codec.to_model(v) for v in values]) if isinstance(values, list) else codec.to_model(values)
    x = x[:, : codec.out_channels].double()
    vector = x.ndim == 2
    if vector:
        x = x[:, None]
    grid = grid or (
        tokenizer.token_shape_for(tokenizer.config["input_size"])[:1]
        if vector
        else tokenizer.encoder.token_grid(tuple(x.shape[-2:]))
    )
    small = F.adaptive_avg_pool1d(x, grid) if vector else F.adaptive_avg_pool2d(x, grid)
    per_sample = small[0].numel()
    budget = bits_per_sample(tokenizer, None if vector else tuple(x.shape[-2:]))
    levels = max(2, same_bit_levels(budget, per_sample))
    axes = [0, *range(2, small.ndim)]
    low, high = small.amin(dim=axes, keepdim=True), small.amax(dim=axes, keepdim=True)
    scale = (high - low).clamp(min=1e-12)
    small = low + torch.round((small - low) / scale * (levels - 1)) / (levels - 1) * scale
    mode = "linear" if vector else "bicubic"
    up = F.interpolate(small, size=x.shape[2:], mode=mode, align_corners=False)
    return codec.from_model((up[:, 0] if vector else up).float()), per_sample * math.log2(levels)


def jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def jpeg_at_least(image: np.ndarray, target_bytes: int) -> bytes:
    """JPEG of ``image`` at the lowest quality (1..95) whose size is >= ``target_bytes`` (95 if none is)."""
    low, high = 1, 95
    while low < high:
        mid = (low + high) // 2
        if len(jpeg_bytes(image, mid)) >= target_bytes:
            high = mid
        else:
            low = mid + 1
    return jpeg_bytes(image, low)


def jpeg(tokenizer, values: np.ndarray):
    """(reconstruction, mean bits per sample) of JPEG at the same or more bytes; None for non-rgb."""
    if tokenizer.modality != "rgb":
        return None
    target = math.ceil(bits_per_sample(tokenizer, np.asarray(values[0]).shape[:2]) / 8)
    files = [jpeg_at_least(np.ascontiguousarray(image), target) for image in values]
    decoded = np.stack([np.asarray(Image.open(io.BytesIO(f)).convert("RGB")) for f in files])
    return decoded, float(np.mean([len(f) * 8 for f in files]))


BASELINES = {"downsample_bicubic": downsample_bicubic, "jpeg": jpeg}
"""name -> fn(tokenizer, raw values) -> (reconstruction, bits per sample), or None where it does not apply."""
