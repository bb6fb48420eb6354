"""Metadata tokenizer: image-level scalar statistics as (key, value-bin) token pairs.

Id layout (K keys in the configured order, ``bins`` = N): 0 = PAD; 1..K = key i (id 1 + i);
K+1..K+N = value bin 0..N-1 (shared by every key). Row: the present keys in the configured order, each
followed by its value's bin, then PAD; length 2K, vocab_size 1 + K + N. Values are clipped to their
key's [low, high] range, then split into N equal bins; decode returns bin centres (within half a bin;
the integer in the bin for counts and pixels).
"""

from __future__ import annotations

import math
import numbers

from tokzoo.errors import ConfigError, DtypeError, InvalidValueError
from tokzoo.tokenizers.base import register_architecture

from .common import PAD, StructuredTokenizer, bin_centres, check_int, real_number, to_bins

# The 4M-21 style statistics. tokzoo only bins them; whoever computes them must follow these definitions.
DEFAULT_KEYS = [
    {
        "name": "original_width",
        "low": 0,
        "high": 8192,
        "unit": "pixels",
        "description": "width of the source image before any resize or crop",
    },
    {
        "name": "original_height",
        "low": 0,
        "high": 8192,
        "unit": "pixels",
        "description": "height of the source image before any resize or crop",
    },
    {
        "name": "brightness",
        "low": 0,
        "high": 255,
        "unit": "uint8 luma",
        "description": "mean luma (ITU-R BT.601) of the RGB image",
    },
    {"name": "contrast", "low": 0, "high": 128, "unit": "uint8 luma", "description": "standard deviation of the luma"},
    {"name": "saturation", "low": 0, "high": 1, "unit": "fraction", "description": "mean HSV saturation"},
    {
        "name": "colorfulness",
        "low": 0,
        "high": 200,
        "unit": "uint8 RGB scale",
        "description": "Hasler & Suesstrunk (2003) colourfulness metric M",
    },
    {
        "name": "entropy",
        "low": 0,
        "high": 8,
        "unit": "bits",
        "description": "Shannon entropy of the 256-bin luma histogram",
    },
    {"name": "num_humans", "low": 0, "high": 100, "unit": "count", "description": "people detected (crowdedness)"},
    {
        "name": "num_objects",
        "low": 0,
        "high": 100,
        "unit": "count",
        "description": "object instances of the COCO instance segmenter",
    },
    {"name": "num_instances", "low": 0, "high": 512, "unit": "count", "description": "SAM instances (clutter)"},
    {
        "name": "semantic_diversity",
        "low": 0,
        "high": 133,
        "unit": "count",
        "description": "distinct classes in the semantic segmentation (COCO panoptic, 133 classes)",
    },
    {
        "name": "objectness",
        "low": 0,
        "high": 1,
        "unit": "fraction",
        "description": "fraction of pixels covered by object (thing-class) instances",
    },
    {
        "name": "walkability",
        "low": 0,
        "high": 1,
        "unit": "fraction",
        "description": "fraction of pixels of walkable classes (floor, road, sidewalk, grass, ...)",
    },
    {
        "name": "geometric_complexity",
        "low": 0,
        "high": 1,
        "unit": "fraction",
        "description": "angular variance of the surface normals, divided by its maximum",
    },
    {
        "name": "occlusion_score",
        "low": 0,
        "high": 1,
        "unit": "fraction",
        "description": "fraction of pixels on occlusion boundaries (depth discontinuities)",
    },
]
SPEC_FIELDS = ("name", "low", "high", "unit", "description")
INTEGER_UNITS = ("count", "pixels")
"""Units whose values are whole numbers: decode gives the integer in the bin (a count of 37 comes back as 37, not
37.1); a bin holding no integer (a fractional count was encoded) keeps its centre."""


