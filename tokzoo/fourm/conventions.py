"""4M's input conventions, applied inside each 4M tokenizer so that it takes tokzoo's raw values.

One codec per ml-4m domain, a subclass of the tokzoo modality it reads (its visualiser and input checks),
whose ``to_model`` reproduces what ml-4m's tokenization transforms (``MODALITY_TRANSFORMS_DIVAE``, used by
``save_vq_tokens.py``) feed the encoder, operation for operation:

| domain | tokzoo raw | encoder input (ml-4m) |
|---|---|---|
| rgb | uint8 (H, W, 3) | x / 255, then (x - 0.5) / 0.5 -> [-1, 1] |
| depth | float32 metres (H, W), NaN invalid | metres x 512 / 65535 (Omnidata's uint16 PNG / 65535), standardised per image by the mean and unbiased variance of the values between the 10% and 90% quantiles of the sorted valid values: (d - mean) / sqrt(var + 1e-6); invalid pixels -> 0 |
| normal | float32 unit vectors (H, W, 3), OpenCV frame | (x, y, -z) (Omnidata: +z towards the camera), PNG-quantised (round((n + 1) / 2 * 255) / 255), then (x - 0.5) / 0.5 |
| semseg_coco | uint8 class ids, 255 ignore | id + 1 modulo 256 (ignore -> 0), 134 labels, int64 |
| canny_edge, sam_edge | uint8 {0, 1} (H, W) | 3 channels of 0 / 255 as rgb |
| CLIP-B16, DINOv2-B14, ImageBind-H14 | float (h, w, C) teacher features | (B, C, h, w), unchanged |
| DINOv2-B14-global, ImageBind-H14-global | float (D,) teacher embedding | (B, D, 1, 1), unchanged |
| sam_mask | one image's instance map (or bool masks) | (N, 1, 64, 64) {0, 1} masks of each instance's box (tokzoo's crop_instances) |
| human_poses | one image's SMPL pose dict (or (N, 23, 3, 3) rotations); the batch axis is humans | (N, 207, 1, 1): body_pose flattened row-major |

Decoder outputs go back to tokzoo's values (semseg: argmax - 1, label 0 -> 255; features: channels last).
"""

from __future__ import annotations

import numpy as np
import torch

from tokzoo.errors import ConfigError, InvalidValueError
from tokzoo.modalities.base import require_finite_somewhere, to_tensor
from tokzoo.modalities.dense_features import DenseFeatures
from tokzoo.modalities.depth import Depth
from tokzoo.modalities.edges import Edges
from tokzoo.modalities.global_features import GlobalFeature
from tokzoo.modalities.human_pose import HumanPose
from tokzoo.modalities.normals import Normals
from tokzoo.modalities.rgb import RGB
from tokzoo.modalities.sam_instances import SAMInstances, crop_instances
from tokzoo.modalities.semseg import Semseg

PNG_DEPTH_UNITS = 512.0
"""Depth PNG units per metre in Omnidata / Taskonomy (uint16, 1/512 m), which ml-4m divides by 65535."""

NORMAL_SIGNS = (1.0, 1.0, -1.0)
"""tokzoo (x right, y down, z forward) -> Omnidata (x right, y down, z towards the camera): EPFL-VILAB/omnidata#13."""


def _unit_interval_to_pm1(x: torch.Tensor) -> torch.Tensor:
    """ml-4m's ``TF.normalize(mean=0.5, std=0.5)`` on a [0, 1] tensor, same operations."""
    return (x - 0.5) / 0.5


class FourMRGB(RGB):
    contract = (
        "uint8 array (H, W, 3) or batch (B, H, W, 3), values 0..255, sRGB, channels last; 4M maps it to "
        "[-1, 1] (x / 255 - 0.5) / 0.5 inside. decode returns uint8 (B, H, W, 3)."
    )
    in_channels = out_channels = 3

    def to_model(self, x) -> torch.Tensor:
        x = to_tensor(self.as_batch(x, (np.uint8, torch.uint8), "uint8 (H, W, 3) RGB"))
        return _unit_interval_to_pm1(x.permute(0, 3, 1, 2).float() / 255.0)


