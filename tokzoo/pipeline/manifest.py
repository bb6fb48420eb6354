"""The tokenizers of a run, and ``OUT/manifest.json``: what they are, and whether a run may add to OUT.

A run may add modalities to an existing OUT, or finish one, only with the same crop recipe and
shard size, the same tokenizer (content hash) and crop size for modalities already there, and
with every modality it does not ask for already complete. Anything else is refused with one line
(``--overwrite`` starts over).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

import tokzoo
from tokzoo.errors import ConfigError, ShapeError
from tokzoo.failures import add_reasons
from tokzoo.indices import storage_dtype
from tokzoo.storage import as_path
from tokzoo.tokenizers.base import Tokenizer
from tokzoo.tokenizers.zoo import load_tokenizer

from .layout import complete_shards
from .state import read_stats

CROP_RECIPE = {"scale": [0.6, 1.0], "ratio": [3 / 4, 4 / 3], "hflip_p": 0.5}
"""Random crops (crop 1..): area fraction, aspect ratio w / h, flip probability (tokzoo.crops)."""

FORMAT = "tokzoo-tokens/1"


@dataclass
class ModalitySpec:
    """One modality of a run: its tokenizer, how it was named, and the crop size it gets."""

    modality: str
    reference: str
    tokenizer: Tokenizer
    size: tuple[int, int] | None

    @property
    def stored(self) -> str:
        """The raw (tokzoo.io) modality this one is tokenized from: ``pose`` for human_pose, else its own name."""
        return getattr(getattr(self.tokenizer, "codec", None), "stored_as", None) or self.modality

    @cached_property
    def content_hash(self) -> str:
        return self.tokenizer.content_hash()

    @property
    def items(self) -> bool:
        """True for set-valued modalities (sam_instances, human_pose): a crop holds N >= 0 items of
        ``tokenizer.token_shape`` each, stored padded with :attr:`pad_id` (docs/ARCHITECTURE.md)."""
        codec = getattr(self.tokenizer, "codec", None)
        return codec is not None and not codec.batch_is_samples

    @property
    def pad_id(self) -> int | None:
        """``vocab_size`` for set-valued modalities (fills item rows a crop lacks), else None."""
        return self.tokenizer.vocab_size if self.items else None

    @property
    def dtype(self) -> np.dtype:
        """Storage dtype: holds every id, and the pad id where there is one."""
        return storage_dtype(self.tokenizer.vocab_size + (1 if self.items else 0))

    @property
    def token_shape(self) -> tuple[int | None, ...]:
        """Tokens per crop; ``(None, *item_shape)`` for set-valued modalities (None: the item count)."""
        if self.items:
            return (None, *self.tokenizer.token_shape)
        shape_for = getattr(self.tokenizer, "token_shape_for", None)
        return tuple(shape_for(self.size)) if shape_for and self.size else tuple(self.tokenizer.token_shape)

    def entry(self, source: str) -> dict:
        tok = self.tokenizer
        items = {"items": True, "pad_id": self.pad_id} if self.items else {}
        return {"tokenizer": self.reference, "name": tok.name, "content_hash": self.content_hash,
                "untrained": tok.untrained, "config": tok.config, "vocab_size": tok.vocab_size,
                "token_shape": list(self.token_shape), "dtype": self.dtype.name, **items,
                "size": list(self.size) if self.size else None, "input": source}


def load_specs(modalities: list[str], references: dict[str, str], untrained: bool, device: str | None,
               size: tuple[int, int] | None) -> list[ModalitySpec]:
    """Load each modality's tokenizer (default: :func:`tokzoo.tokenizers.zoo.default_zoo_name`) and pick its crop size.
    Old or raw names are read as the tokenized modality's (``instances`` -> sam_instances, ``pose`` -> human_pose)."""
    from tokzoo.modalities import MODALITIES
    from tokzoo.vocabulary import tokenized_name
    from tokzoo.tokenizers.zoo import default_zoo_name, zoo_entries

    modalities = [tokenized_name(m) for m in modalities]
    references = {tokenized_name(m): reference for m, reference in references.items()}
    known = sorted(set(MODALITIES) | {entry.modality for entry in zoo_entries().values()})
    strange = [m for m in modalities if m not in known]
    if strange:  # else it would be looked up as a zoo name, and reported as a bad tokenizer name
        raise ConfigError(f"--modality {strange[0]!r}: not a modality tokzoo tokenizes; known: {', '.join(known)}")
    unknown = sorted(set(references) - set(modalities))
    if unknown:
        raise ConfigError(f"--tokenizer given for {', '.join(unknown)}, which --modality does not list")
    specs = []
    for modality in modalities:
        reference = references.get(modality) or default_zoo_name(modality)
        tok = load_tokenizer(reference, untrained_ok=untrained, device=device)
        if tok.modality != modality:
            raise ConfigError(f"tokenizer {reference!r} is for {tok.modality!r}, not {modality!r}")
        if Path(reference).exists():
            reference = str(Path(reference).resolve())
        input_size, codec = tok.config.get("input_size"), getattr(tok, "codec", None)
        croppable = getattr(codec, "croppable", True)
        own = tuple(input_size) if input_size and len(input_size) == 2 and croppable else None
        own = getattr(codec, "frame_size", None) or own  # sets of items: input_size is an item's, not a crop's
        spec = ModalitySpec(modality, reference, tok, (size or own) if own else None)
        try:
            spec.token_shape  # the crop size must fit the model's downsampling
        except ShapeError as error:
            raise ConfigError(f"--size {spec.size[0]}x{spec.size[1]} does not fit tokenizer {reference!r} ({modality}): "
                              f"{error.reason}") from None
        specs.append(spec)
    fixed = [s.modality for s in specs if not getattr(getattr(s.tokenizer, "codec", None), "croppable", True)]
    if fixed and any(s.size for s in specs):
        cropped = ", ".join(s.modality for s in specs if s.size)
        raise ConfigError(f"{', '.join(fixed)} cannot follow the pixel crops of {cropped} (features sit on the "
                          f"extractor's patch grid); tokenize {', '.join(fixed)} into its own --output")
    return specs


