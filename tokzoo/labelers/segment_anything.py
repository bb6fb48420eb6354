"""SAM on the official ``segment-anything`` package: instance maps and their boundaries.

``create_labeler("segment_anything_instances:/path/sam_vit_h_4b8939.pth")``: the file is a plain state dict
(``.pth``, read with ``torch.load(weights_only=True)`` only, or ``.safetensors``); there is no download.
The ``Sam`` is rebuilt from ``segment_anything.modeling`` with hyperparameters inferred from the tensor
shapes (:func:`infer_architecture`), so ViT-H / ViT-L / ViT-B and smaller variants load alike.

Masks come from ``SamAutomaticMaskGenerator`` (point grid, predicted-IoU and stability filters, box NMS;
options and defaults are SAM's own). They are painted into one map exactly as ``sam_instances`` does
(:func:`tokzoo.labelers.sam.paint`, ordered by predicted IoU, areas under ``min_area`` of the image
dropped); edges are that map's boundaries. Nothing is random: same model, image and options, same output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from tokzoo.errors import CheckpointError, ConfigError, InvalidValueError, TokzooError
from tokzoo.tokenizers.checkpoint import read_state_dict

from .base import Labeler, register_labeler
from .sam import boundaries, paint

PIXEL_MEAN, PIXEL_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)  # build_sam.py; not in the state dict
DECODER_HEADS = 8  # every official SAM; attention head counts leave no trace in tensor shapes
OFFICIAL = {(1280, 32): "vit_h", (1024, 24): "vit_l", (768, 12): "vit_b"}  # (embed_dim, depth) -> name


@dataclass(frozen=True)
class SamArchitecture:
    """Hyperparameters of a segment-anything ``Sam`` (names as in ``build_sam.py``)."""

    img_size: int  # square input side, px (1024 official)
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    qkv_bias: bool
    window_size: int  # side of windowed-attention blocks, in patches (0: every block global)
    global_attn_indexes: tuple[int, ...]
    prompt_embed_dim: int  # image embedding channels = prompt / mask decoder width (256 official)
    mask_in_chans: int
    decoder_depth: int
    decoder_mlp_dim: int
    decoder_heads: int
    attention_downsample_rate: int
    num_multimask_outputs: int
    iou_head_depth: int
    iou_head_hidden_dim: int

    @property
    def label(self) -> str:
        """``vit_h`` / ``vit_l`` / ``vit_b`` for the official encoders, else ``vit-<dim>x<depth>@<img_size>``."""
        name = OFFICIAL.get((self.embed_dim, self.depth)) if self.img_size == 1024 else None
        return name or f"vit-{self.embed_dim}x{self.depth}@{self.img_size}"


def _shape(shapes: Mapping[str, Sequence[int]], key: str, ndim: int, source: str) -> tuple[int, ...]:
    if key not in shapes:
        raise CheckpointError(f"{source}: not a segment-anything SAM state dict (no {key!r})")
    shape = tuple(int(n) for n in shapes[key])
    if len(shape) != ndim:
        raise CheckpointError(f"{source}: {key!r} has shape {shape}, expected {ndim} dimensions")
    return shape


def _count(shapes: Mapping[str, Sequence[int]], prefix: str, source: str) -> int:
    """How many numbered submodules ``prefix<i>.`` there are; they must be 0..n-1, at least one."""
    found = {int(m.group(1)) for key in shapes if (m := re.match(re.escape(prefix) + r"(\d+)\.", key))}
    if not found or found != set(range(len(found))):
        missing = sorted(set(range(max(found, default=0) + 1)) - found)
        raise CheckpointError(f"{source}: not a segment-anything SAM state dict ({prefix}{missing[0]}.* missing)")
    return len(found)


def infer_architecture(shapes: Mapping[str, Sequence[int]], source: str = "state dict") -> SamArchitecture:
    """Tensor name -> shape of a SAM state dict -> its :class:`SamArchitecture`; CheckpointError if it fits none.

    Encoder heads come from the relative-position tables ((2 * side - 1, head_dim)): ViT-H has 16 heads of 80,
    ViT-L / ViT-B heads of 64. A block whose table spans the whole patch grid is a global-attention block,
    the others share one window side. The decoder's head count is not in any shape: 8, as in every official SAM.
    """

    def fail(reason):
        raise CheckpointError(f"{source}: {reason}")

    enc = "image_encoder."
    embed_dim, chans, patch, patch_w = _shape(shapes, enc + "patch_embed.proj.weight", 4, source)
    _, grid, grid_w, pos_dim = _shape(shapes, enc + "pos_embed", 4, source)
    if chans != 3 or patch != patch_w or grid != grid_w or pos_dim != embed_dim:
        fail(
            f"patch embedding {(embed_dim, chans, patch, patch_w)} and pos_embed {(grid, grid_w, pos_dim)} "
            "do not describe square RGB patches on a square grid"
        )
    depth = _count(shapes, enc + "blocks.", source)
    head_dims, windows, global_indexes = set(), set(), []
    for i in range(depth):
        rows, head_dim = _shape(shapes, f"{enc}blocks.{i}.attn.rel_pos_h", 2, source)
        if _shape(shapes, f"{enc}blocks.{i}.attn.rel_pos_w", 2, source) != (rows, head_dim) or rows % 2 == 0:
            fail(f"block {i}: relative-position tables {rows}x{head_dim} are not one square (2 * side - 1) window")
        head_dims.add(head_dim)
        if rows == 2 * grid - 1:
            global_indexes.append(i)
        else:
            windows.add((rows + 1) // 2)
    if len(head_dims) != 1 or len(windows) > 1 or embed_dim % min(head_dims):
        fail(
            f"encoder blocks disagree: head dims {sorted(head_dims)}, window sides {sorted(windows)}, "
            f"embed dim {embed_dim}"
        )
    lin1 = _shape(shapes, f"{enc}blocks.0.mlp.lin1.weight", 2, source)[0]
    prompt_dim = _shape(shapes, enc + "neck.0.weight", 4, source)[0]
    dec = "mask_decoder."
    downsampled = _shape(shapes, f"{dec}transformer.layers.0.cross_attn_token_to_image.q_proj.weight", 2, source)[0]
    if downsampled < 1 or prompt_dim % downsampled:
        fail(f"decoder cross-attention width {downsampled} does not divide the embedding width {prompt_dim}")
    return SamArchitecture(
        img_size=grid * patch, patch_size=patch, embed_dim=embed_dim, depth=depth,
        num_heads=embed_dim // head_dims.pop(), mlp_ratio=lin1 / embed_dim,
        qkv_bias=f"{enc}blocks.0.attn.qkv.bias" in shapes, window_size=windows.pop() if windows else 0,
        global_attn_indexes=tuple(global_indexes), prompt_embed_dim=prompt_dim,
        mask_in_chans=_shape(shapes, "prompt_encoder.mask_downscaling.3.weight", 4, source)[0],
        decoder_depth=_count(shapes, dec + "transformer.layers.", source),
        decoder_mlp_dim=_shape(shapes, f"{dec}transformer.layers.0.mlp.lin1.weight", 2, source)[0],
        decoder_heads=DECODER_HEADS, attention_downsample_rate=prompt_dim // downsampled,
        num_multimask_outputs=_shape(shapes, dec + "mask_tokens.weight", 2, source)[0] - 1,
        iou_head_depth=_count(shapes, dec + "iou_prediction_head.layers.", source),
        iou_head_hidden_dim=_shape(shapes, f"{dec}iou_prediction_head.layers.0.weight", 2, source)[0],
    )  # fmt: skip


def segment_anything():
    """The ``segment_anything`` module, or a one-line TokzooError saying how to install it."""
    try:
        import segment_anything as module
    except ImportError:
        raise TokzooError("segment_anything_* labelers need segment-anything: pip install 'tokzoo[labelers]'") from None
    return module


def build_sam(arch: SamArchitecture):
    """An untrained ``segment_anything.modeling.Sam`` of ``arch`` (build_sam.py's ``_build_sam``, generalised)."""
    m = segment_anything().modeling
    grid = arch.img_size // arch.patch_size
    return m.Sam(
        image_encoder=m.ImageEncoderViT(
            depth=arch.depth, embed_dim=arch.embed_dim, img_size=arch.img_size, mlp_ratio=arch.mlp_ratio,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=arch.num_heads, patch_size=arch.patch_size,
            qkv_bias=arch.qkv_bias, use_rel_pos=True, global_attn_indexes=arch.global_attn_indexes,
            window_size=arch.window_size, out_chans=arch.prompt_embed_dim),
        prompt_encoder=m.PromptEncoder(
            embed_dim=arch.prompt_embed_dim, image_embedding_size=(grid, grid),
            input_image_size=(arch.img_size, arch.img_size), mask_in_chans=arch.mask_in_chans),
        mask_decoder=m.MaskDecoder(
            num_multimask_outputs=arch.num_multimask_outputs,
            transformer=m.TwoWayTransformer(
                depth=arch.decoder_depth, embedding_dim=arch.prompt_embed_dim, mlp_dim=arch.decoder_mlp_dim,
                num_heads=arch.decoder_heads, attention_downsample_rate=arch.attention_downsample_rate),
            transformer_dim=arch.prompt_embed_dim, iou_head_depth=arch.iou_head_depth,
            iou_head_hidden_dim=arch.iou_head_hidden_dim),
        pixel_mean=list(PIXEL_MEAN), pixel_std=list(PIXEL_STD),
    )  # fmt: skip


def load_sam(path: str | Path):
    """``(Sam in eval mode on the CPU, SamArchitecture)`` from a state dict file; CheckpointError (one line)."""
    state = read_state_dict(path, "; expected a SAM state dict (.pth or .safetensors)")
    arch = infer_architecture({k: tuple(v.shape) for k, v in state.items()}, str(path))
    try:
        with torch.device("meta"):  # no memory, no random init: the weights come from the file
            sam = build_sam(arch)
    except (AssertionError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: shapes fit no segment-anything Sam ({arch.label}: {error})") from None
    expected = {k: tuple(v.shape) for k, v in sam.state_dict().items()}
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"
        more = f" and {len(missing) + len(extra) - 1} more" if len(missing) + len(extra) > 1 else ""
        raise CheckpointError(f"{path}: not a {arch.label} SAM state dict ({what}{more})")
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            found = tuple(state[key].shape)
            raise CheckpointError(f"{path}: tensor {key!r} has shape {found}, {arch.label} needs {shape}")
    sam.load_state_dict({k: v.float() for k, v in state.items()}, assign=True)
    sam.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), False)
    sam.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), False)
    left = [name for name, t in [*sam.named_parameters(), *sam.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"segment-anything Sam tensors not set from the state dict: {left[:3]}")
    return sam.eval(), arch


def instances_from_records(records: list[dict], shape: tuple[int, int], min_area: float) -> np.ndarray:
    """``SamAutomaticMaskGenerator.generate`` records (binary masks) -> uint16 (H, W) map, 0 = no mask.

    Painted by :func:`tokzoo.labelers.sam.paint`: highest ``predicted_iou`` first, areas under ``min_area``
    (fraction of the image) dropped.
    """
    masks = np.stack([np.asarray(r["segmentation"], bool) for r in records]) if records else np.zeros((0, *shape), bool)
    scores = np.array([r["predicted_iou"] for r in records], np.float64)
    return paint(masks, scores, -np.inf, min_area)


@register_labeler
class SegmentAnythingInstances(Labeler):
    """rgb uint8 (H, W, 3) -> instances uint16 (H, W), 0 = no mask (see the module docstring).

    Options (SAM's names and defaults): ``points_per_side`` (grid of n x n prompts), ``points_per_batch``
    (prompts per decoder call; memory), ``pred_iou_thresh``, ``stability_score_thresh``,
    ``stability_score_offset``, ``box_nms_thresh``, ``crop_n_layers``, ``min_mask_region_area`` (px; > 0
    needs opencv); and ``min_area`` (fraction of the image, 4M-21 drops < 0.05%). The image encoder runs one
    image at a time (the generator's design); ``batch_size`` only sets the chunks.
    """

    name = "segment_anything_instances"
    modality = "sam_instances"
    model_backed = True
    default_checkpoint = None

    def __init__(
        self,
        model,
        architecture: SamArchitecture,
        device: str = "cpu",
        batch_size: int = 8,
        reference: str = "",
        points_per_side: int = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        min_mask_region_area: int = 0,
        min_area: float = 0.0005,
    ):
        super().__init__(device=device, batch_size=batch_size)
        counts = {
            "points_per_side": (points_per_side, 1),
            "points_per_batch": (points_per_batch, 1),
            "crop_n_layers": (crop_n_layers, 0),
            "min_mask_region_area": (min_mask_region_area, 0),
        }
        for option, (value, least) in counts.items():
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
                raise ConfigError(f"{self.name}: {option} must be an integer >= {least}, got {value!r}")
        self.model = model.to(self.device).eval()
        self.architecture, self.reference, self.min_area = architecture, reference, float(min_area)
        self.generator = segment_anything().SamAutomaticMaskGenerator(
            self.model,
            points_per_side=int(points_per_side),
            points_per_batch=int(points_per_batch),
            pred_iou_thresh=float(pred_iou_thresh),
            stability_score_thresh=float(stability_score_thresh),
            stability_score_offset=float(stability_score_offset),
            box_nms_thresh=float(box_nms_thresh),
            crop_n_layers=int(crop_n_layers),
            min_mask_region_area=int(min_mask_region_area),
        )

    @classmethod
    def from_pretrained(cls, path: str | Path | None, device: str = "cpu", batch_size: int = 8, **options):
        """Load a SAM state dict file (see :func:`load_sam`); ConfigError when no path is given."""
        if not path:
            raise ConfigError(
                f"{cls.name} needs a checkpoint file: {cls.name}:/path/to/sam_vit_h_4b8939.pth "
                "(.pth or .safetensors; nothing is downloaded)"
            )
        model, arch = load_sam(path)
        return cls(model, arch, device=device, batch_size=batch_size, reference=str(path), **options)

    def _label(self, chunk):
        out = []
        with torch.inference_mode():
            for image in chunk["rgb"]:
                image = np.ascontiguousarray(image)
                if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                    raise InvalidValueError(self.name, f"rgb must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
                records = self.generator.generate(image)
                out.append(self._finish(instances_from_records(records, image.shape[:2], self.min_area)))
        return out

    def _finish(self, instances: np.ndarray):
        return instances

    def describe(self) -> str:
        return f"{super().describe()} [segment-anything {self.architecture.label} {self.reference}]"


@register_labeler
class SegmentAnythingEdges(SegmentAnythingInstances):
    """rgb -> edges uint8 (H, W) {0, 1}: boundaries of the segment_anything_instances map (4M-21's SAM edges)."""

    name = "segment_anything_edges"
    modality = "edges"
    zoo_tokenizer = "sam_edges"

    def _finish(self, instances):
        return boundaries(instances)
