"""Dense feature maps of frozen image encoders (DINOv2, CLIP, ImageBind patch tokens), any channel count."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidValueError, ShapeError
from .base import FSQ_LEVELS, FeatureModality, register_modality, to_tensor
from .lazy_torch import F, torch

# zoo name -> (channels, feature grid): DINOv2-B/14 and ImageBind-H/14 give 16 x 16 patches at 224 px, CLIP-B/16
# 14 x 14; tokzoo's scene ViT (the `scene_vit_dense` labeler, shipped) 8 x 8 at 64 px.
DENSE_FEATURES = {
    "dinov2_b14": (768, 16),
    "clip_b16": (512, 14),
    "imagebind_h14": (1280, 16),
    "scene_vit_dense": (128, 8),
}

# No preset keeps full resolution: one conv level (no downsampling) gives one token per feature vector.
# Its 3 x 3 convolutions let neighbouring vectors inform each code.
PER_POSITION_MODEL = {"family": "conv", "width": 128, "channel_mults": [1], "blocks_per_level": [2], "groups": 8}


@register_modality
class DenseFeatures(FeatureModality):
    """Feature maps tokenized one vector per token, values as the extractor returns them (no normalisation:
    the extractors end in their own LayerNorm). Loss: smooth L1 (4M) plus cosine distance per vector."""

    name = "dense_features"
    file_format = "features"
    extensions = (".npy",)
    metrics = ("cosine", "mae")
    contract = (
        "float32/float64 array (h, w, C) or batch (B, h, w, C), channels last: the extractor's patch "
        "tokens reshaped to their grid (e.g. DINOv2 `x_norm_patchtokens` (h*w, C) -> (h, w, C); drop "
        "CLS/register tokens). C = normalization.dim (768 DINOv2-B/14, 512 CLIP-B/16, 1280 "
        "ImageBind-H/14, 128 tokzoo's scene ViT: the `scene_vit_dense` labeler's (8, 8, 128)); any h, w. "
        "Finite values only, as the extractor returns them. One token per feature vector. decode returns "
        "float32 (B, h, w, C)."
    )
    sample_ndim = 3
    croppable = False  # on the extractor's patch grid, computed from its own view of the image
    zoo_names = tuple(DENSE_FEATURES)

    @classmethod
    def default_tokenizer(cls, name: str) -> dict:
        dim, side = DENSE_FEATURES[name]
        return {
            "model": dict(PER_POSITION_MODEL),
            "latent_dim": 32,
            "quantizer": {"type": "fsq", "levels": FSQ_LEVELS[2**14]},
            "input_size": [side, side],
            "normalization": {"dim": dim},
            "loss": "smooth_l1+cosine",
        }

    def to_model(self, x) -> torch.Tensor:
        features = to_tensor(
            self.as_batch(x, (np.float32, np.float64, torch.float32, torch.float64), "float (h, w, C) feature map")
        ).float()
        if features.shape[-1] != self.in_channels:
            raise ShapeError(
                f"{self.name} input", f"expected (h, w, {self.in_channels}) channels last, got {tuple(features.shape)}"
            )
        if not bool(torch.isfinite(features).all()):
            raise InvalidValueError(f"{self.name} input", "contains NaN or inf")
        return features.permute(0, 3, 1, 2)

    def from_model(self, y: torch.Tensor) -> np.ndarray:
        return y.float().permute(0, 2, 3, 1).cpu().numpy()

    def loss(self, prediction, target):
        return F.smooth_l1_loss(prediction, target) + (1 - F.cosine_similarity(prediction, target, dim=1)).mean()

    def visualize(self, value) -> np.ndarray:
        """The first three principal components as RGB (2-98th percentile stretch), each vector an 8 x 8 block."""
        features = np.asarray(value, dtype=np.float64)
        flat = features.reshape(-1, features.shape[-1])
        centred = flat - flat.mean(axis=0)
        components = np.linalg.svd(centred, full_matrices=False)[2][:3]
        projected = centred @ components.T
        projected = np.pad(projected, ((0, 0), (0, 3 - projected.shape[1])))  # fewer than 3 components
        low, high = np.percentile(projected, 2, axis=0), np.percentile(projected, 98, axis=0)
        rgb = np.clip((projected - low) / np.maximum(high - low, 1e-12), 0, 1) * 255
        picture = rgb.round().astype(np.uint8).reshape(*features.shape[:2], 3)
        return np.repeat(np.repeat(picture, 8, axis=0), 8, axis=1)
