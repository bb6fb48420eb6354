"""Whether a model fits one actor's GPU, checked before it is moved there."""

from __future__ import annotations

from tokzoo.errors import ConfigError

HEADROOM = 1.5
"""Weights x this must fit a GPU: activations of a batch, the CUDA context and allocator slack need the rest."""


def tensor_bytes(tokenizer) -> int:
    """Bytes of a tokenizer's tensors (weights and buffers), from ``Tokenizer.tensors()``."""
    return sum(t.numel() * t.element_size() for t in tokenizer.tensors().values())


def check_fits(name: str, weights: int, gpu_memory: int) -> None:
    """Refuse in one line a model whose weights (bytes) x :data:`HEADROOM` exceed one GPU's memory (bytes)."""
    if weights * HEADROOM > gpu_memory:
        raise ConfigError(
            f"{name} has {weights / 2**30:.1f} GiB of weights, too big for one actor's GPU "
            f"({gpu_memory / 2**30:.1f} GiB, {HEADROOM}x the weights needed); use GPUs with more memory "
            "or a smaller model"
        )
