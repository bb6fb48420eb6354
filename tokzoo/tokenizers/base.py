"""The Tokenizer interface, shared by every modality, and its registry of architectures.

Every tokenizer answers the same way:

- ``encode(x)`` takes raw data in the modality's documented contract (``tok.contract``), one sample or
  a batch, and returns int64 token ids of shape (B, *tok.token_shape);
- ``decode(tokens)`` returns raw data in the same units, batch first;
- ``save_pretrained(dir)`` writes config.json (+ model.safetensors when it has weights) and
  ``Tokenizer.from_pretrained(dir)`` rebuilds it from the config alone.

Architectures register with :func:`register_architecture`; the config's ``"architecture"`` picks the class.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch

from ..errors import CheckpointError, ConfigError, TokzooError
from . import checkpoint

ARCHITECTURES: dict[str, type["Tokenizer"]] = {}


def register_architecture(name: str):
    """Class decorator: make ``cls`` the one rebuilt for configs whose ``"architecture"`` is ``name``."""

    def register(cls):
        cls.architecture = name
        ARCHITECTURES[name] = cls
        return cls

    return register


class Tokenizer:
    """Interface of every tokenizer. Subclasses set ``self.config`` and implement the abstract parts."""

    architecture: ClassVar[str]
    config: dict

    # -- what it is -------------------------------------------------------------------------------
    @property
    def modality(self) -> str:
        return self.config["modality"]

    @property
    def name(self) -> str:
        return self.config.get("name", self.modality)

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    @property
    def token_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def contract(self) -> str:
        """The exact input ``encode`` expects: dtype, range, units, shape, invalid values."""
        raise NotImplementedError

    @property
    def untrained(self) -> bool:
        return bool(self.config.get("untrained", False))

    # -- the job ----------------------------------------------------------------------------------
    def encode(self, x) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, tokens):
        raise NotImplementedError

    # -- persistence ------------------------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        """Tensors saved in model.safetensors (none for deterministic tokenizers)."""
        return {}

    def content_hash(self) -> str:
        """Changes whenever the tokens this tokenizer produces could change."""
        return checkpoint.content_hash(self.config, self.tensors())

    def save_pretrained(self, directory: str | Path) -> Path:
        return checkpoint.write_checkpoint(directory, self.config, self.tensors())

    @classmethod
    def from_config(cls, config: dict, directory: Path | None = None) -> "Tokenizer":
        """Build from a config; when ``directory`` is given, load and check its weights."""
        raise NotImplementedError

    @staticmethod
    def from_pretrained(directory: str | Path) -> "Tokenizer":
        directory = Path(directory)
        config = checkpoint.read_config(directory)
        from . import learned, structured, text  # noqa: F401  (register the built-in architectures)

        cls = ARCHITECTURES.get(config["architecture"])
        if cls is None:
            raise CheckpointError(
                f"{directory / checkpoint.CONFIG_NAME}: unknown architecture {config['architecture']!r}; "
                f"known: {sorted(ARCHITECTURES)}"
            )
        try:
            return cls.from_config(config, directory)
        except (ConfigError, KeyError, TypeError, ValueError) as error:
            if isinstance(error, TokzooError):
                message = str(error)
            else:
                message = f"{type(error).__name__}: {error}"
            raise CheckpointError(
                f"{directory / checkpoint.CONFIG_NAME}: cannot build the tokenizer ({message})"
            ) from None

    def describe(self) -> dict:
        """One row of facts for listings: name, modality, token shape, vocabulary, untrained."""
        return {
            "name": self.name,
            "modality": self.modality,
            "architecture": self.architecture,
            "token_shape": list(self.token_shape),
            "vocab_size": self.vocab_size,
            "untrained": self.untrained,
        }
