"""4M-style input/target masking: per sample, Dirichlet-split token budgets across its modalities.

Per sample (numbers from 4M, ``fourm/data/masking.py``; the code here is tokzoo's own):

1. Pick one component of the Dirichlet mixture by its weight (4M-7: "rgb -> all" and "all -> all").
2. Split the input budget N_in across the modalities the sample has: shares ~ Dirichlet(alpha_in), budget
   floor(share * N_in), the remainder handed out one token at a time to the argmax of further Dirichlet
   draws; each clamped to the tokens the modality has. A modality with alpha 0 gets nothing (the limit
   alpha -> 0); a modality the sample lacks takes no part (Dirichlet aggregation: the others' shares are
   Dirichlet of their own alphas).
3. Split the target budget the same way with alpha_target, clamped to the tokens left after the input, so
   input and target never overlap.
4. Choose the tokens. ``image``: one random permutation of the positions, the first k input, the next m
   target. ``items``: the same over whole items (budgets in tokens, rounded down to whole items).
   ``sequence``: span masking: the kept tokens are the input, the rest is cut into random spans (mean
   length ``mean_span``) of which a contiguous run of ``m`` masked tokens is the target. Spans are
   addressed by their positions (the decoder sees the position of every target token), so no sentinel
   tokens are needed.

Masks are boolean (B, L_m) per modality; budgets are tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from tokzoo.errors import ConfigError

from .spec import ModalitySpec


@dataclass(frozen=True)
class MixtureComponent:
    """One Dirichlet setting: alpha per modality for the input and for the target split (0 = never)."""

    name: str
    input_alpha: dict[str, float]
    target_alpha: dict[str, float]
    weight: float = 1.0


@dataclass(frozen=True)
class MaskingConfig:
    input_tokens: int
    target_tokens: int
    mixture: tuple[MixtureComponent, ...]
    mean_span: float = 3.0


@dataclass
class MaskedBatch:
    """A batch ready for the model. Per modality, (B, L_m): ``tokens`` int64 (absent tokens hold 0),
    ``valid`` (the sample has this token), ``input`` and ``target`` (disjoint subsets of ``valid``)."""

    tokens: dict[str, torch.Tensor]
    valid: dict[str, torch.Tensor]
    input: dict[str, torch.Tensor] = field(default_factory=dict)
    target: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return next(iter(self.tokens.values())).shape[0]

    def rows(self, start: int, stop: int) -> "MaskedBatch":
        """Samples ``start:stop`` (a rank's or a micro-batch's share)."""
        cut = lambda d: {m: t[start:stop] for m, t in d.items()}  # noqa: E731
        return MaskedBatch(cut(self.tokens), cut(self.valid), cut(self.input), cut(self.target))

    def to(self, device) -> "MaskedBatch":
        move = lambda d: {m: t.to(device, non_blocking=True) for m, t in d.items()}  # noqa: E731
        return MaskedBatch(move(self.tokens), move(self.valid), move(self.input), move(self.target))

    def with_masks(self, input: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> "MaskedBatch":
        return replace(self, input=input, target=target)


def flatten_batch(batch: dict, specs: list[ModalitySpec]) -> MaskedBatch:
    """A loader batch (``tokzoo.data``: modality -> int64 (B, *token_shape)) -> tokens and validity (B, L_m).

    A modality missing from the batch is all-invalid (the samples lack it). Items beyond ``max_items`` are
    dropped; absent items (``pad_id``) are invalid.
    """
    size = next(len(v) for k, v in batch.items() if not k.startswith("__"))
    tokens, valid = {}, {}
    for spec in specs:
        t = batch.get(spec.name)
        if t is None:
            tokens[spec.name] = torch.zeros(size, spec.length, dtype=torch.long)
            valid[spec.name] = torch.zeros(size, spec.length, dtype=torch.bool)
            continue
        t = torch.as_tensor(t, dtype=torch.long)
        if spec.kind == "items":
            items, per_item = spec.grid
            t = t.reshape(size, t.shape[1], -1)[:, :items]
            padded = torch.full((size, items, per_item), spec.pad_id, dtype=torch.long)
            padded[:, :t.shape[1]] = t
            present = (padded != spec.pad_id).all(-1, keepdim=True).expand(-1, -1, per_item)
            tokens[spec.name] = torch.where(present, padded, 0).reshape(size, -1)
            valid[spec.name] = present.reshape(size, -1)
        else:
            t = t.reshape(size, -1)
            if t.shape[1] != spec.length:
                raise ConfigError(f"modality {spec.name!r}: {t.shape[1]} tokens per sample, the model expects {spec.length}")
            tokens[spec.name] = t
            valid[spec.name] = torch.ones_like(t, dtype=torch.bool)
    return MaskedBatch(tokens, valid)


class Masker:
    """Draws input/target masks for a :class:`MaskedBatch` from a numpy Generator (seed it per step)."""

    def __init__(self, specs: list[ModalitySpec], config: MaskingConfig):
        self.specs, self.config = specs, config
        names = [s.name for s in specs]
        weights = np.array([c.weight for c in config.mixture], np.float64)
        if not len(weights) or (weights < 0).any() or weights.sum() <= 0:
            raise ConfigError("masking.mixture: needs at least one component with a positive weight")
        self.weights = weights / weights.sum()
        self.alphas = [(np.array([c.input_alpha.get(n, 0.0) for n in names], np.float64),
                        np.array([c.target_alpha.get(n, 0.0) for n in names], np.float64)) for c in config.mixture]

    def __call__(self, batch: MaskedBatch, rng: np.random.Generator) -> MaskedBatch:
        valid = {s.name: batch.valid[s.name].numpy() for s in self.specs}
        inputs = {s.name: np.zeros_like(valid[s.name]) for s in self.specs}
        targets = {s.name: np.zeros_like(valid[s.name]) for s in self.specs}
        for b in range(batch.batch_size):
            self._sample(b, valid, inputs, targets, rng)
        as_torch = lambda d: {m: torch.from_numpy(v) for m, v in d.items()}  # noqa: E731
        return batch.with_masks(as_torch(inputs), as_torch(targets))

    def _sample(self, b: int, valid: dict, inputs: dict, targets: dict, rng: np.random.Generator) -> None:
        units = np.array([valid[s.name][b].sum() // s.item_tokens for s in self.specs])  # tokens, or whole items
        present = units > 0
        input_alpha, target_alpha = self.alphas[rng.choice(len(self.weights), p=self.weights)]
        per_unit = np.array([s.item_tokens for s in self.specs])
        n_in = np.minimum(split_budget(self.config.input_tokens, input_alpha * present, rng) // per_unit, units)
        n_target = np.minimum(split_budget(self.config.target_tokens, target_alpha * present, rng) // per_unit, units - n_in)
        for j, spec in enumerate(self.specs):
            if not present[j]:
                continue
            where = np.flatnonzero(valid[spec.name][b])
            if spec.kind == "sequence":
                chosen_in, chosen_target = span_mask(len(where), int(n_in[j]), int(n_target[j]), self.config.mean_span, rng)
            else:
                order = rng.permutation(int(units[j]))
                chosen_in, chosen_target = order[:n_in[j]], order[n_in[j]:n_in[j] + n_target[j]]
            t = spec.item_tokens  # unit u covers the unit's tokens u*t .. u*t + t - 1 among the valid ones
            expand = lambda u: where[(u[:, None] * t + np.arange(t)).ravel()]  # noqa: E731
            inputs[spec.name][b, expand(np.asarray(chosen_in, np.int64))] = True
            targets[spec.name][b, expand(np.asarray(chosen_target, np.int64))] = True


def split_budget(total: int, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``total`` tokens split as floor(Dirichlet(alpha) * total) + the remainder by argmax of further draws.

    Entries with alpha 0 get nothing; all zero -> nothing at all. int64 (n,).
    """
    budget = np.zeros(len(alpha), np.int64)
    positive = np.flatnonzero(alpha > 0)
    if total <= 0 or not len(positive):
        return budget
    a = alpha[positive]
    shares = rng.dirichlet(a)
    part = np.floor(shares * total).astype(np.int64)
    left = total - int(part.sum())
    if left > 0:
        part += np.bincount(rng.dirichlet(a, size=left).argmax(-1), minlength=len(a))
    budget[positive] = part
    return budget