@register_architecture("binned_metadata")
class MetadataTokenizer(StructuredTokenizer):
    """Dicts of key -> number for a fixed, ordered list of keys, each with its range, unit and ``bins`` bins.

    ``keys``: None (all of :data:`DEFAULT_KEYS`), or a list whose entries are default key names or full
    specs ``{"name", "low", "high", "unit", "description"}``; their order is the token order.
    """

    modality_name = "metadata"
    parameters = ("keys", "bins", "name")

    def __init__(self, keys: list | None = None, bins: int = 1000, name: str | None = None):
        specs = [_spec(entry) for entry in (DEFAULT_KEYS if keys is None else _key_list(keys))]
        names = [spec["name"] for spec in specs]
        if len(set(names)) != len(names):
            raise ConfigError(f"metadata config: duplicate key names in {names}")
        self.config = {**self._base_config(name), "keys": specs, "bins": check_int("metadata", "bins", bins, 1)}
        self.bins = self.config["bins"]
        self.index = {spec["name"]: i for i, spec in enumerate(specs)}
        self.length = 2 * len(specs)

    @property
    def keys(self) -> list[dict]:
        return self.config["keys"]

    @property
    def vocab_size(self) -> int:
        return 1 + len(self.keys) + self.bins

    @property
    def contract(self) -> str:
        rows = "; ".join(
            f"{k['name']} in [{k['low']}, {k['high']}] {k['unit']} ({k['description']})" for k in self.keys
        )
        return (
            f"A dict of key -> finite real number (bools refused) for any subset of these keys, each binned "
            f"into {self.bins} equal bins over its range; values outside the range are clipped to it; "
            f"unknown keys are refused. A batch is a list of dicts. Keys: {rows}. "
            f"decode gives a dict of the present keys -> bin centre (float; for keys in "
            f"{' or '.join(INTEGER_UNITS)}, the int in the bin where it holds one)."
        )

    # -- encode / decode --------------------------------------------------------------------------
    def _encode_one(self, sample) -> list[int]:
        if not isinstance(sample, dict):
            raise DtypeError("metadata", f"a metadata sample is a dict of key -> number, got {type(sample).__name__}")
        unknown = sorted(map(str, set(sample) - set(self.index)))
        if unknown:
            raise InvalidValueError("metadata", f"unknown key {unknown[0]!r}; known keys: {list(self.index)}")
        ids = []
        for key in sorted(sample, key=self.index.__getitem__):
            spec = self.keys[self.index[key]]
            value = min(max(real_number("metadata", key, sample[key]), spec["low"]), spec["high"])
            unit = (value - spec["low"]) / (spec["high"] - spec["low"])
            ids += [1 + self.index[key], 1 + len(self.keys) + int(to_bins(unit, self.bins))]
        return ids

    def _decode_one(self, row: list[int]) -> dict:
        result, position, previous = {}, 0, -1
        while position < self.length and row[position] != PAD:
            i = self._take(row, position, 1, len(self.keys), "a metadata key")
            if i <= previous:
                raise InvalidValueError(
                    "metadata",
                    f"position {position}: key {self.keys[i]['name']!r} out of the configured order or repeated",
                )
            b = self._take(row, position + 1, 1 + len(self.keys), self.bins, "a value bin")
            spec = self.keys[i]
            span = spec["high"] - spec["low"]
            value = spec["low"] + float(bin_centres(b, self.bins)) * span
            whole = round(value)  # the count the bin holds, where it holds one (decode -> encode keeps the tokens)
            if spec["unit"] in INTEGER_UNITS and int(to_bins((whole - spec["low"]) / span, self.bins)) == b:
                value = whole
            result[spec["name"]] = value
            position, previous = position + 2, i
        self._check_padding(row, position)
        return result


def _key_list(keys) -> list:
    if not isinstance(keys, (list, tuple)) or not keys:
        raise ConfigError(f"metadata config: 'keys' must be a non-empty list, got {keys!r}")
    return list(keys)


def _spec(entry) -> dict:
    """A key spec, validated: a default key's name, or a dict with every field of SPEC_FIELDS."""
    defaults = {spec["name"]: spec for spec in DEFAULT_KEYS}
    if isinstance(entry, str):
        if entry not in defaults:
            raise ConfigError(f"metadata config: unknown default key {entry!r}; defaults: {list(defaults)}")
        return dict(defaults[entry])
    if not isinstance(entry, dict) or set(entry) != set(SPEC_FIELDS):
        raise ConfigError(
            f"metadata config: a key must be a default key name or a dict with exactly "
            f"{list(SPEC_FIELDS)}, "
            f"got {entry!r}"
        )
    for field in ("name", "unit", "description"):
        if not isinstance(entry[field], str) or (field == "name" and not entry[field]):
            raise ConfigError(
                f"metadata config: key {entry['name']!r}: {field!r} must be a string, got {entry[field]!r}"
            )
    low, high = entry["low"], entry["high"]
    if (
        not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high))
        or low >= high
    ):
        raise ConfigError(
            f"metadata config: key {entry['name']!r}: need finite numbers low < high, got {low!r}, {high!r}"
        )
    return {field: entry[field] for field in SPEC_FIELDS}
