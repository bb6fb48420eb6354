"""Showing an evaluation: a terminal table and a PNG grid of originals, reconstructions and error maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...io.images import save_png
from ...viz import colorize, labelled_grid
from .evaluate import Evaluation
from .metrics import HIGHER_IS_BETTER


def format_table(report: dict) -> str:
    """Plain-text table: one row per method, bits per sample and every metric (arrow = better direction), then
    the unreadable samples skipped, one line each."""
    codebook = report["codebook"]
    names = list(report["rows"][0]["metrics"])
    header = ["method", "bits/sample"] + [f"{n} {'↑' if n in HIGHER_IS_BETTER else '↓'}" for n in names]
    lines = [
        [row["method"], f"{row['bits_per_sample']:.1f}"] + [_fmt(row["metrics"][n]) for n in names]
        for row in report["rows"]
    ]
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    table = [
        " ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
        for r in [header, *lines]
    ]
    title = (
        f"{report['tokenizer']} ({report['modality']}): {report['n_samples']} samples, {report['data']}; "
        f"tokens {tuple(report['token_shape'])} x log2({report['vocab_size']}) = {report['bits_per_sample']:.1f} bits"
    )
    usage = (
        f"codebook usage {codebook['usage']:.1%} ({codebook['codes_used']}/{codebook['vocab_size']}), "
        f"perplexity {codebook['perplexity']:.1f}; main metric {report['main_metric']}"
    )
    unreadable = report.get("unreadable", [])
    skipped = (
        [f"unreadable samples skipped: {len(unreadable)}", *(f"  {line}" for line in unreadable)] if unreadable else []
    )
    return "\n".join([title, usage, *table, *skipped])


def _fmt(value) -> str:
    return value if isinstance(value, str) else f"{value:.4g}"


def _error(original, reconstruction) -> np.ndarray:
    """Per-position error: label mismatch for integer maps, else absolute difference (mean over channels)."""
    a, b = np.asarray(original), np.asarray(reconstruction)
    if a.ndim == 2 and np.issubdtype(a.dtype, np.integer):
        return (a != b).astype(np.float64)
    error = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return error.mean(-1) if error.ndim == 3 else error


def _error_picture(error: np.ndarray, high: float) -> np.ndarray:
    if error.ndim == 1:
        return np.repeat(np.repeat(colorize(error[None], 0.0, high), 16, axis=0), 2, axis=1)
    return colorize(error, 0.0, high)


def save_grid(evaluation: Evaluation, codec, path: str | Path, n: int = 4) -> Path:
    """One row per sample: original, then each method's reconstruction and its error map (shared colour range)."""
    rows = []
    for i in range(min(n, len(evaluation.originals))):
        original = evaluation.originals[i]
        errors = {m: _error(original, r[i]) for m, r in evaluation.reconstructions.items()}
        finite = np.concatenate([e[np.isfinite(e)].ravel() for e in errors.values()])
        high = float(np.percentile(finite, 99)) if finite.size else 1.0
        row = [codec.visualize(original)]
        for method, reconstruction in evaluation.reconstructions.items():
            row += [codec.visualize(reconstruction[i]), _error_picture(errors[method], max(high, 1e-12))]
        rows.append(row)
    columns = ["original"] + [f"{name} {what}" for name in evaluation.reconstructions for what in ("", "error")]
    return save_png(labelled_grid(rows, [c.strip() for c in columns], [f"sample {i}" for i in range(len(rows))]), path)
