"""Any-to-any generation: predict target modalities' tokens from source modalities, then decode them.

Targets are generated one after the other, each one joining the inputs of the next (4M's chained
generation). ``image`` and ``items`` targets use iterative parallel decoding (MaskGIT): all their tokens
start masked; at step s of S the model predicts every masked token, a token is sampled at each (softmax
of logits / temperature, top-k), and the most confident samples are fixed until only
``cos(pi/2 * (s+1)/S)`` of the tokens stay masked; fixed tokens are inputs from then on. ``sequence``
targets are decoded autoregressively, one position after the other. Seeded: same inputs and settings
give the same tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from tokzoo.errors import ConfigError
from tokzoo.limits import check_field, check_int

from .masking import MaskedBatch
from .model import FourM
from .spec import ModalitySpec


@dataclass(frozen=True)
class DecodeSettings:
    steps: int = 8            # parallel decoding steps per image-like target
    temperature: float = 1.0  # 0 = argmax
    top_k: int = 0            # 0 = the whole vocabulary
    seed: int = 0


def check_settings(settings: DecodeSettings) -> DecodeSettings:
    """Decoding steps (10^9 steps would fix no token for ~10^8 of them), temperature, top-k and seed within
    tokzoo.limits.FIELD_LIMITS; one-line ConfigError naming the option."""
    check_field(settings.steps, "decoding", "--steps", "fm.decode.steps")
    check_field(settings.temperature, "decoding", "--temperature", "fm.decode.temperature")
    check_int(settings.top_k, "decoding", "--top-k", 0, 1 << 20)
    check_field(settings.seed, "decoding", "--seed", "fm.train.seed")
    return settings


def check_request(model: FourM, sources: list[str], targets: list[str], settings: DecodeSettings) -> None:
    """One-line ConfigError for a modality the model does not know, one both given and predicted (``--from rgb
    --to rgb`` would "predict" what it is given), no target, or decoding settings out of range."""
    names = [s.name for s in model.specs]
    for name in list(sources) + list(targets):
        if name not in names:
            raise ConfigError(f"modality {name!r} is not one this model knows ({', '.join(names)})")
    overlap = sorted(set(sources) & set(targets))
    if overlap:
        raise ConfigError(f"--to {','.join(overlap)}: also given with --from; a modality is either given or predicted")
    if not targets:
        raise ConfigError("--to: give at least one modality to predict")
    check_settings(settings)


@torch.inference_mode()
def generate(model: FourM, batch: MaskedBatch, sources: list[str], targets: list[str],
             settings: DecodeSettings = DecodeSettings()) -> dict[str, torch.Tensor]:
    """Tokens of ``targets`` predicted from ``sources``: modality -> int64 (B, L_m), 0 where not valid.

    ``batch`` holds tokens/valid from :func:`~tokzoo.fm.masking.flatten_batch`; only the sources' tokens
    are read, the targets' ``valid`` says which slots to fill (items: how many items).
    """
    check_request(model, sources, targets, settings)
    names = [s.name for s in model.specs]
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(settings.seed)
    tokens = {m: t.clone().to(device) for m, t in batch.tokens.items()}
    valid = {m: v.to(device) for m, v in batch.valid.items()}
    known = {m: valid[m] & (m in sources) for m in names}
    by_name = {s.name: s for s in model.specs}
    for target in targets:
        tokens[target] = torch.zeros_like(tokens[target])
        fill = _fill_sequence if by_name[target].kind == "sequence" else _fill_parallel
        fill(model, tokens, valid, known, target, settings, generator)
        known[target] = valid[target].clone()
    return {m: tokens[m].cpu() for m in targets}


def _fill_parallel(model, tokens, valid, known, target, settings, generator) -> None:
    total = valid[target].sum(1)  # (B,)
    for step in range(settings.steps):
        unknown = valid[target] & ~known[target]
        if not unknown.any():
            return
        logits, sample, position = _predict(model, tokens, known, unknown, target)
        chosen, confidence = _sample(logits, settings, generator)
        still_masked = torch.floor(total * math.cos(math.pi / 2 * (step + 1) / settings.steps)).long()
        scores = torch.full(unknown.shape, -1.0, device=unknown.device)
        scores[sample, position] = confidence
        proposal = torch.zeros_like(tokens[target])
        proposal[sample, position] = chosen
        for b in range(unknown.shape[0]):
            fix = int(unknown[b].sum() - still_masked[b])
            if fix <= 0:
                continue
            best = torch.topk(scores[b], fix).indices
            tokens[target][b, best] = proposal[b, best]
            known[target][b, best] = True


def _fill_sequence(model, tokens, valid, known, target, settings, generator) -> None:
    for _ in range(int(valid[target].sum(1).max())):
        unknown = valid[target] & ~known[target]
        if not unknown.any():
            return
        logits, sample, position = _predict(model, tokens, known, unknown, target)
        chosen, _ = _sample(logits, settings, generator)
        first = torch.full((unknown.shape[0],), unknown.shape[1], device=unknown.device).scatter_reduce(0, sample, position, "amin")
        pick = position == first[sample]
        tokens[target][sample[pick], position[pick]] = chosen[pick]
        known[target][sample[pick], position[pick]] = True


def _predict(model, tokens, known, unknown, target):
    inputs = {m: k.clone() for m, k in known.items()}
    masks = {m: (unknown if m == target else torch.zeros_like(k)) for m, k in known.items()}
    batch = MaskedBatch(tokens, {m: k | masks[m] for m, k in known.items()}, inputs, masks)
    return model.target_logits(batch)[target]


def _sample(logits: torch.Tensor, settings: DecodeSettings, generator: torch.Generator):
    """(n, V) logits -> sampled ids (n,) and their probabilities (n,), on the logits' device (sampled on CPU)."""
    device = logits.device
    logits = logits.float().cpu()
    if settings.top_k:
        kth = torch.topk(logits, min(settings.top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if settings.temperature <= 0:
        chosen = logits.argmax(-1)
        probs = torch.softmax(logits, -1)
    else:
        probs = torch.softmax(logits / settings.temperature, -1)
        chosen = torch.multinomial(probs, 1, generator=generator)[:, 0] if len(probs) else logits.argmax(-1)
    confidence = probs.gather(1, chosen[:, None])[:, 0]
    return chosen.to(device), confidence.to(device)


def decode_tokens(spec: ModalitySpec, tokens: torch.Tensor, valid: torch.Tensor | None = None) -> list:
    """Generated ids (B, L) -> one raw value per sample, decoded by the tokenizer the dataset was made with
    (checked against its content hash). Items: only the valid items are decoded."""
    from tokzoo.pipeline.report import run_tokenizer

    tok = run_tokenizer({"tokenizer": spec.tokenizer, "untrained": spec.untrained, "content_hash": spec.content_hash})
    size = tuple(spec.size) if spec.size else None
    if spec.kind == "items":
        out = []
        for b in range(len(tokens)):
            items = tokens[b].reshape(spec.grid)[: int(valid[b].sum()) // spec.item_tokens if valid is not None else None]
            out.append(tok.decode(items.numpy()) if len(items) else None)
        return out
    ids = tokens.reshape(len(tokens), *tok.token_shape).numpy()
    decoded = tok.decode(ids, input_size=size) if size and spec.kind == "image" else tok.decode(ids)
    return list(decoded) if isinstance(decoded, np.ndarray) else decoded
