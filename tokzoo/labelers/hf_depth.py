"""Monocular depth from a ``transformers`` depth estimator (DPT, Depth Anything, ...; AutoModelForDepthEstimation)."""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F

from tokzoo.errors import ConfigError

from .base import register_labeler
from .hf import HFLabeler

OUTPUTS = ("auto", "metric", "relative")


@register_labeler
class HFDepth(HFLabeler):
    """rgb -> depth float32 (H, W) at the input's size (bilinear upsampling of the model's map).

    ``output``: ``"metric"`` takes the prediction as metres; ``"relative"`` takes it as relative inverse
    depth (disparity: MiDaS-style DPT, Depth Anything relative) and returns ``median(disp) / disp``, a depth
    **up to an unknown scale** whose median is 1, NaN where the disparity is <= 1e-6 of its maximum;
    ``"auto"`` is metric when the model's config says ``depth_estimation_type == "metric"``, else relative.
    """

    name = "hf_depth"
    modality = "depth"
    model_class = "AutoModelForDepthEstimation"
    default_checkpoint = "depth-anything/Depth-Anything-V2-Small-hf"

    def __init__(self, model, processor, output: str = "auto", **kwargs):
        super().__init__(model, processor, **kwargs)
        if output not in OUTPUTS:
            raise ConfigError(f"hf_depth: output must be one of {OUTPUTS}, got {output!r}")
        if output == "auto":
            output = "metric" if getattr(model.config, "depth_estimation_type", None) == "metric" else "relative"
        self.output = output

    def _predict(self, images):
        h, w = images[0].shape[:2]
        pred = self.model(**self.inputs(images)).predicted_depth.float()
        pred = F.interpolate(pred[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0].cpu().numpy()
        return [self._to_depth(p) for p in pred]

    def _to_depth(self, pred: np.ndarray) -> np.ndarray:
        if self.output == "metric":
            return np.where(pred > 0, pred, np.nan).astype(np.float32)
        valid = pred > 1e-6 * max(float(pred.max()), 0.0)
        if not valid.any():
            return np.full(pred.shape, np.nan, np.float32)
        with np.errstate(divide="ignore"):
            return np.where(valid, np.median(pred[valid]) / pred, np.nan).astype(np.float32)
