"""A composition: frozen components + one method's trainable glue, its parameter split, and its checkpoints.

Methods: the registry of :mod:`.registry` (``gats``, ``epalm``, ``mit``, ``xattn``, ``prefix``, ``prompt`` and
``none``: the LM alone, no glue, the components-alone baseline), one file each. ``train_components: true`` leaves the components trainable too (full
fine-tuning of the same wiring).

Checkpoint folder: ``glue.safetensors`` (the trainable tensors only: the glue, plus the components' tensors
when they were trained) and ``compose.json`` (method, settings, each component's spec, adapter, parameter
count and content sha256, the parameter split). Loading rebuilds the components from their specs and stops
with one line when one's content hash differs from the recorded one.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from .. import __version__
from ..errors import CheckpointError, ConfigError
from ..io.safety import read_json_file
from ..io.tensors import check_tensors, check_values
from ..io.writes import make_folder, write_file
from . import alone, epalm, gats, mit, prefix, prompt, xattn  # noqa: F401 (each file registers its method)
from .components import Component
from .encoders import TokenizerEncoder
from .fm_encoder import FMEncoder
from .language import CausalLM
from .registry import build_glue
from .vision import VisionTransformer

FORMAT = "tokzoo-compose"
CONFIG_NAME, WEIGHTS_NAME = "compose.json", "glue.safetensors"


def build_component(name: str, spec: dict) -> Component:
    """``{"tokenizer": zoo name or folder}`` -> TokenizerEncoder; ``{"fm": run folder}`` -> FMEncoder (its rgb
    encoder); ``{"vision_model": folder[, "size": px]}`` -> VisionTransformer (ViT / DINOv2 / CLIP vision);
    ``{"causal_lm": folder}`` -> CausalLM."""
    kinds = ("tokenizer", "fm", "vision_model", "causal_lm")
    options = {"vision_model": {"size"}}
    kind = next((k for k in spec if k in kinds), None) if isinstance(spec, dict) else None
    if kind is None or len([k for k in spec if k in kinds]) != 1 or set(spec) - {kind} - options.get(kind, set()):
        raise ConfigError(
            f"component {name!r}: expected one of {{tokenizer: NAME_OR_DIR}}, {{fm: RUN_DIR}}, "
            f"{{vision_model: DIR, size: PX}} or {{causal_lm: DIR}}, got {spec!r}"
        )
    source = spec[kind]
    if kind == "fm":
        return FMEncoder.from_run(source, name=name)
    if kind == "vision_model":
        return VisionTransformer.from_pretrained(source, name=name, size=spec.get("size"))
    if kind == "tokenizer":
        import tokzoo

        return TokenizerEncoder(tokzoo.load_tokenizer(str(source)), name=name, source=str(source))
    return CausalLM.from_pretrained(source, name=name)


class Composition(nn.Module):
    """``components``: name -> Component (exactly one LM, whose logits are the output)."""

    def __init__(
        self,
        components: dict[str, Component],
        method: str,
        settings: dict | None = None,
        train_components: bool = False,
        specs: dict | None = None,
    ):
        super().__init__()
        lms = [n for n, c in components.items() if c.kind == "lm"]
        if len(lms) != 1:
            raise ConfigError(f"compose: needs exactly one language model component, got {lms or 'none'}")
        self.lm_name = lms[0]
        self.method, self.train_components = method, bool(train_components)
        self.specs = dict(specs or {})
        self.components = nn.ModuleDict(components)
        self.start_hashes = {name: c.content_hash() for name, c in components.items()}
        if not self.train_components:
            for component in components.values():
                component.freeze()
        self.glue = build_glue(method, dict(self.components), self.lm_name, dict(settings or {}))

    @property
    def lm(self) -> CausalLM:
        return self.components[self.lm_name]

    def forward(self, inputs: dict, prompt_len: torch.Tensor, select: torch.Tensor | None = None) -> torch.Tensor:
        """``inputs``: component name -> its input (the LM's: ids (B, T)); logits (B, T, vocab), or (n, vocab) at
        the True positions of ``select`` (B, T)."""
        return self.glue(dict(self.components), inputs, self.lm_name, prompt_len, select)

    def encoder_start(self, name: str) -> int:
        """The last layer of encoder ``name`` that depends on its input alone (0 when it trains, or before any
        layer the glue touches): its hidden state there can be computed once per input and reused."""
        component = self.components[name]
        if not component.frozen or not hasattr(self.glue, "first_layer"):
            return 0
        return self.glue.first_layer(name)

    def split(self) -> dict:
        """Parameter counts: trainable / frozen / total, and per part (each component, the glue)."""
        parts = {name: c.model for name, c in self.components.items()} | {"glue": self.glue}
        rows = {}
        for name, module in parts.items():
            params = list(module.parameters())
            rows[name] = {
                "trainable": sum(p.numel() for p in params if p.requires_grad),
                "frozen": sum(p.numel() for p in params if not p.requires_grad),
            }
        trainable = sum(r["trainable"] for r in rows.values())
        total = trainable + sum(r["frozen"] for r in rows.values())
        return {
            "trainable": trainable,
            "frozen": total - trainable,
            "total": total,
            "trainable_percent": 100.0 * trainable / max(1, total),
            "parts": rows,
        }

    def describe_split(self) -> str:
        """One line per part and a total line, for the start of a run."""
        s = self.split()
        lines = [f"{name}: {r['trainable']:,} trainable, {r['frozen']:,} frozen" for name, r in s["parts"].items()]
        lines.append(
            f"trainable {s['trainable']:,} of {s['total']:,} parameters ({s['trainable_percent']:.2f}%), "
            f"frozen {s['frozen']:,} ({100 - s['trainable_percent']:.2f}%)"
        )
        return "\n".join(lines)

    def trainable_tensors(self) -> dict[str, torch.Tensor]:
        return {name: p.detach() for name, p in self.named_parameters() if p.requires_grad}

    # -- checkpoints -----------------------------------------------------------------------------------
    def save(self, directory: str | Path, extra: dict | None = None) -> Path:
        directory = make_folder(Path(directory))
        write_file(
            directory,
            directory / WEIGHTS_NAME,
            safetensors_bytes({k: v.cpu().contiguous() for k, v in self.trainable_tensors().items()}),
        )
        config = {
            "format": FORMAT,
            "format_version": 1,
            "tokzoo_version": __version__,
            "method": self.method,
            "settings": self.glue.settings(),
            "train_components": self.train_components,
            "lm": self.lm_name,
            "components": {n: {"spec": self.specs.get(n), **c.describe()} for n, c in self.components.items()},
            "split": self.split(),
            **(extra or {}),
        }
        for name, entry in config["components"].items():  # loading rebuilds the components as the run began
            entry["sha256"], entry["sha256_after"] = self.start_hashes[name], entry["sha256"]
        write_file(directory, directory / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")
        return directory


def read_compose_config(directory: str | Path) -> dict:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (not a composition checkpoint)")
    config = read_json_file(path, CheckpointError)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f'{path}: not a tokzoo composition (no "format": "{FORMAT}")')
    return config


def _check_saved(config: dict, path: Path) -> None:
    """The types of a compose.json (components with their spec and sha256, method, settings, train_components) and
    its settings' numbers within tokzoo.limits (a GATS width of 10^6 would be allocated); one-line CheckpointError."""
    from .recipe import check_glue

    components = config.get("components")
    if (
        not isinstance(components, dict)
        or not components
        or not all(
            isinstance(e, dict) and isinstance(e.get("spec"), dict) and isinstance(e.get("sha256"), str)
            for e in components.values()
        )
    ):
        raise CheckpointError(f'{path}: \'components\' must map names to {{"spec": ..., "sha256": ...}}')
    try:
        check_glue(
            {
                "method": config.get("method"),
                "train_components": config.get("train_components"),
                "components": {n: e["spec"] for n, e in components.items()},
                "settings": config.get("settings"),
            },
            str(path),
        )
    except ConfigError as error:
        raise CheckpointError(str(error)) from None


def load_composition(directory: str | Path, components: dict[str, Component] | None = None) -> Composition:
    """Rebuild a saved composition: components from their recorded specs (or ``components``), hashes checked."""
    directory = Path(directory)
    config = read_compose_config(directory)
    _check_saved(config, directory / CONFIG_NAME)
    built = {}
    for name, entry in config["components"].items():
        component = (components or {}).get(name) or build_component(name, entry["spec"])
        found = component.content_hash()
        if found != entry["sha256"]:
            raise CheckpointError(
                f"{directory / CONFIG_NAME}: component {name!r} ({entry.get('source')}) has content "
                f"sha256 {found[:12]}..., the glue was trained on {entry['sha256'][:12]}..."
            )
        built[name] = component
    composition = Composition(
        built,
        config["method"],
        config["settings"],
        config["train_components"],
        {n: e["spec"] for n, e in config["components"].items()},
    )
    path = directory / WEIGHTS_NAME
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({str(error).splitlines()[0][:200]})") from None
    expected = composition.trainable_tensors()
    check_tensors(expected, tensors, path)
    check_values(expected, tensors, path)
    with torch.no_grad():
        for name, param in composition.named_parameters():
            if name in tensors:
                param.copy_(tensors[name])
    return composition
