"""Global image embeddings (DINOv2 / CLIP / ImageBind pooled vectors), any dimension."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidValueError, ShapeError
from ..viz import colorize
from .base import FeatureModality, register_modality, to_tensor
from .lazy_torch import F, torch

# Embedding sizes of the extractors 4M-21 used, and of the composition work's scene ViT (its class token,
# recipes/features/scene_vit_global.yaml); the zoo name picks the dimension.
GLOBAL_DIMS = {"dinov2_global": 768, "clip_global": 512, "imagebind_global": 1024, "scene_vit_global": 128}

# The scene ViT's 128 values take a narrower MLP and 8 tokens (111 bits); the others mlp-base's 16 tokens.
GLOBAL_MODELS = {"scene_vit_global": {"family": "mlp", "hidden": 512, "depth": 2, "n_tokens": 8}}


@register_modality
class GlobalFeature(FeatureModality):
    """One embedding vector per image. The vector's norm is kept as given; the loss is cosine plus MSE."""

    name = "global_feature"
    file_format = "features"
    extensions = (".npy",)
    metrics = ("cosine", "mae")
    family = "vector"
    sample_ndim = 1
    contract = (
        "float32/float64 array (D,) or batch (B, D): one embedding per image exactly as the extractor "
        "returns it (D = normalization.dim: 768 DINOv2-B, 512 CLIP-B/16, 1024 ImageBind-H, 128 the scene ViT's "
        "class token). Finite values only. decode returns float32 (B, D)."
    )
    zoo_names = tuple(GLOBAL_DIMS)

    @classmethod
    def default_tokenizer(cls, name: str) -> dict:
        return {
            "model": dict(GLOBAL_MODELS.get(name, {"preset": "mlp-base"})),
            "latent_dim": 32,
            "quantizer": {"type": "fsq", "levels": [8, 8, 8, 6, 5]},
            "input_size": [GLOBAL_DIMS[name]],
            "normalization": {"dim": GLOBAL_DIMS[name]},
            "loss": "cosine",
        }

    def to_model(self, x) -> torch.Tensor:
        vectors = to_tensor(
            self.as_batch(x, (np.float32, np.float64, torch.float32, torch.float64), "float (D,) vectors")
        ).float()
        if vectors.shape[-1] != self.in_channels:
            raise ShapeError(
                f"{self.name} input", f"expected vectors of {self.in_channels} values, got {tuple(vectors.shape)}"
            )
        if not bool(torch.isfinite(vectors).all()):
            raise InvalidValueError(f"{self.name} input", "contains NaN or inf")
        return vectors

    def from_model(self, y: torch.Tensor) -> np.ndarray:
        return y.float().cpu().numpy()

    def loss(self, prediction, target):
        return (1 - F.cosine_similarity(prediction, target, dim=-1)).mean() + F.mse_loss(prediction, target)

    def visualize(self, value) -> np.ndarray:
        row = np.asarray(value, dtype=np.float64)[None]
        return np.repeat(np.repeat(colorize(row), 16, axis=0), 2, axis=1)
