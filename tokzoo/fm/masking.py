"""4M-style input/target masking: per sample, Dirichlet-split token budgets across its modalities.

Per sample (numbers from 4M, ``fourm/data/masking.py``; the code here is tokzoo's own):

1. Draw the sample's input and target budgets N_in, N_target (a fixed number, or uniform in a [low, high]
   range) and pick one component of the Dirichlet mixture by its weight (4M-7: "rgb -> all" and "all -> all").
2. Split N_in across the modalities the sample has: shares ~ Dirichlet(alpha_in), budget
   floor(share * N_in), the remainder handed out one token at a time to the argmax of further Dirichlet
   draws; each clamped to the tokens the modality has. A modality with alpha 0 gets nothing (the limit
   alpha -> 0); a modality the sample lacks takes no part (Dirichlet aggregation: the others' shares are
   Dirichlet of their own alphas).
3. Split N_target the same way with alpha_target, clamped to the tokens left after the input (image-like
   modalities: input and target never overlap) or to the longest target a sequence can have.
4. Choose the tokens. ``image``: one random permutation of the positions, the first k input, the next m
   target. ``items``: the same over whole items (budgets in tokens, rounded down to whole items).
   ``sequence``: T5-style span corruption with sentinels (:mod:`.spans`): the encoder gets the kept tokens
   and one sentinel per dropped span, the decoder the sentinels each followed by its span.

Masks are boolean (B, S_m) per modality over the modality's slots (``spec.slots``); budgets are tokens.
Each sample's draws come from its own generator (seeded per (seed, step, row) in training), so a process
can mask just its own rows of a global batch and get the masks one process would.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch

from tokzoo.errors import ConfigError
from tokzoo.tokens.spec import ModalitySpec

from .spans import KEEP_SCHEMES, PAD, mask_sequence


@dataclass(frozen=True)
class MixtureComponent:
    """One Dirichlet setting: alpha per modality for the input and for the target split (0 = never), and per
    sequence modality how its input keeps content (4M's keep scheme, :data:`KEEP_SCHEMES`; absent = ``random``)."""

    name: str
    input_alpha: dict[str, float]
    target_alpha: dict[str, float]
    weight: float = 1.0
    keep: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MaskingConfig:
    """Budgets per sample: a number, or an inclusive (low, high) range drawn uniformly per sample."""

    input_tokens: int | tuple[int, int]
    target_tokens: int | tuple[int, int]
    mixture: tuple[MixtureComponent, ...]

    def budget_ranges(self) -> tuple[tuple[int, int], tuple[int, int]]:
        as_range = lambda v: (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))  # noqa: E731
        return as_range(self.input_tokens), as_range(self.target_tokens)


@dataclass
class MaskedBatch:
    """A batch ready for the model. Per modality, (B, S_m) over its slots: ``tokens`` int64 what the encoder
    reads (absent tokens hold 0), ``valid`` (the sample has this token), ``input`` and ``target`` masks.

    Image-like modalities: ``input`` and ``target`` are disjoint subsets of ``valid`` and the decoder predicts
    ``tokens``. Sequences after masking: ``tokens`` holds the encoder's sequence (kept ids + sentinels) and
    ``target_tokens`` the decoder's (sentinels + spans), each from slot 0, marked by ``input`` / ``target``.
    """

    tokens: dict[str, torch.Tensor]
    valid: dict[str, torch.Tensor]
    input: dict[str, torch.Tensor] = field(default_factory=dict)
    target: dict[str, torch.Tensor] = field(default_factory=dict)
    target_tokens: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return next(iter(self.tokens.values())).shape[0]

    def decoder_tokens(self, modality: str) -> torch.Tensor:
        """(B, S_m) ids the decoder predicts (and, for sequences, reads shifted by one)."""
        return self.target_tokens.get(modality, self.tokens[modality])

    def _map(self, fn) -> "MaskedBatch":
        apply = lambda d: {m: fn(t) for m, t in d.items()}  # noqa: E731
        return MaskedBatch(
            apply(self.tokens), apply(self.valid), apply(self.input), apply(self.target), apply(self.target_tokens)
        )

    def rows(self, start: int, stop: int) -> "MaskedBatch":
        """Samples ``start:stop`` (a micro-batch's share)."""
        return self._map(lambda t: t[start:stop])

    def to(self, device) -> "MaskedBatch":
        return self._map(lambda t: t.to(device, non_blocking=True))

    def with_masks(
        self,
        input: dict[str, torch.Tensor],
        target: dict[str, torch.Tensor],
        tokens: dict[str, torch.Tensor] | None = None,
        target_tokens: dict[str, torch.Tensor] | None = None,
    ) -> "MaskedBatch":
        return replace(
            self,
            input=input,
            target=target,
            tokens={**self.tokens, **(tokens or {})},
            target_tokens={**self.target_tokens, **(target_tokens or {})},
        )


