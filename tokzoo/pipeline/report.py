"""Looking into a token dataset: pictures for ``tokzoo show`` (summaries for ``tokzoo inspect``: listing.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tokzoo.crops import apply_crop
from tokzoo.errors import ConfigError, TokzooError
from tokzoo.indices import check_ids, unpad
from tokzoo.io import decode_sample
from tokzoo.tokenizers.base import Tokenizer
from tokzoo.tokens.layout import (
    CROPS,
    complete_shards,
    read_npy_tar,
    read_table,
    require_manifest,
    table_path,
    tar_path,
)
from tokzoo.tokens.sources import open_input
from tokzoo.tokens.tokenizer import entry_tokenizer
from tokzoo.viz import labelled_grid  # noqa: F401  (moved to tokzoo.viz; cli/demo.py imports it from here)

from .listing import inspect_lines  # noqa: F401  (where callers look for it)


def find_key(out: Path, modality: str, key: str) -> int:
    """Index of the shard whose table lists ``key`` as ok; one-line error otherwise."""
    for index in complete_shards(out, modality):
        for record in read_table(table_path(out, modality, index)):
            if record["key"] == key:
                if record["status"] != "ok":
                    raise ConfigError(f"{key}: failed in {out / modality} ({record['error']})")
                return index
    raise ConfigError(f"{key}: no such key in {out / modality}")


def _member(path: Path, key: str) -> np.ndarray:
    return next(array for k, array in read_npy_tar(path) if k == key)


def source_crop(entry: dict, modality: str, key: str, crop_row: np.ndarray):
    """The sample's ``modality`` value cut by ``crop_row`` as the pipeline did, or None when the source is gone."""
    try:
        raw = next((r for r in open_input(entry["input"], [modality]).raw() if r.key == key), None)
    except TokzooError:
        return None
    if raw is None:
        return None
    sample = decode_sample(raw)
    if modality not in sample.values:
        return None
    size = entry["size"]
    return (
        apply_crop({modality: sample.values[modality]}, crop_row, tuple(size))[modality]
        if size
        else sample.values[modality]
    )


def items_reconstruction(
    tok: Tokenizer, items: np.ndarray, source, size: tuple[int, int] | None, notes: list[str], leading: bool = False
) -> tuple[np.ndarray, object]:
    """Picture and decoded value of one crop's items (N, *item_shape), pad rows already dropped.

    human_pose: the decoded pose dict, its keypoints moved from the codec's frame to the crop's ``size``.
    sam_instances: masks carry no boxes, so they are pasted into the boxes of the source crop's instances
    (:func:`crop_instances` yields them in token order) when the source is there, else shown side by side.
    The decoded value is the tokenizer's own (masks (N, 64, 64), pose dict in the crop's frame). ``leading``:
    ``items`` are the first N of the crop's (a bounded drawing), pasted into the first N boxes.
    """
    from tokzoo.modalities.sam_instances import crop_instances, paste_instances

    codec, decoded = tok.codec, tok.decode(items)
    if codec.name == "sam_instances":
        boxes, ids = (
            crop_instances(source, len(decoded) if leading else None)[1:] if source is not None else (None, None)
        )
        if boxes is not None and len(boxes) == len(decoded):
            return codec.visualize(paste_instances(decoded, boxes, *np.shape(source)[:2], ids)), decoded
        notes.append(
            f"{codec.name}: instance boxes are not tokens and the source crop is unavailable: "
            f"{len(decoded)} decoded 64x64 masks shown side by side"
        )
        return codec.visualize(decoded), decoded
    if isinstance(decoded, dict) and decoded.get("skeleton") == "coco17" and size:
        scale = np.array([size[1] / decoded["width"], size[0] / decoded["height"]])
        for human in decoded["humans"]:
            human["keypoints_2d"] = [
                [*((np.array([x, y]) + 0.5) * scale - 0.5).tolist(), v] if v else [0.0, 0.0, 0]
                for x, y, v in human["keypoints_2d"]
            ]
        decoded.update(width=size[1], height=size[0])
    return codec.visualize(decoded), decoded


def show_pairs(out: Path, key: str) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], list[str]]:
    """Per modality: (modality, source crop 0 picture (grey when unavailable), reconstruction of its tokens).

    A modality whose tokenizer is gone or changed since tokenizing is skipped, with a note saying why.
    """
    manifest = require_manifest(out)
    pairs, notes = [], []
    for modality, entry in manifest["modalities"].items():
        index = find_key(out, modality, key)
        tokens = _member(tar_path(out, modality, index), key)
        check_ids(tokens, entry["vocab_size"] + bool(entry.get("items")), f"{tar_path(out, modality, index)}:{key}.npy")
        crop = _member(tar_path(out, CROPS, index), key)[0]
        try:
            tok = entry_tokenizer(entry)
        except TokzooError as error:
            notes.append(f"{modality}: skipped, {error}")
            continue
        codec = getattr(tok, "codec", None)
        if codec is None:
            pair = _structured_pair(modality, entry, tok, tokens, key, crop)
            if pair is None:
                notes.append(f"{modality}: no picture for this modality")
            else:
                pairs.append((modality, *pair))
            continue
        size = tuple(entry["size"]) if entry["size"] else None
        source = source_crop(entry, getattr(codec, "stored_as", None) or modality, key, crop)
        if entry.get("items"):
            reconstruction = items_reconstruction(tok, unpad(tokens[0], entry["pad_id"]), source, size, notes)[0]
        else:
            reconstruction = codec.visualize(tok.decode(tokens[:1], input_size=size)[0])
        if source is None:
            notes.append(f"{modality}: source {entry['input']} not available")
        picture = codec.visualize(source) if source is not None else np.full_like(reconstruction, 128)
        pairs.append((modality, picture, reconstruction))
        notes.append(
            f"{modality}: source crop | reconstruction by {entry['name']}"
            + (" (UNTRAINED)" if entry["untrained"] else "")
        )
    return pairs, notes


def _structured_pair(modality: str, entry: dict, tok, tokens: np.ndarray, key: str, crop) -> tuple | None:
    """(source picture, reconstruction picture) of a palette or metadata sample; None for other structured ones."""
    from tokzoo.viz import metadata_picture, palette_picture

    draw = {"palette": palette_picture, "metadata": metadata_picture}.get(tok.modality)
    if draw is None:
        return None
    reconstruction = draw(tok.decode(tokens[:1])[0])
    source = source_crop(entry, modality, key, crop)
    return (draw(source) if source is not None else np.full_like(reconstruction, 128)), reconstruction


def show_rows(out: Path, key: str) -> tuple[list[list[np.ndarray]], list[str]]:
    """One row per modality: source crop 0 (grey when unavailable) beside the reconstruction of its tokens."""
    pairs, notes = show_pairs(out, key)
    return [[source, reconstruction] for _, source, reconstruction in pairs], notes
