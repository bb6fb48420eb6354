"""Perception components: the encoder of a tokzoo learned tokenizer (conv or ViT family) as a layer stack.

Inputs are the modality's raw values (e.g. rgb uint8 (B, H, W, 3)) or, with ``normalized=True``, what the
tokenizer's codec makes of them (float32 (B, C, H, W)). Tokens are the spatial positions of a feature map,
row-major: (B, h * w, C). A conv encoder's layers are the items of its ``layers`` Sequential (strided convs,
residual blocks, the final norm / activation / 1x1 projection), so token count and width change with depth.
A ViT encoder's layers are patch embedding + positions (0), its blocks, the final norm, the latent projection.
"""

from __future__ import annotations

import torch
from einops import rearrange

from ..errors import ConfigError
from ..tokenizers.models.conv import ConvEncoder
from ..tokenizers.models.vit import ViTEncoder, sincos_2d
from .components import Component, Stream


class TokenizerEncoder(Component):
    """``tokenizer.encoder`` of a :class:`tokzoo.tokenizers.learned.LearnedTokenizer` (conv or ViT family)."""

    kind = "encoder"

    def __init__(self, tokenizer, name: str | None = None, source: str | None = None):
        encoder = tokenizer.encoder
        if not isinstance(encoder, (ConvEncoder, ViTEncoder)):
            raise ConfigError(
                f"component {name or tokenizer.config['name']!r}: encoder family "
                f"{type(encoder).__name__} has no layer-by-layer adapter (conv and vit do)"
            )
        super().__init__(name or tokenizer.config["name"], encoder, source or tokenizer.config["name"])
        self.codec = tokenizer.codec
        self._tokenizer = (
            tokenizer,
        )  # a tuple: not a submodule, so its quantizer/decoder are no part of the component
        self.input_size = tuple(tokenizer.config["input_size"])
        self.is_vit = isinstance(encoder, ViTEncoder)
        self._widths = self._probe_widths()

    @property
    def n_layers(self) -> int:
        if self.is_vit:
            return len(self.model.trunk.blocks) + 2
        return len(self.model.layers)

    def _probe_widths(self) -> list[int]:
        with torch.no_grad():
            x = torch.zeros(1, self.codec.in_channels, *self.input_size)
            return [t.shape[-1] for t in self.hidden_states(x)]

    def width(self, layer: int) -> int:
        return self._widths[layer]

    def normalize(self, raw) -> torch.Tensor:
        """Raw modality values (B, ...) -> float32 (B, C, H, W) through the tokenizer's codec."""
        return self.codec.to_model(raw)

    @property
    def tokenizer(self):
        """The whole tokenizer (its encoder is this component's model), for the component's own task metric."""
        return self._tokenizer[0]

    def begin(self, inputs) -> Stream:
        if isinstance(inputs, Stream):  # a state computed earlier (frozen layers cached per input): go on from it
            return Stream(inputs.h, inputs.layer, dict(inputs.extra))
        x = inputs if torch.is_tensor(inputs) and inputs.is_floating_point() else self.normalize(inputs)
        if not self.is_vit:
            return Stream(x, 0, {"grid": tuple(x.shape[-2:])})
        h, w = self.model.token_grid(x.shape)
        p = self.model.downsample
        patches = rearrange(x, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=p, p2=p)
        tokens = self.model.patch_embed(patches)
        tokens = tokens + sincos_2d(h, w, self.model.trunk.width, x.device).to(tokens.dtype)
        return Stream(tokens, 0, {"grid": (h, w)})

    def step(self, stream: Stream, index: int) -> Stream:
        if not self.is_vit:
            stream.h = self.model.layers[index - 1](stream.h)
            stream.extra["grid"] = tuple(stream.h.shape[-2:])
        else:
            depth = len(self.model.trunk.blocks)
            if index <= depth:
                stream.h = self.model.trunk.blocks[index - 1](stream.h)
            elif index == depth + 1:
                stream.h = self.model.trunk.norm(stream.h)
            else:
                stream.h = self.model.to_latent(stream.h)
        stream.layer = index
        return stream

    def tokens(self, stream: Stream) -> torch.Tensor:
        return stream.h if self.is_vit else rearrange(stream.h, "b c h w -> b (h w) c")

    def add(self, stream: Stream, delta: torch.Tensor) -> Stream:
        if self.is_vit:
            stream.h = stream.h + delta
        else:
            h, w = stream.extra["grid"]
            stream.h = stream.h + rearrange(delta, "b (h w) c -> b c h w", h=h, w=w)
        return stream

    def finish(self, stream: Stream) -> torch.Tensor:
        """The latent (B, latent_dim, h, w), as the tokenizer's encoder returns it."""
        if self.is_vit:
            h, w = stream.extra["grid"]
            return rearrange(stream.h, "b (h w) d -> b d h w", h=h, w=w)
        return stream.h