def concat_batches(parts: list[MaskedBatch]) -> MaskedBatch:
    """Samples of several batches (same modalities) stacked in order."""
    if len(parts) == 1:
        return parts[0]

    def cat(field_name: str) -> dict:
        return {m: torch.cat([getattr(p, field_name)[m] for p in parts]) for m in getattr(parts[0], field_name)}

    return MaskedBatch(cat("tokens"), cat("valid"), cat("input"), cat("target"), cat("target_tokens"))


def flatten_batch(batch: dict, specs: list[ModalitySpec]) -> MaskedBatch:
    """A loader batch (``tokzoo.tokens``: modality -> int64 (B, *token_shape)) -> tokens and validity (B, S_m).

    A modality missing from the batch is all-invalid (the samples lack it). Items beyond ``max_items`` are
    dropped; absent items (``pad_id``) are invalid. Sequences: PAD-filled to their slots, valid up to the
    first PAD (an empty sequence counts as missing).
    """
    size = next(len(v) for k, v in batch.items() if not k.startswith("__"))
    tokens, valid = {}, {}
    for spec in specs:
        t = batch.get(spec.name)
        if t is None:
            tokens[spec.name] = torch.zeros(size, spec.slots, dtype=torch.long)
            valid[spec.name] = torch.zeros(size, spec.slots, dtype=torch.bool)
            continue
        t = torch.as_tensor(t, dtype=torch.long)
        if spec.kind == "items":
            items, per_item = spec.grid
            t = t.reshape(size, t.shape[1], per_item)[:, :items]  # (B, 0, per_item) when no sample has an item
            padded = torch.full((size, items, per_item), spec.pad_id, dtype=torch.long)
            padded[:, : t.shape[1]] = t
            present = (padded != spec.pad_id).all(-1, keepdim=True).expand(-1, -1, per_item)
            tokens[spec.name] = torch.where(present, padded, 0).reshape(size, -1)
            valid[spec.name] = present.reshape(size, -1)
        else:
            t = t.reshape(size, -1)
            if t.shape[1] != spec.length:
                raise ConfigError(
                    f"modality {spec.name!r}: {t.shape[1]} tokens per sample, the model expects {spec.length}"
                )
            if spec.kind == "sequence":
                t = torch.cat([t, torch.full((size, spec.slots - spec.length), PAD, dtype=torch.long)], 1)
                valid[spec.name] = torch.cumsum(t == PAD, 1) == 0
            else:
                valid[spec.name] = torch.ones_like(t, dtype=torch.bool)
            tokens[spec.name] = t
    return MaskedBatch(tokens, valid)


