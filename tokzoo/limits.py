"""Size limits of tokenizer configs and training recipes, checked before anything is allocated.

A 1 kB ``config.json`` or recipe must not be able to ask for gigabytes: every size field is checked for its type
and against the limits below, the model's parameter count is computed on the ``meta`` device (no memory), and a
refusal is one :class:`~tokzoo.errors.ConfigError` line naming the field, the value and the limit. The limits sit
far above every shipped preset (the largest, vit-base, has 2 x 86 M parameters at 224 px).
"""

from __future__ import annotations

import math

from .errors import ConfigError

MAX_SIDE = 8192
"""Largest height or width of a tokenizer's input_size, a crop size or a training resolution."""
MAX_PIXELS = 64_000_000
"""Largest height x width of one input (tokzoo.io.safety.MAX_PIXELS, the decompression-bomb guard)."""
MAX_PARAMETERS = 400_000_000
"""Largest encoder + decoder parameter count (1.6 GB of float32)."""
MAX_ACTIVATION = 1 << 30
"""Largest input pixels x model width: one sample's widest activation (4 GiB of float32)."""
MAX_VIT_TOKENS = 16384
"""Largest ViT sequence (patches of one input): attention grows with its square."""
MAX_LATENT_DIM = 4096
MAX_CODEBOOK = 1 << 20
"""Largest codebook (ids per token); FSQ and LFQ build their full codebook at construction."""
MAX_LEVELS = 16
MAX_QUANTIZERS = 16
MAX_BATCH = 4096
MAX_BATCH_PIXELS = 1 << 27
"""Largest batch_size x resolution pixels of a training step (134 M pixels, e.g. 512 x 512 x 512)."""
MAX_DATA_PIXELS = 1 << 31
"""Largest (n_train + n_val) x pixels of scenes or synthetic samples a recipe holds in memory (2.1 G pixels;
recipes/depth_4m.yaml holds 0.55 G)."""

_MODEL_FIELDS = {  # family -> field -> (low, high, kind): kind int, float, or "ints" (an int or a list of ints)
    "conv": {"width": (1, 8192, int), "channel_mults": (1, 64, "list"), "blocks_per_level": (0, 32, "ints"),
             "groups": (1, 1024, int)},
    "vit": {"patch_size": (1, 64, int), "width": (4, 8192, int), "depth": (1, 64, int), "heads": (1, 256, int),
            "mlp_ratio": (0.01, 16.0, float)},
    "mlp": {"hidden": (1, 65536, int), "depth": (1, 64, int), "n_tokens": (1, 4096, int)},
}
_MAX_LEVELS_PER_MODEL = 8  # conv channel_mults: each level halves the grid


def _fail(where: str, field: str, value, limit: str):
    text = repr(value)
    raise ConfigError(f"{where}: {field} {text[:60] + '...' if len(text) > 60 else text} is refused: {limit}")


