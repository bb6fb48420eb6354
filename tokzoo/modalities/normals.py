"""Surface normals in the camera frame."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidValueError, ShapeError
from .base import FSQ_LEVELS, Modality, register_modality, require_finite_somewhere, to_tensor
from .lazy_torch import F, torch


@register_modality
class Normals(Modality):
    """Unit normals as xyz in [-1, 1] plus a validity channel; decode renormalises to unit length."""

    name = "normals"
    file_format = "normals"
    extensions = (".png", ".npy")
    written_as = ".npy"
    crop_rule = "normals"
    metrics = ("angular_error",)
    contract = (
        "float32/float64 array (H, W, 3) or batch (B, H, W, 3): unit vectors in the camera frame, OpenCV "
        "axes (x right, y down, z forward; a surface seen head-on has z < 0). Invalid pixels: NaN (a pixel "
        "with any non-finite channel counts as invalid; each sample needs one valid pixel). Valid vectors "
        "must have norm 1 +- 0.05 (PNG-encoded normals in [0, 1] or [0, 255] must first be mapped with "
        "2 x - 1 and renormalised) and are renormalised. Encoded as xyz in [-1, 1] plus a validity channel. "
        "decode returns float32 (B, H, W, 3) unit vectors, NaN where the decoder predicts invalid. A "
        "horizontal flip must negate x (tokzoo.crops does)."
    )
    in_channels = out_channels = 4
    sample_ndim = 3
    zoo_names = ("normals",)
    norm_tolerance = 0.05

    @classmethod
    def default_tokenizer(cls, name: str) -> dict:
        return {
            "model": {"preset": "conv-small"},
            "latent_dim": 32,
            "quantizer": {"type": "fsq", "levels": FSQ_LEVELS[2**12]},
            "input_size": [224, 224],
            "loss": "mse",
        }

    def to_model(self, x) -> torch.Tensor:
        normals = to_tensor(
            self.as_batch(x, (np.float32, np.float64, torch.float32, torch.float64), "float (H, W, 3) unit normals")
        ).float()
        if normals.shape[-1] != 3:
            raise ShapeError(f"{self.name} input", f"expected 3 channels last, got shape {tuple(normals.shape)}")
        valid = torch.isfinite(normals).all(dim=-1)
        require_finite_somewhere(valid, self.name)
        norms = torch.linalg.vector_norm(normals.where(valid[..., None], torch.zeros_like(normals)), dim=-1)[valid]
        if bool(((norms - 1).abs() > self.norm_tolerance).any()):
            raise InvalidValueError(
                f"{self.name} input",
                f"vectors are not unit length (norms {float(norms.min()):.3g}.."
                f"{float(norms.max()):.3g}); map PNG-encoded normals with 2 x - 1 and renormalise",
            )
        unit = torch.where(valid[..., None], normals / torch.linalg.vector_norm(normals, dim=-1, keepdim=True), 0.0)
        return torch.cat([unit, valid[..., None].float() * 2 - 1], dim=-1).permute(0, 3, 1, 2)

    def from_model(self, y: torch.Tensor) -> np.ndarray:
        xyz = F.normalize(y[:, :3].float(), dim=1, eps=1e-6)
        return torch.where(y[:, 3:4] > 0, xyz, torch.nan).permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)

    def loss(self, prediction, target):
        """MSE plus (1 - cosine) on valid pixels, plus 0.1 x BCE of the validity logit."""
        valid = (target[:, 3] > 0).float()
        count = valid.sum().clamp(min=1)
        mse = ((prediction[:, :3] - target[:, :3]) ** 2).mean(dim=1)
        cosine = 1 - F.cosine_similarity(prediction[:, :3], target[:, :3], dim=1, eps=1e-6)
        validity = F.binary_cross_entropy_with_logits(prediction[:, 3], valid)
        return ((mse + cosine) * valid).sum() / count + 0.1 * validity

    def visualize(self, value) -> np.ndarray:
        """Common normal-map colours: (x, -y, -z) mapped from [-1, 1] to 0..255; invalid pixels black."""
        normals = np.asarray(value, dtype=np.float64) * np.array([1.0, -1.0, -1.0])
        return np.nan_to_num((normals + 1) * 127.5).clip(0, 255).round().astype(np.uint8)
