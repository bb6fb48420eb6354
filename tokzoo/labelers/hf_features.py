"""Frozen image encoders as labelers: DINOv2, CLIP and plain ViT folders, dense feature maps and global embeddings.

Dense outputs are float32 (h, w, C), one vector per patch, channels last (the ``dense_features``
contract); global outputs are float32 (D,) (the ``global_feature`` contract). ``tokzoo pseudo-label -m
dense_features -l dense_features=NAME:FOLDER`` writes them as ``.npy``. ``scene_vit_dense`` / ``scene_vit_global``
need no folder: they load tokzoo's scene ViT, which ships with the package.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .base import register_labeler
from .hf import HFLabeler


def _grid(tokens: torch.Tensor, pixel_values: torch.Tensor, patch: int) -> list:
    """Patch tokens (B, h*w, C) -> list of B float32 arrays (h, w, C) for the processed image size."""
    h, w = pixel_values.shape[-2] // patch, pixel_values.shape[-1] // patch
    return list(tokens.reshape(len(tokens), h, w, -1).float().cpu().numpy())


@register_labeler
class Dinov2Dense(HFLabeler):
    """DINOv2 patch tokens after the final LayerNorm (``x_norm_patchtokens``), (h, w, hidden_size)."""

    name = "dinov2_dense"
    modality = "dense_features"
    model_class = "Dinov2Model"
    default_checkpoint = "facebook/dinov2-base"

    def _predict(self, images):
        inputs = self.inputs(images)
        hidden = self.model(**inputs).last_hidden_state
        skip = 1 + getattr(self.model.config, "num_register_tokens", 0)
        return _grid(hidden[:, skip:], inputs["pixel_values"], self.model.config.patch_size)


@register_labeler
class Dinov2Global(Dinov2Dense):
    """DINOv2 class token after the final LayerNorm (``x_norm_clstoken``), (hidden_size,)."""

    name = "dinov2_global"
    modality = "global_feature"

    def _predict(self, images):
        return list(self.model(**self.inputs(images)).pooler_output.float().cpu().numpy())


@register_labeler
class ClipDense(HFLabeler):
    """CLIP patch tokens through the post-LayerNorm and the visual projection, (h, w, projection_dim):
    the per-patch features in the joint image-text space."""

    name = "clip_dense"
    modality = "dense_features"
    model_class = "CLIPVisionModelWithProjection"
    default_checkpoint = "openai/clip-vit-base-patch16"

    def _predict(self, images):
        inputs = self.inputs(images)
        hidden = self.model.vision_model(**inputs).last_hidden_state[:, 1:]
        tokens = self.model.visual_projection(self.model.vision_model.post_layernorm(hidden))
        return _grid(tokens, inputs["pixel_values"], self.model.config.patch_size)


@register_labeler
class ClipGlobal(ClipDense):
    """CLIP image embedding (``image_embeds``, projected class token), (projection_dim,)."""

    name = "clip_global"
    modality = "global_feature"

    def _predict(self, images):
        return list(self.model(**self.inputs(images)).image_embeds.float().cpu().numpy())


@register_labeler
class VitDense(HFLabeler):
    """A ``ViTModel`` folder's patch tokens after its final LayerNorm (``last_hidden_state`` without the class
    token), (h, w, hidden_size). Images are resized to the model's ``image_size`` (its position embeddings' size)
    and standardised with the folder's ``preprocessor_config.json`` mean / std; e.g. the scene ViT of the
    composition work (``recipes/compose/vision.yaml``: 64 px, 8 x 8 patches of 128 values)."""

    name = "vit_dense"
    modality = "dense_features"
    model_class = "ViTModel"
    model_options = {"add_pooling_layer": False}  # the pooler is not part of these features (and often not saved)
    processor_class = "ViTImageProcessor"
    default_checkpoint = "google/vit-base-patch16-224-in21k"

    def inputs(self, images, **kwargs) -> dict:
        side = int(self.model.config.image_size)
        return super().inputs(images, size={"height": side, "width": side}, **kwargs)

    def _predict(self, images):
        inputs = self.inputs(images)
        hidden = self.model(**inputs).last_hidden_state
        return _grid(hidden[:, 1:], inputs["pixel_values"], self.model.config.patch_size)


@register_labeler
class VitGlobal(VitDense):
    """A ``ViTModel`` folder's class token after its final LayerNorm, (hidden_size,)."""

    name = "vit_global"
    modality = "global_feature"

    def _predict(self, images):
        return list(self.model(**self.inputs(images)).last_hidden_state[:, 0].float().cpu().numpy())


SCENE_VIT = Path(__file__).parent / "weights" / "scene_vit"
"""tokzoo's scene ViT (64 px, patch 8, width 128, 4 blocks, 0.83 M parameters): pretrained here on 16,000 procedural
scenes of stream 7000001 (``tokzoo compose train --recipe recipes/compose/vision.yaml`` rebuilds it; its held-out
metrics are in ``metrics.json`` beside the weights). It knows procedural scenes, not photographs."""


@register_labeler
class SceneVitDense(VitDense):
    """The shipped scene ViT's patch tokens after its final LayerNorm, float32 (8, 8, 128): the features that the zoo's
    ``scene_vit_dense`` tokenizer reads. Input: rgb, resized to 64 px, standardised with mean / std 0.5."""

    name = "scene_vit_dense"
    default_checkpoint = str(SCENE_VIT)


@register_labeler
class SceneVitGlobal(VitGlobal):
    """The shipped scene ViT's class token after its final LayerNorm, float32 (128,)."""

    name = "scene_vit_global"
    default_checkpoint = str(SCENE_VIT)
