"""Evaluating tokenizers: metrics.py (per-modality registry), baselines.py (same-bit baselines),
codebook.py (usage, perplexity), evaluate.py (the run), report.py (table, PNG grid)."""

from .evaluate import HELDOUT_SEED, Evaluation, HeldOut, attach_evaluation, evaluate, heldout_values
from .metrics import METRICS, main_metric
from .report import format_table, save_grid

__all__ = [
    "HELDOUT_SEED",
    "METRICS",
    "Evaluation",
    "HeldOut",
    "attach_evaluation",
    "evaluate",
    "format_table",
    "heldout_values",
    "main_metric",
    "save_grid",
]