def check_compatible(manifest: dict | None, specs: list[ModalitySpec], crops: dict, samples_per_shard: int,
                     out: Path | str = "OUT") -> None:
    """Raise ConfigError when this run cannot add to the OUT (folder ``out``) that ``manifest`` describes."""
    if manifest is None:
        return
    out = as_path(out)
    hint = "; pass --overwrite to start over, or choose another --output"
    if manifest["crops"] != crops:
        differ = [k for k in {**manifest["crops"], **crops} if manifest["crops"].get(k) != crops.get(k)]
        was = ", ".join(f"{k} {manifest['crops'].get(k)}" for k in differ)
        now = ", ".join(f"{k} {crops.get(k)}" for k in differ)
        raise ConfigError(f"{out} was cropped with {was} (--crops, --seed), this run asks for {now}{hint}")
    if manifest["samples_per_shard"] != samples_per_shard:
        raise ConfigError(f"{out} has {manifest['samples_per_shard']} samples per shard, this run asks for "
                          f"{samples_per_shard}{hint}")
    requested = {spec.modality: spec for spec in specs}
    for modality, entry in manifest["modalities"].items():
        spec = requested.get(modality)
        if spec is None and not entry["complete"]:
            raise ConfigError(f"{out / modality} is incomplete; rerun with --modality {modality} first{hint}")
        if spec is not None and entry["content_hash"] != spec.content_hash:
            raise ConfigError(f"{out / modality} was made by tokenizer {entry['tokenizer']!r} "
                              f"(hash {entry['content_hash'][:12]}), not {spec.reference!r}{hint}")
        if spec is not None and entry["size"] != (list(spec.size) if spec.size else None):
            raise ConfigError(f"{out / modality} has crops of size {entry['size']}, this run asks for "
                              f"{list(spec.size) if spec.size else None}{hint}")


def build_manifest(manifest: dict | None, specs: list[ModalitySpec], crops: dict, samples_per_shard: int,
                   source: str) -> dict:
    """The manifest with this run's modalities added (marked incomplete until :func:`finish_manifest`)."""
    modalities = dict(manifest["modalities"]) if manifest else {}
    for spec in specs:
        previous = modalities.get(spec.modality, {})
        modalities[spec.modality] = {**spec.entry(previous.get("input", source)), "complete": False,
                                     "shards": None, "samples": None}
    return {"format": FORMAT, "tokzoo_version": tokzoo.__version__, "crops": crops,
            "samples_per_shard": samples_per_shard, "modalities": dict(sorted(modalities.items()))}


def finish_manifest(manifest: dict, out: Path, shards: int) -> dict:
    """Counts from every modality's stats; a modality is complete when all ``shards`` have stats."""
    modalities = {}
    for modality, entry in manifest["modalities"].items():
        done = complete_shards(out, modality)
        if done and done[-1] >= shards:
            raise ConfigError(f"{out / modality} has shards up to {done[-1]}, the input only {shards}: the input "
                              f"changed since {out} was written; pass --overwrite to start over")
        stats = [read_stats(out, modality, i) for i in done]
        counts = {field: sum(s[field] for s in stats) for field in ("count", "ok", "failed")}
        reasons: dict[str, int] = {}
        for s in stats:
            reasons = add_reasons(reasons, s.get("failed_by_reason"))
        counts["failed_by_reason"] = reasons
        modalities[modality] = {**entry, "complete": done == list(range(shards)), "shards": len(done),
                                "samples": counts}
    return {**manifest, "modalities": modalities}
