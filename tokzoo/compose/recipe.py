"""Composition recipes: the ``compose:`` section of a YAML recipe, checked, with defaults filled in.

Two kinds, told apart by their ``compose:`` section::

    compose:                                   # train glue between frozen components
      method: gats                             # gats | epalm | mit | none
      train_components: false                  # true: full fine-tuning of the same wiring
      components: {rgb: {tokenizer: rgb}, lm: {causal_lm: runs/compose/text_lm}}
      settings: {layers: [{rgb: 6, lm: 2}, {rgb: 8, lm: 4}], dim: 64}

    compose:                                   # pretrain a small transformers LM on the scene texts
      pretrain_lm: {arch: gpt2, vocab_size: 512, hidden_size: 128, layers: 4, heads: 4, max_positions: 64}

    compose:                                   # pretrain a small ViT on scenes of data.scenes (vision_pretrain.py)
      pretrain_vision: {size: 64, patch: 8, width: 128, layers: 4, heads: 4}

Shared top-level fields: ``name``, ``seed``, ``steps``, ``batch_size``, ``log_every``, ``threads``,
``optimizer: {lr, component_lr, weight_decay, warmup_steps, min_lr_ratio, grad_clip}`` (``component_lr``: the
components' learning rate when ``train_components`` is true; null: ``lr`` for every parameter), ``data: {scene_text: {n_train,
n_val, seed, val_seed, size, frames}, caption_fraction, scenes: {n, seed, n_val, val_seed}}`` (``frames``: 0 the
single-image task, 2-4 the multi-frame one of tokzoo.datasets.scene_frames, GATS only; ``scenes``: the ViT
pretraining streams, disjoint from ``scene_text``'s). Unknown keys are refused (one line naming the key).
"""

from __future__ import annotations

import copy
from pathlib import Path

from ..errors import ConfigError
from ..io.safety import read_yaml_file
from ..limits import MAX_DATA_PIXELS, check_field

DEFAULTS = {
    "name": "compose", "seed": 0, "steps": 1000, "batch_size": 32, "log_every": 100, "threads": None,
    "optimizer": {"lr": 1e-3, "component_lr": None, "weight_decay": 0.01, "warmup_steps": 50, "min_lr_ratio": 0.1,
                  "grad_clip": 1.0},
    "data": {"scene_text": {"n_train": 2000, "n_val": 200, "seed": 0, "val_seed": 1000003, "size": 64, "frames": 0},
             "caption_fraction": 0.3, "scenes": {"n": 8000, "seed": 7000001, "n_val": 500, "val_seed": 7000002}},
    "compose": {},
}  # fmt: skip
GLUE_DEFAULTS = {"method": "gats", "train_components": False, "components": {}, "settings": {}}
VISION_DEFAULTS = {
    "size": 64,
    "patch": 8,
    "width": 128,
    "layers": 4,
    "heads": 4,
    "person_weight": 1.0,
    "attributes": False,
    "pixel_semantic": False,
    "init": None,
}
LM_DEFAULTS = {
    "arch": "gpt2",
    "vocab_size": 512,
    "hidden_size": 128,
    "layers": 4,
    "heads": 4,
    "max_positions": 64,
    "dropout": 0.0,
}


def _merge(defaults: dict, given: dict, where: str, open_keys: tuple = ()) -> dict:
    merged = copy.deepcopy(defaults)
    for key, value in given.items():
        if key not in defaults:
            raise ConfigError(f"{where}: unknown key {key!r}; valid: {', '.join(defaults)}")
        if isinstance(defaults[key], dict) and key not in open_keys:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {key!r} must be a mapping, got {value!r}")
            merged[key] = _merge(defaults[key], value, f"{where}.{key}", open_keys)
        else:
            merged[key] = value
    return merged


def is_compose_recipe(recipe: dict) -> bool:
    return isinstance(recipe, dict) and "compose" in recipe


def is_compose_recipe_file(path: str | Path) -> bool:
    """Whether the YAML file at ``path`` has a top-level ``compose:`` section (False when unreadable)."""
    try:
        return is_compose_recipe(read_yaml_file(path))
    except ConfigError:
        return False


def read_recipe(path: str | Path, steps: int | None = None, threads: int | None = None) -> dict:
    """The resolved recipe at ``path``; ``steps`` / ``threads`` (the command line's) replace the recipe's."""
    path = Path(path)
    recipe = read_yaml_file(path)
    if isinstance(recipe, dict):
        recipe = {
            **recipe,
            **({"steps": steps} if steps is not None else {}),
            **({"threads": threads} if threads else {}),
        }
    return resolve_recipe(recipe, str(path))


