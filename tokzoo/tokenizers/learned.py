"""LearnedTokenizer: modality codec -> encoder -> quantizer -> decoder, rebuilt from its config alone.

Config (the ``config.json`` of a saved tokenizer)::

    {"architecture": "learned", "modality": "depth", "name": "depth",
     "model": {"preset": "conv-small", "family": "conv", ...hyperparameters},
     "latent_dim": 32, "quantizer": {"type": "fsq", "levels": [8, 5, 5, 5]},
     "input_size": [224, 224], "normalization": {"min_depth": 0.1, "max_depth": 100.0},
     "loss": "smooth_l1", "untrained": false, "provenance": {...}}

``model`` always holds the resolved family and hyperparameters, so later changes to the preset
table never change a saved tokenizer.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError, ShapeError, TokzooError
from ..indices import to_ids
from ..limits import check_tokenizer_config, count_parameters
from ..modalities import get_modality
from .base import Tokenizer, register_architecture
from .checkpoint import read_tensors
from .models import build_decoder, build_encoder, prepare_for_inference, resolve_preset
from .quantizers import build_quantizer


def resolve_config(config: dict) -> dict:
    """Fill ``config["model"]`` with the preset's family and hyperparameters; check required fields."""
    for field in ("modality", "model", "latent_dim", "quantizer", "input_size"):
        if field not in config:
            raise ConfigError(f"tokenizer config: missing field {field!r}")
    if not isinstance(config["model"], dict):
        raise ConfigError(f"tokenizer config: 'model' must be a mapping, got {type(config['model']).__name__}")
    model = dict(config["model"])
    if "family" not in model:
        if "preset" not in model:
            raise ConfigError("tokenizer config: 'model' needs a 'preset' or a 'family'")
        preset = model.pop("preset")
        model = {"preset": preset, **resolve_preset(preset, **model)}
    resolved = {"architecture": "learned", "name": config["modality"], "normalization": {}, **config, "model": model}
    check_tokenizer_config(resolved)  # sizes and types, before anything is allocated
    return resolved


