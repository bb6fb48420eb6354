"""Binary edge maps (Canny edges, SAM mask boundaries), and Canny edges of an rgb image (what 4M-21's edges are)."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidValueError, TokzooError
from .base import FSQ_LEVELS, Modality, register_modality, to_tensor
from .lazy_torch import F, torch

CANNY_VIEW_PX = 128
"""``sigma=None`` Canny sees structure at the scale of a view whose shorter side is this many pixels."""


def canny_sigma(shape) -> float:
    """Gaussian sigma (px) that gives the edges of a ``CANNY_VIEW_PX`` view at sigma 1: short side / 128, >= 1.

    A photo's edges at its own resolution are texture; shrunk to a 64-px tokenizer crop they turn into noise
    (nearest) or solid blobs (any-edge). At this sigma the shrunk map is the outline a small view shows.
    """
    return max(1.0, min(shape[:2]) / CANNY_VIEW_PX)


def canny_edges(rgb: np.ndarray, sigma: float | None = None, low: float = 0.05, high: float = 0.15) -> np.ndarray:
    """rgb uint8 (H, W, 3) -> edges uint8 (H, W) in {0, 1}: Canny on the luma in [0, 1], Gaussian ``sigma``
    in pixels (None: :func:`canny_sigma`, scaled with the image), hysteresis thresholds ``low`` < ``high`` on the
    gradient magnitude of that luma."""
    try:
        import skimage.color
        import skimage.feature
    except ImportError:
        raise TokzooError("Canny edges need scikit-image: pip install 'tokzoo[labelers]'") from None
    rgb = np.asarray(rgb)
    gray = skimage.color.rgb2gray(rgb)
    sigma = canny_sigma(rgb.shape) if sigma is None else sigma
    return skimage.feature.canny(gray, sigma=sigma, low_threshold=low, high_threshold=high).astype(np.uint8)


@register_modality
class Edges(Modality):
    """Edges mapped to {-1, 1}; the decoder predicts one logit per pixel, trained with BCE (4M used smooth L1
    on [-1, 1]; a logit thresholded at 0 is the same decision and BCE suits a binary target)."""

    name = "edges"
    file_format = "edges"
    extensions = (".png", ".npy")
    crop_rule = "any_edge"
    metrics = ("iou",)
    contract = (
        "uint8 or bool array (H, W) or batch (B, H, W), values in {0, 1} (1 = edge; PNGs stored as 0/255 "
        "must be divided by 255 first). Encoded as {-1, 1}. decode returns uint8 (B, H, W) in {0, 1} "
        "(logit > 0). Same contract for Canny and SAM edges; they are separate zoo tokenizers."
    )
    in_channels = out_channels = 1
    sample_ndim = 2
    zoo_names = ("canny_edges", "sam_edges")
    default_zoo_name = "canny_edges"  # the default edges labeler (canny) makes what it was trained on

    @classmethod
    def default_tokenizer(cls, name: str) -> dict:
        return {
            "model": {"preset": "conv-small"},
            "latent_dim": 32,
            "quantizer": {"type": "fsq", "levels": FSQ_LEVELS[2**10]},
            "input_size": [224, 224],
            "loss": "bce",
        }

    def to_model(self, x) -> torch.Tensor:
        edges = to_tensor(self.as_batch(x, (np.uint8, np.bool_, torch.uint8, torch.bool), "uint8 (H, W) in {0, 1}"))
        if edges.dtype == torch.uint8 and bool((edges > 1).any()):
            raise InvalidValueError(
                f"{self.name} input", f"values must be 0 or 1, got max {int(edges.max())} (divide 0/255 PNGs by 255)"
            )
        return edges[:, None].float() * 2 - 1

    def from_model(self, y: torch.Tensor) -> np.ndarray:
        return (y[:, 0] > 0).to(torch.uint8).cpu().numpy()

    def loss(self, prediction, target):
        return F.binary_cross_entropy_with_logits(prediction, (target + 1) / 2)

    def visualize(self, value) -> np.ndarray:
        return np.repeat(np.asarray(value, dtype=np.uint8)[..., None] * np.uint8(255), 3, axis=2)
