"""Training data: raw values of one modality from scenes, a reader or a synthetic generator, turned into
normalised batches through the modality's ``to_model``.

A training batch is a pure function of ``(seed, step)``: which samples, and each sample's random-resized
crop (tokzoo.crops, keyed by step and index), so a resumed run sees exactly the batches an
uninterrupted one would.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...crops import apply_crop, make_crop_settings
from ...datasets.scenes import generate_scene
from ...errors import ConfigError, InputError
from .colour import jitter_colour
from .sensor import corrupt_depth

SOURCE_KEYS = {"human_pose": "pose"}
"""Modalities whose raw value is stored under another name in scenes and readers (default: the modality's own)."""

PATH_VALIDATION_FRACTION = 0.05
"""Share of a ``path`` source's samples (its last ones, at most 64) held out for validation."""

_SENSOR_STREAM = 5  # extra seed word of the sensor corruption of a training view
_COLOUR_STREAM = 6  # extra seed word of the colour jitter of a training view


def source_key(modality: str) -> str:
    return SOURCE_KEYS.get(modality, modality)


def scene_values(modality: str, indices, seed: int, size, kind: str | list = "indoor") -> list:
    """The ``modality`` value of procedural scenes ``indices`` of ``kind`` (ConfigError when scenes lack it); a list
    of kinds takes them in turn: scene ``i`` is ``kind[i % len(kind)]``'s scene ``i``."""
    key = source_key(modality)
    kinds = [kind] if isinstance(kind, str) else list(kind)
    values = []
    for index in indices:
        scene = generate_scene(index, seed, size, kinds[index % len(kinds)])
        if key not in scene:
            raise ConfigError(
                f"the built-in scenes have no {modality!r} ground truth ({', '.join(scene)}); "
                "pass --data with your own samples"
            )
        values.append(scene[key])
    return values


def synthetic_values(codec, n: int, seed: int, rank: int, resolution, split: int) -> list:
    """``n`` raw samples whose model-space values are random low-rank (and, for maps, smooth) signals.

    The channel basis depends on ``seed`` only, the coefficients on ``(seed, split)``, so train (split 0)
    and validation (split 1) share one distribution. Raw values come from ``codec.from_model``.
    """
    basis = torch.randn(rank, codec.out_channels, generator=torch.Generator().manual_seed(seed)) / rank**0.5
    generator = torch.Generator().manual_seed(seed * 7919 + split + 1)
    if codec.family == "vector":
        model = torch.randn(n, rank, generator=generator) @ basis
    else:
        height, width = resolution
        coarse = torch.randn(n, rank, max(1, height // 4), max(1, width // 4), generator=generator)
        smooth = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
        model = torch.einsum("nrhw,rc->nchw", smooth, basis)
    return list(codec.from_model(model))


def reader_values(path: str, modality: str) -> list:
    """Every decodable ``modality`` value that ``tokzoo.io.open_reader(path)`` yields, in reader order."""
    return read_values(path, modality)[0]


def read_values(path: str, modality: str, progress: bool = False) -> tuple[list, list[str]]:
    """(``reader_values``, one ``"source: reason"`` line per sample that failed to decode); InputError when
    none decodes. ``progress``: a tqdm bar on stderr."""
    from tqdm import tqdm

    from ...io.readers import open_reader

    key = source_key(modality)
    reader = open_reader(path, [key])
    try:
        total = len(reader)
    except TypeError:  # streaming readers
        total = None
    values, unreadable = [], []
    for sample in tqdm(
        reader, total=total, unit="sample", desc=f"reading {path}", disable=not progress, dynamic_ncols=True
    ):
        if sample.errors:
            unreadable += sample.errors.values()
        elif key in sample.values:
            values.append(sample.values[key])
    if not values:
        first = f" ({len(unreadable)} unreadable; first: {unreadable[0]})" if unreadable else ""
        raise InputError(path, f"no readable {modality} samples{first}")
    return values, unreadable


def sample_values(modality: str, spec: dict) -> list:
    """The ``modality`` values of bundled real samples (tokzoo.datasets.samples), each ``repeat`` times.

    ``spec["names"]`` picks samples (default: every sample that has the modality); ConfigError when a
    named sample lacks it or its package is missing.
    """
    from ...datasets.samples import SAMPLES, load_sample

    key = source_key(modality)
    names = spec.get("names") or [n for n in sorted(SAMPLES) if key in SAMPLES[n].modalities]
    values = []
    for name in names:
        sample = load_sample(name)
        if key not in sample:
            raise ConfigError(f"bundled sample {name!r} has no {modality!r} ({', '.join(sample)})")
        values.append(sample[key])
    return values * spec.get("repeat", 1)


PHOTO_MODALITIES = ("rgb", "edges")
"""Modalities a photo gives: the image itself, or its Canny edges (tokzoo.modalities.edges.canny_edges)."""


def photo_values(modality: str, spec: dict) -> list:
    """The ``modality`` values of the cached training photos (tokzoo.datasets.photos) of ``packages`` (default:
    the wallpaper packages), each ``repeat`` times, without the validation photos when ``hold_out_every`` is set;
    fetched on first use. ConfigError for a modality a photo cannot give."""
    from ...datasets.photos import PACKAGES, fetch_photos, load_photos

    if modality not in PHOTO_MODALITIES:
        raise ConfigError(f"data.photos: photos give {' or '.join(PHOTO_MODALITIES)}, not {modality!r}")
    packages = spec.get("packages")
    cache = fetch_photos(packages=tuple(packages) if packages is not None else PACKAGES)
    photos = load_photos(cache, hold_out_every=spec.get("hold_out_every", 0), packages=packages)
    if modality == "edges":
        from ...modalities.edges import canny_edges

        photos = [canny_edges(photo) for photo in photos]
    return photos * spec.get("repeat", 1)


def source_values(data: dict, codec, resolution) -> tuple[list, list]:
    """(train, validation) raw values of the recipe's ``data`` source, plus bundled ``samples`` and cached
    ``photos`` (training only)."""
    train, val = _primary_values(data, codec, resolution)
    if "samples" in data:
        train = train + sample_values(codec.name, data["samples"])
    from ...datasets.photos import check_photo_sources, photo_sources

    sources = photo_sources(data)
    for spec in sources:
        train = train + photo_values(codec.name, spec)
    if len(sources) > 1:
        check_photo_sources(sources)
    return train, val


def _primary_values(data: dict, codec, resolution) -> tuple[list, list]:
    if "scenes" in data:
        spec = data["scenes"]
        kind = spec.get("kind", "indoor")
        train = scene_values(codec.name, range(spec["n_train"]), spec["seed"], spec["size"], kind)
        val = scene_values(
            codec.name, range(spec["n_train"], spec["n_train"] + spec["n_val"]), spec["seed"], spec["size"], kind
        )
        return train, val
    if "synthetic" in data:
        spec = data["synthetic"]
        rank = spec.get("rank", 8)
        return (
            synthetic_values(codec, spec["n_train"], spec["seed"], rank, resolution, 0),
            synthetic_values(codec, spec["n_val"], spec["seed"], rank, resolution, 1),
        )
    values = reader_values(data["path"], codec.name)
    n_val = min(64, int(len(values) * PATH_VALIDATION_FRACTION))
    return (values[:-n_val], values[-n_val:]) if n_val and len(values) > n_val else (values, [])


def _is_map(value) -> bool:
    return isinstance(value, np.ndarray) and value.ndim >= 2


def fit(modality: str, value, resolution, crop_row=None):
    """``value`` cut to ``crop_row`` (default: the centre square) and resized to ``resolution``; vectors as given."""
    if not _is_map(value):
        return value
    height, width = value.shape[:2]
    if crop_row is None:
        if [height, width] == list(resolution):
            return value
        crop_row = make_crop_settings(height, width, 1, 0, "centre")[0]
    key = source_key(modality)
    return apply_crop({key: value}, crop_row, tuple(resolution))[key]


class TrainingData:
    """Training and validation values of the codec's modality; ``batch(step)`` gives a normalised batch."""

    def __init__(self, recipe: dict, codec):
        self.codec, self.seed = codec, recipe["seed"]
        self.resolution, self.batch_size = recipe["resolution"], recipe["batch_size"]
        self.crop = recipe["data"].get("crop")
        self.sensor = recipe["data"].get("sensor")
        self.colour = recipe["data"].get("colour")
        train, val = source_values(recipe["data"], codec, self.resolution)
        self.train = [v for v in train if self._usable(v)]
        self.val = [fit(codec.name, v, self.resolution) for v in val if self._usable(v)]
        if not self.train:
            raise ConfigError(f"{recipe['name']}: no usable training samples")

    def _usable(self, value) -> bool:
        try:
            return len(self.codec.to_model(fit(self.codec.name, value, self.resolution))) > 0
        except InputError:
            return False

    def batch(self, step: int) -> torch.Tensor:
        """Normalised training batch of ``step``: samples and crops drawn from ``(seed, step)`` alone."""
        rng = np.random.default_rng([self.seed, step])
        picks = rng.choice(len(self.train), self.batch_size, replace=len(self.train) < self.batch_size)
        return torch.cat([self._sample(step, int(i)) for i in picks])  # per sample: some give several rows

    def _sample(self, step: int, index: int) -> torch.Tensor:
        value = self.train[index]
        if self.crop is not None and _is_map(value):
            height, width = value.shape[:2]
            row = make_crop_settings(
                height,
                width,
                2,
                self.seed,
                f"{step}/{index}",
                scale=tuple(self.crop["scale"]),
                hflip_p=self.crop["hflip"],
            )[1]
            try:
                return self._to_model(fit(self.codec.name, value, self.resolution, row), step, index)
            except InputError:  # e.g. a depth crop holding only sky: fall back to the centre crop
                pass
        return self._to_model(fit(self.codec.name, value, self.resolution), step, index)

    def _to_model(self, view, step: int, index: int) -> torch.Tensor:
        """``view`` normalised, after the recipe's sensor corruption (depth; seeded by ``(seed, step, index)``),
        which is skipped where it would leave no valid pixel, or colour jitter (rgb)."""
        if self.colour:
            view = jitter_colour(view, self.colour, np.random.default_rng([self.seed, step, index, _COLOUR_STREAM]))
        if self.sensor:
            rng = np.random.default_rng([self.seed, step, index, _SENSOR_STREAM])
            corrupted = corrupt_depth(view, self.sensor, rng)
            view = corrupted if np.isfinite(corrupted).any() else view
        return self.codec.to_model(view)

    def validation_batches(self):
        """Normalised validation batches of ``batch_size`` samples (none without a validation split)."""
        for start in range(0, len(self.val), self.batch_size):
            yield torch.cat([self.codec.to_model(v) for v in self.val[start : start + self.batch_size]])
