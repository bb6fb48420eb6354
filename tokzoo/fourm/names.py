"""4M modality names (``tok_depth@224``) and the facts ml-4m's ``MODALITY_INFO`` holds about each.

ml-4m keys a pre-tokenized modality by a name whose part before ``@`` picks its data transform and
whose ``@N`` is its input size; only keys containing ``tok_`` are cast to int64 by its loader. The
released entries (ml-4m ``fourm/data/modality_info.py`` at commit cda590f) are listed in
:data:`RELEASED`; any other ``tok_<name>@<size>`` is a custom modality that needs the entries
:mod:`tokzoo.fourm.info` writes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from tokzoo.errors import ConfigError

NAME = re.compile(r"^tok_[a-z0-9][a-z0-9_]*(@[1-9][0-9]*)?$")
"""A 4M pre-tokenized modality name: ``tok_<name>`` with an optional ``@<input size>``."""

CROP_SETTINGS = "crop_settings"
"""The folder ml-4m reads crop settings from, in both layouts."""


@dataclass(frozen=True)
class ModalityFacts:
    """One ``MODALITY_INFO`` entry of a pre-tokenized image-like modality.

    ``n_tokens`` = (input_size / patch_size) ** 2 tokens per crop, row-major.
    """

    name: str
    vocab_size: int
    input_size: int
    patch_size: int
    type: str = "img"

    @property
    def grid(self) -> int:
        return self.input_size // self.patch_size

    @property
    def n_tokens(self) -> int:
        return self.grid**2

    @property
    def transform_key(self) -> str:
        """The ``MODALITY_TRANSFORMS`` key ml-4m looks the name up by (the part before ``@``)."""
        return self.name.split("@")[0]

    def as_dict(self) -> dict:
        return {
            "vocab_size": self.vocab_size,
            "input_size": self.input_size,
            "patch_size": self.patch_size,
            "type": self.type,
            "n_tokens": self.n_tokens,
        }


def _released() -> dict[str, ModalityFacts]:
    rows = [
        ("tok_rgb", 16384, 16),
        ("tok_depth", 8192, 16),
        ("tok_normal", 8192, 16),
        ("tok_semseg", 4096, 16),
        ("tok_clip", 8192, 16),
    ]
    facts = {}
    for size in (224, 448):
        facts.update({f"{n}@{size}": ModalityFacts(f"{n}@{size}", v, size, p) for n, v, p in rows})
    for n, v, p in [
        ("tok_canny_edge", 8192, 16),
        ("tok_sam_edge", 8192, 16),
        ("tok_dinov2", 8192, 14),
        ("tok_imagebind", 8192, 14),
    ]:
        facts[f"{n}@224"] = ModalityFacts(f"{n}@224", v, 224, p)
    for n in ("tok_dinov2_global", "tok_imagebind_global"):  # 16 tokens: a 4 x 4 grid of 56-pixel "patches"
        facts[n] = ModalityFacts(n, 8192, 224, 56)
    return facts


RELEASED: dict[str, ModalityFacts] = _released()

TOKZOO_TO_4M = {
    "rgb": "tok_rgb",
    "depth": "tok_depth",
    "normals": "tok_normal",
    "semseg": "tok_semseg",
    "edges": "tok_canny_edge",
    "canny_edges": "tok_canny_edge",
}
"""tokzoo modality / zoo names whose 4M name differs from ``tok_<name>``."""


def check_name(name: str, source: object = "--name") -> str:
    """``name`` if it is a usable 4M pre-tokenized modality name, else a one-line :class:`ConfigError`."""
    if name == CROP_SETTINGS or not NAME.match(name):
        raise ConfigError(
            f"{source}: {name!r} is not a 4M token modality name (tok_<name>[@<size>], lower case, "
            f"e.g. tok_depth@224; ml-4m casts only names containing 'tok_' to int64)"
        )
    return name


def derived_name(modality: str, size: int) -> str:
    """``depth`` at 224 px -> ``tok_depth@224``."""
    return f"{TOKZOO_TO_4M.get(modality, 'tok_' + modality.lower())}@{size}"


def facts_for(name: str, vocab_size: int, n_tokens: int, source: object) -> ModalityFacts:
    """The entry of ``name`` for tokens of ``vocab_size`` ids, ``n_tokens`` per crop.

    Released names must match their released entry (ml-4m already holds it); custom names take their
    input size from ``@N`` and a square grid of ``n_tokens``. Mismatches are one-line errors.
    """
    check_name(name, source)
    released = RELEASED.get(name)
    if released is not None:
        if n_tokens != released.n_tokens:
            raise ConfigError(
                f"{source}: token grid mismatch: {n_tokens} tokens per crop, but 4M's {name} holds "
                f"{released.grid}x{released.grid} = {released.n_tokens} ({released.input_size} px / "
                f"patch {released.patch_size}); pick another name (tok_<name>@<size>) or re-tokenize"
            )
        if vocab_size > released.vocab_size:
            raise ConfigError(
                f"{source}: vocabulary of {vocab_size} ids does not fit 4M's {name} "
                f"({released.vocab_size}); pick a custom name"
            )
        return ModalityFacts(name, vocab_size, released.input_size, released.patch_size)
    if "@" not in name:
        raise ConfigError(
            f"{source}: unknown 4M modality name {name!r} (not a released one); give its input size as {name}@<size>"
        )
    size = int(name.split("@")[1])
    grid = math.isqrt(n_tokens)
    if grid * grid != n_tokens or size % grid:
        raise ConfigError(
            f"{source}: token grid mismatch: {n_tokens} tokens per crop is not a square grid that "
            f"divides {name}'s {size} px input (4M needs input_size / patch_size squared tokens)"
        )
    return ModalityFacts(name, vocab_size, size, size // grid)
