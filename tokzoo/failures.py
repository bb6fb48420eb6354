"""Image filters (img2dataset's ``--min-image-size`` / ``--max-aspect-ratio``) and failures counted by reason.

A failed sample's table record holds its one-line error; :func:`failure_reason` files it under one of
:data:`REASONS`, which shard stats (``failed_by_reason``), manifests and end-of-run summaries count.
"""

from __future__ import annotations

import math
from collections import Counter

TOO_SMALL = "smaller than --min-image-size"
TOO_ELONGATED = "aspect ratio over --max-aspect-ratio"
REASONS = (TOO_SMALL, TOO_ELONGATED, "missing a modality", "over a size limit", "unreadable or invalid")
"""Failure reasons, in the order summaries list them; the last takes every error the others do not name."""


def image_problem(height: int, width: int, min_image_size: int = 0, max_aspect_ratio: float = math.inf) -> str | None:
    """Why an ``height`` x ``width`` image is filtered out (its shorter side under ``min_image_size``, or its
    longer side over ``max_aspect_ratio`` times the shorter one), or None to keep it."""
    short, long = min(height, width), max(height, width)
    if short < min_image_size:
        return f"image {height}x{width}: {TOO_SMALL} {min_image_size}"
    if long > max_aspect_ratio * short:
        return f"image {height}x{width}: {TOO_ELONGATED} {max_aspect_ratio:g}"
    return None


def failure_reason(error: str) -> str:
    """The reason (one of :data:`REASONS`) of a failed sample's error line."""
    if TOO_SMALL in error:
        return TOO_SMALL
    if TOO_ELONGATED in error:
        return TOO_ELONGATED
    if "missing (no " in error or "which this sample lacks" in error:
        return "missing a modality"
    if "--max-member-bytes" in error or "over the limit" in error:
        return "over a size limit"
    return "unreadable or invalid"


def count_reasons(records: list[dict]) -> dict[str, int]:
    """Failed records of a table -> {reason: count}, reasons in :data:`REASONS` order, absent ones left out."""
    counts = Counter(failure_reason(r["error"] or "") for r in records if r["status"] == "failed")
    return {reason: counts[reason] for reason in REASONS if counts[reason]}


def add_reasons(total: dict[str, int], more: dict | None) -> dict[str, int]:
    """Sum of two {reason: count} maps (``more`` from a stats file; None for files written before the field)."""
    merged = Counter(total)
    merged.update({k: v for k, v in (more or {}).items() if isinstance(v, int)})
    return {reason: merged[reason] for reason in REASONS if merged[reason]}


def reasons_text(counts: dict[str, int]) -> str:
    """`` (failed: 2 smaller than --min-image-size, 1 unreadable or invalid)``, or '' with no failures."""
    return f" (failed: {', '.join(f'{n} {reason}' for reason, n in counts.items())})" if counts else ""
