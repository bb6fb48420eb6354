"""Stored values no tokenizer encodes under their own name: declared like the modalities, without a codec
(crop settings: crop_settings.py); captions are text files the ``captions`` zoo tokenizer reads.

tokzoo.io reads their files and tokzoo.crops crops them through :data:`~tokzoo.modalities.base.STORED`, as for
the modalities; ``human_pose`` tokenizes ``pose`` (its ``stored_as``). Contracts: docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from .base import StoredValue, register_stored


@register_stored
class Pose(StoredValue):
    """People in the image (JSON): skeleton and per-human keypoints, box, SMPL parameters."""

    name = "pose"
    file_format = "pose"
    extensions = (".json",)
    crop_rule = "pose"


@register_stored
class Camera(StoredValue):
    """Pinhole intrinsics and ``cam_to_world`` (JSON)."""

    name = "camera"
    file_format = "camera"
    extensions = (".json",)
    crop_rule = "camera"


@register_stored
class Palette(StoredValue):
    """The image's dominant colours (JSON); a crop leaves them as they are."""

    name = "palette"
    file_format = "json"
    extensions = (".json",)
    crop_rule = "unchanged"


@register_stored
class Metadata(StoredValue):
    """Image statistics, key -> number (JSON); a crop leaves them as they are."""

    name = "metadata"
    file_format = "json"
    extensions = (".json",)
    crop_rule = "unchanged"


@register_stored
class Boxes(StoredValue):
    """Detection boxes (JSON): ``boxes`` XYXY px, ``classes``, ``width``, ``height``."""

    name = "boxes"
    file_format = "json"
    extensions = (".json",)
    crop_rule = "boxes"


@register_stored
class Captions(StoredValue):
    """A caption of the image (UTF-8 text, ``<key>.captions.txt``), tokenized by the ``captions`` zoo tokenizer;
    a crop leaves it as it is."""

    name = "captions"
    file_format = "text"
    extensions = (".txt",)
    crop_rule = "unchanged"