class FourMDepth(Depth):
    contract = (
        "float32/float64 array (H, W) or batch (B, H, W), metres (NaN, inf, 0 or negative = invalid; each "
        "sample needs valid pixels). 4M standardises each image itself (robust: the middle 80% of its valid "
        "values give mean and variance), so only relative depth is tokenized; invalid pixels enter as the "
        "image's mean. decode returns float32 (B, H, W) standardised depth, not metres."
    )
    in_channels = out_channels = 1

    def to_model(self, x) -> torch.Tensor:
        depth = to_tensor(
            self.as_batch(x, (np.float32, np.float64, torch.float32, torch.float64), "float metres (H, W)")
        )
        depth = depth.float() * PNG_DEPTH_UNITS / (2**16 - 1.0)
        valid = torch.isfinite(depth) & (depth > 0)
        require_finite_somewhere(valid, self.name)
        out = []
        for image, mask in zip(depth, valid):
            values = torch.sort(image[mask].reshape(-1), dim=0)[0]
            kept = values[int(0.1 * values.shape[0]) : int(0.9 * values.shape[0])]
            if kept.numel() < 2:
                raise InvalidValueError(f"{self.name} input", f"{values.numel()} valid pixels: too few to standardise")
            standardised = (image - kept.mean()) / torch.sqrt(kept.var() + 1e-6)
            out.append(torch.where(mask, standardised, torch.zeros_like(image)))
        return torch.stack(out)[:, None]

    def from_model(self, y: torch.Tensor) -> np.ndarray:
        return y[:, 0].float().cpu().numpy()

    def visualize(self, value) -> np.ndarray:
        from tokzoo.viz import colorize

        return colorize(np.asarray(value, dtype=np.float32))


class FourMNormals(Normals):
    contract = (
        "float32/float64 array (H, W, 3) or batch (B, H, W, 3): unit vectors, OpenCV camera frame (x right, "
        "y down, z forward), NaN = invalid (entered as (0, 0, 0)). 4M's tokenizer reads Omnidata PNG normals: "
        "z is flipped and the vectors are quantised to 8 bits inside. decode returns float32 (B, H, W, 3) "
        "unit vectors in the OpenCV frame."
    )
    in_channels = out_channels = 3

    def to_model(self, x) -> torch.Tensor:
        unit = super().to_model(x)[:, :3]  # validated unit vectors (B, 3, H, W), invalid = 0
        signs = torch.tensor(NORMAL_SIGNS).view(1, 3, 1, 1)
        png = torch.round((unit * signs + 1) / 2 * 255).clamp(0, 255)
        return _unit_interval_to_pm1(png / 255.0)

    def from_model(self, y: torch.Tensor) -> np.ndarray:
        n = y.float() * torch.tensor(NORMAL_SIGNS, device=y.device).view(1, 3, 1, 1)
        n = n / torch.linalg.vector_norm(n, dim=1, keepdim=True).clamp_min(1e-12)
        return n.permute(0, 2, 3, 1).cpu().numpy()


class FourMSemseg(Semseg):
    contract = (
        "uint8 array (H, W) or batch (B, H, W) of COCO-panoptic class ids 0..132, 255 = ignore; 4M shifts "
        "ids by one inside (ignore -> 0, 134 labels). decode returns uint8 (B, H, W), ids 0..132, 255 where the "
        "decoder predicts 4M's no-class label."
    )

    def __init__(self, n_labels: int = 134):
        super().__init__(num_classes=n_labels - 1)

    def to_model(self, x) -> torch.Tensor:
        ids = to_tensor(self.as_batch(x, (np.uint8, torch.uint8), "uint8 (H, W) class ids")).long()
        bad = (ids >= self.num_classes) & (ids != 255)
        if bool(bad.any()):
            raise InvalidValueError(
                f"{self.name} input",
                f"class id(s) {sorted(ids[bad].unique().tolist())[:8]} are not in "
                f"0..{self.num_classes - 1} or 255 (ignore)",
            )
        return (ids + 1) % 256

    def from_model(self, y: torch.Tensor) -> np.ndarray:
        labels = y.argmax(dim=1)
        return torch.where(labels == 0, 255, labels - 1).to(torch.uint8).cpu().numpy()


class FourMEdges(Edges):
    contract = (
        "uint8 or bool array (H, W) or batch (B, H, W), values in {0, 1}; 4M's edge tokenizer reads the edge "
        "map as a 0/255 RGB image ([-1, 1] inside). decode returns uint8 (B, H, W) in {0, 1} (mean channel > 0)."
    )
    in_channels = out_channels = 3

    def to_model(self, x) -> torch.Tensor:
        one = super().to_model(x)  # (B, 1, H, W) in {-1, 1}
        return _unit_interval_to_pm1(((one + 1) / 2 * 255).round() / 255.0).expand(-1, 3, -1, -1).contiguous()

    def from_model(self, y: torch.Tensor) -> np.ndarray:
        return (y.float().mean(dim=1) > 0).to(torch.uint8).cpu().numpy()


