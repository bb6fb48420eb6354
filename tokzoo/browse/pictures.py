"""Pictures the browser shows besides the modality visualisers: crop boxes, token grids, frequency plots.

Every function returns uint8 (H, W, 3) arrays; :func:`write_png` writes one.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tokzoo.io.writes import write_file
from tokzoo.viz import colorize

BOX_COLOURS = [(255, 220, 0), (0, 220, 255), (255, 80, 200), (120, 255, 80), (255, 140, 0)]
"""Crop 0 (the centre crop) yellow, then cyan, magenta, green, orange (repeating)."""


THUMBNAIL_SIDE = 192
"""Longest side of the pictures a site shows per sample (sources, reconstructions, crop boxes): larger ones are
shrunk, so a page of a photo dataset loads thumbnails, not full-resolution PNGs."""
THUMBNAIL_BYTES = 30 * 1024
"""A thumbnail whose true-colour PNG is larger is stored with a 256-colour palette (photos: ~20 KB at 192 px)."""


def thumbnail(picture: np.ndarray, smooth: bool) -> Image.Image:
    """``picture`` (H, W, 3) shrunk to :data:`THUMBNAIL_SIDE` on its longest side when larger: area-averaged when
    ``smooth`` (photographs), nearest pixels otherwise (label colours stay exact)."""
    image = Image.fromarray(np.ascontiguousarray(picture))
    if max(image.size) > THUMBNAIL_SIDE:
        image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.BOX if smooth else Image.NEAREST)
    return image


def write_thumbnail(picture: np.ndarray, site: Path, path: Path, smooth: bool) -> None:
    """Save :func:`thumbnail` of ``picture`` as ``path`` inside ``site``, a PNG of at most about
    :data:`THUMBNAIL_BYTES` (through :func:`tokzoo.io.writes.write_file`)."""
    image = thumbnail(picture, smooth)
    data = _png_bytes(image)
    if len(data) > THUMBNAIL_BYTES and image.mode == "RGB":
        data = _png_bytes(image.quantize(256, method=Image.Quantize.FASTOCTREE))
    write_file(site, path, data)


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def write_png(picture: np.ndarray, site: Path, path: Path) -> None:
    """Save ``picture`` as ``path`` inside ``site`` (zlib level 3: half level 6's time for ~10% more bytes), through
    :func:`tokzoo.io.writes.write_file`: never through a link, never outside ``site``."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(picture)).save(buffer, format="PNG", compress_level=3)
    write_file(site, path, buffer.getvalue())


def with_crop_boxes(
    picture: np.ndarray, crops: np.ndarray | None, min_side: int = 160, max_side: int = THUMBNAIL_SIDE
) -> np.ndarray:
    """``picture`` of the full source (H, W, 3), enlarged by an integer factor to at least ``min_side`` px (or, when
    larger than ``max_side``, shrunk to it), with each crop row (top, left, height, width, hflip) drawn as a
    numbered box (``f``: flipped)."""
    longest = max(picture.shape[:2])
    if longest > max_side:
        scale = max_side / longest
        size = (max(1, round(picture.shape[1] * scale)), max(1, round(picture.shape[0] * scale)))
        image = Image.fromarray(picture).resize(size, Image.BOX)
    else:
        scale = max(1, -(-min_side // max(1, min(picture.shape[:2]))))
        scale = min(scale, max(1, max_side // longest))
        image = Image.fromarray(picture).resize((picture.shape[1] * scale, picture.shape[0] * scale), Image.NEAREST)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=11)
    for number, (top, left, height, width, hflip) in enumerate(np.asarray(crops if crops is not None else [])):
        colour = BOX_COLOURS[number % len(BOX_COLOURS)]
        box = [
            round(left * scale),
            round(top * scale),
            max(round(left * scale), round((left + width) * scale) - 1),
            max(round(top * scale), round((top + height) * scale) - 1),
        ]
        draw.rectangle(box, outline=colour, width=2 if number == 0 else 1)
        label = f"{number}{'f' if hflip else ''}"
        draw.rectangle([box[0], box[1], box[0] + 6 + font.getlength(label), box[1] + 13], fill=(0, 0, 0))
        draw.text((box[0] + 3, box[1]), label, fill=colour, font=font)
    return np.asarray(image)


def token_grid(
    ids: np.ndarray, vocab_size: int, grid: tuple[int, ...] | None = None, pad_id: int | None = None
) -> np.ndarray:
    """One crop's token ids as a picture: one pixel per token on the tokenizer's latent grid (``grid``:
    (h, w); default square when the count allows, else one row), coloured by id from 0 to vocab_size - 1;
    residual levels (last axis of (N, Q)) side by side; pad ids black. Items (N, T): one row per item."""
    ids = np.asarray(ids).astype(np.float64)
    if pad_id is not None:
        ids[ids == pad_id] = np.nan
    if ids.ndim == 2 and pad_id is not None:  # set-valued: (items, tokens per item)
        plane = ids
    else:
        levels = ids.reshape(ids.shape[0], -1)  # (positions, Q)
        h, w = grid if grid and int(np.prod(grid)) == len(levels) else _shape_of(len(levels))
        plane = np.concatenate([levels[:, q].reshape(h, w) for q in range(levels.shape[1])], axis=1)
    if plane.size == 0:
        return np.zeros((1, 1, 3), np.uint8)
    return colorize(plane, 0, max(vocab_size - 1, 1))


def _shape_of(n: int) -> tuple[int, int]:
    side = int(np.sqrt(n))
    return (side, side) if side * side == n else (1, n)


def frequency_plot(counts: np.ndarray, title: str, width: int = 560, height: int = 200) -> np.ndarray:
    """Two panels over a histogram of token ids (counts (vocab_size,) int): occurrences per id in id order,
    and the used ids ranked by frequency (log scale), with the used / vocabulary count in the title."""
    counts = np.asarray(counts, np.float64)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=11)
    used = int((counts > 0).sum())
    draw.text(
        (6, 2), f"{title}: {used} of {len(counts)} ids used, {int(counts.sum()):,} tokens", fill="black", font=font
    )
    panel_w, top, bottom = (width - 30) // 2, 20, height - 18
    log = np.log10(np.sort(counts[counts > 0])[::-1] + 1)
    for p, (values, label) in enumerate(((counts, "count per id (id order)"), (log, "log10 count, used ids by rank"))):
        x0 = 10 + p * (panel_w + 10)
        draw.rectangle([x0, top, x0 + panel_w, bottom], outline=(160, 160, 160))
        draw.text((x0 + 2, bottom + 3), label, fill=(60, 60, 60), font=font)
        peak = values.max() if len(values) and values.max() > 0 else 1.0
        edges = np.linspace(0, len(values), min(len(values), panel_w) + 1).astype(int)
        bars = [values[a:b].max() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:])]
        bar_w = panel_w / max(len(bars), 1)
        for i, value in enumerate(bars):
            if value > 0:
                y = min(bottom - 2, bottom - (bottom - top - 2) * value / peak)
                draw.rectangle(
                    [x0 + i * bar_w, y, x0 + (i + 1) * bar_w - (1 if bar_w > 3 else 0), bottom - 1], fill=(40, 120, 180)
                )
    return np.asarray(image)
