"""SAM instance masks, one 64 x 64 mask per instance cropped to its box (4M-21's layout).

The batch axis of this modality is *instances*: ``encode(instance_map)`` takes one image's instances and
returns (N_instances, 16) ids. Boxes and ids are not tokens; get them from :func:`crop_instances`::

    masks, boxes, ids = crop_instances(instance_map)   # the same instances, in the same order, encode uses
    tokens = tok.encode(instance_map)                  # (N, 16)
    rebuilt = paste_instances(tok.decode(tokens), boxes, *instance_map.shape, ids)
"""

from __future__ import annotations

import numpy as np

from ..errors import DtypeError, InvalidValueError, ShapeError
from ..viz import label_colors
from .base import FSQ_LEVELS, Modality, register_modality, to_tensor
from .lazy_torch import F, torch

MASK_SIZE = 64
MIN_AREA_FRACTION = 0.0005  # 4M drops instances under 0.05% of the image
FRAME_SIZE = (224, 224)
"""Default size of the instance-map crops the pipeline cuts instances from (4M's 224 px crops)."""


def _resize_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """bool (h, w) -> bool (height, width): bilinear coverage (antialiased when shrinking) >= 0.5."""
    resized = F.interpolate(
        mask[None, None].float(), size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )
    return resized[0, 0] >= 0.5


def _masks_of(value) -> tuple[torch.Tensor, np.ndarray]:
    """An instance map (H, W) or boolean masks (N, H, W) / list of (H, W) -> bool (N, H, W) and their ids."""
    if isinstance(value, (list, tuple)):
        if not all(isinstance(m, (np.ndarray, torch.Tensor)) for m in value):
            raise DtypeError("sam_instances input", "a list input must hold boolean (H, W) masks")
        if len({tuple(m.shape) for m in value}) > 1:
            raise ShapeError("sam_instances input", "masks of a list must all have the same (H, W)")
        value = torch.stack([to_tensor(m).cpu() for m in value]) if value else torch.zeros((0, 0, 0), dtype=torch.bool)
    if not isinstance(value, (np.ndarray, torch.Tensor)):
        raise DtypeError(
            "sam_instances input", f"expected a uint16 (H, W) instance map or boolean masks, got {type(value).__name__}"
        )
    value = to_tensor(value).cpu()
    if value.dtype == torch.bool:
        if value.ndim != 3:
            raise ShapeError("sam_instances input", f"boolean masks must be (N, H, W), got {tuple(value.shape)}")
        return value, np.arange(1, len(value) + 1)
    if value.dtype.is_floating_point or value.dtype.is_complex:
        raise DtypeError("sam_instances input", f"expected an integer instance map or boolean masks, got {value.dtype}")
    if value.ndim != 2:
        raise ShapeError(
            "sam_instances input",
            f"expected one uint16 (H, W) instance map (the batch axis is instances: "
            f"one image per call), got shape {tuple(value.shape)}",
        )
    value = value.long()
    if bool((value < 0).any()):
        raise InvalidValueError("sam_instances input", "instance ids must be >= 0 (0 = no instance)")
    ids = value.unique()
    ids = ids[ids > 0]
    return value[None] == ids[:, None, None], ids.numpy()


