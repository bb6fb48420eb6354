"""``tokzoo inspect`` and ``tokzoo show`` on ml-4m layouts (no tokzoo manifest: facts come from the folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tokzoo.errors import ConfigError, TokzooError

from .info import read_info
from .names import CROP_SETTINGS, RELEASED
from .reader import FourMLayout, detect_layout


def modality_folders(root: Path) -> list[str]:
    """The token modality folders of an ml-4m layout (every folder but crop_settings), sorted."""
    return sorted(
        p.name
        for p in Path(root).iterdir()
        if p.is_dir() and p.name != CROP_SETTINGS and not p.name.startswith(("_", "."))
    )


def inspect_lines(root: Path, samples: int = 3) -> list[str]:
    """Layout, per-modality shards / samples / token shape / vocabulary, and a few samples' tokens."""
    root = Path(root)
    folders = modality_folders(root)
    if not folders:
        raise ConfigError(f"{root}: ml-4m layout without token modality folders")
    readable, unread = [], []
    for folder in folders:  # ml-4m roots may also hold raw modalities (jpg tars, captions) or pickled ones
        try:
            probe = FourMLayout(root, [folder])
            probe.open(folder, probe.shards[0])
            readable.append(folder)
        except TokzooError as error:
            unread.append(f"{folder}: not read as tokens ({error})")
    if not readable:
        raise ConfigError(f"{root}: no token modality folder could be read ({'; '.join(unread)[:300]})")
    folders = readable
    layout = FourMLayout(root, [*folders, "crops"])
    known = read_info(root)
    lines = [
        f"ml-4m {layout.layout} layout: {len(layout.shards)} shards, {sum(layout.counts)} samples, "
        f"modalities {', '.join(folders)} + {CROP_SETTINGS}"
        + (" (entries from fourm_modalities.json)" if known else "")
    ]
    for folder in folders:
        try:
            facts = layout.facts(folder)
            what = (
                f"vocab {facts.vocab_size}, {facts.grid}x{facts.grid} tokens ({facts.input_size} px / patch "
                f"{facts.patch_size}){'' if folder in RELEASED else ', custom'}"
            )
        except TokzooError as error:
            what = f"entry unknown ({error})"
        shard = layout.open(folder, layout.shards[0])
        first = shard.tokens[0] if len(shard) else np.zeros((0, 0), np.int16)
        lines.append(f"{folder}: {what}; stored {first.dtype} (n_crops, {', '.join(map(str, first.shape[1:]))})")
        for name, tokens in list(zip(shard.names, shard.tokens))[:samples]:
            head = " ".join(str(t) for t in np.asarray(tokens[0]).reshape(-1)[:12])
            lines.append(f"  {name[:-4].decode()}: {tokens.shape} {tokens.dtype}  crop 0: {head} ...")
    lines += unread
    crops = layout.open("crops", layout.shards[0])
    if len(crops):
        lines.append(
            f"{CROP_SETTINGS}: {crops.tokens[0].dtype} {crops.tokens[0].shape}, first sample's crop 0 "
            f"[top, left, h, w, hflip] = {crops.tokens[0][0].tolist()}"
        )
    return lines


def find_member(layout: FourMLayout, modality: str, key: str) -> np.ndarray:
    """``key``'s (n_crops, n_tokens) array of ``modality``; one-line error when absent."""
    for shard_name in layout.shards:
        shard = layout.open(modality, shard_name)
        hits = np.flatnonzero(shard.names == f"{key}.npy".encode())
        if len(hits):
            return np.asarray(shard.tokens[int(hits[0])])
    raise ConfigError(f"{key}: no such key in {layout.root / layout.folders[modality]}")


def show_rows(root: Path, key: str, tokenizers: dict[str, str]) -> tuple[list[list[np.ndarray]], list[str]]:
    """One row per modality given a tokenizer (``{folder or tokzoo name: zoo name / dir / hub id}``): the
    reconstruction of crop 0 (the sources of ml-4m data are not known to tokzoo)."""
    from tokzoo.tokenizers.zoo import load_tokenizer

    root = Path(root)
    if not tokenizers:
        raise ConfigError(
            f"{root}: ml-4m data names no tokenizers; pass --tokenizer MODALITY=TOKENIZER "
            f"(modalities: {', '.join(modality_folders(root))})"
        )
    layout = FourMLayout(root, list(tokenizers))
    rows, notes = [], []
    for modality, reference in tokenizers.items():
        tokens = find_member(layout, modality, key)[:1].astype(np.int64)
        tok = load_tokenizer(reference)
        codec = getattr(tok, "codec", None)
        if codec is None:
            notes.append(f"{modality}: no picture for tokenizer {reference}")
            continue
        size = _input_size(layout, modality)
        shape_for = getattr(tok, "token_shape_for", None)
        shape = tuple(shape_for(size) if shape_for and size else tok.token_shape)
        if int(np.prod(shape)) != tokens.shape[1]:
            raise ConfigError(
                f"{layout.root / layout.folders[modality]}: token grid mismatch: {tokens.shape[1]} tokens "
                f"per crop, tokenizer {reference} makes {shape}"
            )
        decoded = (
            tok.decode(tokens.reshape(1, *shape), input_size=size)
            if shape_for
            else tok.decode(tokens.reshape(1, *shape))
        )
        rows.append([codec.visualize(decoded[0])])
        notes.append(f"{modality}: crop 0 decoded by {reference}" + (" (UNTRAINED)" if tok.untrained else ""))
    return rows, notes


def _input_size(layout: FourMLayout, modality: str) -> tuple[int, int] | None:
    try:
        facts = layout.facts(modality)
    except TokzooError:
        return None
    return (facts.input_size, facts.input_size)


__all__ = ["detect_layout", "inspect_lines", "show_rows"]
