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
    "conv": {
        "width": (1, 8192, int),
        "channel_mults": (1, 64, "list"),
        "blocks_per_level": (0, 32, "ints"),
        "groups": (1, 1024, int),
    },
    "vit": {
        "patch_size": (1, 64, int),
        "width": (4, 8192, int),
        "depth": (1, 64, int),
        "heads": (1, 256, int),
        "mlp_ratio": (0.01, 16.0, float),
    },
    "mlp": {"hidden": (1, 65536, int), "depth": (1, 64, int), "n_tokens": (1, 4096, int)},
}
_MAX_LEVELS_PER_MODEL = 8  # conv channel_mults: each level halves the grid


def _fail(where: str, field: str, value, limit: str):
    if isinstance(value, int) and value.bit_length() > 256:  # repr of a 5,000-digit int raises (and costs time)
        text = f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    else:
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
    """Types and sizes of a quantizer config (tokzoo.tokenizers.quantizers): levels, codebook size, residual depth."""
    if not isinstance(config, dict):
        _fail(where, "quantizer", config, "expected a mapping")
    levels = config.get("levels")
    if levels is not None:
        if not isinstance(levels, list) or not 1 <= len(levels) <= MAX_LEVELS:
            _fail(where, "quantizer.levels", levels, f"expected a list of 1 to {MAX_LEVELS} integers")
        for level in levels:
            check_int(level, where, "quantizer.levels", 2, MAX_CODEBOOK)
        if math.prod(levels) > MAX_CODEBOOK:
            _fail(
                where,
                "quantizer.levels",
                levels,
                f"codebook of {math.prod(levels)} ids, over the limit of {MAX_CODEBOOK}",
            )
    if "codebook_size" in config:
        check_int(config["codebook_size"], where, "quantizer.codebook_size", 2, MAX_CODEBOOK)
    if "num_quantizers" in config:
        check_int(config["num_quantizers"], where, "quantizer.num_quantizers", 1, MAX_QUANTIZERS)
    if "codebook_dim" in config:
        check_int(config["codebook_dim"], where, "quantizer.codebook_dim", 1, MAX_LATENT_DIM)


