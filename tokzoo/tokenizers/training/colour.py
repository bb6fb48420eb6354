"""Colour jitter of rgb training views (recipe ``data.colour``): new colourings of the same photographs, so a
tokenizer trained on a few hundred photos fits their colours less and unseen photos' more.

- ``hue`` H (degrees): the chroma of every pixel is rotated by U(-H, H) degrees about the grey axis (in YIQ:
  luma kept, the I/Q plane rotated).
- ``saturation`` [lo, hi]: the chroma is scaled by U(lo, hi).

The view is both the tokenizer's input and its target, so nothing about it is lost; validation views stay exact.
"""

from __future__ import annotations

import numpy as np

COLOUR_FIELDS = ("hue", "saturation")
"""Fields of ``data.colour``; each optional (hue 0, saturation [1, 1]: off)."""

_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float64)
_FROM_YIQ = np.linalg.inv(_TO_YIQ)


def jitter_colour(view: np.ndarray, spec: dict, rng: np.random.Generator) -> np.ndarray:
    """uint8 (H, W, 3) sRGB ``view`` with its chroma rotated and scaled per ``spec`` (:data:`COLOUR_FIELDS`);
    the random numbers come from ``rng`` in a fixed order (angle, then scale), so a seeded ``rng`` fixes the
    output bytes."""
    angle = np.radians(rng.uniform(-1.0, 1.0) * spec.get("hue", 0.0))
    low, high = spec.get("saturation", [1.0, 1.0])
    scale = rng.uniform(low, high)
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    chroma = np.array([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
    matrix = _FROM_YIQ @ chroma @ _TO_YIQ  # one 3 x 3 colour matrix for the whole view
    out = view.astype(np.float64) @ matrix.T
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
