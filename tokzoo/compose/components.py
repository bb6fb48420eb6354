"""Components: pretrained models seen as a stack of layers over a stream of tokens, frozen by default.

A :class:`Component` runs its model one layer at a time so that glue can read (and, for GATS, write) the
hidden states between layers:

    stream = component.begin(inputs)          # hidden state after the input embedding (layer 0)
    component.step(stream, i)                 # apply layer i (1 .. n_layers); stream.h is updated
    component.tokens(stream)                  # float (B, N, width(i)) view of the hidden state as tokens
    component.class_token(stream)             # (B, 1, width(i)): the class token, or the tokens' mean
    component.add(stream, delta)              # residual write of float (B, N, width(i)) into the stream
    component.finish(stream)                  # the model's output (an LM: logits (B, T, vocab))

``freeze()`` turns off ``requires_grad`` and puts the model in eval mode (and keeps it there through
``train()``); a frozen component's parameters are never handed to an optimizer. ``content_hash()`` is a
sha256 of its tensors, recorded in glue checkpoints and checked on load.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError


@dataclass
class Stream:
    """One component's running state: ``h`` its hidden state, ``layer`` the last layer applied (0 = embedding),
    ``extra`` what the adapter keeps between layers (attention mask, positions, prefix length ...)."""

    h: torch.Tensor
    layer: int = 0
    extra: dict = field(default_factory=dict)


@dataclass
class Frames:
    """Several images of one sample, each given at a time of the text: ``images`` (B, F, ...) as the encoder takes
    one image (B, ...), ``times`` int64 (B, F) the text position after which each frame is seen (not decreasing)."""

    images: torch.Tensor
    times: torch.Tensor


def model_folder(path) -> Path:
    """``path`` as a ``transformers`` model folder with safetensors weights, else a one-line CheckpointError."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path}: not a transformers model folder (no config.json)")
    if not (path / "model.safetensors").is_file():
        raise CheckpointError(f"{path}: no model.safetensors (pickled weights are not loaded)")
    return path


def tensor_hash(module: nn.Module) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes, bytes), in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class Component(nn.Module):
    """Base of the adapters. Subclasses set ``kind`` ("lm" or "encoder") and implement the stepping API."""

    kind = "encoder"

    def __init__(self, name: str, model: nn.Module, source: str):
        super().__init__()
        self.name, self.model, self.source = name, model, source
        self.frozen = False

    # -- freezing ----------------------------------------------------------------------------------
    def freeze(self) -> "Component":
        """requires_grad off for every parameter, eval mode now and after any later ``train()`` call."""
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.frozen = True
        self.model.eval()
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def content_hash(self) -> str:
        return tensor_hash(self.model)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    # -- stepping ------------------------------------------------------------------------------------
    n_layers: int

    def width(self, layer: int) -> int:
        """Channels of the tokens after ``layer`` (0 = embedding)."""
        raise NotImplementedError

    def begin(self, inputs) -> Stream:
        raise NotImplementedError

    def step(self, stream: Stream, index: int) -> Stream:
        raise NotImplementedError

    def tokens(self, stream: Stream) -> torch.Tensor:
        raise NotImplementedError

    def class_token(self, stream: Stream) -> torch.Tensor:
        """(B, 1, width) summary of the current tokens: a model's class token, else (here) their mean."""
        return self.tokens(stream).mean(dim=1, keepdim=True)

    def grid_tokens(self, stream: Stream) -> torch.Tensor:
        """The tokens on ``stream.extra["grid"]`` (row-major), without class / register tokens."""
        return self.tokens(stream)

    def add(self, stream: Stream, delta: torch.Tensor) -> Stream:
        raise NotImplementedError

    def finish(self, stream: Stream):
        raise NotImplementedError

    def run(self, stream: Stream, until: int) -> Stream:
        """Apply layers ``stream.layer + 1 .. until``."""
        for index in range(stream.layer + 1, until + 1):
            self.step(stream, index)
        return stream

    def hidden_states(self, inputs) -> list[torch.Tensor]:
        """Tokens after every layer: ``n_layers + 1`` float tensors (B, N_i, width(i)), embedding first."""
        stream = self.begin(inputs)
        states = [self.tokens(stream)]
        for index in range(1, self.n_layers + 1):
            states.append(self.tokens(self.step(stream, index)))
        return states

    def describe(self) -> dict:
        """Name, source, class, parameter count and content hash, as stored in glue checkpoints."""
        return {"name": self.name, "source": self.source, "adapter": type(self).__name__,
                "parameters": self.n_parameters(), "sha256": self.content_hash()}  # fmt: skip