@register_architecture("learned")
class LearnedTokenizer(nn.Module, Tokenizer):
    """A learned tokenizer for one modality. See the module docstring for its config."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = resolve_config(config)
        self.codec = get_modality(self.config["modality"])(**self.config["normalization"])
        hyperparameters = {k: v for k, v in self.config["model"].items() if k not in ("preset", "family")}
        family, latent_dim = self.config["model"]["family"], int(self.config["latent_dim"])
        count_parameters(
            lambda: (
                build_encoder(family, self.codec.in_channels, latent_dim, **hyperparameters),
                build_decoder(family, self.codec.out_channels, latent_dim, **hyperparameters),
            )
        )
        self.encoder = build_encoder(family, self.codec.in_channels, latent_dim, **hyperparameters)
        self.quantizer = build_quantizer(self.config["quantizer"], latent_dim)
        self.decoder = build_decoder(family, self.codec.out_channels, latent_dim, **hyperparameters)
        # channels_last is the fastest conv layout on CPU (1.4-1.5x, benchmarks/RESULTS.md) and on GPU; one
        # layout for training and inference keeps the tokens identical between them.
        prepare_for_inference(self)

    @classmethod
    def from_defaults(cls, modality: str, seed: int = 0, name: str | None = None, **overrides) -> "LearnedTokenizer":
        """Zoo tokenizer ``name`` (default: the modality's own) with random weights from ``seed``, marked untrained."""
        name = name or modality
        config = {
            "modality": modality,
            "name": name,
            **get_modality(modality).default_tokenizer(name),
            **overrides,
            "untrained": True,
            "provenance": {"seed": seed, "steps": 0},
        }
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(config)

    @classmethod
    def from_config(cls, config: dict, directory: Path | None = None) -> "LearnedTokenizer":
        tokenizer = cls(config)
        if directory is not None:
            tokenizer.load_state_dict(read_tensors(directory, tokenizer.state_dict()))
        return tokenizer

    # -- facts ------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def token_shape(self) -> tuple[int, ...]:
        return self.token_shape_for(self.config["input_size"])

    def token_shape_for(self, input_size) -> tuple[int, ...]:
        """Token shape for one sample of spatial size (H, W) (or (C,) for vector modalities)."""
        positions = math.prod(self.encoder.token_grid(tuple(input_size)))
        residual = self.quantizer.tokens_per_position
        return (positions,) if residual == 1 else (positions, residual)

    @property
    def contract(self) -> str:
        return self.codec.contract

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def tensors(self) -> dict[str, torch.Tensor]:
        return self.state_dict()

    # -- training path ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor):
        """Normalised batch (B, C, ...) -> (reconstruction, indices (B, N[, Q]), dict of quantizer losses)."""
        z = self.encoder(x)
        grid = z.shape[2:]
        quantized = self.quantizer(z.flatten(2).transpose(1, 2))
        z_q = quantized.quantized.transpose(1, 2).reshape(z.shape[0], z.shape[1], *grid)
        return self.decoder(z_q), quantized.indices, quantized.losses

    # -- the Tokenizer interface ------------------------------------------------------------------
    def encode(self, x) -> torch.Tensor:
        """Raw values (see ``contract``) -> int64 ids (B, *token_shape) on the model's device."""
        return self.encode_normalized(self.codec.to_model(x))

    def encode_normalized(self, batch: torch.Tensor) -> torch.Tensor:
        """``encode`` for a batch already passed through ``self.codec.to_model`` (float32 (B, C, ...)).

        Lets a pipeline validate and normalise in worker processes and run only the model here.
        """
        self._require_initialised()
        with torch.inference_mode(), _eval(self):
            z = self.encoder(torch.as_tensor(batch).to(self.device))
            return self.quantizer(z.flatten(2).transpose(1, 2)).indices

    def decode(self, tokens, input_size=None):
        """Ids (B, *token_shape) or one sample's ids -> raw values (numpy, batch first).

        ``input_size`` (H, W) is needed only when the tokens come from a size other than the configured one
        and their grid is not square.
        """
        ids = to_ids(tokens, self.vocab_size, f"{self.name} tokens")
        per_sample_ndim = 1 if self.quantizer.tokens_per_position == 1 else 2
        if ids.ndim == per_sample_ndim:
            ids = ids[None]
        if ids.ndim != per_sample_ndim + 1:
            raise ShapeError(
                f"{self.name} tokens", f"expected (B, {', '.join('N' * per_sample_ndim)}), got {tuple(ids.shape)}"
            )
        grid = self._grid(ids.shape[1], input_size)
        with torch.inference_mode(), _eval(self):
            codes = self.quantizer.indices_to_codes(ids.to(self.device))
            z_q = codes.transpose(1, 2).reshape(ids.shape[0], codes.shape[-1], *grid)
            return self.codec.from_model(self.decoder(z_q))

    def _grid(self, positions: int, input_size) -> tuple[int, ...]:
        grid = self.encoder.token_grid(tuple(input_size or self.config["input_size"]))
        if input_size is None and self.codec.family == "image" and math.prod(grid) != positions:
            side = math.isqrt(positions)
            if side * side != positions:
                raise ShapeError(
                    f"{self.name} tokens", f"{positions} tokens form no square grid; pass input_size=(H, W)"
                )
            grid = (side, side)
        if math.prod(grid) != positions:
            raise ShapeError(
                f"{self.name} tokens", f"{positions} tokens per sample, expected {math.prod(grid)} for grid {grid}"
            )
        if not positions:
            raise ShapeError(f"{self.name} tokens", "no tokens per sample: nothing to decode")
        self._check_decoded_size(grid)
        return grid

    def _check_decoded_size(self, grid: tuple[int, ...]) -> None:
        """ShapeError when decoding ``grid`` would hold more than tokzoo.limits.MAX_ACTIVATION activations (decoded
        pixels x model width): a token file of 10^7 ids per sample decodes to a map of gigapixels."""
        from ..limits import MAX_ACTIVATION

        configured = tuple(self.config["input_size"])
        scale = math.prod(configured) / max(1, math.prod(self.encoder.token_grid(configured)))
        model = self.config.get("model", {})
        width = model.get("width", model.get("hidden", 1)) if isinstance(model, dict) else 1
        activations = math.prod(grid) * scale * width
        if activations > MAX_ACTIVATION:
            raise ShapeError(
                f"{self.name} tokens",
                f"a grid of {'x'.join(map(str, grid))} tokens decodes to "
                f"{int(activations)} activations, over the limit of {MAX_ACTIVATION}",
            )

    def _require_initialised(self) -> None:
        buffers = [b for name, b in self.quantizer.named_buffers() if name.endswith("initted")]
        if not all(bool(b) for b in buffers):
            raise TokzooError(f"{self.name}: the VQ codebook was never initialised (train the tokenizer first)")


class _eval:
    """Context manager: eval mode inside, the previous mode restored after."""

    def __init__(self, module: nn.Module):
        self.module, self.was_training = module, module.training

    def __enter__(self):
        self.module.eval()

    def __exit__(self, *exc):
        self.module.train(self.was_training)
