"""Semantic segmentation with Mask2Former (``Mask2FormerForUniversalSegmentation``), 4M-21's semseg labeler.

The default checkpoint is trained on COCO panoptic (133 classes, ids as in its ``config.id2label``). Every
pixel gets the class of the highest-scoring masks (the processor's ``post_process_semantic_segmentation``),
so no pixel is 255 (ignore); models with more than 255 classes are refused.
"""

from __future__ import annotations

import numpy as np

from tokzoo.errors import ConfigError

from .base import register_labeler
from .hf import HFLabeler


@register_labeler
class Mask2FormerSemseg(HFLabeler):
    """rgb -> semseg uint8 (H, W) class ids at the input's size."""

    name = "mask2former_semseg"
    modality = "semseg"
    model_class = "Mask2FormerForUniversalSegmentation"
    default_checkpoint = "facebook/mask2former-swin-base-coco-panoptic"

    def __init__(self, model, processor, **kwargs):
        super().__init__(model, processor, **kwargs)
        if model.config.num_labels > 255:
            raise ConfigError(f"{self.name}: {model.config.num_labels} classes do not fit uint8 ids 0..254")

    def _predict(self, images):
        out = self.model(pixel_values=self.inputs(images)["pixel_values"])
        maps = self.processor.post_process_semantic_segmentation(out, target_sizes=[i.shape[:2] for i in images])
        return [m.cpu().numpy().astype(np.uint8) for m in maps]
