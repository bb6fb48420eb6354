"""The zoo: named tokenizers, their shipped weights, and ``load_tokenizer``.

A zoo name is a learned tokenizer registered by a modality (``Modality.zoo_names``, weights in
``tokzoo/tokenizers/weights/<name>/``) or a deterministic structured tokenizer (no weights needed).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import TokzooError
from .base import Tokenizer
from .loaders import loader_naming, loaders

WEIGHTS_DIR = Path(__file__).parent / "weights"

# Structured tokenizers: zoo name -> (module, class); they are built with their default arguments.
STRUCTURED = {
    "palette": ("tokzoo.tokenizers.structured.palette", "PaletteTokenizer"),
    "metadata": ("tokzoo.tokenizers.structured.metadata", "MetadataTokenizer"),
    "boxes": ("tokzoo.tokenizers.structured.boxes", "BoxesTokenizer"),
    "captions": ("tokzoo.tokenizers.text", "CaptionTokenizer"),
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ZooEntry:
    name: str
    modality: str
    learned: bool

    @property
    def weights_dir(self) -> Path | None:
        """Directory of the shipped weights, or None when none ship (structured ones need none)."""
        path = WEIGHTS_DIR / self.name
        return path if (path / "config.json").is_file() else None

    @property
    def ready(self) -> bool:
        return not self.learned or self.weights_dir is not None


def zoo_entries() -> dict[str, ZooEntry]:
    from ..modalities import MODALITIES

    entries = {
        name: ZooEntry(name, modality.name, True) for modality in MODALITIES.values() for name in modality.zoo_names
    }
    entries.update({name: ZooEntry(name, name, False) for name in STRUCTURED})
    return dict(sorted(entries.items()))


def default_zoo_name(modality: str) -> str:
    """The zoo tokenizer a modality gets when none is named: the zoo name equal to it, else its codec's
    ``default_zoo_name`` (edges -> canny_edges). Raises a one-line TokzooError naming the choices otherwise."""
    from ..modalities import MODALITIES

    entries = zoo_entries()
    if modality in entries:
        return modality
    default = getattr(MODALITIES.get(modality), "default_zoo_name", None)
    if default:
        return default
    choices = [name for name, entry in entries.items() if entry.modality == modality]
    raise TokzooError(
        f"--modality {modality}: no default tokenizer; name one with --tokenizer {modality}=NAME "
        f"({', '.join(choices) or 'a zoo name'}) or =DIR"
    )


def build_zoo_tokenizer(name: str, untrained_ok: bool = False, seed: int = 0) -> Tokenizer:
    """The zoo tokenizer ``name``: shipped weights, a structured default, or (if allowed) untrained."""
    entry = zoo_entries()[name]
    if not entry.learned:
        module, cls = STRUCTURED[name]
        return getattr(importlib.import_module(module), cls)()
    if entry.weights_dir is not None:
        return Tokenizer.from_pretrained(entry.weights_dir)
    if not untrained_ok:
        from ..recipes import recipe_names

        recipe = next((r for r in recipe_names() if r.rpartition("/")[2] == name), name)  # features/scene_vit_global
        raise TokzooError(
            f"zoo tokenizer {name!r} has no shipped weights yet; train them with "
            f"`tokzoo train --recipe {recipe}`, or ask for an untrained one (--untrained; untrained_ok=True in Python)"
        )
    from .learned import LearnedTokenizer

    return LearnedTokenizer.from_defaults(entry.modality, seed=seed, name=name)


def load_tokenizer(
    name_or_path: str | Path, *, untrained_ok: bool = False, device=None, download: Callable[[str], Path] | None = None
) -> Tokenizer:
    """Load a tokenizer from a zoo name (``"depth"``), a local directory, or a Hugging Face hub id.

    ``untrained_ok`` allows a randomly initialised zoo tokenizer (marked ``untrained``) when no weights
    ship. ``device`` moves learned tokenizers there. Errors are :class:`TokzooError` with one line.
    """
    text = str(name_or_path)
    path = Path(name_or_path)
    if path.exists():
        tokenizer = _from_path(path, path.name)
    elif text in zoo_entries():
        tokenizer = build_zoo_tokenizer(text, untrained_ok=untrained_ok)
    elif (plugin := loader_naming(text)) is not None:  # a plug-in's catalog name (e.g. a released 4M tokenizer)
        tokenizer = _from_path(*plugin.locate(text, download or _download_from_hub))
    elif text.startswith(("/", "./", "../", "~")):
        raise TokzooError(f"{text}: no such tokenizer directory")
    elif _HUB_ID.match(text):
        try:
            fetched = (download or _download_from_hub)(text)
        except TokzooError as error:
            if path.parent.is_dir():  # 'runs/depth' beside a local 'runs/': a path typo, not a hub outage
                raise TokzooError(f"{text}: no such tokenizer directory (nor a hub id that could be fetched)") from None
            raise error
        tokenizer = _from_path(fetched, text)
    else:
        raise TokzooError(
            f"{text}: not a zoo name ({', '.join(zoo_entries())}), an existing directory, or a hub id (owner/name)"
        )
    if device is not None and hasattr(tokenizer, "to"):
        tokenizer.to(device)
    return tokenizer


def _from_path(path: Path, name: str) -> Tokenizer:
    """The tokenizer at ``path``: a plug-in's format (:mod:`.loaders`), else a tokzoo tokenizer folder."""
    for loader in loaders():
        tokenizer = loader.load(path, name)
        if tokenizer is not None:
            return tokenizer
    return Tokenizer.from_pretrained(path)