class FourMGlobalFeature(GlobalFeature):
    """4M's global-feature tokenizers read the teacher's embedding as a (B, D, 1, 1) map."""

    def to_model(self, x) -> torch.Tensor:
        return super().to_model(x)[:, :, None, None]

    def from_model(self, y: torch.Tensor) -> np.ndarray:
        return y.float().reshape(y.shape[0], -1).cpu().numpy()


class FourMHumanPose(HumanPose):
    """4M's human-pose tokenizer: per human the 23 SMPL body-joint rotation matrices, flattened row-major to 207
    values as a (207, 1, 1) map (ml-4m's HumanPoseTransform(only_pose=True), then its training script's unsqueeze)."""

    def __init__(self):
        super().__init__(skeleton="smpl")

    def to_model(self, x) -> torch.Tensor:
        return super().to_model(x)[:, :, None, None]

    def from_model(self, y: torch.Tensor) -> dict:
        return super().from_model(y.reshape(y.shape[0], -1))


class FourMSAMInstances(SAMInstances):
    """4M's SAM-instance tokenizer reads each instance as a 64 x 64 {0, 1} mask of its box (ml-4m draws it from
    the instance's polygon; tokzoo cuts it from the instance map, so masks agree in meaning, not pixel for pixel)."""

    contract = SAMInstances.contract.replace("encoded as {-1, 1}", "encoded as {0, 1}").replace(
        "encode returns (N_kept, 16)", "encode returns (N_kept, (64 / patch)^2)"
    )

    def to_model(self, x) -> torch.Tensor:
        return torch.from_numpy(crop_instances(x)[0])[:, None].float()


DOMAINS = {
    "rgb": (FourMRGB, "rgb"),
    "depth": (FourMDepth, "depth"),
    "normal": (FourMNormals, "normals"),
    "semseg_coco": (FourMSemseg, "semseg"),
    "canny_edge": (FourMEdges, "edges"),
    "sam_edge": (FourMEdges, "edges"),
    "CLIP-B16": (DenseFeatures, "dense_features"),
    "DINOv2-B14": (DenseFeatures, "dense_features"),
    "ImageBind-H14": (DenseFeatures, "dense_features"),
    "DINOv2-B14-global": (FourMGlobalFeature, "global_feature"),
    "ImageBind-H14-global": (FourMGlobalFeature, "global_feature"),
    "human_poses": (FourMHumanPose, "human_pose"),
    "sam_mask": (FourMSAMInstances, "sam_instances"),
}
"""ml-4m domain -> (codec class, tokzoo modality)."""

HINTS = [
    ("sam-instance", "sam_mask"),
    ("sam_instance", "sam_mask"),
    ("human-poses", "human_poses"),
    ("human_poses", "human_poses"),
    ("dinov2-b14-global", "DINOv2-B14-global"),
    ("imagebind-h14-global", "ImageBind-H14-global"),
    ("semseg", "semseg_coco"),
    ("depth", "depth"),
    ("normal", "normal"),
    ("sam_edge", "sam_edge"),
    ("edge", "canny_edge"),
    ("clip", "CLIP-B16"),
    ("dinov2", "DINOv2-B14"),
    ("imagebind", "ImageBind-H14"),
    ("rgb", "rgb"),
]
"""Substrings of released tokenizer names (EPFL-VILAB/4M_tokenizers_<domain>_...) -> domain, first match wins."""


def build_codec(domain: str, config: dict):
    """The codec of ml-4m ``domain`` for a tokenizer of ml-4m ``config``."""
    if domain not in DOMAINS:
        raise ConfigError(f"4M domain {domain!r} is not supported (supported: {', '.join(DOMAINS)})")
    cls = DOMAINS[domain][0]
    if cls is FourMSemseg:
        return cls(config.get("n_labels") or 134)
    if cls is FourMHumanPose:
        return cls()
    if cls in (DenseFeatures, FourMGlobalFeature):
        return cls(dim=int(config["n_channels"]))
    return cls()


def infer_domain(config: dict, name: str) -> str:
    """The domain a 4M checkpoint tokenizes: its config's ``domain``, else a hint in its folder / hub name."""
    if config.get("domain"):
        return str(config["domain"])
    lowered = name.lower()
    for hint, domain in HINTS:
        if hint in lowered:
            return domain
    if config.get("n_labels"):
        return "semseg_coco"
    raise ConfigError(
        f'{name}: cannot tell which 4M domain this tokenizer is for; add "domain": "depth" (or rgb, '
        f"normal, semseg_coco, canny_edge, CLIP-B16, DINOv2-B14, ImageBind-H14, DINOv2-B14-global) to its "
        f"config.json"
    )
