"""Pseudo-labelers: turn images (and modalities already labelled) into other modalities' raw values.

``create_labeler("canny")``, ``create_labeler("hf_depth:<dir or hub id>")``; ``DEFAULTS[modality]``
names the labeler ``tokzoo pseudo-label`` uses for a modality unless told otherwise.
"""

from . import consensus, depth, features, geometry, image, metadata, palette, sam  # noqa: F401  (register the labelers)
from .base import DEFAULTS, LABELERS, Labeler, create_labeler, register_labeler

__all__ = ["DEFAULTS", "LABELERS", "Labeler", "create_labeler", "register_labeler"]
