"""Perception component: the encoder of a trained tokzoo.fm model (4M-style) over one image modality's tokens.

The model is read from its run folder (``config.json`` + ``model.safetensors``, :func:`tokzoo.fm.checkpoint.
load_model`). Inputs are the modality's raw values (rgb uint8 (B, H, W, 3)), turned into token ids by the
tokenizer named in the run's modality spec (content hash checked against the one the training data was made
with), as ``tokzoo tokenize`` made the fm training data; or the ids themselves, int64 (B, h * w).

The stream is the fm encoder's sequence as :meth:`tokzoo.fm.model.FourM.encode` builds it for a sample whose
only input is this modality, all of it: the context token, then the h * w tokens (embedding + sin-cos position
+ modality embedding). Layers: 0 = that embedded input, 1 .. L = the encoder blocks, L + 1 = the encoder's
final norm (what the fm decoder reads). :meth:`tokens` is the image tokens (B, h * w, D), row-major on the
token grid, without the context token (which still takes part in attention); :meth:`add` writes into them.
Only the parts the encoder uses are the component (token embedding of the modality, modality embeddings,
context token, blocks, norm): the decoder is no part of it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ..fm.checkpoint import load_model
from ..fm.model import FourM, sincos_positions
from .components import Component, Stream, tensor_hash


class FMImageEncoder(nn.Module):
    """The encoder side of a :class:`FourM` for an input of one image modality (shares the model's modules)."""

    def __init__(self, model: FourM, modality: str):
        super().__init__()
        names = [s.name for s in model.specs]
        if modality not in names:
            raise ConfigError(f"fm model has no modality {modality!r} (it has {', '.join(names)})")
        self.spec = model.specs[names.index(modality)]
        if self.spec.kind != "image":
            raise ConfigError(f"fm modality {modality!r} is a {self.spec.kind}, not an image token grid")
        self.modality_slot = names.index(modality)
        self.embedding = model.embeddings[modality]
        self.modality_embedding = model.modality_embedding
        self.context_token = model.context_token
        self.blocks = model.encoder
        self.norm = model.encoder_norm
        self.register_buffer("positions", sincos_positions(self.spec, model.config.dim), persistent=False)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """int64 (B, h * w) -> float (B, 1 + h * w, D): context token, then token + position + modality embedding."""
        x = self.embedding(ids) + self.positions + self.modality_embedding[self.modality_slot]
        return torch.cat([self.context_token.expand(ids.shape[0], 1, -1).to(x.dtype), x], 1)


class FMEncoder(Component):
    """The frozen-able encoder of a trained fm model, fed with ``modality`` (default rgb) tokens."""

    kind = "encoder"

    def __init__(self, model: FourM, tokenizer=None, modality: str = "rgb", name: str = "fm", source: str = "fm"):
        super().__init__(name, FMImageEncoder(model, modality), source)
        self.grid = tuple(self.model.spec.grid)
        self._tokenizer = (tokenizer,)  # not a submodule: only the ids it makes reach the component
        self._width = model.config.dim

    @classmethod
    def from_run(cls, run: str | Path, modality: str = "rgb", name: str = "fm") -> "FMEncoder":
        """The model of an fm run folder and the tokenizer its ``modality`` tokens were made with (hash checked)."""
        import tokzoo

        model = load_model(run)
        spec = next((s for s in model.specs if s.name == modality), None)
        if spec is None or not spec.tokenizer:
            raise ConfigError(f"{run}: fm model has no {modality!r} modality with a named tokenizer")
        tokenizer = tokzoo.load_tokenizer(spec.tokenizer, untrained_ok=spec.untrained)
        if spec.content_hash and tokenizer.content_hash() != spec.content_hash:
            raise ConfigError(
                f"{run}: {modality} tokenizer {spec.tokenizer!r} has content hash "
                f"{tokenizer.content_hash()[:12]}..., the model was trained on tokens of {spec.content_hash[:12]}..."
            )
        return cls(model, tokenizer, modality, name=name, source=str(run))

    @property
    def n_layers(self) -> int:
        return len(self.model.blocks) + 1

    def width(self, layer: int) -> int:
        return self._width

    def content_hash(self) -> str:
        """sha256 over the encoder's tensors and the input tokenizer's content hash."""
        tokenizer = self._tokenizer[0]
        extra = tokenizer.content_hash() if tokenizer is not None else "ids"
        return hashlib.sha256(f"{tensor_hash(self.model)}:{extra}".encode()).hexdigest()

    def normalize(self, raw) -> torch.Tensor:
        """Raw modality values (B, ...) -> token ids int64 (B, h * w) on the CPU, through the tokenizer."""
        tokenizer = self._tokenizer[0]
        if tokenizer is None:
            raise ConfigError(f"component {self.name!r}: built without a tokenizer, so it takes token ids only")
        chunks = [tokenizer.encode(raw[i : i + 256]).cpu() for i in range(0, len(raw), 256)]
        return torch.cat(chunks).reshape(len(raw), -1)

    def begin(self, inputs) -> Stream:
        if isinstance(inputs, Stream):  # cached frozen layers: go on from them
            return Stream(inputs.h, inputs.layer, dict(inputs.extra))
        ids = inputs if torch.is_tensor(inputs) and not inputs.is_floating_point() else self.normalize(inputs)
        ids = ids.reshape(ids.shape[0], -1).to(self.model.positions.device)
        if ids.shape[1] != self.grid[0] * self.grid[1]:
            raise ConfigError(
                f"component {self.name!r}: {ids.shape[1]} tokens per sample, the fm model's "
                f"{self.model.spec.name} grid {self.grid} has {self.grid[0] * self.grid[1]}"
            )
        return Stream(self.model.embed(ids), 0, {"grid": self.grid})

    def step(self, stream: Stream, index: int) -> Stream:
        if index <= len(self.model.blocks):
            mask = torch.ones(stream.h.shape[0], 1, 1, stream.h.shape[1], dtype=torch.bool, device=stream.h.device)
            stream.h = self.model.blocks[index - 1](stream.h, mask)
        else:
            stream.h = self.model.norm(stream.h)
        stream.layer = index
        return stream

    def tokens(self, stream: Stream) -> torch.Tensor:
        return stream.h[:, 1:]

    def add(self, stream: Stream, delta: torch.Tensor) -> Stream:
        stream.h = torch.cat([stream.h[:, :1], stream.h[:, 1:] + delta], 1)
        return stream

    def finish(self, stream: Stream) -> torch.Tensor:
        """The whole sequence (B, 1 + h * w, D), context token first."""
        return stream.h