class Masker:
    """Draws input/target masks for a :class:`MaskedBatch`: from one numpy Generator for the whole batch, or
    from one Generator per sample (what training does, so any subset of rows masks the same)."""

    def __init__(self, specs: list[ModalitySpec], config: MaskingConfig):
        self.specs, self.config = specs, config
        names = [s.name for s in specs]
        weights = np.array([c.weight for c in config.mixture], np.float64)
        if not len(weights) or (weights < 0).any() or weights.sum() <= 0:
            raise ConfigError("masking.mixture: needs at least one component with a positive weight")
        self.weights = weights / weights.sum()
        self.alphas = [
            (
                np.array([c.input_alpha.get(n, 0.0) for n in names], np.float64),
                np.array([c.target_alpha.get(n, 0.0) for n in names], np.float64),
            )
            for c in config.mixture
        ]
        self.ranges = config.budget_ranges()
        kinds = {s.name: s.kind for s in specs}
        for c in config.mixture:
            wrong = sorted(m for m in c.keep if kinds.get(m) != "sequence")
            if wrong:
                raise ConfigError(f"masking.mixture {c.name!r}: keep names {wrong[0]!r}, not a sequence modality")
            unknown = sorted(v for v in c.keep.values() if v not in KEEP_SCHEMES)
            if unknown:
                raise ConfigError(
                    f"masking.mixture {c.name!r}: keep {unknown[0]!r}, not one of {', '.join(KEEP_SCHEMES)}"
                )
        self.keeps = [[c.keep.get(n, "random") for n in names] for c in config.mixture]

    def __call__(self, batch: MaskedBatch, rng: np.random.Generator | Sequence[np.random.Generator]) -> MaskedBatch:
        rngs = [rng] * batch.batch_size if isinstance(rng, np.random.Generator) else list(rng)
        if len(rngs) != batch.batch_size:
            raise ValueError(f"{len(rngs)} generators for {batch.batch_size} samples")
        valid = {s.name: batch.valid[s.name].numpy() for s in self.specs}
        tokens = {s.name: batch.tokens[s.name].numpy() for s in self.specs if s.kind == "sequence"}
        inputs = {s.name: np.zeros_like(valid[s.name]) for s in self.specs}
        targets = {s.name: np.zeros_like(valid[s.name]) for s in self.specs}
        encoder_ids = {m: np.zeros_like(t) for m, t in tokens.items()}
        decoder_ids = {m: np.zeros_like(t) for m, t in tokens.items()}
        for b, r in enumerate(rngs):
            self._sample(b, valid, tokens, inputs, targets, encoder_ids, decoder_ids, r)
        as_torch = lambda d: {m: torch.from_numpy(v) for m, v in d.items()}  # noqa: E731
        return batch.with_masks(as_torch(inputs), as_torch(targets), as_torch(encoder_ids), as_torch(decoder_ids))

    def _sample(self, b, valid, tokens, inputs, targets, encoder_ids, decoder_ids, rng: np.random.Generator) -> None:
        (in_low, in_high), (target_low, target_high) = self.ranges
        n_input, n_target_total = int(rng.integers(in_low, in_high + 1)), int(rng.integers(target_low, target_high + 1))
        units = np.array([valid[s.name][b].sum() // s.item_tokens for s in self.specs])  # tokens, or whole items
        present = units > 0
        component = rng.choice(len(self.weights), p=self.weights)
        (input_alpha, target_alpha), keeps = self.alphas[component], self.keeps[component]
        per_unit = np.array([s.item_tokens for s in self.specs])
        is_sequence = np.array([s.kind == "sequence" for s in self.specs])
        n_in = np.minimum(split_budget(n_input, input_alpha * present, rng) // per_unit, units)
        room = np.where(is_sequence, units + 2, units - n_in)  # a sequence's target: its content + 2 sentinels
        n_target = np.minimum(split_budget(n_target_total, target_alpha * present, rng) // per_unit, room)
        for j, spec in enumerate(self.specs):
            if not present[j]:
                continue
            m = spec.name
            if spec.kind == "sequence":
                encoder, decoder = mask_sequence(
                    tokens[m][b, : units[j]], int(n_in[j]), int(n_target[j]), spec.vocab_size, rng, keeps[j]
                )
                encoder_ids[m][b, : len(encoder)], decoder_ids[m][b, : len(decoder)] = encoder, decoder
                inputs[m][b, : len(encoder)], targets[m][b, : len(decoder)] = True, True
                continue
            where = np.flatnonzero(valid[m][b])
            order = rng.permutation(int(units[j]))
            chosen_in, chosen_target = order[: n_in[j]], order[n_in[j] : n_in[j] + n_target[j]]
            t = spec.item_tokens  # unit u covers the unit's tokens u*t .. u*t + t - 1 among the valid ones
            expand = lambda u: where[(u[:, None] * t + np.arange(t)).ravel()]  # noqa: E731
            inputs[m][b, expand(np.asarray(chosen_in, np.int64))] = True
            targets[m][b, expand(np.asarray(chosen_target, np.int64))] = True


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
