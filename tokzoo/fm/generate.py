"""Any-to-any generation: predict target modalities' tokens from source modalities, then decode them.

Targets are generated one after the other, each one joining the inputs of the next (4M's chained
generation: ``sources=[rgb], targets=[captions, semseg]`` is rgb -> captions -> semseg in one call).

``image`` and ``items`` targets use iterative parallel decoding: all their tokens start masked; at step s of S
the model predicts every masked token, a token is sampled at each, and tokens are fixed until only
``floor(n * cos(pi/2 * (s+1)/S))`` stay masked; fixed tokens are inputs from then on. ``order`` picks which
tokens are fixed: ``maskgit`` the most probable samples, ``random`` a random choice (4M's ROAR).

``sequence`` targets are decoded autoregressively in the sentinel format they were trained on (:mod:`.spans`):
the decoder starts at sentinel 1 and emits each span after its sentinel until a sentinel beyond the input's
ends it; a source row holding sentinel ids is infilled, any other row generated whole.

Sampling: logits / temperature (``temperature_schedule``: ``constant``; ``linear`` or ``cosine`` decay from
``temperature`` at the first parallel step towards 0; sequences use ``temperature``), then top-k and top-p
(nucleus) filtering; temperature 0 takes the argmax. Guidance on logits, with u the prediction from the
target's own fixed tokens only: classifier-free ``u + g (c - u)`` (c: from every known modality; g = 1 is
plain conditional decoding, g = 0 the unconditional one), or multimodal ``u + sum_i w_i (c_i - u)`` with c_i
from modality i alone. Seeded: same inputs and settings give the same tokens; each target samples from its own stream
(:func:`target_seed`). A sample's confidence (MaskGIT order) is its probability before top-k / top-p.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from tokzoo.errors import ConfigError
from tokzoo.limits import check_field, check_int
from tokzoo.tokens.spec import ModalitySpec

from .masking import MaskedBatch
from .model import FourM
from .spans import merge_spans

ORDERS = ("maskgit", "random")
TEMPERATURE_SCHEDULES = ("constant", "linear", "cosine")


@dataclass(frozen=True)
class DecodeSettings:
    steps: int = 8  # parallel decoding steps per image-like target
    temperature: float = 1.0  # 0 = argmax
    top_k: int = 0  # 0 = the whole vocabulary
    seed: int = 0
    top_p: float = 1.0  # nucleus: keep the most probable ids whose mass reaches top_p; 1 = all
    temperature_schedule: str = "constant"
    order: str = "maskgit"
    guidance_scale: float = 1.0  # classifier-free guidance; 1 = none
    guidance: tuple[tuple[str, float], ...] = ()  # multimodal guidance: (condition modality, weight) pairs

    def check(self, names: list[str]) -> None:
        """ConfigError (one line) for settings outside their ranges."""
        if self.steps < 1:
            raise ConfigError(f"decoding steps must be >= 1, got {self.steps}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must lie in (0, 1], got {self.top_p}")
        if self.order not in ORDERS:
            raise ConfigError(f"decoding order {self.order!r} is not one of {', '.join(ORDERS)}")
        if self.temperature_schedule not in TEMPERATURE_SCHEDULES:
            raise ConfigError(
                f"temperature schedule {self.temperature_schedule!r} is not one of {', '.join(TEMPERATURE_SCHEDULES)}"
            )
        if self.guidance and self.guidance_scale != 1.0:
            raise ConfigError("give either a guidance scale or per-modality guidance weights, not both")
        for name, _ in self.guidance:
            if name not in names:
                raise ConfigError(f"guidance condition {name!r} is not a modality of this model ({', '.join(names)})")

    def temperature_at(self, step: int) -> float:
        fraction = step / self.steps
        factor = {"constant": 1.0, "linear": 1.0 - fraction, "cosine": math.cos(math.pi / 2 * fraction)}[
            self.temperature_schedule
        ]
        return self.temperature * factor


def target_seed(seed: int, modality: str) -> int:
    """Each target's own sampling stream, fixed by (seed, its name): a target's draws do not depend on what
    was generated before it in a chain, only its inputs do."""
    return int(np.random.SeedSequence([seed, zlib.crc32(modality.encode())]).generate_state(1)[0])


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
def generate(
    model: FourM,
    batch: MaskedBatch,
    sources: list[str],
    targets: list[str],
    settings: DecodeSettings = DecodeSettings(),
) -> dict[str, torch.Tensor]:
    """Tokens of ``targets`` predicted from ``sources``: modality -> int64 (B, length), 0 where not filled.

    ``batch`` holds tokens/valid from :func:`~tokzoo.fm.masking.flatten_batch`; only the sources' tokens
    are read, an image-like target's ``valid`` says which slots to fill (items: how many items); a sequence
    target is generated for every row (infilled where the row holds sentinels).
    """
    check_request(model, sources, targets, settings)
    names = [s.name for s in model.specs]
    for name in list(sources) + list(targets):
        if name not in names:
            raise ConfigError(f"modality {name!r} is not one this model knows ({', '.join(names)})")
    settings.check(names)
    model.eval()
    device = next(model.parameters()).device
    tokens = {m: t.clone().to(device) for m, t in batch.tokens.items()}
    valid = {m: v.clone().to(device) for m, v in batch.valid.items()}
    known = {m: valid[m] & (m in sources) for m in names}
    by_name = {s.name: s for s in model.specs}
    out = {}
    for target in targets:
        spec = by_name[target]
        generator = torch.Generator(device="cpu").manual_seed(target_seed(settings.seed, target))
        if spec.kind == "sequence":
            out[target] = _fill_sequence(model, spec, tokens, valid, known, settings, generator)
        else:
            tokens[target] = torch.zeros_like(tokens[target])
            _fill_parallel(model, tokens, valid, known, target, settings, generator)
            out[target] = tokens[target]
        known[target] = valid[target].clone()
    return {m: t.cpu() for m, t in out.items()}


def _fill_parallel(model, tokens, valid, known, target, settings, generator) -> None:
    total = valid[target].sum(1)  # (B,)
    for step in range(settings.steps):
        unknown = valid[target] & ~known[target]
        if not unknown.any():
            return
        logits, sample, position = _guided_logits(model, tokens, {}, known, unknown, target, settings)
        chosen, confidence = _sample(logits, settings, settings.temperature_at(step), generator)
        if settings.order == "random":
            confidence = torch.rand(len(chosen), generator=generator).to(chosen.device)
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


def _fill_sequence(model, spec: ModalitySpec, tokens, valid, known, settings, generator) -> torch.Tensor:
    """Autoregressive sentinel decoding of ``spec``'s sequence; leaves the result as a known input and
    returns it (B, length)."""
    m, vocab = spec.name, spec.vocab_size
    given = tokens[m] * valid[m]
    infill = ((given >= vocab) & valid[m]).any(1)  # rows holding sentinels: their sequence is the input
    known[m] = valid[m] & infill[:, None]
    spans = {m: torch.zeros_like(tokens[m])}
    spans[m][:, 0] = vocab  # every target starts at sentinel 1
    ends = (
        torch.where(infill, ((given >= vocab) & valid[m]).sum(1), 1) + vocab
    )  # the first id past the input's sentinels
    done = torch.zeros(len(given), dtype=torch.bool, device=given.device)
    for slot in range(1, spec.slots):
        predict = torch.zeros_like(valid[m])
        predict[:, : slot + 1] = True
        logits, sample, position = _guided_logits(model, tokens, spans, known, predict, m, settings)
        pick = position == slot
        chosen, _ = _sample(logits[pick], settings, settings.temperature, generator)
        rows = sample[pick]
        spans[m][rows, slot] = torch.where(done[rows], spans[m][rows, slot], chosen)
        done[rows] |= chosen >= ends[rows]
        if done.all():
            break
    merged = []
    for b in range(len(given)):
        inputs = given[b][valid[m][b]].cpu().numpy() if infill[b] else np.array([vocab])
        merged.append(merge_spans(inputs, spans[m][b].cpu().numpy(), vocab, spec.length))
    result = torch.from_numpy(np.stack(merged)).to(given.device)
    tokens[m] = torch.cat([result, torch.zeros_like(tokens[m][:, spec.length :])], 1)
    valid[m] = torch.cumsum(tokens[m] == 0, 1) == 0
    return result


def _guided_logits(model, tokens, target_tokens, known, unknown, target, settings):
    """Logits (n, V) of the target's ``unknown`` slots, guided as the settings say; with (sample, position)."""

    def predict(allowed: set[str] | None):
        inputs = {m: k.clone() if allowed is None or m in allowed else torch.zeros_like(k) for m, k in known.items()}
        masks = {m: (unknown if m == target else torch.zeros_like(k)) for m, k in known.items()}
        batch = MaskedBatch(tokens, {m: inputs[m] | masks[m] for m in known}, inputs, masks, target_tokens)
        return model.target_logits(batch)[target]

    if settings.guidance:
        base, sample, position = predict({target})
        logits = base + sum(w * (predict({target, m})[0] - base) for m, w in settings.guidance)
        return logits, sample, position
    conditional, sample, position = predict(None)
    if settings.guidance_scale == 1.0:
        return conditional, sample, position
    base = predict({target})[0]
    return base + settings.guidance_scale * (conditional - base), sample, position


