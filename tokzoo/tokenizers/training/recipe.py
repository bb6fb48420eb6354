"""Training recipes: YAML files read with ``yaml.safe_load``, every field checked, defaults filled.

Schema (``recipes/<zoo name>.yaml``)::

    name: depth                       # the tokenizer's name (a zoo name for shipped tokenizers)
    tokenizer:                        # a LearnedTokenizer config (tokzoo/tokenizers/learned.py)
      modality: depth
      model: {preset: conv-tiny}      # preset name, optionally with hyperparameter overrides
      latent_dim: 32
      quantizer: {type: fsq, levels: [8, 5, 5, 5]}
      input_size: [64, 64]
      normalization: {min_depth: 0.1, max_depth: 100.0}   # optional
    loss: smooth_l1                   # must name the modality's loss (Modality.default_tokenizer()["loss"])
    data:                             # exactly one source:
      scenes: {n_train: 2048, n_val: 64, seed: 0, size: 96}   # built-in procedural scenes; optional
                                                               # kind: indoor (default) | outdoor | mix |
                                                               # cluttered, or a list of kinds taken in
                                                               # turn (scene i is kind[i % len] 's scene i),
                                                               # e.g. kind: [mix, mix, cluttered]
      # path: /data/train                                      # anything tokzoo.io.open_reader reads
      # synthetic: {n_train: 512, n_val: 32, seed: 0, rank: 8} # low-rank random values (feature modalities)
      crop: {scale: [0.5, 1.0], hflip: 0.5}                    # optional random-resized crops (image-like)
      # sensor: {shadow: 4.0, edges: 0.2, blobs: 0.005, noise: 0.003}  # optional, depth only: stereo-like holes
                                                               # and noise on each training view (input and
                                                               # target), validation stays exact; each field
                                                               # optional, 0 = off (training/sensor.py)
      # colour: {hue: 30, saturation: [0.6, 1.4]}             # optional, rgb only: chroma rotated / scaled on
                                                               # each training view (training/colour.py)
      samples: {repeat: 8, names: [motorcycle]}                # optional: bundled real samples added to the
                                                               # training split (tokzoo/datasets/samples.py),
                                                               # each `repeat` times; names default to all that
                                                               # have the modality. They are tokzoo's held-out
                                                               # real set: shipped recipes never use them
      photos: {repeat: 8}                                      # optional: Debian's wallpaper photographs
                                                               # (tokzoo/datasets/photos.py, fetched into a cache
                                                               # on first use) added to the training split, each
                                                               # `repeat` times; rgb, or edges by Canny (rgb/edges);
                                                               # hold_out_every: k leaves photo i % k == 0 out (a
                                                               # validation set: real_photos.py --set wallpapers);
                                                               # packages: [...] names the Debian packages (cache
                                                               # folders) to use, default photos.PACKAGES; a list
                                                               # of such mappings adds several photo sources
    resolution: [64, 64]              # optional training crop size (default: tokenizer.input_size)
    optimizer: {lr: 1.0e-3, betas: [0.9, 0.99], weight_decay: 1.0e-4}   # AdamW
    schedule: {warmup_steps: 100, min_lr_ratio: 0.05}                   # linear warmup, then cosine
    batch_size: 16
    steps: 3000
    seed: 0
    ema: {decay: 0.999}               # optional; null or absent = no EMA
    grad_clip: 1.0                    # optional max gradient norm; null = none
    checkpoint_every: 500             # optional; 0 = only at the end
    log_every: 50                     # optional; codebook usage window and validation interval
    init: rgb                         # optional: start from this tokenizer's weights (a zoo name or a folder)
                                      # instead of random ones; same modality, model, latent_dim and quantizer,
                                      # any input size (fine-tuning a fully convolutional tokenizer at 128 px)

Unknown fields, wrong types and impossible values raise :class:`ConfigError` with one line naming
the file and the field.
"""

from __future__ import annotations

import copy
from pathlib import Path

from ...errors import ConfigError
from ...limits import check_recipe_sizes
from .colour import COLOUR_FIELDS
from .sensor import SENSOR_FIELDS

