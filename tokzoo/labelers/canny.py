"""Canny edges of rgb (classical, no weights)."""

from __future__ import annotations

from tokzoo.errors import ConfigError

from ..modalities.edges import canny_edges
from .base import Labeler, register_labeler


@register_labeler
class CannyEdges(Labeler):
    """Canny edges of the luma (see :func:`canny_edges`)."""

    name = "canny"
    modality = "edges"
    default = True
    zoo_tokenizer = "canny_edges"

    def __init__(self, sigma: float | None = None, low: float = 0.05, high: float = 0.15, **kwargs):
        super().__init__(**kwargs)
        if not ((sigma is None or sigma > 0) and 0 <= low <= high):
            raise ConfigError(f"canny: need sigma > 0 and 0 <= low <= high, got {sigma}, {low}, {high}")
        self.sigma, self.low, self.high = sigma, low, high

    def _label(self, chunk):
        return [canny_edges(rgb, self.sigma, self.low, self.high) for rgb in chunk["rgb"]]