def _check_optimizer(opt: dict, where: str) -> None:
    """Every optimizer field a number >= 0 (``lr``, ``component_lr`` > 0; ``component_lr`` may be null)."""
    for key, value in opt.items():
        if key == "component_lr" and value is None:
            continue
        positive = key in ("lr", "component_lr")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (positive and value == 0):
            hint = " (YAML reads 5e-3 as text: write 5.0e-3)" if isinstance(value, str) else ""
            raise ConfigError(
                f"{where}: optimizer.{key} must be a {'positive ' if positive else ''}number"
                f"{'' if positive else ' >= 0'}, got {value!r}{hint}"[:300]
            )
        check_field(value, where, f"optimizer.{key}", f"compose.optimizer.{key}")


def resolve_recipe(recipe: dict, where: str = "recipe") -> dict:
    """Defaults filled in and every key checked; ``compose`` holds either a glue run or ``pretrain_lm``."""
    if not isinstance(recipe, dict) or not isinstance(recipe.get("compose"), dict):
        raise ConfigError(f"{where}: needs a 'compose:' mapping")
    resolved = _merge(DEFAULTS, recipe, where, open_keys=("compose",))
    for key in ("steps", "batch_size", "log_every"):
        value = resolved[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "steps" else 1):
            raise ConfigError(f"{where}: {key!r} must be a positive integer, got {value!r}")
    _check_numbers(resolved, where)
    compose = recipe["compose"]
    if "pretrain_vision" in compose:
        if set(compose) != {"pretrain_vision"}:
            raise ConfigError(
                f"{where}: compose.pretrain_vision stands alone, got also {sorted(set(compose) - {'pretrain_vision'})}"
            )
        spec = _merge(VISION_DEFAULTS, compose["pretrain_vision"] or {}, f"{where}.compose.pretrain_vision")
        if spec["size"] % spec["patch"] or spec["width"] % spec["heads"]:
            raise ConfigError(f"{where}: compose.pretrain_vision: size must be a multiple of patch, width of heads")
        weight = spec["person_weight"]
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= 100:
            raise ConfigError(
                f"{where}: compose.pretrain_vision.person_weight must be a number in (0, 100], got {weight!r}"[:200]
            )
        for flag in ("attributes", "pixel_semantic"):
            if not isinstance(spec[flag], bool):
                raise ConfigError(
                    f"{where}: compose.pretrain_vision.{flag} must be true or false, got {spec[flag]!r}"[:200]
                )
        if spec["init"] is not None and not isinstance(spec["init"], str):
            raise ConfigError(
                f"{where}: compose.pretrain_vision.init must be a pretraining folder, got {spec['init']!r}"[:200]
            )
        _check_optimizer(resolved["optimizer"], where)
        resolved["compose"] = {"pretrain_vision": spec}
        return resolved
    if "pretrain_lm" in compose:
        if set(compose) != {"pretrain_lm"}:
            raise ConfigError(
                f"{where}: compose.pretrain_lm stands alone, got also {sorted(set(compose) - {'pretrain_lm'})}"
            )
        if compose["pretrain_lm"] is not None and not isinstance(compose["pretrain_lm"], dict):
            raise ConfigError(f"{where}: compose.pretrain_lm must be a mapping, got {compose['pretrain_lm']!r}"[:200])
        resolved["compose"] = {
            "pretrain_lm": _merge(LM_DEFAULTS, compose["pretrain_lm"] or {}, f"{where}.compose.pretrain_lm")
        }
        _check_optimizer(resolved["optimizer"], where)
        _check_lm(resolved["compose"]["pretrain_lm"], where)
        return resolved
    glue = _merge(GLUE_DEFAULTS, compose, f"{where}.compose", open_keys=("components", "settings"))
    if not glue["components"]:
        raise ConfigError(f"{where}: compose.components is empty (name: {{tokenizer: NAME}} / {{causal_lm: DIR}})")
    _check_optimizer(resolved["optimizer"], where)
    component_lr = resolved["optimizer"]["component_lr"]
    if component_lr is not None and not glue["train_components"]:
        raise ConfigError(f"{where}: optimizer.component_lr needs compose.train_components: true (frozen components)")
    check_glue(glue, where)
    frames = resolved["data"]["scene_text"]["frames"]
    if frames not in (0, 2, 3, 4):
        raise ConfigError(f"{where}: data.scene_text.frames must be 0 (one image) or 2..4, got {frames!r}")
    if frames and (resolved["data"]["caption_fraction"] or not _takes_frames(glue["method"])):
        raise ConfigError(
            f"{where}: data.scene_text.frames needs compose.method {' or '.join(_frame_methods())} "
            f"and caption_fraction 0"
        )
    resolved["compose"] = glue
    return resolved


