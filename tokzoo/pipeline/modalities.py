"""The modalities of a run: each one's tokenizer, how it was named, and the crop size it gets.

Their manifest entries (:meth:`RunModality.entry`) are written through :mod:`tokzoo.tokens.manifest`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from tokzoo.errors import ConfigError, ShapeError
from tokzoo.indices import storage_dtype
from tokzoo.tokenizers.base import Tokenizer
from tokzoo.tokenizers.zoo import load_tokenizer

CROP_RECIPE = {"scale": [0.6, 1.0], "ratio": [3 / 4, 4 / 3], "hflip_p": 0.5}
"""Random crops (crop 1..): area fraction, aspect ratio w / h, flip probability (tokzoo.crops)."""


@dataclass
class RunModality:
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
        return {
            "tokenizer": self.reference,
            "name": tok.name,
            "content_hash": self.content_hash,
            "untrained": tok.untrained,
            "config": tok.config,
            "vocab_size": tok.vocab_size,
            "token_shape": list(self.token_shape),
            "dtype": self.dtype.name,
            **items,
            "size": list(self.size) if self.size else None,
            "input": source,
        }


def load_specs(
    modalities: list[str], references: dict[str, str], untrained: bool, device: str | None, size: tuple[int, int] | None
) -> list[RunModality]:
    """Load each modality's tokenizer (default: :func:`tokzoo.tokenizers.zoo.default_zoo_name`) and pick its crop size.
    Old or raw names are read as the tokenized modality's (``instances`` -> sam_instances, ``pose`` -> human_pose)."""
    from tokzoo.modalities import MODALITIES
    from tokzoo.tokenizers.zoo import default_zoo_name, zoo_entries
    from tokzoo.vocabulary import tokenized_name

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
        spec = RunModality(modality, reference, tok, (size or own) if own else None)
        try:
            spec.token_shape  # the crop size must fit the model's downsampling
        except ShapeError as error:
            raise ConfigError(
                f"--size {spec.size[0]}x{spec.size[1]} does not fit tokenizer {reference!r} ({modality}): "
                f"{error.reason}"
            ) from None
        specs.append(spec)
    fixed = [s.modality for s in specs if not getattr(getattr(s.tokenizer, "codec", None), "croppable", True)]
    if fixed and any(s.size for s in specs):
        cropped = ", ".join(s.modality for s in specs if s.size)
        raise ConfigError(
            f"{', '.join(fixed)} cannot follow the pixel crops of {cropped} (features sit on the "
            f"extractor's patch grid); tokenize {', '.join(fixed)} into its own --output"
        )
    return specs
