"""Binary edge maps (Canny edges, SAM mask boundaries)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InvalidValueError
from ..quantizers import FSQ_LEVELS
from .base import Modality, register_modality, to_tensor


@register_modality
class Edges(Modality):
    """Edges mapped to {-1, 1}; the decoder predicts one logit per pixel, trained with BCE (4M used smooth L1
    on [-1, 1]; a logit thresholded at 0 is the same decision and BCE suits a binary target)."""

    name = "edges"
    contract = ("uint8 or bool array (H, W) or batch (B, H, W), values in {0, 1} (1 = edge; PNGs stored as 0/255 "
                "must be divided by 255 first). Encoded as {-1, 1}. decode returns uint8 (B, H, W) in {0, 1} "
                "(logit > 0). Same contract for Canny and SAM edges; they are separate zoo tokenizers.")
    in_channels = out_channels = 1
    sample_ndim = 2
    zoo_names = ("canny_edges", "sam_edges")
    default_zoo_name = "canny_edges"  # the default edges labeler (canny) makes what it was trained on

    @classmethod
    def default_tokenizer(cls, name: str) -> dict:
        return {"model": {"preset": "conv-small"}, "latent_dim": 32, "quantizer": {"type": "fsq", "levels": FSQ_LEVELS[2**10]},
                "input_size": [224, 224], "loss": "bce"}

    def to_model(self, x) -> torch.Tensor:
        edges = to_tensor(self.as_batch(x, (np.uint8, np.bool_, torch.uint8, torch.bool), "uint8 (H, W) in {0, 1}"))
        if edges.dtype == torch.uint8 and bool((edges > 1).any()):
            raise InvalidValueError(f"{self.name} input", f"values must be 0 or 1, got max {int(edges.max())} "
                                    "(divide 0/255 PNGs by 255)")
        return edges[:, None].float() * 2 - 1

    def from_model(self, y: torch.Tensor) -> np.ndarray:
        return (y[:, 0] > 0).to(torch.uint8).cpu().numpy()

    def loss(self, prediction, target):
        return F.binary_cross_entropy_with_logits(prediction, (target + 1) / 2)

    def visualize(self, value) -> np.ndarray:
        return np.repeat(np.asarray(value, dtype=np.uint8)[..., None] * np.uint8(255), 3, axis=2)