def crop_instances(value, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instances of one image -> (masks bool (N, 64, 64), boxes int64 (N, 4), ids int64 (N,)).

    ``value``: a uint16 (H, W) instance map (0 = none; ids in increasing order) or boolean masks (N, H, W)
    (ids 1..N in order). Boxes are ``x0, y0, x1, y1`` in pixel edges (pixel j spans [j, j + 1)), so
    ``mask[y0:y1, x0:x1]`` is the crop. Instances covering under 0.05% of the image are dropped. ``limit``: only
    the first ``limit`` of the kept instances (a bounded drawing of a cluttered image).
    """
    masks, ids = _masks_of(value)
    if masks.shape[0] == 0:
        return np.zeros((0, MASK_SIZE, MASK_SIZE), bool), np.zeros((0, 4), np.int64), np.zeros(0, np.int64)
    height, width = masks.shape[1:]
    keep = masks.flatten(1).sum(dim=1) >= max(MIN_AREA_FRACTION * height * width, 1)
    if limit is not None:
        keep &= keep.cumsum(0) <= limit
    crops, boxes = [], []
    for mask in masks[keep]:
        rows, cols = mask.any(dim=1).nonzero().flatten(), mask.any(dim=0).nonzero().flatten()
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        crops.append(_resize_mask(mask[y0:y1, x0:x1], MASK_SIZE, MASK_SIZE))
        boxes.append([x0, y0, x1, y1])
    if not crops:
        return np.zeros((0, MASK_SIZE, MASK_SIZE), bool), np.zeros((0, 4), np.int64), np.zeros(0, np.int64)
    return torch.stack(crops).numpy(), np.array(boxes, np.int64), np.asarray(ids)[keep.numpy()].astype(np.int64)


def paste_instances(masks, boxes, height: int, width: int, ids=None) -> np.ndarray:
    """Masks bool (N, 64, 64) resized into boxes (N, 4) ``x0, y0, x1, y1`` -> uint16 (height, width) map.

    Instance i gets ``ids[i]`` (default i + 1); where instances overlap the later one wins.
    """
    masks, boxes = np.asarray(masks, bool), np.asarray(boxes, np.int64)
    if masks.ndim != 3 or boxes.shape != (len(masks), 4):
        raise ShapeError(
            "paste_instances", f"expected masks (N, h, w) and boxes (N, 4), got {masks.shape}, {boxes.shape}"
        )
    ids = np.arange(1, len(masks) + 1) if ids is None else np.asarray(ids)
    if ids.shape != (len(masks),):
        raise ShapeError("paste_instances", f"expected {len(masks)} ids, got shape {ids.shape}")
    out = np.zeros((height, width), np.uint16)
    for mask, (x0, y0, x1, y1), instance in zip(masks, boxes, ids):
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if x1 > x0 and y1 > y0:
            region = _resize_mask(torch.from_numpy(mask), y1 - y0, x1 - x0).numpy()
            out[y0:y1, x0:x1][region] = instance
    return out


@register_modality
class SAMInstances(Modality):
    """Per-instance masks cropped to their boxes at 64 x 64, encoded as {-1, 1}; loss BCE on mask logits."""

    name = "sam_instances"
    old_names = ("instances",)  # what pseudo-label wrote before the rename
    file_format = "instances"
    extensions = (".png", ".npy")
    crop_rule = "nearest"
    metrics = ("mask_iou",)  # on the 64 x 64 per-instance crops (the tokens' own frame)
    contract = (
        "ONE image's instances per call (the batch axis is instances): a uint16 (H, W) instance map "
        "(0 = no instance; other integer dtypes with ids >= 0 are accepted) or boolean masks (N, H, W) / "
        "a list of (H, W) masks. Each instance is cropped to its box and resized to 64 x 64; instances "
        "under 0.05% of the image are dropped. encode returns (N_kept, 16); crop_instances(value) in "
        "tokzoo.modalities.sam_instances gives the same instances' masks, boxes (x0, y0, x1, y1) and ids. "
        "decode returns bool (N, 64, 64) masks; paste_instances(masks, boxes, H, W, ids) rebuilds a map."
    )
    in_channels = out_channels = 1
    sample_ndim = 2
    zoo_names = ("sam_instances",)
    batch_is_samples = False

    frame_size = FRAME_SIZE

    @classmethod
    def default_tokenizer(cls, name: str) -> dict:
        # conv-small downsamples 16: 64 x 64 -> 4 x 4 = 16 tokens per instance, as in 4M.
        return {
            "model": {"preset": "conv-small"},
            "latent_dim": 32,
            "quantizer": {"type": "fsq", "levels": FSQ_LEVELS[2**10]},
            "input_size": [MASK_SIZE, MASK_SIZE],
            "loss": "bce",
        }

    def to_model(self, x) -> torch.Tensor:
        masks = crop_instances(x)[0]
        return torch.from_numpy(masks)[:, None].float() * 2 - 1

    def from_model(self, y: torch.Tensor) -> np.ndarray:
        return (y[:, 0] > 0).cpu().numpy()

    def loss(self, prediction, target):
        return F.binary_cross_entropy_with_logits(prediction, (target + 1) / 2)

    def visualize(self, value) -> np.ndarray:
        """An instance map (H, W) in label colours; masks (N, 64, 64) side by side."""
        value = np.asarray(value)
        if value.dtype == bool and value.ndim == 3:
            tiles = [np.repeat(m[..., None] * np.uint8(255), 3, axis=2) for m in value]
            return np.concatenate(tiles, axis=1) if tiles else np.zeros((MASK_SIZE, MASK_SIZE, 3), np.uint8)
        return label_colors(value, ignore=None) * (value > 0)[..., None].astype(np.uint8)
