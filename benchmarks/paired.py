"""Paired bootstrap intervals shared by the benchmarks that compare methods on the same held-out samples."""

from __future__ import annotations

import numpy as np


def bootstrap(diff: np.ndarray, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of the per-sample differences ``diff`` (non-finite ones dropped) and its 95% bootstrap interval."""
    diff = np.asarray(diff, np.float64)
    diff = diff[np.isfinite(diff)]
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (resamples, len(diff)))].mean(1)
    return float(diff.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))
