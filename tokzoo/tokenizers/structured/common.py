"""Shared machinery of the structured tokenizers: fixed-length rows of ids, PAD = 0, uniform bins.

A structured tokenizer turns one JSON-able structure into a row of ``length`` int64 ids: the ids the
structure needs, then PAD (id 0) to the end. No EOS is needed: the first PAD ends the sequence.
"""

from __future__ import annotations

import math
import numbers
from typing import ClassVar

import numpy as np
import torch

from tokzoo.errors import ConfigError, DtypeError, InputError, InvalidValueError, ShapeError
from tokzoo.indices import to_ids
from tokzoo.tokenizers.base import Tokenizer

PAD = 0


class StructuredTokenizer(Tokenizer):
    """Base of the deterministic tokenizers. Subclasses set ``self.config`` and ``self.length`` and
    implement ``parameters``, ``vocab_size``, ``contract``, ``_encode_one(sample) -> list[int]`` and
    ``_decode_one(row: list[int]) -> structure``."""

    modality_name: ClassVar[str]
    parameters: ClassVar[tuple[str, ...]]  # config fields passed to the constructor; missing ones take its defaults
    length: int

    @property
    def token_shape(self) -> tuple[int, ...]:
        return (self.length,)

    # -- the job ----------------------------------------------------------------------------------
    def encode(self, x) -> torch.Tensor:
        """One structure, or a list of them -> int64 tensor (B, length); one sample gives B = 1."""
        single = self._is_sample(x)
        samples = [x] if single else self._as_batch(x)
        rows = np.full((len(samples), self.length), PAD, dtype=np.int64)
        for i, sample in enumerate(samples):
            ids = self._labelled(None if single else i, self._encode_one, sample)
            rows[i, : len(ids)] = ids
        return torch.from_numpy(rows)

    def decode(self, tokens) -> list:
        """Ids of shape (length,) or (B, length), tensor or array -> list of B structures."""
        ids = to_ids(tokens, self.vocab_size, self.modality)
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2 or ids.shape[1] != self.length:
            raise ShapeError(
                self.modality, f"tokens must have shape ({self.length},) or (B, {self.length}), got {tuple(ids.shape)}"
            )
        return [
            self._labelled(i if len(ids) > 1 else None, self._decode_one, row) for i, row in enumerate(ids.tolist())
        ]

    def _is_sample(self, x) -> bool:
        return isinstance(x, dict)

    def _as_batch(self, x) -> list:
        if isinstance(x, (list, tuple)):
            return list(x)
        raise DtypeError(self.modality, f"expected a dict or a list of dicts, got {type(x).__name__}")

    def _labelled(self, index: int | None, function, argument):
        """Call ``function(argument)``; errors of batch item ``index`` say which item it was."""
        try:
            return function(argument)
        except InputError as error:
            if index is None:
                raise
            raise type(error)(error.source, f"item {index}: {error.reason}") from None

    # -- decoding helpers -------------------------------------------------------------------------
    def _take(self, row: list[int], position: int, first: int, count: int, what: str) -> int:
        """``row[position] - first``, or InvalidValueError unless it is one of the ``count`` ids from ``first``."""
        value = row[position] - first
        if not 0 <= value < count:
            raise InvalidValueError(
                self.modality,
                f"position {position}: id {row[position]} is not {what} (ids {first}..{first + count - 1})",
            )
        return value

    def _check_padding(self, row: list[int], start: int) -> None:
        for position in range(start, len(row)):
            if row[position] != PAD:
                raise InvalidValueError(
                    self.modality,
                    f"position {position}: id {row[position]} after the end of the sequence; expected PAD ({PAD})",
                )

    # -- persistence ------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict, directory=None) -> "StructuredTokenizer":
        """Rebuild from a config (no weights: ``directory`` is not read). Bad values raise ConfigError."""
        if not isinstance(config, dict):
            raise ConfigError(f"{cls.modality_name} config: expected a dict, got {type(config).__name__}")
        for field, expected in (("architecture", cls.architecture), ("modality", cls.modality_name)):
            if config.get(field, expected) != expected:
                raise ConfigError(f"{cls.modality_name} config: {field!r} must be {expected!r}, got {config[field]!r}")
        return cls(**{k: config[k] for k in cls.parameters if k in config})

    def _base_config(self, name: str | None) -> dict:
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigError(f"{self.modality_name} config: 'name' must be a non-empty string, got {name!r}")
        return {"architecture": self.architecture, "modality": self.modality_name, "name": name or self.modality_name}


# -- validation -----------------------------------------------------------------------------------
def check_int(owner: str, field: str, value, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high], else ConfigError naming ``owner`` and ``field``."""
    integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not integer or value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{owner} config: {field!r} must be an integer {bound}, got {value!r}")
    return int(value)


def real_number(source: str, what: str, value) -> float:
    """``value`` as a finite float; DtypeError for non-numbers (bools included), InvalidValueError for NaN/inf."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DtypeError(source, f"{what} must be a number, got {type(value).__name__} {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond float range
        raise InvalidValueError(
            source, f"{what} must be finite, got an integer of {len(str(abs(value)))} digits"
        ) from None
    if not math.isfinite(value):
        raise InvalidValueError(source, f"{what} must be finite, got {value}")
    return value


def array_of(source: str, what: str, value, kind: str) -> np.ndarray:
    """``value`` (list, numpy or torch) as a numpy array of integers (``kind="int"``) or reals (``"real"``).

    Ragged nesting raises ShapeError; other element types DtypeError (bools are not numbers here).
    """
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except ValueError:
        raise ShapeError(source, f"{what} is ragged (rows of different lengths)") from None
    if array.dtype == object:
        raise ShapeError(source, f"{what} is ragged or holds non-numbers")
    numeric = np.issubdtype(array.dtype, np.integer) or (kind == "real" and np.issubdtype(array.dtype, np.floating))
    if array.size and not numeric:
        expected = "integers" if kind == "int" else "numbers"
        raise DtypeError(source, f"{what} must hold {expected}, got dtype {array.dtype}")
    return array


# -- uniform bins on [0, 1] -----------------------------------------------------------------------
def to_bins(unit: np.ndarray, bins: int) -> np.ndarray:
    """Values in [0, 1] -> bin indices 0..bins-1 (bin b covers [b/bins, (b+1)/bins); 1 goes to the last)."""
    return np.minimum(np.floor(np.asarray(unit, dtype=np.float64) * bins), bins - 1).astype(np.int64)


def bin_centres(indices, bins: int) -> np.ndarray:
    """Bin indices -> centres in [0, 1]; within half a bin (0.5 / bins) of every value the bin holds."""
    return (np.asarray(indices, dtype=np.float64) + 0.5) / bins
