"""Sensor-like corruption of depth training views (recipe ``data.sensor``): the exact depth of procedural scenes
made to look like a stereo or structured-light map.

- ``shadow`` K (pixels x metres of the view): a second camera K / z pixels of disparity to one side (drawn per
  view; its baseline x focal is K times U(0.5, 1.5)); pixels it cannot see, the bands beside the far side of
  each near edge whose width is the disparity jump, become invalid.
- ``edges`` P: each pixel at a depth discontinuity (tokzoo.datasets.depth_stats.discontinuities) becomes
  invalid with probability P (mixed pixels a sensor drops).
- ``blobs`` A: random discs of 0.7-2.5 px radius drop about a share A of the view (dark or shiny patches).
- ``noise`` S: each valid depth z is multiplied by exp(N(0, sigma^2)), sigma = S x z (metres), at most
  :data:`MAX_NOISE`: relative error growing with depth, as in stereo.

Invalid pixels are NaN, the depth modality's invalid value. The tokenizer is an autoencoder, so the corrupted
view is both its input and its target: it learns to keep a sensor map's holes and to reconstruct its valid
pixels, which is what it meets on real depth. Validation views stay exact.
"""

from __future__ import annotations

import numpy as np

from ...datasets.depth_stats import discontinuities

SENSOR_FIELDS = ("shadow", "edges", "blobs", "noise")
"""Fields of ``data.sensor``; each optional, 0 (off) by default."""

MAX_NOISE = 0.1
"""Largest relative noise sigma (the ``noise`` x depth product is capped here)."""


def corrupt_depth(depth: np.ndarray, spec: dict, rng: np.random.Generator) -> np.ndarray:
    """Corrupted float32 copy of ``depth`` (H, W) metres (NaN, inf, 0 or negative: invalid) per ``spec``
    (:data:`SENSOR_FIELDS`). Random numbers come from ``rng`` in a fixed order, so a seeded ``rng`` fixes the
    output bytes."""
    z = np.asarray(depth, np.float32)
    valid = np.isfinite(z) & (z > 0)
    z = np.where(valid, z, np.float32(np.nan))
    drop = np.zeros(z.shape, bool)
    mirror, scale = rng.uniform() < 0.5, rng.uniform(0.5, 1.5)
    if spec.get("shadow", 0) > 0:
        drop |= shadowed(z, spec["shadow"] * scale, mirror)
    draws = rng.uniform(size=z.shape)
    if spec.get("edges", 0) > 0:
        drop |= discontinuities(z) & (draws < spec["edges"])
    if spec.get("blobs", 0) > 0:
        drop |= _blobs(z.shape, spec["blobs"], rng)
    if spec.get("noise", 0) > 0:
        sigma = np.minimum(spec["noise"] * z, MAX_NOISE)
        z = z * np.exp(sigma * rng.standard_normal(z.shape).astype(np.float32))
    return np.where(drop, np.float32(np.nan), z).astype(np.float32)


def shadowed(z: np.ndarray, baseline_focal: float, mirror: bool = False) -> np.ndarray:
    """Pixels of ``z`` (H, W) metres, NaN invalid, that a second camera ``baseline_focal`` / z pixels of
    disparity to the right (to the left with ``mirror``) cannot see: pixel x lands at x - d(x) there, and is
    hidden when a pixel on its right lands there or further left: a nearer surface covers it. Bool (H, W)."""
    if mirror:
        return shadowed(z[:, ::-1], baseline_focal)[:, ::-1]
    disparity = np.where(np.isfinite(z), baseline_focal / np.where(np.isfinite(z), z, 1), 0)
    landing = np.arange(z.shape[1]) - disparity
    leftmost_right = np.minimum.accumulate(landing[:, ::-1], axis=1)[:, ::-1]  # min over x' >= x
    hidden = np.zeros(z.shape, bool)
    hidden[:, :-1] = leftmost_right[:, 1:] <= landing[:, :-1]  # a nearer surface lands on it or beyond
    return hidden & np.isfinite(z)


def _blobs(shape, share: float, rng: np.random.Generator) -> np.ndarray:
    """Bool ``shape`` (H, W): a Poisson number of discs (radius 0.7-2.5 px, random centres) covering about
    ``share`` of the pixels."""
    h, w = shape
    radii_mean_area = np.pi * (0.7**2 + 0.7 * 2.5 + 2.5**2) / 3  # E[pi r^2] for r ~ U(0.7, 2.5)
    n = int(rng.poisson(share * h * w / radii_mean_area))
    centres, radii = rng.uniform(0, [h, w], size=(n, 2)), rng.uniform(0.7, 2.5, size=n)
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    mask = np.zeros(shape, bool)
    for (cy, cx), r in zip(centres, radii):
        mask |= (rows - cy) ** 2 + (cols - cx) ** 2 <= r * r
    return mask
