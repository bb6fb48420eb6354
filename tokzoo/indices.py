"""Token ids: int64 in memory, the smallest safe integer dtype on disk, never float16 or bfloat16.

torch is imported where tensors are made, so that reading stored ids (``tokzoo inspect``) does not load it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

from .errors import DtypeError, InvalidValueError

if TYPE_CHECKING:
    import torch


def storage_dtype(vocab_size: int) -> np.dtype:
    """Smallest integer dtype that holds ids 0..vocab_size-1: uint8, uint16 (up to 65,536 codes) or int32."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    if vocab_size <= 2**8:
        return np.dtype(np.uint8)
    if vocab_size <= 2**16:
        return np.dtype(np.uint16)
    if vocab_size <= 2**31:
        return np.dtype(np.int32)
    raise ValueError(f"vocab_size {vocab_size} does not fit in int32")


def to_storage(tokens: torch.Tensor | np.ndarray, vocab_size: int) -> np.ndarray:
    """Token ids (any integer dtype) -> numpy array in ``storage_dtype(vocab_size)``, range-checked."""
    torch = sys.modules.get("torch")  # not imported: tokens cannot be a tensor
    if torch is not None and isinstance(tokens, torch.Tensor) and (tokens.is_floating_point() or tokens.is_complex()):
        raise DtypeError("tokens", f"token ids must be integers, got {tokens.dtype}")  # bf16 has no numpy dtype
    array = (
        tokens.detach().cpu().numpy() if torch is not None and isinstance(tokens, torch.Tensor) else np.asarray(tokens)
    )
    check_ids(array, vocab_size, "tokens")
    return array.astype(storage_dtype(vocab_size), copy=False)


def to_ids(tokens, vocab_size: int, source: str = "tokens") -> torch.Tensor:
    """Stored or user-given token ids -> int64 tensor, refusing floats and out-of-range ids."""
    import torch

    if isinstance(tokens, torch.Tensor):
        if tokens.is_floating_point() or tokens.is_complex():
            raise DtypeError(source, f"token ids must be integers, got {tokens.dtype}")
        tensor = tokens.long()
    else:
        array = np.asarray(tokens)
        check_ids(array, vocab_size, source)
        tensor = torch.from_numpy(array.astype(np.int64))
    if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) >= vocab_size):
        raise InvalidValueError(
            source, f"token ids must lie in [0, {vocab_size}), got [{int(tensor.min())}, {int(tensor.max())}]"
        )
    return tensor


def check_ids(array: np.ndarray, vocab_size: int, source: str) -> None:
    """Raise a typed error unless ``array`` holds integer ids in [0, vocab_size)."""
    if not np.issubdtype(array.dtype, np.integer):
        raise DtypeError(source, f"token ids must be integers, got {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= vocab_size):
        raise InvalidValueError(source, f"token ids must lie in [0, {vocab_size}), got [{array.min()}, {array.max()}]")


def item_counts(tokens: np.ndarray, pad_id: int, item_ndim: int = 1) -> np.ndarray:
    """Set-valued modalities: (..., N, *item_shape) ids padded with ``pad_id`` -> (...) int64 counts of real
    items, ``item_ndim = len(item_shape)`` (pad rows come last; a real row never holds ``pad_id``)."""
    real = tokens != pad_id
    for _ in range(item_ndim):
        real = real.all(axis=-1)
    return real.sum(axis=-1)


def unpad(items: np.ndarray, pad_id: int) -> np.ndarray:
    """One crop's items (N_max, *item_shape) padded with ``pad_id`` -> the real ones (N, *item_shape)."""
    return items[: int(item_counts(items, pad_id, items.ndim - 1))]