def span_mask(length: int, n_keep: int, n_target: int, mean_span: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Span masking of a sequence of ``length`` tokens: (kept positions, target positions), disjoint.

    The ``length - n_keep`` masked tokens form ``round(masked / mean_span)`` spans (at least one) laid
    between runs of kept tokens, both cut at random; the target is ``n_target`` consecutive masked tokens
    (in sequence order) starting at a random span.
    """
    n_masked = length - n_keep
    if n_masked <= 0:
        return np.arange(length), np.zeros(0, np.int64)
    spans = int(np.clip(round(n_masked / mean_span), 1, min(n_masked, n_keep + 1)))
    masked_runs = _composition(n_masked, spans, rng, positive=True)
    kept_runs = _composition(n_keep - (spans - 1), spans + 1, rng, positive=False)
    kept_runs[1:-1] += 1  # spans are separated by at least one kept token
    is_masked, starts = np.zeros(length, bool), []
    position = 0
    for i in range(spans):
        position += kept_runs[i]
        starts.append(position)
        is_masked[position:position + masked_runs[i]] = True
        position += masked_runs[i]
    masked = np.flatnonzero(is_masked)
    first = min(int(np.searchsorted(masked, starts[rng.integers(spans)])), len(masked) - n_target)
    return np.flatnonzero(~is_masked), masked[first:first + n_target]


def _composition(n: int, parts: int, rng: np.random.Generator, positive: bool) -> np.ndarray:
    """A uniformly random split of ``n`` into ``parts`` integers (each >= 1 if ``positive``, else >= 0)."""
    if positive:
        cuts = np.sort(rng.choice(np.arange(1, n), parts - 1, replace=False)) if parts > 1 else np.zeros(0, np.int64)
        return np.diff(np.concatenate([[0], cuts, [n]])).astype(np.int64)
    return _composition(n + parts, parts, rng, positive=True) - 1
