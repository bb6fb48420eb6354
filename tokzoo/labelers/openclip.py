"""Image encoders on ``open_clip``: OpenCLIP models and ImageBind's vision branch, as feature labelers.

Outputs follow features.py: dense float32 (h, w, C), one vector per patch, channels last (the
``dense_features`` contract); global float32 (D,) (the ``global_feature`` contract). Every image is
resized (shortest side, bicubic) and centre-cropped to the tower's input size by open_clip's eval
transform, so one batch may mix image sizes and every dense map has the same grid.

Specs (``create_labeler(spec)``):

- ``openclip_dense:MODEL@WEIGHTS`` / ``openclip_global:MODEL@WEIGHTS``. MODEL is an open_clip model
  name (``open_clip.list_models()``; OpenAI weights need the ``-quickgelu`` variant). WEIGHTS is a local
  ``.safetensors`` file, or a ``.pt`` / ``.pth`` / ``.bin`` file read with ``torch.load(weights_only=True)``
  (a CLIP state dict whose ``visual.*`` tensors are used, or the vision tower's alone), or an open_clip
  pretrained tag (``ViT-B-16@laion2b_s34b_b88k``, downloaded once into open_clip's cache).
  ``openclip_dense:hf-hub:ORG/REPO`` loads config and weights from the Hugging Face hub.
  Dense: patch tokens through ``ln_post`` and the projection, (h, w, embed_dim), the per-patch
  features in the joint image-text space. Global: the image embedding, L2-normalised, (embed_dim,).
- ``imagebind_dense:PATH`` / ``imagebind_global:PATH``. PATH is the official ``imagebind_huge.pth``
  (or a ``.safetensors`` file of the same tensors); default: where ImageBind's own code caches it.
  Only the vision tensors are used. ImageBind kept OpenCLIP ViT-H/14's image encoder frozen, so its
  vision branch is that ViT under other names; they are mapped onto an open_clip ``VisionTransformer``
  (LayerNorm eps 1e-6 as in ImageBind). The stem is a Conv3d with kernel and stride (2, p, p), no
  padding, applied to the image repeated as 2 frames: one output step, equal to a Conv2d whose weight is
  the Conv3d weight summed over its 2 time steps (exact, up to float rounding). The state dict does not
  say the head count: ``num_heads`` (16 for ImageBind-H) is a keyword of ``create_labeler``.
  Dense: patch tokens after the vision head's LayerNorm, unprojected, (16, 16, 1280) at 224 px for
  ImageBind-H, the analogue of DINOv2's ``x_norm_patchtokens``. 4M-21's ImageBind-H14 feature map is
  1280-d per patch, cut from the token sequence of a modified ImageBind that apple/ml-4m does not
  publish, so whether it applied that LayerNorm is not known. Global: ImageBind's image embedding
  (class token through the head's LayerNorm and projection, L2-normalised), (1024,) for ImageBind-H;
  with ``projected=False`` the 1280-d class token after the LayerNorm, not normalised (4M-21's
  ImageBind-H14-global has 1280 channels). Images are normalised with ImageBind's own CLIP mean/std
  (4M-21's tokenizer training fed it ImageNet-normalised images).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from tokzoo.errors import CheckpointError, ConfigError, TokzooError
from tokzoo.io.tensors import check_tensors
from tokzoo.tokenizers.checkpoint import read_state_dict

from .base import Labeler, register_labeler

IMAGEBIND_URL = "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"
STEM, TRUNK, HEAD = "modality_preprocessors.vision.", "modality_trunks.vision.", "modality_heads.vision."


def open_clip():
    """The ``open_clip`` module, or a one-line TokzooError saying how to install it."""
    try:
        import open_clip as module
    except ImportError:
        raise TokzooError("open_clip labelers need open_clip_torch: pip install 'tokzoo[labelers]'") from None
    return module


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_exact(module: torch.nn.Module, tensors: dict[str, torch.Tensor], where: object) -> None:
    """Load ``tensors`` into ``module``: the same names and shapes, or a one-line CheckpointError."""
    check_tensors(module.state_dict(), tensors, where)
    module.load_state_dict(tensors, strict=True)


def vision_tower(config: dict) -> torch.nn.Module:
    """An open_clip vision tower (randomly initialised) from a model config dict (``embed_dim``, ``vision_cfg``)."""
    from open_clip.model import _build_vision_tower  # open_clip_torch is pinned < 4 in the labelers extra

    return _build_vision_tower(config["embed_dim"], config["vision_cfg"], quick_gelu=config.get("quick_gelu", False))


def eval_transform(size, preprocess: dict | None = None):
    """open_clip's eval transform (PIL image -> float32 (3, S, S)) for input ``size``, OpenAI mean/std unless
    ``preprocess`` (open_clip ``PreprocessCfg`` fields) says otherwise."""
    open_clip()
    from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict

    cfg = {**merge_preprocess_dict(PreprocessCfg(), preprocess or {}), "size": size}
    return image_transform_v2(PreprocessCfg(**cfg), is_train=False)


class VisionTowerLabeler(Labeler):
    """A labeler around one open_clip vision tower (``self.visual``) and its eval transform.

    Subclasses implement ``_predict``: float32 pixels (B, 3, S, S) -> (B, ...) tensor.
    """

    model_backed = True
    default_checkpoint: ClassVar[str]

    def __init__(self, visual, transform, device: str = "cpu", batch_size: int = 8, reference: str = ""):
        super().__init__(device=device, batch_size=batch_size)
        self.visual = visual.to(self.device).eval()
        self.transform = transform
        self.reference = reference

    def _label(self, chunk):
        images = [Image.fromarray(np.asarray(image, dtype=np.uint8)) for image in chunk["rgb"]]
        pixels = torch.stack([self.transform(image) for image in images]).to(self.device)
        with torch.inference_mode():
            return list(self._predict(pixels).float().cpu().numpy())

    def _predict(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def patch_tokens(self, pixels: torch.Tensor, project: bool) -> torch.Tensor:
        """(B, 3, S, S) -> (B, h, w, C): patch tokens through ``ln_post`` (and ``proj`` if ``project``)."""
        visual = self.visual
        visual.output_tokens = True
        try:
            _, tokens = visual(pixels)
        finally:
            visual.output_tokens = False
        if visual.final_ln_after_pool:  # ln_post went to the pooled vector only
            tokens = visual.ln_post(tokens)
        if project:
            tokens = tokens @ visual.proj
        h, w = pixels.shape[-2] // visual.patch_size[0], pixels.shape[-1] // visual.patch_size[1]
        return tokens.reshape(len(tokens), h, w, -1)

    def describe(self) -> str:
        visual, arch = self.visual, type(self.visual).__name__
        if hasattr(visual, "transformer") and hasattr(visual, "grid_size"):
            heads = visual.transformer.resblocks[0].attn.num_heads
            arch = (
                f"ViT {visual.transformer.width}-d x {visual.transformer.layers} ({heads} heads), "
                f"patch {visual.patch_size[0]} at {visual.image_size[0]} px"
            )
        return f"{super().describe()} [open_clip {arch}, {self.reference}]"


def parse_openclip_spec(spec: str) -> tuple[str, str | None]:
    """``MODEL@WEIGHTS`` -> (MODEL, WEIGHTS); ``hf-hub:ORG/REPO`` -> (itself, None); else ConfigError."""
    if spec.startswith("hf-hub:"):
        return spec, None
    model, at, weights = spec.partition("@")
    if not (model and at and weights):
        raise ConfigError(
            f"open_clip spec {spec!r}: expected MODEL@WEIGHTS (a .safetensors/.pt file or an "
            "open_clip pretrained tag, e.g. ViT-B-16@laion2b_s34b_b88k) or hf-hub:ORG/REPO"
        )
    return model, weights


class OpenClipLabeler(VisionTowerLabeler):
    """Base of the OpenCLIP labelers: loading from ``MODEL@WEIGHTS`` or ``hf-hub:ORG/REPO``."""

    default_checkpoint = "ViT-B-16@laion2b_s34b_b88k"

    @classmethod
    def from_pretrained(cls, spec: str, device: str = "cpu", batch_size: int = 8, **kwargs):
        """Load the vision tower of ``spec`` (see the module docstring); ConfigError / CheckpointError in one line."""
        oc = open_clip()
        model_name, weights = parse_openclip_spec(str(spec))
        if weights is not None and model_name not in oc.list_models():
            raise ConfigError(f"unknown open_clip model {model_name!r} (open_clip.list_models() names them)")
        tags = oc.list_pretrained_tags_by_model(model_name) if weights is not None else []
        if weights is not None and weights not in tags:
            if not Path(weights).expanduser().is_file():
                raise CheckpointError(
                    f"{weights}: neither a file nor a pretrained tag of {model_name} "
                    f"(tags: {', '.join(tags) or 'none'})"
                )
            config = oc.get_model_config(model_name)
            visual = vision_tower(config)
            tensors = {k.removeprefix("module."): v for k, v in read_state_dict(weights).items()}
            if any(k.startswith("visual.") for k in tensors):
                tensors = {k.removeprefix("visual."): v for k, v in tensors.items() if k.startswith("visual.")}
            load_exact(visual, tensors, f"{weights} (as {model_name})")
            transform = eval_transform(visual.image_size, config.get("preprocess_cfg"))
        else:
            try:
                model, transform = oc.create_model_from_pretrained(model_name, pretrained=weights)
            except (RuntimeError, OSError, ValueError, KeyError) as error:
                raise CheckpointError(f"{spec}: cannot load an open_clip model ({_first_line(error)})") from None
            visual = model.visual
        return cls(visual, transform, device=device, batch_size=batch_size, reference=str(spec), **kwargs)


@register_labeler
class OpenClipDense(OpenClipLabeler):
    """OpenCLIP patch tokens through ``ln_post`` and the projection, (h, w, embed_dim)."""

    name = "openclip_dense"
    modality = "dense_features"

    def __init__(self, visual, transform, **kwargs):
        super().__init__(visual, transform, **kwargs)
        if not hasattr(visual, "attn_pool") or visual.attn_pool is not None or visual.pool_type not in ("tok", "avg"):
            raise ConfigError(
                f"{self.reference}: {self.name} needs a ViT tower with a class token and no "
                f"attentional pooler (got {type(visual).__name__}); openclip_global works"
            )

    def _predict(self, pixels):
        return self.patch_tokens(pixels, project=True)


@register_labeler
class OpenClipGlobal(OpenClipLabeler):
    """OpenCLIP image embedding (``encode_image``), L2-normalised, (embed_dim,)."""

    name = "openclip_global"
    modality = "global_feature"

    def _predict(self, pixels):
        return F.normalize(self.visual(pixels), dim=-1)


def _imagebind_table(width: int, patch: int, grid: int, hidden: int, out_dim: int, layers: int) -> list:
    """(ImageBind key, open_clip key, ImageBind shape, conversion) for every vision tensor."""
    d, same = width, (lambda t: t)
    table = [
        (STEM + "rgbt_stem.proj.1.weight", "conv1.weight", (d, 3, 2, patch, patch), lambda w: w.sum(dim=2)),
        (STEM + "cls_token", "class_embedding", (1, 1, d), lambda t: t.reshape(d)),
        (STEM + "pos_embedding_helper.pos_embed", "positional_embedding", (1, grid * grid + 1, d), lambda t: t[0]),
        (TRUNK + "pre_transformer_layer.0.weight", "ln_pre.weight", (d,), same),
        (TRUNK + "pre_transformer_layer.0.bias", "ln_pre.bias", (d,), same),
        (HEAD + "0.weight", "ln_post.weight", (d,), same),
        (HEAD + "0.bias", "ln_post.bias", (d,), same),
        (HEAD + "2.weight", "proj", (out_dim, d), lambda w: w.t()),
    ]
    parts = [  # ImageBind block name, open_clip block name, shape
        ("norm_1.weight", "ln_1.weight", (d,)),
        ("norm_1.bias", "ln_1.bias", (d,)),
        ("attn.in_proj_weight", "attn.in_proj_weight", (3 * d, d)),
        ("attn.in_proj_bias", "attn.in_proj_bias", (3 * d,)),
        ("attn.out_proj.weight", "attn.out_proj.weight", (d, d)),
        ("attn.out_proj.bias", "attn.out_proj.bias", (d,)),
        ("norm_2.weight", "ln_2.weight", (d,)),
        ("norm_2.bias", "ln_2.bias", (d,)),
        ("mlp.fc1.weight", "mlp.c_fc.weight", (hidden, d)),
        ("mlp.fc1.bias", "mlp.c_fc.bias", (hidden,)),
        ("mlp.fc2.weight", "mlp.c_proj.weight", (d, hidden)),
        ("mlp.fc2.bias", "mlp.c_proj.bias", (d,)),
    ]
    for i in range(layers):
        table += [
            (f"{TRUNK}blocks.{i}.{ib}", f"transformer.resblocks.{i}.{oc}", shape, same) for ib, oc, shape in parts
        ]
    return table


def imagebind_vision(state: dict[str, torch.Tensor], where: object, num_heads: int = 16) -> torch.nn.Module:
    """ImageBind's vision tensors (``modality_*.vision.*``; others ignored) -> a loaded open_clip VisionTransformer.

    Sizes come from the tensors (width, patch, grid, depth, MLP width, output dim); ``num_heads`` from the
    caller. Missing, unexpected or misshapen vision tensors raise a one-line CheckpointError.
    """
    vision = {k: v for k, v in state.items() if k.startswith((STEM, TRUNK, HEAD))}
    if not vision:
        raise CheckpointError(f"{where}: holds no ImageBind vision tensors ({STEM}*); not an ImageBind checkpoint")

    def need(key: str) -> torch.Tensor:
        if key not in vision:
            raise CheckpointError(f"{where}: missing ImageBind tensor {key!r}")
        return vision[key]

    stem, pos = need(STEM + "rgbt_stem.proj.1.weight"), need(STEM + "pos_embedding_helper.pos_embed")
    out_dim = need(HEAD + "2.weight").shape[0]
    if stem.ndim != 5 or stem.shape[1:3] != (3, 2) or stem.shape[3] != stem.shape[4]:
        raise CheckpointError(
            f"{where}: ImageBind stem {STEM}rgbt_stem.proj.1.weight has shape {tuple(stem.shape)}, "
            "expected a Conv3d (width, 3, 2, p, p)"
        )
    width, patch = stem.shape[0], stem.shape[3]
    grid = math.isqrt(max(pos.shape[1] - 1, 0)) if pos.ndim == 3 else 0
    if grid < 1 or pos.shape[1] != grid * grid + 1:
        raise CheckpointError(
            f"{where}: ImageBind position embedding has shape {tuple(pos.shape)}, expected (1, 1 + g*g, width)"
        )
    blocks = {int(m.group(1)) for k in vision if (m := re.match(re.escape(TRUNK) + r"blocks\.(\d+)\.", k))}
    layers = max(blocks) + 1 if blocks else 0
    hidden = need(f"{TRUNK}blocks.0.mlp.fc1.weight").shape[0]
    if num_heads < 1 or width % num_heads:
        raise ConfigError(f"{where}: num_heads={num_heads} does not divide the vision width {width}")
    table = _imagebind_table(width, patch, grid, hidden, out_dim, layers)
    for key, _, shape, _ in table:
        if tuple(need(key).shape) != shape:
            raise CheckpointError(
                f"{where}: ImageBind tensor {key!r} has shape {tuple(vision[key].shape)}, expected {shape}"
            )
    unexpected = sorted(set(vision) - {key for key, *_ in table})
    if unexpected:
        raise CheckpointError(
            f"{where}: unexpected ImageBind vision tensor(s) {unexpected[:3]}; not ImageBind's ViT layout"
        )
    visual = vision_tower(
        {
            "embed_dim": out_dim,
            "vision_cfg": {
                "image_size": grid * patch,
                "patch_size": patch,
                "width": width,
                "layers": layers,
                "head_width": width // num_heads,
                "mlp_ratio": hidden / width,
                "norm_kwargs": {"eps": 1e-6},
            },
        }
    )
    load_exact(visual, {oc: convert(vision[ib].float()) for ib, oc, _, convert in table}, where)
    return visual


class ImageBindLabeler(VisionTowerLabeler):
    """Base of the ImageBind labelers: loading ImageBind's vision branch from its state dict."""

    default_checkpoint = "~/.cache/imagebind_checkpoints/imagebind_huge.pth"  # where ImageBind's code puts it

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", batch_size: int = 8, num_heads: int = 16, **kwargs):
        """Load the vision branch from ``path`` (see the module docstring); CheckpointError in one line."""
        where = Path(path).expanduser()
        if not where.is_file():
            raise CheckpointError(
                f"{path}: no such file; {cls.name} reads ImageBind's imagebind_huge.pth "
                f"({IMAGEBIND_URL}, 4.5 GB) or a safetensors file of its tensors"
            )
        open_clip()
        vision = {k: v for k, v in read_state_dict(where).items() if k.startswith((STEM, TRUNK, HEAD))}
        visual = imagebind_vision(vision, where, num_heads=num_heads)
        transform = eval_transform(visual.image_size)  # = ImageBind's: bicubic resize, centre crop, CLIP mean/std
        return cls(visual, transform, device=device, batch_size=batch_size, reference=str(path), **kwargs)


@register_labeler
class ImageBindDense(ImageBindLabeler):
    """ImageBind vision patch tokens after the head's LayerNorm, unprojected, (h, w, width): (16, 16, 1280)."""

    name = "imagebind_dense"
    modality = "dense_features"

    def _predict(self, pixels):
        return self.patch_tokens(pixels, project=False)


@register_labeler
class ImageBindGlobal(ImageBindLabeler):
    """ImageBind image embedding, L2-normalised, (out_dim,) = (1024,); ``projected=False``: the class token
    after the head's LayerNorm, (width,) = (1280,), not normalised."""

    name = "imagebind_global"
    modality = "global_feature"

    def __init__(self, visual, transform, projected: bool = True, **kwargs):
        super().__init__(visual, transform, **kwargs)
        self.projected = bool(projected)
        if not self.projected:
            self.visual.proj = None  # open_clip's tower then returns the pooled class token after ln_post

    def _predict(self, pixels):
        pooled = self.visual(pixels)
        return F.normalize(pooled, dim=-1) if self.projected else pooled
