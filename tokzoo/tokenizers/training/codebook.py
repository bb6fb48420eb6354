"""Codebook statistics: which ids were used, and how evenly (perplexity)."""

from __future__ import annotations

import math

import torch


class CodebookUsage:
    """Histogram of token ids over everything passed to ``update``."""

    def __init__(self, vocab_size: int):
        self.counts = torch.zeros(vocab_size, dtype=torch.int64)

    def update(self, indices: torch.Tensor) -> None:
        self.counts += torch.bincount(indices.detach().flatten().cpu(), minlength=len(self.counts))

    def reset(self) -> None:
        self.counts.zero_()

    @property
    def usage(self) -> float:
        """Fraction of the vocabulary seen at least once."""
        return float((self.counts > 0).float().mean())

    @property
    def perplexity(self) -> float:
        """exp(entropy) of the id distribution: the number of equally used codes it is worth."""
        total = int(self.counts.sum())
        if total == 0:
            return 0.0
        p = self.counts[self.counts > 0].double() / total
        return math.exp(float(-(p * p.log()).sum()))

    def summary(self) -> dict:
        return {
            "usage": self.usage,
            "perplexity": self.perplexity,
            "codes_used": int((self.counts > 0).sum()),
            "vocab_size": len(self.counts),
        }
