"""Human poses: COCO-17 2D keypoints (``human_pose``) or SMPL body-pose rotations (``human_pose_smpl``).

The batch axis of this modality is *humans*: ``encode(pose)`` takes one image's pose dict and returns
(N_humans, 8) ids; ``decode`` returns one pose dict holding N humans, in the same order.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ..errors import ConfigError, DtypeError, InvalidValueError, ShapeError
from ..viz import colorize
from .base import FSQ_LEVELS, Modality, register_modality
from .lazy_torch import F, torch

COCO17_JOINTS = 17
SMPL_JOINTS = 23  # SMPL body pose without the global orientation
COCO17_LIMBS = (
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (5, 6),
    (5, 7),
    (7, 9),
    (6, 8),
    (8, 10),
    (5, 11),
    (6, 12),
    (11, 12),
    (11, 13),
    (13, 15),
    (12, 14),
    (14, 16),
)
ROTATION_TOLERANCE = 0.05  # max |R R^T - I| accepted as a rotation matrix


def _human_arrays(pose, skeleton: str, field: str, shape: tuple[int, ...]) -> np.ndarray:
    """A pose dict or an array of humans -> float64 (N, *shape)."""
    source = "human_pose input"
    if isinstance(pose, dict):
        if pose.get("skeleton", skeleton) != skeleton:
            raise InvalidValueError(source, f"skeleton {pose['skeleton']!r}; this tokenizer takes {skeleton!r}")
        humans = pose.get("humans")
        if not isinstance(humans, list):
            raise InvalidValueError(source, "a pose dict needs a list under 'humans'")
        if not all(isinstance(h, dict) and field in h for h in humans):
            raise InvalidValueError(source, f"every human needs {field!r}")
        values = [np.asarray(h[field]) for h in humans]
        if any(v.dtype.kind not in "iuf" for v in values):
            raise DtypeError(source, f"{field} must hold numbers")
        wrong = [v.shape for v in values if v.shape != shape]
        if wrong:
            raise ShapeError(source, f"{field} must have shape {shape}, got {wrong[0]}")
        array = np.stack(values).astype(np.float64) if values else np.zeros((0, *shape))
    elif isinstance(pose, (np.ndarray, torch.Tensor)):
        array = pose.detach().cpu().numpy() if isinstance(pose, torch.Tensor) else pose
        if array.dtype.kind != "f":
            raise DtypeError(source, f"expected float {shape} per human, got dtype {array.dtype}")
        array = array.astype(np.float64).reshape(-1, *shape) if array.shape[-len(shape) :] == shape else array
        if array.ndim != len(shape) + 1 or array.shape[1:] != shape:
            raise ShapeError(source, f"expected {shape} or (N, *{shape}), got {tuple(pose.shape)}")
    else:
        raise DtypeError(source, f"expected one image's pose dict or an array of humans, got {type(pose).__name__}")
    if not np.isfinite(array).all():
        raise InvalidValueError(source, f"{field} contains NaN or inf")
    return array


def nearest_rotations(matrices: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> the nearest rotation matrices (SVD projection onto SO(3), determinant +1)."""
    u, _, vt = np.linalg.svd(matrices)
    sign = np.sign(np.linalg.det(u @ vt))
    u[..., :, 2] *= sign[..., None]
    return u @ vt


