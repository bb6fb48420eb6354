"""The crop settings stored with a sample: declared like a modality, without a codec (tokzoo.crops makes them)."""

from __future__ import annotations

from .base import StoredValue, register_stored


@register_stored
class Crops(StoredValue):
    """Per-sample crop settings, int (n_crops, 5) rows ``top, left, height, width, hflip`` (tokzoo.crops)."""

    name = "crops"
    file_format = "crops"
    extensions = (".npy",)
