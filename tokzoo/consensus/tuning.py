"""Choosing the scorers' weights on validation scenes for a declared objective.

The objective: the lowest mean ``primary`` error (depth abs-rel) among the weightings whose mean ``limited``
error (a structure metric, e.g. floor planarity) is no worse than ``limit`` (e.g. greedy decoding's on the same
scenes). Why a constraint: abs-rel is mostly scale, which only a metric scorer (the depth network) sees; the
shape scorers (normals, planarity) are scale-free and buy structure, not abs-rel, so weights chosen for abs-rel
alone drop them and the maps lose the structure the shape scorers exist for.

>>> choose_weights({(0, 1): (0.33, 0.045), (1, 1): (0.35, 0.036), (1, 0): (0.41, 0.030)}, limit=0.040)
((1, 1), True)
"""

from __future__ import annotations

import math


def choose_weights(scores: dict, limit: float) -> tuple[object, bool]:
    """``scores``: weighting -> (mean primary error, mean limited error) on validation scenes. Returns the weighting
    of lowest primary error among those with limited error <= ``limit``, and True; when none qualifies, the one of
    lowest primary error and False (the caller says so). Ties go to the weighting listed first."""
    if not scores:
        raise ValueError("no weightings to choose from")
    ok = {w: s for w, s in scores.items() if math.isfinite(s[1]) and s[1] <= limit}
    pool = ok or scores
    best = min(pool, key=lambda w: (pool[w][0], list(scores).index(w)))
    return best, bool(ok)
