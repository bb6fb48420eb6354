"""Quantizers over vector-quantize-pytorch, chosen by name, all answering the same way.

``build_quantizer(config, dim)`` returns a :class:`Quantizer`; calling it on ``z`` of shape (B, N, dim)
gives ``QuantizerOutput(quantized (B, N, dim) float32, indices (B, N) or (B, N, Q) int64, losses)``
where ``losses`` maps names to scalar tensors (empty for FSQ). Quantisation runs in float32 with
autocast off, so bf16 training never rounds integer ids.

Config examples (stored under ``"quantizer"`` in a tokenizer's config.json)::

    {"type": "fsq", "levels": [8, 5, 5, 5]}            # or {"type": "fsq", "codebook_size": 1024}
    {"type": "vq", "codebook_size": 4096}               # 4M defaults: cosine, dim 32, EMA 0.99, restarts
    {"type": "lfq", "codebook_size": 4096}
    {"type": "residual_fsq", "levels": [8, 5, 5, 5], "num_quantizers": 2}
    {"type": "residual_vq", "codebook_size": 1024, "num_quantizers": 2}
    {"type": "residual_lfq", "codebook_size": 1024, "num_quantizers": 2}
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from vector_quantize_pytorch import FSQ, LFQ, ResidualFSQ, ResidualLFQ, ResidualVQ, VectorQuantize

from ..errors import ConfigError
from ..limits import check_quantizer
from ..modalities.base import FSQ_LEVELS

# 4M's VQ settings: l2-normalised codebook of dim 32, EMA 0.99, restarts of dead codes, commitment 1.
VQ_DEFAULTS = dict(
    codebook_dim=32, decay=0.99, use_cosine_sim=True, kmeans_init=True, threshold_ema_dead_code=2, commitment_weight=1.0
)


class QuantizerOutput(NamedTuple):
    quantized: torch.Tensor
    indices: torch.Tensor
    losses: dict


class Quantizer(nn.Module):
    """One quantizer: ``forward(z) -> QuantizerOutput`` and ``indices_to_codes(indices) -> (B, N, dim)``.

    ``codebook_size`` is the number of distinct ids a token takes; ``tokens_per_position`` is 1, or the
    number of residual levels (then indices carry a trailing axis of that size).
    """

    def __init__(self, inner: nn.Module, kind: str, dim: int, codebook_size: int, tokens_per_position: int = 1):
        super().__init__()
        self.inner = inner
        self.kind = kind
        self.dim = dim
        self.codebook_size = codebook_size
        self.tokens_per_position = tokens_per_position

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        with torch.autocast(device_type=z.device.type, enabled=False):
            quantized, indices, losses = self._quantize(z.float())
        return QuantizerOutput(quantized.float(), indices.long(), losses)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=indices.device.type, enabled=False):
            return self._codes(indices.long()).float()

    def _quantize(self, z):
        raise NotImplementedError

    def _codes(self, indices):
        raise NotImplementedError


class FSQQuantizer(Quantizer):
    def _quantize(self, z):
        quantized, indices = self.inner(z)
        return quantized, indices, {}

    def _codes(self, indices):
        return self.inner.indices_to_codes(indices)

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """Exact inverse of ``indices_to_codes`` when there is no projection (dim == len(levels))."""
        if self.dim != self.inner.codebook_dim:
            raise ValueError("codes_to_indices needs dim == len(levels) (no projection)")
        return self.inner.codes_to_indices(codes.float()).long()


class ResidualFSQQuantizer(FSQQuantizer):
    def _codes(self, indices):
        return self.inner.get_output_from_indices(indices)


class VQQuantizer(Quantizer):
    def _quantize(self, z):
        quantized, indices, loss = self.inner(z)
        return quantized, indices, {"commitment": loss.sum()}

    def _codes(self, indices):
        return self.inner.get_output_from_indices(indices)


class LFQQuantizer(Quantizer):
    def _quantize(self, z):
        quantized, indices, entropy = self.inner(z)
        return quantized, indices, {"entropy": entropy.sum()}

    def _codes(self, indices):
        return self.inner.indices_to_codes(indices)


class ResidualLossQuantizer(Quantizer):
    """Residual VQ / LFQ: the library returns one loss per level; they are summed."""

    loss_name = "commitment"

    def _quantize(self, z):
        quantized, indices, losses = self.inner(z)
        return quantized, indices, {self.loss_name: losses.sum()}

    def _codes(self, indices):
        return self.inner.get_output_from_indices(indices)


def _fsq_levels(config: dict) -> list[int]:
    if "levels" in config:
        levels = [int(level) for level in config["levels"]]
        if not levels or min(levels) < 3:
            raise ConfigError(f"quantizer: FSQ levels must each be >= 3, got {config['levels']}")
        return levels
    size = config.get("codebook_size")
    if size not in FSQ_LEVELS:
        raise ConfigError(f"quantizer: FSQ needs 'levels' or a codebook_size in {sorted(FSQ_LEVELS)}, got {size}")
    return FSQ_LEVELS[size]


def _codebook_size(config: dict, kind: str) -> int:
    size = config.get("codebook_size")
    if not isinstance(size, int) or size < 2:
        raise ConfigError(f"quantizer: {kind} needs an integer codebook_size >= 2, got {size!r}")
    if kind.endswith("lfq") and size & (size - 1):
        raise ConfigError(f"quantizer: {kind} codebook_size must be a power of two, got {size}")
    return size


def _options(config: dict, allowed: set[str], kind: str) -> dict:
    options = {k: v for k, v in config.items() if k not in {"type", "levels", "codebook_size", "num_quantizers"}}
    unknown = set(options) - allowed
    if unknown:
        raise ConfigError(f"quantizer: unknown option(s) {sorted(unknown)} for {kind}; allowed: {sorted(allowed)}")
    return options


def _num_quantizers(config: dict, kind: str) -> int:
    count = config.get("num_quantizers")
    if not isinstance(count, int) or count < 1:
        raise ConfigError(f"quantizer: {kind} needs an integer num_quantizers >= 1, got {count!r}")
    return count


_VQ_OPTIONS = set(VQ_DEFAULTS) | {"kmeans_iters", "orthogonal_reg_weight", "sync_codebook"}
_LFQ_OPTIONS = {"entropy_loss_weight", "commitment_loss_weight", "diversity_gamma"}


def build_quantizer(config: dict, dim: int) -> Quantizer:
    """Build the quantizer that ``config["type"]`` names, for latents of size ``dim``; sizes are checked against
    :mod:`tokzoo.limits` first (an FSQ or LFQ builds its whole codebook)."""
    check_quantizer(config)
    kind = config.get("type")
    if kind == "fsq":
        _options(config, set(), kind)
        levels = _fsq_levels(config)
        return FSQQuantizer(FSQ(levels=levels, dim=dim), kind, dim, math.prod(levels))
    if kind == "residual_fsq":
        _options(config, set(), kind)
        levels, count = _fsq_levels(config), _num_quantizers(config, kind)
        inner = ResidualFSQ(levels=levels, num_quantizers=count, dim=dim)
        return ResidualFSQQuantizer(inner, kind, dim, math.prod(levels), count)
    if kind == "vq":
        options = {**VQ_DEFAULTS, "sync_codebook": False, **_options(config, _VQ_OPTIONS, kind)}
        size = _codebook_size(config, kind)
        return VQQuantizer(VectorQuantize(dim=dim, codebook_size=size, **options), kind, dim, size)
    if kind == "residual_vq":
        options = {**VQ_DEFAULTS, "sync_codebook": False, **_options(config, _VQ_OPTIONS, kind)}
        size, count = _codebook_size(config, kind), _num_quantizers(config, kind)
        inner = ResidualVQ(dim=dim, codebook_size=size, num_quantizers=count, **options)
        return ResidualLossQuantizer(inner, kind, dim, size, count)
    if kind == "lfq":
        size = _codebook_size(config, kind)
        inner = LFQ(dim=dim, codebook_size=size, **_options(config, _LFQ_OPTIONS, kind))
        return LFQQuantizer(inner, kind, dim, size)
    if kind == "residual_lfq":
        size, count = _codebook_size(config, kind), _num_quantizers(config, kind)
        inner = ResidualLFQ(dim=dim, codebook_size=size, num_quantizers=count, **_options(config, _LFQ_OPTIONS, kind))
        quantizer = ResidualLossQuantizer(inner, kind, dim, size, count)
        quantizer.loss_name = "entropy"
        return quantizer
    raise ConfigError(f"quantizer: unknown type {kind!r}; choose one of {sorted(QUANTIZER_TYPES)}")


QUANTIZER_TYPES = ("fsq", "residual_fsq", "vq", "residual_vq", "lfq", "residual_lfq")