@register_modality
class HumanPose(Modality):
    """One vector per human through an MLP tokenizer (family "vector", 8 codes, like 4M's body-pose tokens).

    coco17: 17 x (x, y, v) with x, y mapped from the image (``width`` / ``height`` of the pose dict, else
    normalization.image_size) to [-1, 1] and v in {0, 1, 2} to {-1, 0, 1}; joints with v = 0 get x = y = 0.
    smpl: the 23 x 3 x 3 = 207 rotation-matrix entries, already in [-1, 1].
    """

    name = "human_pose"
    metrics = ("keypoint_error", "pck_2px", "visibility_accuracy")
    family = "vector"
    sample_ndim = 1
    contract = (
        "ONE image's poses per call (the batch axis is humans). skeleton 'coco17' (zoo human_pose): a dict "
        "{'skeleton': 'coco17', 'humans': [{'keypoints_2d': [[x, y, v] * 17]}, ...]} (optional 'width', "
        "'height' of the image in pixels, else normalization.image_size [H, W], default 224 x 224) or a "
        "float array (N, 17, 3); x, y in pixels (pixel centres at integers), v in {0 not in image, "
        "1 occluded, 2 visible}; other keys (keypoints_3d, instance_id) are not tokenized. skeleton 'smpl' "
        "(zoo human_pose_smpl): {'skeleton': 'smpl', 'humans': [{'body_pose': 23 x 3 x 3}]} or a float "
        "array (N, 23, 3, 3) of SMPL body-joint rotation matrices. encode returns (N_humans, 8). decode "
        "returns the pose dict: coco17 keypoints in pixels of normalization.image_size (with 'width', "
        "'height'), integer v, [0, 0, 0] where v = 0; smpl matrices projected to the nearest rotations."
    )
    zoo_names = ("human_pose", "human_pose_smpl")
    stored_as = "pose"
    batch_is_samples = False

    @classmethod
    def default_normalization(cls) -> dict:
        return {"skeleton": "coco17", "image_size": [224, 224]}

    def __init__(self, **normalization):
        super().__init__(**normalization)
        if self.skeleton not in ("coco17", "smpl"):
            raise ConfigError(f"human_pose normalization: skeleton must be 'coco17' or 'smpl', got {self.skeleton!r}")

    @property
    def frame_size(self) -> tuple[int, int]:
        """normalization.image_size: the frame ``decode`` answers in, and that of a pose dict without width/height."""
        height, width = self.normalization["image_size"]
        return int(height), int(width)

    @property
    def skeleton(self) -> str:
        return self.normalization["skeleton"]

    @property
    def in_channels(self) -> int:
        return COCO17_JOINTS * 3 if self.skeleton == "coco17" else SMPL_JOINTS * 9

    @property
    def out_channels(self) -> int:
        return self.in_channels

    @classmethod
    def default_tokenizer(cls, name: str) -> dict:
        skeleton = "smpl" if name == "human_pose_smpl" else "coco17"
        normalization = {**cls.default_normalization(), "skeleton": skeleton}
        channels = COCO17_JOINTS * 3 if skeleton == "coco17" else SMPL_JOINTS * 9
        return {
            "model": {"preset": "mlp-small"},
            "latent_dim": 32,
            "quantizer": {"type": "fsq", "levels": FSQ_LEVELS[2**10]},
            "input_size": [channels],
            "normalization": normalization,
            "loss": "smooth_l1",
        }

    def _image_size(self, pose) -> np.ndarray:
        """(width, height) of the pixel frame of ``pose``."""
        height, width = self.normalization["image_size"]
        if isinstance(pose, dict):
            width, height = pose.get("width", width), pose.get("height", height)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (width, height)):
            raise InvalidValueError(
                "human_pose input", f"width and height must be positive numbers, got {width!r}, {height!r}"
            )
        return np.array([width, height], np.float64)

    def to_model(self, x) -> torch.Tensor:
        if self.skeleton == "smpl":
            rotations = _human_arrays(x, "smpl", "body_pose", (SMPL_JOINTS, 3, 3))
            error = np.abs(rotations @ rotations.swapaxes(-1, -2) - np.eye(3)).max(initial=0)
            if error > ROTATION_TOLERANCE:
                raise InvalidValueError(
                    "human_pose input",
                    f"body_pose entries are not rotation matrices (|R R^T - I| "
                    f"up to {error:.3g}); convert axis-angle first",
                )
            return torch.from_numpy(rotations.reshape(len(rotations), self.in_channels)).float()
        keypoints = _human_arrays(x, "coco17", "keypoints_2d", (COCO17_JOINTS, 3))
        visibility = keypoints[..., 2]
        if not np.isin(visibility, (0, 1, 2)).all():
            raise InvalidValueError("human_pose input", "visibility v must be 0, 1 or 2")
        xy = (keypoints[..., :2] + 0.5) / self._image_size(x) * 2 - 1
        xy[visibility == 0] = 0
        vectors = np.concatenate([xy, visibility[..., None] - 1], axis=-1).reshape(len(keypoints), self.in_channels)
        return torch.from_numpy(vectors).float()

    def from_model(self, y: torch.Tensor) -> dict:
        values = y.float().cpu().numpy().astype(np.float64)
        if self.skeleton == "smpl":
            rotations = nearest_rotations(values.reshape(-1, SMPL_JOINTS, 3, 3))
            return {"skeleton": "smpl", "humans": [{"body_pose": r.tolist()} for r in rotations]}
        height, width = self.normalization["image_size"]
        keypoints = values.reshape(-1, COCO17_JOINTS, 3)
        visibility = np.clip(np.rint(keypoints[..., 2] + 1), 0, 2)
        xy = (keypoints[..., :2] + 1) / 2 * np.array([width, height]) - 0.5
        xy[visibility == 0] = 0
        humans = [
            {"keypoints_2d": [[float(x), float(y), int(v)] for (x, y), v in zip(h_xy, h_v)]}
            for h_xy, h_v in zip(xy, visibility)
        ]
        return {"skeleton": "coco17", "width": width, "height": height, "humans": humans}

    def loss(self, prediction, target):
        return F.smooth_l1_loss(prediction, target, beta=0.05)

    def visualize(self, value) -> np.ndarray:
        """coco17: skeletons on black (image size of the dict); smpl: each human's 207 entries as a colour row."""
        if self.skeleton == "smpl":
            rotations = _human_arrays(value, "smpl", "body_pose", (SMPL_JOINTS, 3, 3)).reshape(-1, SMPL_JOINTS * 9)
            return np.repeat(np.repeat(colorize(rotations, -1, 1), 8, axis=0), 2, axis=1)
        width, height = self._image_size(value).astype(int)
        picture = Image.new("RGB", (int(width), int(height)))
        draw = ImageDraw.Draw(picture)
        for keypoints in _human_arrays(value, "coco17", "keypoints_2d", (COCO17_JOINTS, 3)):
            for a, b in COCO17_LIMBS:
                if keypoints[a, 2] and keypoints[b, 2]:
                    draw.line([tuple(keypoints[a, :2]), tuple(keypoints[b, :2])], fill=(255, 255, 255), width=1)
            for x, y, v in keypoints:
                if v:
                    draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(40, 230, 40) if v == 2 else (255, 140, 0))
        return np.asarray(picture)
