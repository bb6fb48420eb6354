"""The generator: a trained fm model proposing a target modality's tokens from its sources plus the target
tokens kept so far, by sampling in one parallel step.

One forward pass gives the distribution of every unkept target token given the inputs (sources + kept
tokens); ``n`` proposals are ``n`` independent draws from it. A *generator call* is one proposal (one
sampled target map), the unit in which the loop and its baselines are compared; forward passes are counted
beside it. Sampling: logits / temperature, then nucleus (top-p) filtering; temperature 0 takes the argmax.
Each row samples from its own stream, seeded by ``(seed, row seed)``: a scene's proposals do not depend on
which other scenes share its batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tokzoo.fm.masking import MaskedBatch
from tokzoo.fm.model import FourM


@dataclass
class CallCount:
    """Per-row counts of generator calls (proposals) and fm forward passes."""

    proposals: np.ndarray  # int64 (B,)
    forwards: np.ndarray  # int64 (B,)

    @classmethod
    def zeros(cls, rows: int) -> "CallCount":
        return cls(np.zeros(rows, np.int64), np.zeros(rows, np.int64))


def row_generators(seed: int, row_seeds) -> list[torch.Generator]:
    """One CPU generator per row, seeded by ``(seed, row seed)``."""
    return [
        torch.Generator().manual_seed(int(np.random.SeedSequence([seed, int(r)]).generate_state(1)[0]))
        for r in row_seeds
    ]


@torch.inference_mode()
def target_distribution(
    model: FourM, batch: MaskedBatch, sources: list[str], target: str, kept_tokens: torch.Tensor, kept: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward pass: logits (n, V) of every unkept valid target slot, with (row (n,), position (n,)).

    ``batch``: tokens / valid from :func:`tokzoo.fm.masking.flatten_batch`; ``kept_tokens`` int64 (B, L) and
    ``kept`` bool (B, L) over the target's slots (the kept tokens join the encoder's inputs).
    """
    model.eval()
    tokens = {m: t.clone() for m, t in batch.tokens.items()}
    tokens[target] = torch.where(kept, kept_tokens, 0)
    inputs = {
        m: (v & kept) if m == target else (v if m in sources else torch.zeros_like(v)) for m, v in batch.valid.items()
    }
    targets = {m: (v & ~kept) if m == target else torch.zeros_like(v) for m, v in batch.valid.items()}
    masked = MaskedBatch(tokens, {m: inputs[m] | targets[m] for m in tokens}, inputs, targets)
    return model.target_logits(masked)[target]


def sample_proposals(
    logits: torch.Tensor,
    rows: torch.Tensor,
    positions: torch.Tensor,
    kept_tokens: torch.Tensor,
    n: int,
    generators: list[torch.Generator],
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> torch.Tensor:
    """``n`` proposals per row (B, n, L): kept tokens where ``kept_tokens`` was kept (the caller passes them with
    the unkept slots ignored), one draw per unkept slot from ``logits`` (see :func:`target_distribution`)."""
    out = kept_tokens[:, None].repeat(1, n, 1)
    logits = logits.float()
    for b, generator in enumerate(generators):
        pick = rows == b
        if not pick.any():
            continue
        row_logits, row_positions = logits[pick], positions[pick]
        if temperature <= 0:
            out[b][:, row_positions] = row_logits.argmax(-1)[None]
            continue
        probs = torch.softmax(row_logits / temperature, -1)
        if top_p < 1.0:
            sorted_probs, order = probs.sort(-1, descending=True)
            drop = torch.zeros_like(probs, dtype=torch.bool).scatter(
                1, order, sorted_probs.cumsum(-1) - sorted_probs >= top_p
            )
            probs = probs.masked_fill(drop, 0.0)
        draws = torch.multinomial(probs, n, replacement=True, generator=generator)  # (slots, n)
        out[b][:, row_positions] = draws.t()
    return out
