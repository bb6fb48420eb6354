"""Geometry helpers shared by the scene tests (rooms, outdoor, cluttered)."""

import numpy as np


def camera_rays(camera: dict) -> np.ndarray:
    """Camera-frame rays (H, W, 3) with z = 1 through each pixel centre."""
    rows, cols = np.mgrid[0 : camera["height"], 0 : camera["width"]]
    return np.stack(
        [(cols - camera["cx"]) / camera["fx"], (rows - camera["cy"]) / camera["fy"], np.ones(rows.shape)], -1
    )


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """``mask`` (H, W) bool grown by ``r`` pixels in every direction (wrapping at the borders)."""
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out |= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out