def check_model(family: str, hyperparameters: dict, where: str = "tokenizer config") -> None:
    """Types and ranges of a model family's size hyperparameters (unknown names are left to tokzoo.tokenizers.models)."""
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
        _fail(
            where,
            "input_size x model width",
            (config["input_size"], width),
            f"{pixels * width} activations per sample, over the limit of {MAX_ACTIVATION}",
        )
    if family == "vit" and len(config["input_size"]) == 2:
        patch = hyperparameters.get("patch_size", 16)
        tokens = (config["input_size"][0] // patch) * (config["input_size"][1] // patch)
        if tokens > MAX_VIT_TOKENS:
            _fail(
                where,
                "input_size / patch_size",
                (config["input_size"], patch),
                f"{tokens} patches, over the limit of {MAX_VIT_TOKENS}",
            )


def count_parameters(build, where: str = "tokenizer config", limit: int = MAX_PARAMETERS) -> int:
    """Parameters of the modules ``build()`` returns, built on the ``meta`` device (nothing allocated);
    ConfigError over ``limit``."""
    import torch

    with torch.device("meta"):
        modules = build()
    count = sum(p.numel() for module in modules for p in module.parameters())
    return check_parameter_count(count, where, limit)


def check_recipe_sizes(recipe: dict, where: str = "recipe") -> None:
    """Batch and in-memory data sizes of a validated training recipe (tokzoo.tokenizers.training.recipe)."""
    batch = check_int(recipe["batch_size"], where, "batch_size", 1, MAX_BATCH)
    resolution = check_size(recipe["resolution"], where, "resolution")
    pixels = math.prod(resolution) if len(resolution) == 2 else 1
    if batch * pixels > MAX_BATCH_PIXELS:
        _fail(
            where,
            "batch_size x resolution",
            (batch, list(resolution)),
            f"{batch * pixels} pixels per step, over the limit of {MAX_BATCH_PIXELS}",
        )
    data = recipe["data"]
    for source in ("scenes", "synthetic"):
        if source in data:
            spec = data[source]
            side = spec.get("size", 1) if source == "scenes" else 1
            check_int(side, where, f"data.{source}.size", 1, MAX_SIDE)
            held = (spec["n_train"] + spec.get("n_val", 0)) * (side * side if source == "scenes" else max(pixels, 1))
            if held > MAX_DATA_PIXELS:
                _fail(
                    where,
                    f"data.{source} n_train + n_val",
                    spec["n_train"] + spec.get("n_val", 0),
                    f"{held} pixels held in memory, over the limit of {MAX_DATA_PIXELS}",
                )
            if "rank" in spec:
                check_int(spec["rank"], where, f"data.{source}.rank", 1, 4096)


# -- The newer entry points: one table of every recipe and config number (tokzoo fm, compose, component folders,
# ml-4m tokenizer configs). Field -> (low, high, kind); kind int or float. A value of another type, NaN, an
# infinity or a value outside [low, high] is refused before anything is built, by :func:`check_field`.
FIELD_LIMITS: dict[str, tuple[float, float, type]] = {
    # tokzoo fm recipes (tokzoo.fm.recipe) and run folders (tokzoo.fm.checkpoint)
    "fm.data.max_items": (1, 1024, int),
    "fm.data.weights": (0.0, 1e6, float),
    "fm.model.dim": (4, 8192, int),
    "fm.model.encoder_layers": (1, 256, int),
    "fm.model.decoder_layers": (1, 256, int),
    "fm.model.heads": (1, 256, int),
    "fm.model.mlp_ratio": (0.01, 16.0, float),
    "fm.masking.input_tokens": (0, 65536, int),
    "fm.masking.target_tokens": (1, 65536, int),
    "fm.masking.alpha": (0.0, 1e6, float),
    "fm.masking.weight": (0.0, 1e6, float),
    "fm.train.steps": (1, 10_000_000, int),
    "fm.train.batch_size": (1, MAX_BATCH, int),
    "fm.train.micro_batch_size": (0, MAX_BATCH, int),
    "fm.train.lr": (1e-12, 10.0, float),
    "fm.train.warmup_steps": (0, 10_000_000, int),
    "fm.train.weight_decay": (0.0, 10.0, float),
    "fm.train.grad_clip": (0.0, 1e6, float),
    "fm.train.seed": (0, 2**63 - 1, int),
    "fm.train.num_workers": (0, 64, int),
    "fm.train.checkpoint_every": (0, 10_000_000, int),
    "fm.train.eval_every": (0, 10_000_000, int),
    "fm.train.eval_samples": (1, 10_000_000, int),
    "fm.modality.vocab_size": (2, 1 << 20, int),
    "fm.modality.tokens": (1, 65536, int),
    "fm.modality.size": (1, MAX_SIDE, int),
    "fm.decode.steps": (1, 4096, int),
    "fm.decode.temperature": (0.0, 100.0, float),
    "fm.state.step": (0, 10_000_000, int),
    "fm.state.position": (0, 1 << 40, int),
    # composition recipes (tokzoo.compose.recipe)
    "compose.steps": (0, 10_000_000, int),
    "compose.batch_size": (1, MAX_BATCH, int),
    "compose.log_every": (1, 10_000_000, int),
    "compose.threads": (1, 1024, int),
    "compose.seed": (0, 2**63 - 1, int),
    "compose.optimizer.lr": (1e-12, 10.0, float),
    "compose.optimizer.component_lr": (1e-12, 10.0, float),
    "compose.optimizer.weight_decay": (0.0, 10.0, float),
    "compose.optimizer.warmup_steps": (0, 10_000_000, int),
    "compose.optimizer.min_lr_ratio": (0.0, 1.0, float),
    "compose.optimizer.grad_clip": (0.0, 1e6, float),
    "compose.data.scene_text.n_train": (1, 1_000_000, int),
    "compose.data.scene_text.n_val": (1, 1_000_000, int),
    "compose.data.scene_text.seed": (0, 2**32 - 1, int),
    "compose.data.scene_text.val_seed": (0, 2**32 - 1, int),
    "compose.data.scene_text.size": (16, 1024, int),
    "compose.data.caption_fraction": (0.0, 1.0, float),
    "compose.pretrain_lm.vocab_size": (64, 65536, int),
    "compose.pretrain_lm.hidden_size": (8, 8192, int),
    "compose.pretrain_lm.layers": (1, 256, int),
    "compose.pretrain_lm.heads": (1, 256, int),
    "compose.pretrain_lm.max_positions": (8, 8192, int),
    "compose.pretrain_lm.dropout": (0.0, 0.99, float),
    "compose.settings.dim": (4, 8192, int),
    "compose.settings.heads": (1, 256, int),
    "compose.settings.mlp_ratio": (0.01, 16.0, float),
    "compose.settings.window": (1, 65536, int),
    "compose.settings.prompt_tokens": (0, 1024, int),
    "compose.settings.pool": (1, 1024, int),
    "compose.settings.layer": (-1024, 1024, int),
    "compose.component.size": (1, MAX_SIDE, int),
    # transformers component folders (their config.json, read before transformers sees it)
    "component.layers": (1, 256, int),
    "component.width": (1, 16384, int),
    "component.intermediate_size": (1, 65536, int),
    "component.heads": (1, 256, int),
    "component.vocab_size": (1, 1 << 19, int),
    "component.positions": (1, 1 << 17, int),
    "component.image_size": (1, MAX_SIDE, int),
    "component.patch_size": (1, 1024, int),
    "component.channels": (1, 64, int),
    # caption BPE vocabularies (tokzoo.tokenizers.text.train_vocab): 10^9 made the Rust trainer allocate 71 GB and abort
    "text.vocab_size": (64, 65536, int),
    # built-in scenes (tokzoo tokenize --scenes, tokzoo scenes --n): 10^12 listed 10^9 shard jobs before rendering
    "scenes.count": (1, 10_000_000, int),
    # ml-4m tokenizer configs (tokzoo.fourm)
    "fourm.image_size": (1, MAX_SIDE, int),
    "fourm.patch_size": (1, 1024, int),
    "fourm.latent_dim": (1, MAX_LATENT_DIM, int),
    "fourm.codebook_size": (2, MAX_CODEBOOK, int),
    "fourm.num_codebooks": (1, 1024, int),
    "fourm.n_channels": (1, 4096, int),
    "fourm.n_labels": (1, 65536, int),
    "fourm.mask_size": (1, MAX_SIDE, int),
    "fourm.info.input_size": (0, MAX_SIDE, int),  # fourm_modalities.json: 0 for set-valued (seq) entries
    "fourm.mlp.blocks": (1, 64, int),
    "fourm.mlp.width": (1, 65536, int),
    "fourm.mlp.expansion": (1, 16, int),
}  # fmt: skip
"""Every number of an fm recipe or run, a composition recipe, a component folder and an ml-4m tokenizer config:
field -> (low, high, kind). Messages name the field as the file spells it (``train.lr``), with this range."""

MAX_FM_PARAMETERS = 1_000_000_000
"""Largest fm model (4M-L, 24 + 24 layers of 1024, has ~0.7 G parameters with its embeddings)."""
MAX_COMPONENT_PARAMETERS = 1_000_000_000
"""Largest composition component or pretrained LM (4 GB of float32: components run in float32)."""
MAX_FM_TOKENS = 65536
"""Largest number of tokens of all modalities of one sample an fm model sees."""


def check_field(value, where: object, field: str, table_key: str | None = None):
    """``value`` of the recipe or config field ``field`` within :data:`FIELD_LIMITS` ``[table_key or field]``:
    an int (bool refused) or a finite number in range; returns it (floats as float). One-line ConfigError
    naming the field and the limit otherwise."""
    low, high, kind = FIELD_LIMITS[table_key or field]
    if kind is int:
        return check_int(value, str(where), field, low, high)
    return check_number(value, str(where), field, low, high)


def check_parameter_count(count: int, where: object, limit: int, what: str = "model") -> int:
    """ConfigError (one line) when ``count`` parameters exceed ``limit``."""
    if count > limit:
        raise ConfigError(f"{where}: {what} of {count:,} parameters is refused: over the limit of {limit:,}")
    return count