def _sample(logits: torch.Tensor, settings: DecodeSettings, temperature: float, generator: torch.Generator):
    """(n, V) logits -> sampled ids (n,) and their probabilities (n,), on the logits' device (sampled on CPU)."""
    device = logits.device
    logits = logits.float().cpu()
    scaled = torch.softmax(logits / temperature, -1) if temperature > 0 else torch.softmax(logits, -1)
    if settings.top_k:
        kth = torch.topk(logits, min(settings.top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if settings.top_p < 1.0 and len(logits):
        logits = _nucleus(logits / max(temperature, 1e-6), settings.top_p) * max(temperature, 1e-6)
    if temperature <= 0 or not len(logits):
        chosen = logits.argmax(-1)
    else:
        chosen = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator)[:, 0]
    confidence = scaled.gather(1, chosen[:, None])[:, 0]
    return chosen.to(device), confidence.to(device)


def _nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Logits with every id outside the smallest most-probable set of mass >= ``top_p`` set to -inf."""
    probs, order = torch.softmax(logits, -1).sort(-1, descending=True)
    before = probs.cumsum(-1) - probs  # mass of the more probable ids
    drop = torch.zeros_like(logits, dtype=torch.bool).scatter(1, order, before >= top_p)
    return logits.masked_fill(drop, float("-inf"))


def decode_tokens(spec: ModalitySpec, tokens: torch.Tensor, valid: torch.Tensor | None = None) -> list:
    """Generated ids (B, L) -> one raw value per sample, decoded by the tokenizer the dataset was made with
    (checked against its content hash). Items: only the valid items are decoded."""
    from tokzoo.tokens.tokenizer import checked_tokenizer

    tok = checked_tokenizer(spec.tokenizer, spec.untrained, spec.content_hash)
    size = tuple(spec.size) if spec.size else None
    tokens = tokens[:, : spec.length]  # a sequence's slots past its length hold only sentinel room
    if spec.kind == "items":
        out = []
        for b in range(len(tokens)):
            items = tokens[b].reshape(spec.grid)[
                : int(valid[b].sum()) // spec.item_tokens if valid is not None else None
            ]
            out.append(tok.decode(items.numpy()) if len(items) else None)
        return out
    ids = tokens.reshape(len(tokens), *tok.token_shape).numpy()
    decoded = tok.decode(ids, input_size=size) if size and spec.kind == "image" else tok.decode(ids)
    return list(decoded) if isinstance(decoded, np.ndarray) else decoded