def _download_from_hub(repo_id: str) -> Path:
    """Fetch config.json, model.safetensors and (text tokenizers) vocab.json of ``repo_id``; no pickles."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=["config.json", "model.safetensors", "vocab.json"]))
    except Exception as error:  # offline, unknown repo, auth: all end the same way for the user
        raise TokzooError(
            f"{repo_id}: could not fetch from the Hugging Face hub ({type(error).__name__}); "
            "offline? pass a local directory instead"
        ) from None


_KINDS = {
    "indoor": "indoor rooms",
    "outdoor": "outdoor terrain scenes",
    "mix": "indoor rooms and outdoor scenes, 1/2 each",
    "cluttered": "cluttered rooms (small and thin objects)",
}


def _kind_shares(kinds: list[str]) -> str:
    """A list of scene kinds taken in turn, in words with each kind's share: ``[mix, mix, cluttered]`` ->
    "scenes: 2/3 indoor rooms and outdoor scenes, 1/2 each + 1/3 cluttered rooms (...)"."""
    counts = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
    return "scenes: " + " + ".join(f"{n}/{len(kinds)} {_KINDS[k]}" for k, n in counts.items())


def _photos_part(spec: dict, modality: str | None) -> str:
    """``zoo info``'s words for one ``data.photos`` source of a recipe."""
    from ..datasets.photos import PACKAGES

    packages = spec.get("packages")
    what = (
        "Debian's desktop-background photos and renders (tokzoo/datasets/photos.py, ~115 images"
        if packages is None or list(packages) == list(PACKAGES)
        else f"photos of the Debian packages {', '.join(packages)} (tokzoo/datasets/photos.py"
    )
    held = spec.get("hold_out_every")
    return (
        f"{what}{', Canny edges of them' if modality == 'edges' else ''}"
        f"{f', 1 in {held} left out for validation' if held else ''}) x {spec.get('repeat', 1)}"
    )


def training_coverage(config: dict) -> dict | None:
    """What a learned tokenizer's weights were trained on, read from its config's ``provenance`` (None when it has
    no training recipe, e.g. untrained): ``trained_on`` (the recipe's data in words), ``input_size``, ``range``
    (the normalisation bounding its inputs, where the modality has one), ``steps``, and ``known_failures``
    (measured, stored under ``provenance.coverage.known_failures``; empty when none are recorded). A recipe that read
    a folder says what it held in ``provenance.coverage.data``."""
    provenance = config.get("provenance") or {}
    recipe = provenance.get("recipe")
    if not recipe:
        return None
    data, parts = recipe["data"], []
    if "scenes" in data:
        spec, kind = data["scenes"], data["scenes"].get("kind", "indoor")
        kinds = _kind_shares(kind) if isinstance(kind, list) else _KINDS[kind]
        parts.append(f"{spec['n_train']} procedural {kinds} ({spec['size']} px, seed {spec['seed']})")
    coverage = provenance.get("coverage") or {}
    if "path" in data:  # a folder of the trainer's machine: the weights' coverage may say what it held
        parts.append(coverage.get("data") or f"the samples at {data['path']}")
    if "synthetic" in data:
        parts.append(f"{data['synthetic']['n_train']} synthetic low-rank samples")
    if "samples" in data:
        names = data["samples"].get("names")
        which = ", ".join(names) if names else "every bundled real sample of the modality"
        parts.append(f"bundled real samples ({which}) x {data['samples'].get('repeat', 1)}")
    from ..datasets.photos import photo_sources

    sources = photo_sources(data)
    for spec in sources:
        parts.append(_photos_part(spec, config.get("modality")))
    if sources:
        parts[-1] += "; the bundled scikit-image / scikit-learn / matplotlib samples are held out"
    crop, sensor = data.get("crop"), data.get("sensor")
    trained_on = " + ".join(parts) + (
        f"; random-resized crops, scale {crop['scale'][0]:g}-{crop['scale'][1]:g}" if crop else ""
    )
    if sensor:
        trained_on += f"; sensor-like holes and noise ({', '.join(f'{k} {v:g}' for k, v in sensor.items())})"
    init = provenance.get("init")
    if init:
        trained_on = f"starting from the weights of {init['from']} (content {init['content_hash'][:12]}), " + trained_on
    normalization = config.get("normalization") or {}
    value_range = None
    if "min_depth" in normalization:
        value_range = (
            f"{normalization['min_depth']:g}-{normalization['max_depth']:g} m (log-depth; values outside are clamped)"
        )
    elif "num_classes" in normalization:
        value_range = f"class ids 0-{normalization['num_classes'] - 1}"
    return {
        "trained_on": trained_on,
        "input_size": list(config.get("input_size", [])),
        "range": value_range,
        "steps": provenance.get("steps"),
        "known_failures": list(coverage.get("known_failures", [])),
    }
