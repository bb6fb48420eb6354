"""Segment Anything (``SamModel``) over a grid of point prompts: instance maps and their boundaries.

Automatic mask generation, kept simple: one prompt per point of a ``points_per_side`` x
``points_per_side`` grid (single-mask output); masks with predicted IoU below ``min_score`` or area
below ``min_area`` (fraction of the image, 4M-21 drops < 0.05%) are dropped; the rest are painted in
order of predicted IoU, each only onto pixels no better mask took, and dropped when less than half
of it is left. No multi-crop, no stability score, no NMS.
"""

from __future__ import annotations

import numpy as np

from tokzoo.errors import ConfigError

from .base import register_labeler
from .hf import HFLabeler


def boundaries(instances: np.ndarray) -> np.ndarray:
    """uint16 (H, W) ids -> uint8 (H, W) {0, 1}: pixels with a 4-neighbour of another id."""
    edges = np.zeros(instances.shape, bool)
    for axis in (0, 1):
        cut = np.diff(instances.astype(np.int64), axis=axis) != 0
        lead = (slice(None, -1), slice(None)) if axis == 0 else (slice(None), slice(None, -1))
        trail = (slice(1, None), slice(None)) if axis == 0 else (slice(None), slice(1, None))
        edges[lead] |= cut
        edges[trail] |= cut
    return edges.astype(np.uint8)


def paint(masks: np.ndarray, scores: np.ndarray, min_score: float, min_area: float) -> np.ndarray:
    """bool (N, H, W) masks and (N,) scores -> uint16 (H, W) instance map (ids 1.. in painting order, 0 = none)."""
    out = np.zeros(masks.shape[1:], np.uint16)
    next_id = 1
    for i in np.argsort(-scores, kind="stable"):
        area = masks[i].sum()
        if scores[i] < min_score or area < max(min_area * out.size, 1):
            continue
        free = masks[i] & (out == 0)
        if free.sum() >= 0.5 * area:
            out[free] = next_id
            next_id += 1
    return out


@register_labeler
class SamInstances(HFLabeler):
    """rgb -> instances uint16 (H, W), 0 = no mask (see the module docstring)."""

    name = "sam_instances"
    modality = "sam_instances"
    model_class = "SamModel"
    processor_class = "SamProcessor"
    default_checkpoint = "facebook/sam-vit-huge"

    def __init__(
        self, model, processor, points_per_side: int = 16, min_score: float = 0.8, min_area: float = 0.0005, **kwargs
    ):
        super().__init__(model, processor, **kwargs)
        if points_per_side < 1:
            raise ConfigError(f"{self.name}: points_per_side must be >= 1, got {points_per_side}")
        self.points_per_side, self.min_score, self.min_area = points_per_side, min_score, min_area

    def _predict(self, images):
        h, w = images[0].shape[:2]
        steps = (np.arange(self.points_per_side) + 0.5) / self.points_per_side
        points = [[[[float(x * w), float(y * h)]] for y in steps for x in steps]] * len(images)
        inputs = self.inputs(images, input_points=points)
        embeddings = self.model.get_image_embeddings(inputs["pixel_values"])
        out = self.model(image_embeddings=embeddings, input_points=inputs["input_points"], multimask_output=False)
        masks = self.processor.image_processor.post_process_masks(
            out.pred_masks.cpu(), inputs["original_sizes"].cpu(), inputs["reshaped_input_sizes"].cpu()
        )
        scores = out.iou_scores[..., 0].float().cpu().numpy()
        return [self._finish(paint(m[:, 0].numpy(), s, self.min_score, self.min_area)) for m, s in zip(masks, scores)]

    def _finish(self, instances: np.ndarray):
        return instances


@register_labeler
class SamEdges(SamInstances):
    """rgb -> edges uint8 (H, W) {0, 1}: the boundaries of the SAM instance map (4M-21's "SAM edges")."""

    name = "sam_edges"
    modality = "edges"
    zoo_tokenizer = "sam_edges"

    def _finish(self, instances):
        return boundaries(instances)
