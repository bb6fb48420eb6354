"""SLIC superpixels of rgb as a crude instance map (scikit-image; classical, no weights)."""

from __future__ import annotations

import numpy as np

from tokzoo.errors import ConfigError, TokzooError

from .base import Labeler, register_labeler


def _skimage():
    try:
        import skimage  # noqa: F401
    except ImportError:
        raise TokzooError("this labeler needs scikit-image: pip install 'tokzoo[labelers]'") from None
    import skimage.color
    import skimage.feature
    import skimage.segmentation

    return skimage


@register_labeler
class Superpixels(Labeler):
    """SLIC superpixels as a crude instance map: uint16 (H, W) ids 1..n (about ``n_segments``), no 0.

    ``compactness`` trades colour similarity (low) against square, even segments (high); deterministic.
    """

    name = "slic"
    modality = "sam_instances"
    default = True

    def __init__(self, n_segments: int = 64, compactness: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        if n_segments < 1 or compactness <= 0:
            raise ConfigError(f"slic: need n_segments >= 1 and compactness > 0, got {n_segments}, {compactness}")
        self.n_segments, self.compactness = n_segments, compactness

    def _label(self, chunk):
        sk = _skimage()
        return [
            sk.segmentation.slic(
                rgb, n_segments=self.n_segments, compactness=self.compactness, start_label=1, convert2lab=True
            ).astype(np.uint16)
            for rgb in chunk["rgb"]
        ]
