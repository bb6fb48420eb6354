"""Small picture helpers: colour maps and grids as uint8 arrays, saved with PIL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# Anchor colours of a perceptually ordered map (dark blue -> teal -> yellow), interpolated linearly.
_ANCHORS = np.array([[48, 18, 59], [40, 120, 180], [32, 190, 160], [160, 220, 60], [250, 230, 40]], dtype=np.float64)


def colorize(values: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    """float (H, W) -> uint8 (H, W, 3); NaN -> black. Range defaults to the finite values' 2nd-98th percentile."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros((*values.shape, 3), np.uint8)
    low = np.percentile(values[finite], 2) if low is None else low
    high = np.percentile(values[finite], 98) if high is None else high
    t = np.clip((values - low) / max(high - low, 1e-12), 0, 1) * (len(_ANCHORS) - 1)
    t = np.where(finite, t, 0)
    index = np.minimum(t.astype(int), len(_ANCHORS) - 2)
    frac = (t - index)[..., None]
    rgb = _ANCHORS[index] * (1 - frac) + _ANCHORS[index + 1] * frac
    rgb[~finite] = 0
    return rgb.round().astype(np.uint8)


def label_colors(labels: np.ndarray, ignore: int | None = 255) -> np.ndarray:
    """Integer ids (H, W) -> uint8 (H, W, 3) with a fixed colour per id; ``ignore`` -> black."""
    labels = np.asarray(labels).astype(np.int64)
    rng = np.random.default_rng(12345)
    palette = rng.integers(40, 256, size=(int(labels.max(initial=0)) + 1, 3)).astype(np.uint8)
    out = palette[np.clip(labels, 0, None)]
    if ignore is not None:
        out[labels == ignore] = 0
    return out


def grid(rows: list[list[np.ndarray]], pad: int = 2) -> np.ndarray:
    """Tile uint8 (H, W, 3) pictures row by row onto a white canvas, each cell as large as the largest."""
    height = max(p.shape[0] for row in rows for p in row)
    width = max(p.shape[1] for row in rows for p in row)
    columns = max(len(row) for row in rows)
    canvas = np.full((len(rows) * (height + pad) + pad, columns * (width + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            top, left = pad + r * (height + pad), pad + c * (width + pad)
            canvas[top:top + picture.shape[0], left:left + picture.shape[1]] = picture
    return canvas


def save_png(picture: np.ndarray, path: str | Path) -> Path:
    """Write ``picture`` to ``path`` in the format its extension names (PNG when none), never through a link."""
    import io

    from tokzoo.io.writes import write_output

    path, buffer = Path(path), io.BytesIO()
    Image.fromarray(picture).save(buffer, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
    return write_output(path, buffer.getvalue())
