"""Structure statistics of depth maps, to compare procedural depth with real depth at equal resolution.

Both use inverse depth, which is affine over the pixels of a plane: slanted floors and walls count as neither
discontinuity nor thin structure, however fast their depth changes.
"""

from __future__ import annotations

import numpy as np

JUMP = 0.05
"""Second difference of inverse depth, relative to the inverse depth, that counts as a discontinuity."""

THIN = 0.1
"""How much nearer (relative) than the pixels ``reach`` away on both sides a thin structure's pixel must be."""


def _inverse(depth) -> np.ndarray:
    """1 / depth as float64 (H, W); NaN where depth is invalid (NaN, inf, 0 or negative)."""
    z = np.asarray(depth, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isfinite(z) & (z > 0), 1 / z, np.nan)


def discontinuities(depth, jump: float = JUMP) -> np.ndarray:
    """Bool (H, W): valid pixels where the second difference of inverse depth along a row or column exceeds
    ``jump`` x their inverse depth; a step marks the pixels on both of its sides. NaN neighbours mark nothing."""
    q = _inverse(depth)
    out = np.zeros(q.shape, bool)
    with np.errstate(invalid="ignore"):
        for axis in (0, 1):
            a, b, c = (np.moveaxis(q, axis, 0)[s] for s in (slice(None, -2), slice(1, -1), slice(2, None)))
            np.moveaxis(out, axis, 0)[1:-1] |= np.abs(a - 2 * b + c) > jump * b
    return out


def thin_structures(depth, reach: int = 2, nearer: float = THIN) -> np.ndarray:
    """Bool (H, W): valid pixels more than ``nearer`` (relative) nearer than both valid pixels ``reach`` away
    along a row or a column: structures up to ``2 reach - 1`` pixels wide in front of what lies behind."""
    q = _inverse(depth)  # nearer = larger
    out = np.zeros(q.shape, bool)
    with np.errstate(invalid="ignore"):
        for axis in (0, 1):
            a, b, c = (
                np.moveaxis(q, axis, 0)[s]
                for s in (slice(None, -2 * reach), slice(reach, -reach), slice(2 * reach, None))
            )
            np.moveaxis(out, axis, 0)[reach:-reach] |= (b > (1 + nearer) * a) & (b > (1 + nearer) * c)
    return out


def depth_structure(depth) -> dict:
    """``{"discontinuities", "thin", "invalid"}``: shares of all pixels of ``depth`` (H, W) that are discontinuities,
    thin-structure pixels, and invalid."""
    z = np.asarray(depth, np.float64)
    return {
        "discontinuities": float(discontinuities(z).mean()),
        "thin": float(thin_structures(z).mean()),
        "invalid": float(np.mean(~(np.isfinite(z) & (z > 0)))),
    }