def _frame_methods() -> list[str]:
    """The registered methods that take several frames per sample (``Glue.takes_frames``); imports torch."""
    from . import composition  # noqa: F401 (importing it registers every method)
    from .registry import METHODS

    return sorted(name for name, cls in METHODS.items() if cls.takes_frames)


def _takes_frames(method: str) -> bool:
    return method in _frame_methods()


def _check_numbers(resolved: dict, where: str) -> None:
    """Steps, batch, threads, seeds and the scene data within tokzoo.limits.FIELD_LIMITS, before any scene is made."""
    for key in ("steps", "batch_size", "log_every", "seed"):
        check_field(resolved[key], where, key, f"compose.{key}")
    if resolved["threads"] is not None:
        check_field(resolved["threads"], where, "threads", "compose.threads")
    data = resolved["data"]
    scenes = data["scene_text"]
    for key in ("n_train", "n_val", "seed", "val_seed", "size"):
        check_field(scenes[key], where, f"data.scene_text.{key}", f"compose.data.scene_text.{key}")
    held = (scenes["n_train"] + scenes["n_val"]) * scenes["size"] ** 2
    if held > MAX_DATA_PIXELS:
        raise ConfigError(
            f"{where}: data.scene_text n_train + n_val {scenes['n_train'] + scenes['n_val']} at size "
            f"{scenes['size']} is refused: {held} pixels held in memory, over the limit of {MAX_DATA_PIXELS}"
        )
    check_field(data["caption_fraction"], where, "data.caption_fraction", "compose.data.caption_fraction")


def _check_lm(spec: dict, where: str) -> None:
    """The LM to pretrain: sizes within the limits (a huge vocabulary aborts the Rust BPE trainer), heads divide
    the width, a known architecture."""
    for key in ("vocab_size", "hidden_size", "layers", "heads", "max_positions", "dropout"):
        check_field(spec[key], where, f"compose.pretrain_lm.{key}", f"compose.pretrain_lm.{key}")
    if spec["hidden_size"] % spec["heads"]:
        raise ConfigError(
            f"{where}: compose.pretrain_lm.hidden_size {spec['hidden_size']} is not divisible by heads {spec['heads']}"
        )
    if spec["arch"] not in ("gpt2", "llama"):
        raise ConfigError(f"{where}: compose.pretrain_lm.arch {spec['arch']!r} is not one of gpt2, llama"[:200])


def check_glue(glue: dict, where: str) -> None:
    """Types of a glue section and its settings' numbers (widths, heads, layer indices) within the limits."""
    for key in ("components", "settings"):
        if not isinstance(glue[key], dict):
            raise ConfigError(f"{where}: compose.{key} must be a mapping, got {glue[key]!r}"[:200])
    if not isinstance(glue["method"], str) or not isinstance(glue["train_components"], bool):
        raise ConfigError(f"{where}: compose.method must be a name and compose.train_components true or false")
    for name, spec in glue["components"].items():
        if isinstance(spec, dict) and "size" in spec and spec["size"] is not None:
            check_field(spec["size"], where, f"compose.components.{name}.size", "compose.component.size")
    for key, value in glue["settings"].items():
        field = f"compose.settings.{key}"
        if key == "window" and isinstance(value, dict):  # GATS: {component: N}, counted within each stream
            for name, n in value.items():
                check_field(n, where, f"{field}.{name}", "compose.settings.window")
        elif (
            key in ("dim", "heads", "mlp_ratio", "window", "time_window", "prompt_tokens", "pool") and value is not None
        ):
            check_field(value, where, field, f"compose.settings.{key.removeprefix('time_')}")
        elif key in ("layers", "vision_layers", "inject_layers", "vision_layer"):
            _check_layers(value, where, field)


def _check_layers(value, where: str, field: str) -> None:
    """Layer indices: an int, a list of ints, or (GATS) a list of mappings component -> int; at most 1024 of them."""
    items = value if isinstance(value, list) else [value]
    if len(items) > 1024:
        raise ConfigError(f"{where}: {field} lists {len(items)} layers, over the limit of 1024")
    for item in items:
        for index in item.values() if isinstance(item, dict) else [item]:
            check_field(index, where, field, "compose.settings.layer")
