"""The one learning-rate schedule of tokzoo's trainers: linear warm-up, then cosine decay to a floor."""

from __future__ import annotations

import math


def warmup_cosine(step: int, peak: float, warmup: int, total: int, floor: float = 0.0) -> float:
    """Learning rate of 0-based ``step``: ``peak * (step + 1) / warmup`` during the ``warmup`` steps, then a cosine
    from ``peak`` down to ``floor * peak`` at step ``total``, held there after. ``peak=1.0`` gives the factor a
    ``torch.optim.lr_scheduler.LambdaLR`` multiplies each group's own rate by."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))
