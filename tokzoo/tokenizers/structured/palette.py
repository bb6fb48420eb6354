"""Colour palette tokenizer: a count token, then each colour's r, g, b as binned uint8 values.

Id layout (``max_colors`` = M, ``bins`` = N): 0 = PAD; 1..M = "k colours follow" (id k);
M+1..M+N = channel bin 0..N-1 (shared by r, g and b). Row: ``[k, r1, g1, b1, ..., rk, gk, bk, PAD...]``,
length 1 + 3M, vocab_size 1 + M + N. With N = 256 (default) every uint8 value round-trips exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from tokzoo.errors import DtypeError, InvalidValueError, ShapeError
from tokzoo.tokenizers.base import register_architecture

from .common import StructuredTokenizer, array_of, check_int

CHANNELS = "rgb"


@register_architecture("binned_palette")
class PaletteTokenizer(StructuredTokenizer):
    """Colour palettes of 1..max_colors uint8 RGB colours, order kept, each channel in ``bins`` bins."""

    modality_name = "palette"
    parameters = ("bins", "max_colors", "name")

    def __init__(self, bins: int = 256, max_colors: int = 7, name: str | None = None):
        self.config = {
            **self._base_config(name),
            "bins": check_int("palette", "bins", bins, 2, 256),
            "max_colors": check_int("palette", "max_colors", max_colors, 1),
        }
        self.bins, self.max_colors = self.config["bins"], self.config["max_colors"]
        self.length = 1 + 3 * self.max_colors

    @property
    def vocab_size(self) -> int:
        return 1 + self.max_colors + self.bins

    @property
    def contract(self) -> str:
        return (
            f'A dict {{"colors": [[r, g, b], ...]}} (an optional "weights" entry is ignored and not '
            f"decoded) or a (k, 3) integer array (numpy or torch); 1 <= k <= {self.max_colors} colours, "
            f"each channel an integer in 0..255 (uint8 scale), order kept. A batch is a list of these or a "
            f"(B, k, 3) array. Each channel is binned into {self.bins} bins (bin = value * {self.bins} // 256); "
            f'decode gives {{"colors": [[r, g, b], ...]}} with each bin\'s middle integer'
            f"{' (exact)' if self.bins == 256 else ''}."
        )

    # -- encode -----------------------------------------------------------------------------------
    def _is_sample(self, x) -> bool:
        return isinstance(x, dict) or (isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 2)

    def _as_batch(self, x) -> list:
        if isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim != 3:
            raise ShapeError("palette", f"expected a (k, 3) or (B, k, 3) array, got shape {tuple(x.shape)}")
        if isinstance(x, (np.ndarray, torch.Tensor)):
            return list(x)
        return super()._as_batch(x)

    def _encode_one(self, sample) -> list[int]:
        colors = self._colors(sample)
        bins = colors * self.bins // 256
        return [len(colors)] + (bins.reshape(-1) + 1 + self.max_colors).tolist()

    def _colors(self, sample) -> np.ndarray:
        """Validated (k, 3) int64 colours of one sample."""
        if isinstance(sample, dict):
            unknown = sorted(set(sample) - {"colors", "weights"})
            if unknown:
                raise InvalidValueError(
                    "palette", f"unknown key(s) {unknown}; expected 'colors' (and optional 'weights')"
                )
            if "colors" not in sample:
                raise InvalidValueError("palette", "missing key 'colors'")
            sample = sample["colors"]
        elif not isinstance(sample, (np.ndarray, torch.Tensor)):
            raise DtypeError("palette", f"a palette is a dict or a (k, 3) array, got {type(sample).__name__}")
        colors = array_of("palette", "colors", sample, "int")
        if colors.size == 0:
            raise InvalidValueError("palette", "empty palette; at least one colour is needed")
        if colors.ndim != 2 or colors.shape[1] != 3:
            raise ShapeError("palette", f"colors must have shape (k, 3), got {colors.shape}")
        if len(colors) > self.max_colors:
            raise InvalidValueError("palette", f"{len(colors)} colours, more than max_colors = {self.max_colors}")
        bad = np.argwhere((colors < 0) | (colors > 255))
        if len(bad):
            i, c = bad[0]
            raise InvalidValueError("palette", f"colour {i} channel {CHANNELS[c]} is {colors[i, c]}, outside 0..255")
        return colors.astype(np.int64)

    # -- decode -----------------------------------------------------------------------------------
    def _decode_one(self, row: list[int]) -> dict:
        k = 1 + self._take(row, 0, 1, self.max_colors, "a colour count")
        values = [
            self._centre(self._take(row, p, 1 + self.max_colors, self.bins, "a channel bin"))
            for p in range(1, 1 + 3 * k)
        ]
        self._check_padding(row, 1 + 3 * k)
        return {"colors": [values[i : i + 3] for i in range(0, len(values), 3)]}

    def _centre(self, b: int) -> int:
        """Middle integer of the values v with v * bins // 256 == b."""
        low = -(-b * 256 // self.bins)
        high = -(-(b + 1) * 256 // self.bins) - 1
        return (low + high) // 2
