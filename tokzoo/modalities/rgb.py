"""RGB images."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from .base import Modality, register_modality, to_tensor
from .lazy_torch import torch


@register_modality
class RGB(Modality):
    name = "rgb"
    file_format = "image"
    extensions = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
    written_as = ".png"
    crop_rule = "bilinear"
    metrics = ("psnr", "ssim", "mae")
    photographic = True
    contract = (
        "uint8 array (H, W, 3) or batch (B, H, W, 3), values 0..255, sRGB, channels last. "
        "H and W divisible by the model's downsampling (shipped: 8 for rgb and rgb_128, 4 for rgb_f4 and rgb_f4_more_photos). "
        "Normalised inside to [-1, 1] (x / 127.5 - 1). decode returns the same dtype and layout."
    )
    in_channels = out_channels = 3
    sample_ndim = 3
    zoo_names = ("rgb", "rgb_128", "rgb_f4", "rgb_f4_more_photos")

    @classmethod
    def default_tokenizer(cls, name: str) -> dict:
        if name == "rgb_128":  # 128 px -> 16 x 16 = 256 tokens of 240 codes: rgb fine-tuned (recipes/rgb_128.yaml)
            return {
                "model": {"preset": "conv-tiny"},
                "latent_dim": 32,
                "quantizer": {"type": "fsq", "levels": [8, 6, 5]},
                "input_size": [128, 128],
                "loss": "mse",
            }
        if name in ("rgb_f4", "rgb_f4_more_photos"):  # 4x downsampling, 1000 codes: 64 px -> 16 x 16, 128 px -> 32 x 32
            return {
                "model": {"preset": "conv-tiny", "channel_mults": [1, 2, 2], "blocks_per_level": [0, 1, 1]},
                "latent_dim": 32,
                "quantizer": {"type": "fsq", "levels": [8, 5, 5, 5]},
                "input_size": [64, 64],
                "loss": "mse",
            }
        return {
            "model": {"preset": "conv-small"},
            "latent_dim": 32,
            "quantizer": {"type": "fsq", "levels": [8, 8, 8, 6, 5]},
            "input_size": [224, 224],
            "loss": "mse",
        }

    def to_model(self, x) -> torch.Tensor:
        x = to_tensor(self.as_batch(x, (np.uint8, torch.uint8), "uint8 (H, W, 3) RGB"))
        if x.shape[-1] != 3:
            raise ShapeError("rgb input", f"expected 3 channels last, got shape {tuple(x.shape)}")
        return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0

    def from_model(self, y: torch.Tensor) -> np.ndarray:
        return ((y.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    def loss(self, prediction, target):
        return torch.nn.functional.mse_loss(prediction, target)

    def visualize(self, value) -> np.ndarray:
        return np.asarray(value, dtype=np.uint8)
