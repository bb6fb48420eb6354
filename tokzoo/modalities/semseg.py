"""Semantic segmentation maps (class ids with an ignore label)."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, InvalidValueError
from ..viz import label_colors
from .base import FSQ_LEVELS, Modality, register_modality, to_tensor
from .lazy_torch import F, torch

IGNORE = 255


@register_modality
class Semseg(Modality):
    """Class ids as one-hot channels (the encoder's first conv is the learned class embedding; 4M embeds ids
    to 64 channels, which is the same linear map). Channel ``num_classes`` marks ignore pixels."""

    name = "semseg"
    file_format = "semseg"
    extensions = (".png", ".npy")
    crop_rule = "nearest"
    metrics = ("miou",)
    contract = (
        "uint8 array (H, W) or batch (B, H, W) of class ids 0..K-1 (K = normalization.num_classes, "
        "default 133 COCO-panoptic classes, at most 255); 255 = ignore (unlabelled). Resample with nearest "
        "neighbour only. Encoded as K one-hot channels plus an ignore channel. decode returns uint8 "
        "(B, H, W) holding valid class ids 0..K-1 only (argmax of K logits; never 255)."
    )
    sample_ndim = 2
    zoo_names = ("semseg",)

    @classmethod
    def default_normalization(cls) -> dict:
        return {"num_classes": 133}  # COCO panoptic, as 4M; tokzoo.datasets.scenes uses ids 0..6, a subset

    def __init__(self, **normalization):
        super().__init__(**normalization)
        classes = self.normalization["num_classes"]
        if isinstance(classes, bool) or not isinstance(classes, int) or not 1 <= classes <= IGNORE:
            raise ConfigError(f"semseg normalization: num_classes must be an integer in 1..{IGNORE}, got {classes!r}")

    @property
    def num_classes(self) -> int:
        return self.normalization["num_classes"]

    @property
    def in_channels(self) -> int:
        return self.num_classes + 1

    @property
    def out_channels(self) -> int:
        return self.num_classes

    @classmethod
    def default_tokenizer(cls, name: str) -> dict:
        return {
            "model": {"preset": "conv-small"},
            "latent_dim": 32,
            "quantizer": {"type": "fsq", "levels": FSQ_LEVELS[2**12]},
            "input_size": [224, 224],
            "normalization": cls.default_normalization(),
            "loss": "cross_entropy",
        }

    def to_model(self, x) -> torch.Tensor:
        ids = to_tensor(self.as_batch(x, (np.uint8, torch.uint8), "uint8 (H, W) class ids")).long()
        bad = (ids >= self.num_classes) & (ids != IGNORE)
        if bool(bad.any()):
            raise InvalidValueError(
                f"{self.name} input",
                f"class id(s) {sorted(ids[bad].unique().tolist())[:8]} are not in "
                f"0..{self.num_classes - 1} or {IGNORE} (ignore)",
            )
        ids = torch.where(ids == IGNORE, self.num_classes, ids)
        return F.one_hot(ids, self.num_classes + 1).permute(0, 3, 1, 2).float()

    def from_model(self, y: torch.Tensor) -> np.ndarray:
        return y.argmax(dim=1).to(torch.uint8).cpu().numpy()

    def loss(self, prediction, target):
        """Cross-entropy over the class logits; ignore pixels do not count."""
        ids = target.argmax(dim=1)
        return F.cross_entropy(prediction, ids.where(ids != self.num_classes, -100), ignore_index=-100)

    def visualize(self, value) -> np.ndarray:
        return label_colors(np.asarray(value), ignore=IGNORE)
