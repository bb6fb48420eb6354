"""Consensus generation for samples of a token dataset (what ``tokzoo fm generate --consensus`` runs).

>>> recipe = read_recipe("recipes/consensus/depth.yaml")                       # doctest: +SKIP
>>> out = generate_consensus(load_model("runs/gen"), "HELDOUT", ["scene_000003"], recipe)  # doctest: +SKIP
>>> out["depth"]["scene_000003"].shape, out["calls"]                            # doctest: +SKIP
((64, 64), 8)
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from tokzoo.errors import ConfigError, TokzooError
from tokzoo.fm.masking import flatten_batch
from tokzoo.fm.model import FourM
from tokzoo.fm.stream import ordered_batches
from tokzoo.tokens.spec import check_same_vocabularies, specs_from_manifest

from .depthnet import load_depth_net
from .loop import check_model, consensus_loop, decode_depth, gather_evidence
from .recipe import ConsensusRecipe


def source_values(model: FourM, data, keys: list[str], masked, modality: str) -> list:
    """Each sample's raw ``modality`` (the dataset source's crop) when the source is still there, else its tokens decoded."""
    from tokzoo.fm.evaluate import raw_crops
    from tokzoo.fm.generate import decode_tokens

    try:
        raw = raw_crops(data, modality, None, set(keys))
    except (TokzooError, OSError):
        raw = {}
    if all(k in raw for k in keys):
        return [raw[k] for k in keys]
    spec = next(s for s in model.specs if s.name == modality)
    return decode_tokens(spec, masked.tokens[modality], masked.valid[modality])


def picture(model: FourM, modality: str, value) -> np.ndarray:
    """uint8 (H, W, 3) of a raw value of ``modality``, drawn by the codec of its tokenizer."""
    from tokzoo.tokens.tokenizer import checked_tokenizer

    spec = next(s for s in model.specs if s.name == modality)
    tok = checked_tokenizer(spec.tokenizer, spec.untrained, spec.content_hash)
    return tok.codec.visualize(value)


def generate_consensus(model: FourM, data: str | Path, keys: list[str], recipe: ConsensusRecipe) -> dict:
    """``{"depth": key -> float32 (H, W) metres, "tokens": key -> int64 (L,), "calls": generator calls per sample,
    "history": per round, "truth": key -> the true tokens decoded, "sources": key -> {modality: raw value}}`` for the samples ``keys`` of token dataset ``data``; one-line errors for unknown keys,
    modalities the model lacks, or a depth_net scorer whose network cannot be loaded."""
    check_model(model, recipe)
    names = [s.name for s in model.specs]
    check_same_vocabularies(model.specs, specs_from_manifest(data, names), data)
    rows = {}
    for batch in ordered_batches(data, names, 64):
        for i, k in enumerate(batch["__key__"]):
            if k in keys:
                rows[k] = {m: batch[m][i : i + 1] for m in names}
    missing = [k for k in keys if k not in rows]
    if missing:
        raise ConfigError(f"{data}: no sample with key {missing[0]!r}")
    import torch

    raw = {m: torch.cat([torch.as_tensor(rows[k][m]) for k in keys]) for m in names}
    masked = flatten_batch(raw, model.specs)
    nets = {name: load_depth_net(path) for name, path in recipe.networks if name in recipe.names}
    sources = {m: source_values(model, data, keys, masked, m) for m in recipe.sources}
    rgb = np.stack(source_values(model, data, keys, masked, "rgb")).astype(np.uint8) if nets else None
    evidence = gather_evidence(model, masked, recipe, rgb, nets)
    result = consensus_loop(model, masked, evidence, recipe, row_seeds=[zlib.crc32(k.encode()) for k in keys])
    truth = decode_depth(model, masked.tokens[recipe.target], recipe.target)
    return {
        "depth": dict(zip(keys, result.depth)),
        "tokens": dict(zip(keys, result.tokens)),
        "calls": int(result.calls.proposals[0]),
        "history": result.history,
        "truth": dict(zip(keys, truth)),
        "sources": {k: {m: v[i] for m, v in sources.items()} for i, k in enumerate(keys)},
    }
