"""What the trainer knows about each modality of a token dataset: kind, vocabulary, token layout.

A :class:`ModalitySpec` is read from the dataset's manifest (:func:`tokzoo.tokens.layout.read_manifest`; a
plug-in's summary for layouts written by other tools, :mod:`.foreign`) and stored in the model's ``config.json``,
so a model can be checked against the data it is given.

Kinds (they decide masking, position encoding and generation):

- ``image``: a fixed grid of tokens (``grid = (h, w)``), all present; 2-D sin-cos positions; random-order masking;
  decoded by iterative parallel (MaskGIT-style) decoding.
- ``items``: a set of items of ``item_tokens`` tokens each (sam_instances, human_pose), padded with ``pad_id``;
  positions on the (item, token) grid; whole items are masked; parallel decoding.
- ``sequence``: a 1-D sequence (captions, metadata, palette, boxes); 1-D sin-cos positions; T5-style span
  masking with sentinel ids after the data's vocabulary (:mod:`.spans`); autoregressive decoding. The model
  gives it ``length + 2`` slots: a target holds up to the whole content plus its first and final sentinel.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from tokzoo.errors import ConfigError, InputError
from tokzoo.limits import MAX_FM_TOKENS, check_field

from .foreign import find_layout
from .layout import MANIFEST, read_manifest

SEQUENCE_MODALITIES = frozenset({"captions", "metadata", "palette", "boxes"})


@dataclass(frozen=True)
class ModalitySpec:
    """One modality as the model sees it. ``length`` tokens per sample (items: ``max_items * item_tokens``)."""

    name: str
    kind: str
    vocab_size: int
    grid: tuple[int, int]  # image: (h, w); items: (max_items, item_tokens); sequence: (1, length)
    pad_id: int | None = None  # items only: the id filling absent items (= vocab_size)
    tokenizer: str | None = None  # the zoo name or folder that decodes the tokens
    content_hash: str | None = None
    untrained: bool = False
    size: tuple[int, int] | None = None  # the crops' (H, W) in pixels, what the tokenizer decodes to

    @property
    def length(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def slots(self) -> int:
        """Token slots the model gives this modality: ``length``, + 2 for a sequence's sentinels."""
        return self.length + 2 if self.kind == "sequence" else self.length

    @property
    def sentinels(self) -> int:
        """Sentinel ids a sequence needs: one per span (at most every other token) + the final one; else 0."""
        return (self.length + 1) // 2 + 1 if self.kind == "sequence" else 0

    @property
    def model_vocab(self) -> int:
        """Ids the model embeds and predicts: the data's vocabulary, then the sentinels."""
        return self.vocab_size + self.sentinels

    @property
    def item_tokens(self) -> int:
        """Tokens per masking unit: an item's tokens for ``items``, else 1."""
        return self.grid[1] if self.kind == "items" else 1

    def to_dict(self) -> dict:
        return {**asdict(self), "grid": list(self.grid), "size": list(self.size) if self.size else None}

    @classmethod
    def from_dict(cls, d: dict) -> "ModalitySpec":
        return cls(**{**d, "grid": tuple(d["grid"]), "size": tuple(d["size"]) if d.get("size") else None})


KINDS = ("image", "items", "sequence")


def check_specs(specs: list[ModalitySpec], where: object) -> list[ModalitySpec]:
    """Every spec's kind, vocabulary, grid, pad id and size within tokzoo.limits.FIELD_LIMITS, and all modalities'
    tokens per sample at most :data:`~tokzoo.limits.MAX_FM_TOKENS`, before a model is built; one-line ConfigError."""
    for spec in specs:
        field = f"modality {spec.name!r}"
        if not isinstance(spec.name, str) or spec.kind not in KINDS:
            raise ConfigError(f"{where}: {field}: kind {spec.kind!r} is not one of {', '.join(KINDS)}")
        check_field(spec.vocab_size, where, f"{field} vocab_size", "fm.modality.vocab_size")
        if len(spec.grid) != 2:
            raise ConfigError(f"{where}: {field} grid {list(spec.grid)!r} is refused: expected two sizes")
        for side in spec.grid:
            check_field(side, where, f"{field} grid", "fm.modality.tokens")
        check_field(spec.length, where, f"{field} tokens per sample (grid)", "fm.modality.tokens")
        if spec.kind == "items" and spec.pad_id != spec.vocab_size:
            raise ConfigError(f"{where}: {field} pad_id {spec.pad_id!r} is refused: items pad with vocab_size")
        for side in spec.size or ():
            check_field(side, where, f"{field} size", "fm.modality.size")
    total = sum(spec.length for spec in specs)
    if total > MAX_FM_TOKENS:
        raise ConfigError(
            f"{where}: {total} tokens per sample over all modalities is refused: over the limit of {MAX_FM_TOKENS}"
        )
    return specs