_TOKENIZER_FIELDS = {"modality", "model", "latent_dim", "quantizer", "input_size", "normalization"}
_OPTIONAL_TOP = {
    "resolution": None,
    "ema": None,
    "grad_clip": None,
    "checkpoint_every": 0,
    "log_every": 50,
    "init": None,
}
_REQUIRED_TOP = ("name", "tokenizer", "loss", "data", "optimizer", "schedule", "batch_size", "steps", "seed")
_SOURCES = {
    "scenes": {"n_train": int, "n_val": int, "seed": int, "size": int, "kind": str},  # kind: str or list of str
    "synthetic": {"n_train": int, "n_val": int, "seed": int, "rank": int},
}


class _Checker:
    """Type and range checks that raise one-line ConfigErrors naming ``where`` and the field."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, field: str, reason: str):
        raise ConfigError(f"{self.where}: {field}: {reason}")

    def mapping(self, value, field: str, allowed: set[str], required: set[str] = frozenset()) -> dict:
        if not isinstance(value, dict):
            self.fail(field, f"expected a mapping, got {type(value).__name__}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            self.fail(field, f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")
        missing = sorted(required - set(value))
        if missing:
            self.fail(field, f"missing field(s) {missing}")
        return value

    def integer(self, value, field: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(field, f"expected an integer >= {minimum}, got {value!r}")
        return value

    def number(self, value, field: str, low: float = 0.0, high: float = float("inf")) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            self.fail(field, f"expected a number in [{low}, {high}], got {value!r}")
        return float(value)

    def pair(self, value, field: str, kind, low: float = 0.0, high: float = float("inf")) -> list:
        if not isinstance(value, list) or len(value) != 2:
            self.fail(field, f"expected a list of two values, got {value!r}")
        check = self.integer if kind is int else self.number
        return [check(v, field, low) if kind is int else check(v, field, low, high) for v in value]


def load_recipe(path: str | Path) -> dict:
    """Read and validate the recipe at ``path``; returns a plain dict with defaults filled."""
    from ...io.safety import read_yaml_file

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: recipe not found")
    return validate_recipe(read_yaml_file(path), str(path))


def validate_recipe(raw, where: str = "recipe") -> dict:
    """Check a recipe mapping (see the module docstring) and return a copy with defaults filled."""
    c = _Checker(where)
    recipe = copy.deepcopy(c.mapping(raw, "recipe", set(_REQUIRED_TOP) | set(_OPTIONAL_TOP), set(_REQUIRED_TOP)))
    recipe = {**_OPTIONAL_TOP, **recipe}
    if not isinstance(recipe["name"], str) or not recipe["name"]:
        c.fail("name", f"expected a non-empty string, got {recipe['name']!r}")
    tokenizer = c.mapping(recipe["tokenizer"], "tokenizer", _TOKENIZER_FIELDS, _TOKENIZER_FIELDS - {"normalization"})
    if not isinstance(tokenizer["input_size"], list) or not tokenizer["input_size"]:
        c.fail("tokenizer.input_size", f"expected a list of sizes, got {tokenizer['input_size']!r}")
    for size in tokenizer["input_size"]:
        c.integer(size, "tokenizer.input_size", 1)
    c.integer(tokenizer["latent_dim"], "tokenizer.latent_dim", 1)
    _check_data(c, recipe["data"])
    if "sensor" in recipe["data"] and tokenizer["modality"] != "depth":
        c.fail("data.sensor", f"sensor corruption applies to depth training data, not {tokenizer['modality']!r}")
    if "colour" in recipe["data"] and tokenizer["modality"] != "rgb":
        c.fail("data.colour", f"colour jitter applies to rgb training data, not {tokenizer['modality']!r}")
    if recipe["resolution"] is None:
        recipe["resolution"] = list(tokenizer["input_size"])
    elif not isinstance(recipe["resolution"], list) or len(recipe["resolution"]) != len(tokenizer["input_size"]):
        c.fail("resolution", f"expected a list like tokenizer.input_size, got {recipe['resolution']!r}")
    else:
        for size in recipe["resolution"]:
            c.integer(size, "resolution", 1)
    optimizer = c.mapping(recipe["optimizer"], "optimizer", {"lr", "betas", "weight_decay"}, {"lr"})
    c.number(optimizer["lr"], "optimizer.lr", 0.0, 10.0)
    optimizer.setdefault("betas", [0.9, 0.99])
    optimizer["betas"] = c.pair(optimizer["betas"], "optimizer.betas", float, 0.0, 1.0)
    optimizer["weight_decay"] = c.number(optimizer.get("weight_decay", 0.0), "optimizer.weight_decay", 0.0, 1.0)
    schedule = c.mapping(recipe["schedule"], "schedule", {"warmup_steps", "min_lr_ratio"}, {"warmup_steps"})
    c.integer(schedule["warmup_steps"], "schedule.warmup_steps")
    schedule["min_lr_ratio"] = c.number(schedule.get("min_lr_ratio", 0.0), "schedule.min_lr_ratio", 0.0, 1.0)
    c.integer(recipe["batch_size"], "batch_size", 1)
    c.integer(recipe["steps"], "steps", 1)
    c.integer(recipe["seed"], "seed")
    c.integer(recipe["checkpoint_every"], "checkpoint_every")
    c.integer(recipe["log_every"], "log_every", 1)
    if recipe["ema"] is not None:
        ema = c.mapping(recipe["ema"], "ema", {"decay"}, {"decay"})
        c.number(ema["decay"], "ema.decay", 0.0, 1.0)
        quantizer = tokenizer["quantizer"] if isinstance(tokenizer["quantizer"], dict) else {}
        if quantizer.get("type") in ("vq", "residual_vq"):
            c.fail(
                "ema",
                "a VQ codebook is itself an average of the live encoder's outputs, so an averaged encoder "
                "would not match it; use ema with fsq or lfq quantizers only",
            )
    if recipe["grad_clip"] is not None:
        recipe["grad_clip"] = c.number(recipe["grad_clip"], "grad_clip", 1e-12)
    if recipe["init"] is not None and (not isinstance(recipe["init"], str) or not recipe["init"]):
        c.fail("init", f"must be a zoo name or a tokenizer folder, got {recipe['init']!r}")
    check_recipe_sizes(recipe, where)  # batch and data sizes that would not fit in memory
    return recipe


def _check_data(c: _Checker, data) -> None:
    c.mapping(data, "data", {"scenes", "synthetic", "path", "crop", "samples", "photos", "sensor", "colour"})
    sources = [s for s in ("scenes", "synthetic", "path") if s in data]
    if len(sources) != 1:
        c.fail("data", f"needs exactly one source of scenes / synthetic / path, got {sources or 'none'}")
    (source,) = sources
    if source == "path":
        if not isinstance(data["path"], str) or not data["path"]:
            c.fail("data.path", f"expected a path string, got {data['path']!r}")
    else:
        optional = {"rank"} if source == "synthetic" else {"kind"}
        fields = _SOURCES[source]
        spec = c.mapping(data[source], f"data.{source}", set(fields), set(fields) - optional)
        for name in spec:
            if fields[name] is str:
                _check_kind(c, spec[name], f"data.{source}.{name}")
            else:
                c.integer(spec[name], f"data.{source}.{name}", 0 if name in ("seed", "n_val") else 1)
    if "samples" in data:
        samples = c.mapping(data["samples"], "data.samples", {"repeat", "names"})
        c.integer(samples.get("repeat", 1), "data.samples.repeat", 1)
        names = samples.get("names")
        if names is not None:
            from ...datasets.samples import SAMPLES

            if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
                c.fail("data.samples.names", f"expected a non-empty list of sample names, got {names!r}")
            unknown = sorted(set(names) - set(SAMPLES))
            if unknown:
                c.fail("data.samples.names", f"unknown bundled sample(s) {unknown}; available: {sorted(SAMPLES)}")
    if "photos" in data:
        listed = isinstance(data["photos"], list)
        if listed and not data["photos"]:
            c.fail("data.photos", "expected a mapping or a non-empty list of mappings, got []")
        for i, spec in enumerate(data["photos"] if listed else [data["photos"]]):
            field = f"data.photos[{i}]" if listed else "data.photos"
            photos = c.mapping(spec, field, {"repeat", "hold_out_every", "packages"})
            c.integer(photos.get("repeat", 1), f"{field}.repeat", 1)
            if "hold_out_every" in photos:
                c.integer(photos["hold_out_every"], f"{field}.hold_out_every", 2)
            packages = photos.get("packages")
            if packages is not None and (
                not isinstance(packages, list) or not packages or not all(isinstance(p, str) and p for p in packages)
            ):
                c.fail(
                    f"{field}.packages", f"expected a non-empty list of package (cache folder) names, got {packages!r}"
                )
    if "sensor" in data:
        sensor = c.mapping(data["sensor"], "data.sensor", set(SENSOR_FIELDS))
        for name, high in zip(SENSOR_FIELDS, (1000.0, 1.0, 0.5, 1.0)):
            sensor[name] = c.number(sensor.get(name, 0.0), f"data.sensor.{name}", 0.0, high)
    if "colour" in data:
        colour = c.mapping(data["colour"], "data.colour", set(COLOUR_FIELDS))
        colour["hue"] = c.number(colour.get("hue", 0.0), "data.colour.hue", 0.0, 180.0)
        saturation = c.pair(colour.get("saturation", [1.0, 1.0]), "data.colour.saturation", float, 0.0, 4.0)
        if saturation[0] > saturation[1]:
            c.fail("data.colour.saturation", f"low must not exceed high, got {saturation}")
        colour["saturation"] = saturation
    if "crop" in data:
        crop = c.mapping(data["crop"], "data.crop", {"scale", "hflip"}, {"scale"})
        scale = c.pair(crop["scale"], "data.crop.scale", float, 1e-3, 1.0)
        if scale[0] > scale[1]:
            c.fail("data.crop.scale", f"expected [low, high] with low <= high, got {scale}")
        crop["hflip"] = c.number(crop.get("hflip", 0.0), "data.crop.hflip", 0.0, 1.0)


def _check_kind(c: _Checker, kind, field: str) -> None:
    """A scene kind of SCENE_KINDS, or a non-empty list of them."""
    from ...datasets.scenes import SCENE_KINDS

    kinds = kind if isinstance(kind, list) and kind else [kind]
    for k in kinds:
        if not isinstance(k, str) or k not in SCENE_KINDS:
            c.fail(field, f"expected one of {', '.join(SCENE_KINDS)} or a list of them, got {kind!r}")


def tokenizer_config(recipe: dict) -> dict:
    """The LearnedTokenizer config a recipe describes (name and loss included)."""
    return {**copy.deepcopy(recipe["tokenizer"]), "name": recipe["name"], "loss": recipe["loss"]}


def build_tokenizer(recipe: dict, where: str = "recipe"):
    """Build the recipe's tokenizer with fresh weights (from the global torch RNG); ConfigError when it cannot."""
    from ...modalities import get_modality
    from ..learned import LearnedTokenizer

    config = tokenizer_config(recipe)
    modality = get_modality(config["modality"])
    expected = _modality_loss(modality, recipe["name"])
    if recipe["loss"] != expected:
        raise ConfigError(
            f"{where}: loss: {config['modality']} trains with its modality loss {expected!r}, got {recipe['loss']!r}"
        )
    try:
        return LearnedTokenizer(config)
    except ConfigError as error:
        raise ConfigError(f"{where}: tokenizer: {error}") from None
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: tokenizer: {error}") from None


def _modality_loss(modality, name: str) -> str:
    """Name of the loss ``modality.loss`` implements, as its zoo tokenizer ``name`` (or its first) declares it."""
    zoo_name = name if name in modality.zoo_names else modality.zoo_names[0]
    return modality.default_tokenizer(zoo_name)["loss"]
