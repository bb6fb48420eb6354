"""Perception component: a ``transformers`` vision transformer (ViT, DINOv2, CLIP's vision tower) as a layer stack.

Loaded from a local folder (``config.json`` + ``model.safetensors``; never pickles), as a user downloads it
from the hub, e.g. ``facebook/dinov2-small`` or ``openai/clip-vit-base-patch16`` (the vision tower of a full
CLIP checkpoint is taken). Input contract: rgb uint8 (B, H, W, 3), any size; :meth:`normalize` resizes it
(bilinear, antialiased) to ``size`` x ``size`` (default the folder's preprocessor crop size, else the model's
``image_size``), scales to [0, 1] and
standardises with the folder's ``preprocessor_config.json`` mean / std (else the family's published ones).
Positions are interpolated by the model when ``size`` differs from its training size.

Layers: 0 = patch + position embeddings (CLIP: and its pre-norm), 1 .. L = the encoder blocks, L + 1 = the
final layer norm. :meth:`tokens` is every token (B, 1 + h * w, D), class token first;
:meth:`class_token` (B, 1, D) is what eP-ALM reads; :meth:`grid_tokens` the h * w patch tokens, row-major.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..io.safety import read_json_file
from ..limits import MAX_COMPONENT_PARAMETERS, count_parameters
from .components import Component, Stream, check_loaded, config_errors, load_reason, model_folder, transformers_config

# Published normalisation of each family (used when the folder has no preprocessor_config.json).
FAMILY_STATS = {
    "vit": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "dinov2": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "clip_vision_model": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
}


def load_vision_model(path: str | Path) -> nn.Module:
    """A ViT / DINOv2 / CLIP vision ``transformers`` model from a local folder (safetensors only)."""
    from transformers import AutoModel, CLIPVisionModel

    path = model_folder(path)
    try:
        config = transformers_config(path)
        model_type = config.model_type
        loader = CLIPVisionModel if model_type in ("clip", "clip_vision_model") else AutoModel
        extra = {"add_pooling_layer": False} if model_type == "vit" else {}  # an unused pooler, random if not saved
        if model_type in FAMILY_STATS or model_type == "clip":
            built = (
                (lambda: [CLIPVisionModel(getattr(config, "vision_config", config))])
                if loader is CLIPVisionModel
                else (lambda: [AutoModel.from_config(config, **extra)])
            )
            count_parameters(built, str(path), MAX_COMPONENT_PARAMETERS)
        model, info = loader.from_pretrained(
            str(path),
            use_safetensors=True,
            attn_implementation="sdpa",
            dtype=torch.float32,
            output_loading_info=True,
            **extra,
        )  # fp16 / bf16 checkpoints run in float32 like the glue
    except ConfigError as error:
        raise CheckpointError(str(error)) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError, *config_errors()) as error:
        raise CheckpointError(f"{path}: not loadable as a vision model ({load_reason(path, error)})") from None
    return check_loaded(path, model, info)


class VisionTransformer(Component):
    """A ``ViTModel``, ``Dinov2Model`` or ``CLIPVisionModel``; see the module docstring for inputs and layers."""

    kind = "encoder"

    def __init__(
        self, model: nn.Module, name: str = "vision", source: str = "", size: int | None = None, mean=None, std=None
    ):
        model_type = model.config.model_type
        if model_type not in FAMILY_STATS:
            raise ConfigError(
                f"component {name!r}: vision architecture {model_type!r} is not supported ({', '.join(FAMILY_STATS)})"
            )
        super().__init__(name, model, source or model_type)
        self.family = model_type
        core = getattr(model, "vision_model", model)  # module layouts differ across transformers versions
        stack = getattr(core, "encoder", core)
        self.embeddings = core.embeddings
        self.pre_norm = getattr(core, "pre_layrnorm", None)  # CLIP's spelling
        self.blocks = getattr(stack, "layers", None) or stack.layer
        self.final_norm = getattr(core, "post_layernorm", None) or core.layernorm
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
            raise ConfigError(f"component {name!r}: size must be a positive whole number of pixels, got {size!r}")
        self.size = size or int(model.config.image_size)
        self.patch = int(model.config.patch_size)
        if self.size % self.patch:
            raise ConfigError(f"component {name!r}: size {self.size} is not a multiple of the patch size {self.patch}")
        self.prefix = 1 + int(getattr(model.config, "num_register_tokens", 0) or 0)
        default_mean, default_std = FAMILY_STATS[model_type]
        self.register_buffer("mean", torch.tensor(mean or default_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std or default_std).view(1, 3, 1, 1), persistent=False)
        self.hidden_size = int(model.config.hidden_size)

    @classmethod
    def from_pretrained(cls, path, name: str = "vision", size: int | None = None) -> "VisionTransformer":
        model = load_vision_model(path)
        stats = Path(path) / "preprocessor_config.json"
        mean = std = None
        if stats.exists():  # a FIFO or device is refused by the reader, not skipped
            config = read_json_file(stats, CheckpointError)  # a regular file of at most 16 MiB (a FIFO would block)
            try:
                mean, std = config.get("image_mean"), config.get("image_std")
                crop = config.get("crop_size")
                crop = crop.get("height") if isinstance(crop, dict) else crop
            except (OSError, ValueError, AttributeError) as error:
                raise CheckpointError(f"{stats}: not a readable preprocessor config ({error})") from None
            for value in (mean, std):
                if value is not None and not (
                    isinstance(value, list) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value)
                ):
                    raise CheckpointError(f"{stats}: image_mean / image_std must be 3 numbers, got {value!r}")
            size = size if size is not None else (crop if isinstance(crop, int) and crop > 0 else None)
        return cls(model, name=name, source=str(path), size=size, mean=mean, std=std)

    @property
    def n_layers(self) -> int:
        return len(self.blocks) + 1

    def width(self, layer: int) -> int:
        return self.hidden_size

    def normalize(self, raw) -> torch.Tensor:
        """rgb uint8 (B, H, W, 3) -> float32 (B, 3, size, size), standardised."""
        x = torch.from_numpy(np.ascontiguousarray(raw)) if isinstance(raw, np.ndarray) else torch.as_tensor(raw)
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise ConfigError(
                f"component {self.name!r}: expected rgb uint8 (B, H, W, 3), got {x.dtype} {tuple(x.shape)}"
            )
        x = x.permute(0, 3, 1, 2).float() / 255.0
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return (x - self.mean.cpu()) / self.std.cpu()

    def begin(self, inputs) -> Stream:
        if isinstance(inputs, Stream):  # cached frozen layers: go on from them
            return Stream(inputs.h, inputs.layer, dict(inputs.extra))
        x = inputs if torch.is_tensor(inputs) and inputs.is_floating_point() else self.normalize(inputs)
        x = x.to(self.mean.device)
        interpolate = x.shape[-1] != self.model.config.image_size
        if self.family == "dinov2":  # always interpolates its positions
            h = self.embeddings(x)
        else:
            h = self.embeddings(x, interpolate_pos_encoding=interpolate)
        if self.pre_norm is not None:
            h = self.pre_norm(h)
        grid = (x.shape[-2] // self.patch, x.shape[-1] // self.patch)
        return Stream(h, 0, {"grid": grid})

    def step(self, stream: Stream, index: int) -> Stream:
        if index <= len(self.blocks):
            out = self.blocks[index - 1](stream.h, None)
            stream.h = out[0] if isinstance(out, tuple) else out
        else:
            stream.h = self.final_norm(stream.h)
        stream.layer = index
        return stream

    def tokens(self, stream: Stream) -> torch.Tensor:
        return stream.h

    def class_token(self, stream: Stream) -> torch.Tensor:
        return stream.h[:, :1]

    def grid_tokens(self, stream: Stream) -> torch.Tensor:
        return stream.h[:, self.prefix :]

    def add(self, stream: Stream, delta: torch.Tensor) -> Stream:
        stream.h = stream.h + delta
        return stream

    def finish(self, stream: Stream) -> torch.Tensor:
        """Every token after the last layer applied (B, prefix + h * w, D)."""
        return stream.h
