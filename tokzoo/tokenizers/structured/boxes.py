"""Bounding-box tokenizer: per box a class token, then x0, y0, x1, y1 normalised by the image size and binned.

Id layout (``num_classes`` = C, ``bins`` = N): 0 = PAD; 1..C = class c (id 1 + c); C+1..C+N = coordinate
bin 0..N-1 (shared by the four coordinates). Row: ``[c, x0, y0, x1, y1] * n`` in the given box order,
then PAD; length 5 * max_boxes, vocab_size 1 + C + N. The image size is not in the tokens: ``decode``
returns coordinates for a 1 x 1 image (normalised) unless given ``sizes``.
"""

from __future__ import annotations

import numbers

import numpy as np

from tokzoo.errors import DtypeError, InvalidValueError, ShapeError
from tokzoo.tokenizers.base import register_architecture

from .common import PAD, StructuredTokenizer, array_of, bin_centres, check_int, real_number, to_bins

FIELDS = ("boxes", "classes", "width", "height")
COORDINATES = ("x0", "y0", "x1", "y1")


@register_architecture("binned_boxes")
class BoxesTokenizer(StructuredTokenizer):
    """Up to ``max_boxes`` class-labelled boxes in pixels, coordinates binned to ``bins`` steps of the image size."""

    modality_name = "boxes"
    parameters = ("num_classes", "max_boxes", "bins", "name")

    def __init__(self, num_classes: int = 80, max_boxes: int = 64, bins: int = 1000, name: str | None = None):
        self.config = {
            **self._base_config(name),
            "num_classes": check_int("boxes", "num_classes", num_classes, 1),
            "max_boxes": check_int("boxes", "max_boxes", max_boxes, 1),
            "bins": check_int("boxes", "bins", bins, 1),
        }
        self.num_classes, self.max_boxes, self.bins = (self.config[k] for k in ("num_classes", "max_boxes", "bins"))
        self.length = 5 * self.max_boxes

    @property
    def vocab_size(self) -> int:
        return 1 + self.num_classes + self.bins

    @property
    def contract(self) -> str:
        return (
            'A dict {"boxes": [[x0, y0, x1, y1], ...] (list or (n, 4) array), "classes": [int, ...], '
            '"width": W, "height": H}: coordinates in pixels of a W x H image (W, H > 0), '
            "0 <= x0 <= x1 <= W and 0 <= y0 <= y1 <= H (zero-size boxes allowed, nothing is clipped), "
            f"classes integers in 0..{self.num_classes - 1}, 0..{self.max_boxes} boxes (more are refused: "
            "select them first), tokenized in the given order. A batch is a list of dicts. Each coordinate "
            f"divided by W or H is binned into {self.bins} bins. decode(tokens, sizes=None) gives the same "
            "dicts with bin-centre coordinates (within half a bin) for the given (W, H), or for W = H = 1 "
            "(normalised coordinates) without sizes."
        )

    # -- encode -----------------------------------------------------------------------------------
    def _encode_one(self, sample) -> list[int]:
        if not isinstance(sample, dict):
            raise DtypeError("boxes", f"a boxes sample is a dict with keys {list(FIELDS)}, got {type(sample).__name__}")
        if set(sample) != set(FIELDS):
            raise InvalidValueError("boxes", f"keys must be exactly {list(FIELDS)}, got {sorted(map(str, sample))}")
        width, height = (real_number("boxes", key, sample[key]) for key in ("width", "height"))
        if width <= 0 or height <= 0:
            raise InvalidValueError("boxes", f"image size must be positive, got width {width}, height {height}")
        boxes = array_of("boxes", "boxes", sample["boxes"], "real").astype(np.float64)
        classes = array_of("boxes", "classes", sample["classes"], "int").astype(np.int64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ShapeError("boxes", f"boxes must have shape (n, 4), got {boxes.shape}")
        if classes.shape != (len(boxes),):
            raise ShapeError("boxes", f"{len(boxes)} boxes need {len(boxes)} classes, got shape {classes.shape}")
        if len(boxes) > self.max_boxes:
            raise InvalidValueError("boxes", f"{len(boxes)} boxes, more than max_boxes = {self.max_boxes}")
        for i, (box, label) in enumerate(zip(boxes, classes)):
            self._check_box(i, box, int(label), width, height)
        unit = boxes / np.array([width, height, width, height])
        codes = to_bins(unit, self.bins) + 1 + self.num_classes
        return np.concatenate([classes[:, None] + 1, codes], axis=1).reshape(-1).tolist()

    def _check_box(self, i: int, box: np.ndarray, label: int, width: float, height: float) -> None:
        if not np.isfinite(box).all():
            raise InvalidValueError("boxes", f"box {i} has a non-finite coordinate: {box.tolist()}")
        x0, y0, x1, y1 = box
        if x1 < x0 or y1 < y0:
            raise InvalidValueError("boxes", f"box {i} {box.tolist()} has x1 < x0 or y1 < y0")
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            raise InvalidValueError("boxes", f"box {i} {box.tolist()} is outside the {width:g} x {height:g} image")
        if not 0 <= label < self.num_classes:
            raise InvalidValueError("boxes", f"box {i} has class {label}, outside 0..{self.num_classes - 1}")

    # -- decode -----------------------------------------------------------------------------------
    def decode(self, tokens, sizes=None) -> list[dict]:
        """Ids (length,) or (B, length) -> list of dicts; ``sizes`` is None (1 x 1 image), one
        (width, height) for every row, or a sequence of one (width, height) per row."""
        samples = super().decode(tokens)
        if sizes is None:
            return samples
        for sample, (width, height) in zip(samples, self._sizes(sizes, len(samples))):
            sample["boxes"] = [[x0 * width, y0 * height, x1 * width, y1 * height] for x0, y0, x1, y1 in sample["boxes"]]
            sample["width"], sample["height"] = width, height
        return samples

    def _sizes(self, sizes, count: int) -> list[tuple[float, float]]:
        pair = isinstance(sizes, (list, tuple)) and len(sizes) == 2 and all(isinstance(s, numbers.Real) for s in sizes)
        sizes = [sizes] * count if pair else list(sizes)
        if len(sizes) != count or not all(isinstance(s, (list, tuple)) and len(s) == 2 for s in sizes):
            raise ShapeError("boxes", f"sizes must be one (width, height) or {count} of them")
        checked = [tuple(real_number("boxes", "size", s) for s in size) for size in sizes]
        if any(s <= 0 for size in checked for s in size):
            raise InvalidValueError("boxes", f"sizes must be positive, got {sizes}")
        return checked

    def _decode_one(self, row: list[int]) -> dict:
        boxes, classes, position = [], [], 0
        while position < self.length and row[position] != PAD:
            classes.append(self._take(row, position, 1, self.num_classes, "a class"))
            box = [
                self._take(row, position + 1 + j, 1 + self.num_classes, self.bins, f"a {name} bin")
                for j, name in enumerate(COORDINATES)
            ]
            if box[2] < box[0] or box[3] < box[1]:
                raise InvalidValueError("boxes", f"position {position}: box bins {box} have x1 < x0 or y1 < y0")
            boxes.append(bin_centres(box, self.bins).tolist())
            position += 5
        self._check_padding(row, position)
        return {"boxes": boxes, "classes": classes, "width": 1.0, "height": 1.0}
