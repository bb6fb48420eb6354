"""Small picture helpers: colour maps and grids as uint8 arrays, saved with PIL."""

from __future__ import annotations

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
            canvas[top : top + picture.shape[0], left : left + picture.shape[1]] = picture
    return canvas


LEGIBLE_SIDE = 128
"""Cell side (px) the automatic ``scale`` of :func:`labelled_grid` reaches at least (64 px tiles are drawn 2x)."""


def labelled_grid(
    rows: list[list[np.ndarray]],
    columns: list[str],
    row_labels: list[str],
    groups: list[tuple[str, int]] = (),
    pad: int = 2,
    scale: int | None = None,
) -> np.ndarray:
    """:func:`grid` with a header per column (``columns``), optional group headers above them (``groups``: (label,
    columns spanned), left to right) and a label left of each row; uint8 (H, W, 3).

    Every tile is enlarged by ``scale`` (nearest pixels; None: the smallest integer making cells at least
    :data:`LEGIBLE_SIDE` px) and then by the integer factor that fills its cell, centred, so a 64 px reconstruction
    beside a 224 px source crop is drawn at the source's size, not in a corner of its cell."""
    from PIL import ImageDraw, ImageFont

    tiles = [[np.asarray(p) for p in row] for row in rows]
    largest = max(max(p.shape[:2]) for row in tiles for p in row)
    scale = scale or max(1, -(-LEGIBLE_SIDE // max(1, largest)))
    tiles = [[_enlarge(p, scale) for p in row] for row in tiles]
    cell_h = max(p.shape[0] for row in tiles for p in row)
    cell_w = max(p.shape[1] for row in tiles for p in row)
    body = grid([[_fit(p, cell_h, cell_w) for p in row] for row in tiles], pad)
    font = ImageFont.load_default(size=max(12, min(18, cell_h // 8)))
    line = int(font.size) + 5
    left = 8 + max(int(font.getlength(label)) for label in row_labels)
    top = line * (2 if groups else 1) + 2
    canvas = Image.new("RGB", (left + body.shape[1], top + body.shape[0]), "white")
    canvas.paste(Image.fromarray(body), (left, top))
    draw = ImageDraw.Draw(canvas)
    step_w, step_h = cell_w + pad, cell_h + pad

    def centred(text: str, x0: float, width: float, y: float) -> None:
        while len(text) > 1 and font.getlength(text) > width - 4:
            text = text[:-2] + "…"
        draw.text((x0 + (width - font.getlength(text)) / 2, y), text, fill="black", font=font)

    x = left + pad
    for label, span in groups:
        centred(label, x, span * step_w, 1)
        draw.line([(x + 2, line - 1), (x + span * step_w - 4, line - 1)], fill=(120, 120, 120))
        x += span * step_w
    for c, label in enumerate(columns):
        centred(label, left + pad + c * step_w, step_w, top - line)
    for r, label in enumerate(row_labels):
        draw.text((4, top + pad + r * step_h + step_h / 2 - line / 2), label, fill="black", font=font)
    return np.asarray(canvas)


def _enlarge(picture: np.ndarray, factor: int) -> np.ndarray:
    return picture if factor == 1 else picture.repeat(factor, axis=0).repeat(factor, axis=1)


def _fit(picture: np.ndarray, height: int, width: int) -> np.ndarray:
    """``picture`` enlarged by the integer factor that fits (height, width), centred on a white cell."""
    factor = max(1, min(height // picture.shape[0], width // picture.shape[1]))
    picture = _enlarge(picture, factor)
    cell = np.full((height, width, 3), 255, np.uint8)
    top, left = (height - picture.shape[0]) // 2, (width - picture.shape[1]) // 2
    cell[top : top + picture.shape[0], left : left + picture.shape[1]] = picture
    return cell


def text_picture(lines: list[str], width: int = 224, colours: list[tuple[int, int, int]] | None = None) -> np.ndarray:
    """Lines of text on white, uint8 (H, width, 3); ``colours[i]`` (optional) fills a swatch left of line i."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=12)
    step = 16
    image = Image.new("RGB", (width, step * max(1, len(lines)) + 6), "white")
    draw = ImageDraw.Draw(image)
    for i, text in enumerate(lines):
        x = 4
        if colours is not None and i < len(colours):
            draw.rectangle([4, 4 + i * step, 40, 4 + i * step + step - 3], fill=tuple(int(c) for c in colours[i]))
            x = 46
        draw.text((x, 3 + i * step), text, fill="black", font=font)
    return np.asarray(image)


def palette_picture(palette: dict) -> np.ndarray:
    """A palette dict (``{"colors": [[r, g, b], ...]}``) -> swatches with their RGB values."""
    colours = [tuple(int(round(c)) for c in colour) for colour in palette.get("colors", [])]
    return text_picture([f"{r}, {g}, {b}" for r, g, b in colours] or ["(no colours)"], colours=colours)


def metadata_picture(metadata: dict) -> np.ndarray:
    """A metadata dict (key -> number) -> one ``key: value`` line per key."""
    lines = [
        f"{key}: {value:.3g}" if isinstance(value, float) else f"{key}: {value}" for key, value in metadata.items()
    ]
    return text_picture(lines or ["(no values)"], width=260)
