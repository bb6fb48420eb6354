"""Colour palette by k-means on pixels, k = 1..7 chosen per image (output: the palette tokenizer's dict)."""

from __future__ import annotations

import numpy as np

from tokzoo.errors import ConfigError

from .base import Labeler, register_labeler


def kmeans(pixels: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 30, restarts: int = 4):
    """Lloyd's k-means with k-means++ seeding, best of ``restarts`` runs. ``pixels`` float64 (N, 3) ->
    ``(centres (k, 3), labels (N,), sse)``; deterministic given ``rng``'s state."""
    runs = [_lloyd(pixels, k, rng, iterations) for _ in range(restarts)]
    return min(runs, key=lambda run: run[2])


def _squared_distances(pixels: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(N, 3) x (k, 3) -> (N, k) squared distances. The three channels are added in order as explicit array sums:
    the same values as ``((pixels[:, None] - centres[None]) ** 2).sum(-1)`` (numpy adds a 3-long axis in that order),
    without a reduction over a 3-long axis, which numpy runs slowly (most of the labeler's time)."""
    red, green, blue = ((pixels[:, c, None] - centres[None, :, c]) ** 2 for c in range(3))
    return red + green + blue


def _lloyd(pixels: np.ndarray, k: int, rng: np.random.Generator, iterations: int):
    centres = [pixels[rng.integers(len(pixels))]]
    for _ in range(1, k):
        d2 = _squared_distances(pixels, np.array(centres)).min(1)
        total = d2.sum()
        centres.append(
            pixels[rng.choice(len(pixels), p=d2 / total)] if total > 0 else pixels[rng.integers(len(pixels))]
        )
    centres = np.array(centres)
    for _ in range(iterations):
        labels = _squared_distances(pixels, centres).argmin(1)
        moved = np.array([pixels[labels == j].mean(0) if (labels == j).any() else centres[j] for j in range(k)])
        if np.allclose(moved, centres):
            break
        centres = moved
    labels = _squared_distances(pixels, centres).argmin(1)
    return centres, labels, float(((pixels - centres[labels]) ** 2).sum())


def palette(
    rgb: np.ndarray,
    max_colors: int = 7,
    max_rms: float = 8.0,
    min_gain: float = 0.1,
    seed: int = 0,
    max_pixels: int = 4096,
) -> dict:
    """rgb uint8 (H, W, 3) -> ``{"colors": [[r, g, b], ...], "weights": [...]}``, colours ordered by weight
    (fraction of pixels, descending).

    k-means runs for k = 1..``max_colors`` on up to ``max_pixels`` pixels drawn with ``seed``. The chosen k
    is the first one that already explains the image (RMS distance of pixels to their colour <= ``max_rms``
    uint8 units) or after which one more colour would cut the squared error by less than ``min_gain``
    (relative); else ``max_colors``. Same image and seed -> same palette.
    """
    rng = np.random.default_rng(seed)
    pixels = np.asarray(rgb).reshape(-1, 3)
    if len(pixels) > max_pixels:  # drawn before the float64 copy: a 64-megapixel image would take 1.5 GB
        pixels = pixels[rng.choice(len(pixels), max_pixels, replace=False)]
    pixels = pixels.astype(np.float64)
    fits = [kmeans(pixels, k, rng) for k in range(1, max_colors + 1)]
    chosen = max_colors
    for k in range(1, max_colors):
        sse, next_sse = fits[k - 1][2], fits[k][2]
        if np.sqrt(sse / len(pixels)) <= max_rms or next_sse > (1 - min_gain) * sse:
            chosen = k
            break
    centres, labels, _ = fits[chosen - 1]
    weights = np.bincount(labels, minlength=chosen) / len(labels)
    order = np.argsort(-weights, kind="stable")
    colors = np.clip(np.rint(centres[order]), 0, 255).astype(int)
    return {"colors": colors.tolist(), "weights": [round(float(w), 4) for w in weights[order]]}


@register_labeler
class KMeansPalette(Labeler):
    """Palette of 1..``max_colors`` colours per image (see :func:`palette`)."""

    name = "kmeans_palette"
    modality = "palette"
    default = True

    def __init__(self, max_colors: int = 7, max_rms: float = 8.0, min_gain: float = 0.1, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if not 1 <= max_colors or max_rms < 0 or not 0 <= min_gain < 1:
            raise ConfigError(
                f"kmeans_palette: need max_colors >= 1, max_rms >= 0, 0 <= min_gain < 1, "
                f"got {max_colors}, {max_rms}, {min_gain}"
            )
        self.max_colors, self.max_rms, self.min_gain, self.seed = max_colors, max_rms, min_gain, seed

    def _label(self, chunk):
        return [palette(rgb, self.max_colors, self.max_rms, self.min_gain, self.seed) for rgb in chunk["rgb"]]