def dataset_parts(root: str | Path) -> list[Path]:
    """The folders of one dataset: ``root``, or ``"A,B"`` = folders holding different modalities of the same
    samples (same shards, same keys; e.g. dense features tokenized into their own folder)."""
    return [Path(p) for p in str(root).split(",") if p]


def dataset_manifest(root: str | Path) -> dict:
    """The token dataset's manifest (folders joined by "," merged; a registered foreign layout summarised by its
    plug-in); InputError (one line) when missing or damaged."""
    parts = dataset_parts(root)
    if len(parts) > 1:
        merged = {}
        for part in parts:
            for name, entry in dataset_manifest(part)["modalities"].items():
                if name in merged:
                    raise InputError(part / MANIFEST, f"modality {name!r} is also in another folder of {root}")
                merged[name] = entry
        return {"modalities": merged}
    path = Path(root) / MANIFEST
    try:
        manifest = read_manifest(root)
    except ConfigError as error:
        raise InputError(path, str(error).removeprefix(f"{path}: ")) from None
    if manifest is not None:
        return manifest
    layout = find_layout(root)
    if layout is not None:  # written by another tool (e.g. ml-4m): its plug-in summarises the folders
        return layout.manifest(Path(root))
    raise InputError(path, "missing; not a token dataset written by `tokzoo tokenize`")


def specs_from_manifest(root: str | Path, names: list[str], max_items: int = 16) -> list[ModalitySpec]:
    """Specs of ``names`` in that order, from ``root/manifest.json``.

    InputError (one line) when the manifest lacks a requested modality, a modality is incomplete, or the
    dataset holds no samples.
    """
    entries = dataset_manifest(root)["modalities"]
    parts = dataset_parts(root)
    first = parts[0] / MANIFEST
    # errors about one modality name the folder holding it
    holders = {name: part / MANIFEST for part in parts[1:] for name in dataset_manifest(part)["modalities"]}
    specs = []
    for name in names:
        entry = entries.get(name)
        path = holders.get(name, first)
        if entry is None:
            raise InputError(
                path, f"no modality {name!r} in this token dataset (it has: {', '.join(sorted(entries)) or 'none'})"
            )
        if not entry.get("complete", False):
            raise InputError(path, f"modality {name!r} is not complete (tokenize still running or stopped?)")
        if not (entry.get("samples") or {}).get("ok"):
            raise InputError(path, f"modality {name!r} holds no samples: the dataset is empty")
        try:
            specs.append(_spec(name, entry, max_items, path))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(
                path, f"modality {name!r}: unreadable entry ({type(e).__name__}: {str(e)[:100]})"
            ) from None
    try:
        return check_specs(specs, first)
    except ConfigError as e:
        raise InputError(first, str(e).removeprefix(f"{first}: ")) from None


def _spec(name: str, entry: dict, max_items: int, path: Path) -> ModalitySpec:
    shape = list(entry["token_shape"])
    common = dict(
        name=name,
        vocab_size=int(entry["vocab_size"]),
        tokenizer=entry.get("tokenizer"),
        content_hash=entry.get("content_hash"),
        untrained=bool(entry.get("untrained", False)),
        size=tuple(entry["size"]) if entry.get("size") else None,
    )
    if entry.get("items"):
        return ModalitySpec(
            kind="items", grid=(max_items, int(math.prod(shape[1:]))), pad_id=int(entry["pad_id"]), **common
        )
    if name in SEQUENCE_MODALITIES:
        return ModalitySpec(kind="sequence", grid=(1, int(math.prod(shape))), **common)
    if len(shape) == 2:
        return ModalitySpec(kind="image", grid=(shape[0], shape[1]), **common)
    if len(shape) != 1:
        raise InputError(path, f"modality {name!r}: token shape {shape} is not one the trainer reads")
    side = math.isqrt(shape[0])
    return ModalitySpec(kind="image", grid=(side, side) if side * side == shape[0] else (1, shape[0]), **common)


def check_same_vocabularies(model_specs: list[ModalitySpec], data_specs: list[ModalitySpec], where: object) -> None:
    """ConfigError (one line) unless the data's modalities have the vocabularies and tokenizers the model was trained on."""
    by_name = {s.name: s for s in data_specs}
    for spec in model_specs:
        other = by_name.get(spec.name)
        if other is None:
            continue
        if (
            other.vocab_size != spec.vocab_size
            or other.kind != spec.kind
            or other.grid[1:] != spec.grid[1:]
            or (spec.kind == "image" and other.grid != spec.grid)
        ):
            raise ConfigError(
                f"{where}: modality {spec.name!r} has vocabulary {other.vocab_size} and token grid "
                f"{list(other.grid)}, the model was trained on vocabulary {spec.vocab_size}, grid {list(spec.grid)}"
            )
        if spec.content_hash and other.content_hash and spec.content_hash != other.content_hash:
            raise ConfigError(
                f"{where}: modality {spec.name!r} was tokenized by another tokenizer "
                f"(hash {other.content_hash[:12]}) than the model's data ({spec.content_hash[:12]})"
            )