def check_int(value, where: str, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(where, field, value, f"expected an integer in [{low}, {high}]")
    return value


def check_number(value, where: str, field: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        _fail(where, field, value, f"expected a number in [{low}, {high}]")
    return float(value)


def check_size(value, where: str, field: str) -> tuple[int, ...]:
    """An input size: a list of 1 or 2 ints (vector length, or H, W) within :data:`MAX_SIDE` / :data:`MAX_PIXELS`."""
    if not isinstance(value, (list, tuple)) or len(value) not in (1, 2):
        _fail(where, field, value, "expected a list of one or two sizes")
    sides = tuple(check_int(v, where, field, 1, MAX_SIDE if len(value) == 2 else 1 << 20) for v in value)
    if math.prod(sides) > MAX_PIXELS:
        _fail(where, field, value, f"{math.prod(sides)} pixels, over the limit of {MAX_PIXELS}")
    return sides


def check_quantizer(config, where: str = "quantizer") -> None:
    """Types and sizes of a quantizer config (tokzoo.quantizers): levels, codebook size, residual depth."""
    if not isinstance(config, dict):
        _fail(where, "quantizer", config, "expected a mapping")
    levels = config.get("levels")
    if levels is not None:
        if not isinstance(levels, list) or not 1 <= len(levels) <= MAX_LEVELS:
            _fail(where, "quantizer.levels", levels, f"expected a list of 1 to {MAX_LEVELS} integers")
        for level in levels:
            check_int(level, where, "quantizer.levels", 2, MAX_CODEBOOK)
        if math.prod(levels) > MAX_CODEBOOK:
            _fail(where, "quantizer.levels", levels, f"codebook of {math.prod(levels)} ids, over the limit of {MAX_CODEBOOK}")
    if "codebook_size" in config:
        check_int(config["codebook_size"], where, "quantizer.codebook_size", 2, MAX_CODEBOOK)
    if "num_quantizers" in config:
        check_int(config["num_quantizers"], where, "quantizer.num_quantizers", 1, MAX_QUANTIZERS)
    if "codebook_dim" in config:
        check_int(config["codebook_dim"], where, "quantizer.codebook_dim", 1, MAX_LATENT_DIM)


def check_model(family: str, hyperparameters: dict, where: str = "tokenizer config") -> None:
    """Types and ranges of a model family's size hyperparameters (unknown names are left to tokzoo.models)."""
    for field, (low, high, kind) in _MODEL_FIELDS.get(family, {}).items():
        if field not in hyperparameters:
            continue
        value, name = hyperparameters[field], f"model.{field}"
        if kind is int:
            check_int(value, where, name, low, high)
        elif kind is float:
            check_number(value, where, name, low, high)
        elif kind == "list" or isinstance(value, list):
            if not isinstance(value, list) or not 1 <= len(value) <= _MAX_LEVELS_PER_MODEL:
                _fail(where, name, value, f"expected a list of 1 to {_MAX_LEVELS_PER_MODEL} integers")
            for item in value:
                check_int(item, where, name, low, high)
        else:
            check_int(value, where, name, low, high)


def check_tokenizer_config(config: dict, where: str = "tokenizer config") -> None:
    """A resolved LearnedTokenizer config (``model`` with its family): sizes, quantizer, and the parameter count and
    widest activation the model would have, before any weight is allocated."""
    check_size(config.get("input_size"), where, "input_size")
    check_int(config.get("latent_dim"), where, "latent_dim", 1, MAX_LATENT_DIM)
    check_quantizer(config.get("quantizer"), where)
    model = config["model"]
    if not isinstance(model, dict):
        _fail(where, "model", model, "expected a mapping")
    family = model.get("family")
    hyperparameters = {k: v for k, v in model.items() if k not in ("preset", "family")}
    check_model(family, hyperparameters, where)
    width = hyperparameters.get("width", hyperparameters.get("hidden", 1))
    pixels = math.prod(config["input_size"])
    if pixels * width > MAX_ACTIVATION:
        _fail(where, "input_size x model width", (config["input_size"], width),
              f"{pixels * width} activations per sample, over the limit of {MAX_ACTIVATION}")
    if family == "vit" and len(config["input_size"]) == 2:
        patch = hyperparameters.get("patch_size", 16)
        tokens = (config["input_size"][0] // patch) * (config["input_size"][1] // patch)
        if tokens > MAX_VIT_TOKENS:
            _fail(where, "input_size / patch_size", (config["input_size"], patch),
                  f"{tokens} patches, over the limit of {MAX_VIT_TOKENS}")


def count_parameters(build, where: str = "tokenizer config") -> int:
    """Parameters of the modules ``build()`` returns, built on the ``meta`` device (nothing allocated);
    ConfigError over :data:`MAX_PARAMETERS`."""
    import torch

    with torch.device("meta"):
        modules = build()
    count = sum(p.numel() for module in modules for p in module.parameters())
    if count > MAX_PARAMETERS:
        raise ConfigError(f"{where}: model of {count:,} parameters is refused: over the limit of {MAX_PARAMETERS:,}")
    return count


def check_recipe_sizes(recipe: dict, where: str = "recipe") -> None:
    """Batch and in-memory data sizes of a validated training recipe (tokzoo.training.recipe)."""
    batch = check_int(recipe["batch_size"], where, "batch_size", 1, MAX_BATCH)
    resolution = check_size(recipe["resolution"], where, "resolution")
    pixels = math.prod(resolution) if len(resolution) == 2 else 1
    if batch * pixels > MAX_BATCH_PIXELS:
        _fail(where, "batch_size x resolution", (batch, list(resolution)),
              f"{batch * pixels} pixels per step, over the limit of {MAX_BATCH_PIXELS}")
    data = recipe["data"]
    for source in ("scenes", "synthetic"):
        if source in data:
            spec = data[source]
            side = spec.get("size", 1) if source == "scenes" else 1
            check_int(side, where, f"data.{source}.size", 1, MAX_SIDE)
            held = (spec["n_train"] + spec.get("n_val", 0)) * (side * side if source == "scenes" else max(pixels, 1))
            if held > MAX_DATA_PIXELS:
                _fail(where, f"data.{source} n_train + n_val", spec["n_train"] + spec.get("n_val", 0),
                      f"{held} pixels held in memory, over the limit of {MAX_DATA_PIXELS}")
            if "rank" in spec:
                check_int(spec["rank"], where, f"data.{source}.rank", 1, 4096)
