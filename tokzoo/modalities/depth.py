"""Metric depth maps."""

from __future__ import annotations

import math

import numpy as np

from ..viz import colorize
from .base import Modality, register_modality, require_finite_somewhere, to_tensor
from .lazy_torch import F, torch


@register_modality
class Depth(Modality):
    """Log-depth over a fixed metric range, plus a validity channel.

    Unlike 4M's per-image truncated standardisation, the mapping is absolute, so decode returns metres
    at the input's scale with no side information.
    """

    name = "depth"
    file_format = "depth"
    extensions = (".png", ".npy")
    written_as = ".npy"  # float metres stay exact
    crop_rule = "nearest"
    metrics = ("abs_rel", "rmse", "valid_accuracy")
    contract = (
        "float32/float64 array (H, W) or batch (B, H, W), metres of z-depth along the optical axis. "
        "Invalid pixels: NaN, +-inf, 0 or negative (each sample needs at least one valid pixel). "
        "Valid depths are clamped to [min_depth, max_depth] (config, default 0.1-100 m) and encoded as "
        "log-depth in [-1, 1] plus a validity channel. decode returns float32 metres (B, H, W), NaN where "
        "the decoder predicts invalid. Integer depth PNGs must be converted to metres first "
        "(tokzoo.io reads them with their scale)."
    )
    in_channels = out_channels = 2
    sample_ndim = 2
    zoo_names = ("depth",)

    @classmethod
    def default_normalization(cls) -> dict:
        return {"min_depth": 0.1, "max_depth": 100.0}

    @classmethod
    def default_tokenizer(cls, name: str) -> dict:
        return {
            "model": {"preset": "conv-small"},
            "latent_dim": 32,
            "quantizer": {"type": "fsq", "levels": [8, 5, 5, 5]},
            "input_size": [224, 224],
            "loss": "smooth_l1",
        }

    @property
    def _log_range(self) -> tuple[float, float]:
        return math.log(self.normalization["min_depth"]), math.log(self.normalization["max_depth"])

    def to_model(self, x) -> torch.Tensor:
        depth = to_tensor(
            self.as_batch(x, (np.float32, np.float64, torch.float32, torch.float64), "float metres (H, W)")
        ).float()
        valid = torch.isfinite(depth) & (depth > 0)
        require_finite_somewhere(valid, self.name)
        low, high = self._log_range
        log_depth = torch.log(depth.where(valid, torch.ones_like(depth)).clamp(math.exp(low), math.exp(high)))
        normalised = torch.where(valid, 2 * (log_depth - low) / (high - low) - 1, torch.zeros_like(depth))
        return torch.stack([normalised, valid.float() * 2 - 1], dim=1)

    def from_model(self, y: torch.Tensor) -> np.ndarray:
        low, high = self._log_range
        depth = torch.exp((y[:, 0].float().clamp(-1, 1) + 1) / 2 * (high - low) + low)
        return torch.where(y[:, 1] > 0, depth, torch.nan).cpu().numpy().astype(np.float32)

    def loss(self, prediction, target):
        valid = target[:, 1:2] > 0
        depth_error = F.smooth_l1_loss(prediction[:, :1], target[:, :1], reduction="none", beta=0.1)
        depth_loss = (depth_error * valid).sum() / valid.sum().clamp(min=1)
        validity_loss = F.binary_cross_entropy_with_logits(prediction[:, 1:2], valid.float())
        return depth_loss + 0.1 * validity_loss

    def visualize(self, value) -> np.ndarray:
        return colorize(1.0 / np.asarray(value, dtype=np.float64))
