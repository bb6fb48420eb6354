"""Tensors read from a safetensors file, checked against the tensors a model expects (names, shapes, dtype kinds,
finite values) before they are loaded. Every problem is a one-line :class:`~tokzoo.errors.CheckpointError`."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from tokzoo.errors import CheckpointError


def read_checked(path: str | Path, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file ``path``, exactly those of ``expected`` with its shapes, dtype kinds and
    finite values (:func:`check_tensors`, :func:`check_values`)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated ({e})") from None
    check_tensors(expected, tensors, path)
    check_values(expected, tensors, path)
    return tensors


def check_tensors(expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], where: object) -> None:
    """CheckpointError (one line, naming ``where``) unless ``tensors`` has exactly the names and shapes of ``expected``."""
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise CheckpointError(f"{where}: missing tensor(s) {missing[:3]}{' ...' if len(missing) > 3 else ''}")
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise CheckpointError(f"{where}: unexpected tensor(s) {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}")
    for name, reference in expected.items():
        if tuple(tensors[name].shape) != tuple(reference.shape):
            raise CheckpointError(
                f"{where}: tensor {name!r} has shape {tuple(tensors[name].shape)}, expected {tuple(reference.shape)}"
            )


def check_values(expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], where: object) -> None:
    """CheckpointError (one line, naming ``where`` and the tensor) unless each tensor of ``tensors`` has the dtype
    kind of ``expected``'s (floating point where a float is expected: an F32 tensor relabelled I32 in the header
    reads as integers) and floating-point tensors are finite (no NaN or infinity). Call after :func:`check_tensors`."""
    for name, reference in expected.items():
        tensor = tensors[name]
        if tensor.dtype.is_floating_point != reference.dtype.is_floating_point:
            raise CheckpointError(
                f"{where}: tensor {name!r} has dtype {str(tensor.dtype).removeprefix('torch.')}, "
                f"expected {str(reference.dtype).removeprefix('torch.')}"
            )
        if tensor.dtype.is_floating_point and tensor.numel() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{where}: tensor {name!r} holds NaN or infinite values (a diverged or damaged checkpoint); refused"
            )
