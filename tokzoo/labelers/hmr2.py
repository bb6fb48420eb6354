"""SMPL human pose with HMR 2.0 (4D-Humans): ``create_labeler("hmr2_smpl:/path/hmr2.safetensors")``.

Weights: the released model ships as a PyTorch Lightning ``.ckpt`` whose pickle also holds a yacs config,
so tokzoo (which never unpickles) refuses it; extract its tensors once into
safetensors (the one-line command is in the error message, :data:`EXTRACT`). Accepted: a ``.safetensors``
file, or any torch file ``torch.load(weights_only=True)`` reads, holding the state dict flat or under
``"state_dict"``. Only ``backbone.*`` and ``smpl_head.*`` are used (checked strictly: every tensor there
must fit the architecture the shapes imply, see :mod:`tokzoo.labelers.hmr2_network`); the rest of a training
checkpoint (``smpl.*`` body-model buffers, ``discriminator.*``) is ignored.

Per person box (``person_boxes`` of :mod:`tokzoo.labelers.vitpose`: person regions of ``semseg`` /
``instances``, else the whole image), preprocessing as HMR2's ViTDetDataset: box centre (x + w/2, y + h/2)
in pixel coordinates; the box (times ``rescale_factor``, 1.0 in HMR2's demo) grown to the 192:256 crop
aspect, its larger side ``b`` is the square crop's side; a Gaussian blur of sigma (b / 512 - 1) / 2 when
b / 512 > 1.1 (anti-aliasing); bilinear resampling to 256 x 256 (black outside the image; kept in float
where cv2 rounds to uint8, so within half a grey level of HMR2's), of which the middle 192 columns are the
256 x 192 network input; ImageNet mean / std. (Sizes follow the model's input: a smaller model keeps the
ratios.)

Output: one ``pose`` dict per image, ``{"skeleton": "smpl", "width": W, "height": H, "intrinsics": {"fx",
"fy", "cx", "cy"}, "humans": [...]}``, one human per box, each with ``box`` [x, y, w, h] px,
``global_orient`` 3 x 3, ``body_pose`` 23 x 3 x 3 (rotation matrices relative to the parent joint, what
the ``human_pose_smpl`` tokenizer encodes), ``betas`` (10,), ``weak_perspective`` [s, tx, ty] (HMR2's crop
camera) and ``translation`` [x, y, z] metres (camera frame: x right, y down, z forward). The camera
conversion is HMR2's ``cam_crop_to_full``: a pinhole camera of focal length f = 5000 / 256 * max(W, H) px
(``focal_length`` 5000 per 256 px of crop, scaled to the image) with the principal point at (W / 2, H / 2),
and, with b the crop side in pixels,

    translation = [tx + 2 (cx_box - W/2) / (b s),  ty + 2 (cy_box - H/2) / (b s),  2 f / (b s)].

``keypoints_2d``: the 24 SMPL joints projected with that camera, visibility 2 inside the image and 0
outside (the model does not tell occlusion), plus ``keypoints_3d`` (metres, camera frame), when an SMPL
body model is given (``smpl_model=".../SMPL_NEUTRAL.npz"``: v_template, shapedirs, J_regressor and
kintree_table, read without pickle; the joints are computed with ``smplx``); without one, ``keypoints_2d``
is ``[]`` (the pose file format also takes the key absent).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from tokzoo.errors import CheckpointError, ConfigError, InvalidValueError, TokzooError
from tokzoo.tokenizers.checkpoint import read_state_dict

from .base import Labeler, register_labeler
from .hmr2_network import HMR2, NUM_BETAS, NUM_JOINTS, build_from_state_dict
from .hmr2_network import describe as describe_config
from .vitpose import person_boxes

PREFIXES = ("backbone.", "smpl_head.")
SMPL_KEYS = ("v_template", "shapedirs", "J_regressor", "kintree_table")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255
EXTRACT = (
    "extract its tensors once, only from a file you trust and with yacs installed (this unpickles it): python -c "
    "\"import torch, safetensors.torch as st; sd = torch.load('hmr2.ckpt', map_location='cpu', weights_only=False)"
    "['state_dict']; st.save_file({k: v.contiguous().clone() for k, v in sd.items() if k.startswith(('backbone.', "
    "'smpl_head.'))}, 'hmr2.safetensors')\" and give hmr2_smpl:hmr2.safetensors"
)


def read_hmr2_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``backbone.*`` / ``smpl_head.*`` tensors of a safetensors or weights_only-readable torch file."""
    path = Path(path)
    try:
        state = read_state_dict(path, "; hmr2_smpl loads a .safetensors (or weights-only .pt) file")
    except CheckpointError as error:
        if not path.is_file():
            raise
        raise CheckpointError(f"{error}; {EXTRACT}") from None
    state = {k: v for k, v in state.items() if k.startswith(PREFIXES)}
    if not state:
        raise CheckpointError(f"{path}: no backbone.* or smpl_head.* tensors; not an HMR 2.0 state dict")
    return state


def crop_person(image: np.ndarray, box, out_size: tuple[int, int], rescale: float = 1.0):
    """HMR2's person crop (see the module doc) of uint8 (H, W, 3) ``image`` for ``box`` [x, y, w, h] px.

    Returns (float32 (3, h, w) ImageNet-normalised crop for ``out_size`` (h, w), box centre (cx, cy) px,
    square crop side b px).
    """
    out_h, out_w = out_size
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2, y + h / 2
    side = max(h * rescale, w * rescale * out_h / out_w)  # grow to the out_w:out_h aspect, then square
    factor = side / out_h / 2
    sigma = (factor - 1) / 2 if factor > 1.1 else 0.0
    step = side / out_h  # source pixels per crop pixel
    xs = cx + (np.arange(out_w) - out_w / 2) * step  # crop column j <- square column j + (out_h - out_w) / 2
    ys = cy + (np.arange(out_h) - out_h / 2) * step
    margin = (int(4 * sigma + 0.5) if sigma else 0) + 1  # blur radius (truncate 4) + the bilinear neighbour
    height, width = image.shape[:2]
    x0, x1 = max(int(np.floor(xs[0])) - margin, 0), min(int(np.ceil(xs[-1])) + margin, width - 1)
    y0, y1 = max(int(np.floor(ys[0])) - margin, 0), min(int(np.ceil(ys[-1])) + margin, height - 1)
    patch = np.zeros((out_h, out_w, 3), np.float32)
    if x0 <= x1 and y0 <= y1:
        window = image[y0 : y1 + 1, x0 : x1 + 1, :3].astype(np.float32)
        if sigma:  # skimage.filters.gaussian as HMR2 calls it: per channel, mode "nearest", truncate 4
            window = ndimage.gaussian_filter(window, (sigma, sigma, 0), mode="nearest", truncate=4.0)
        gx = (2 * (xs - x0) + 1) / window.shape[1] - 1
        gy = (2 * (ys - y0) + 1) / window.shape[0] - 1
        grid = torch.from_numpy(np.stack(np.meshgrid(gx, gy), -1)[None].astype(np.float32))
        src = torch.from_numpy(window).permute(2, 0, 1)[None]
        patch = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
        patch = patch.permute(1, 2, 0).numpy()
    normalised = (patch - IMAGENET_MEAN) / IMAGENET_STD
    return normalised.transpose(2, 0, 1).astype(np.float32), (cx, cy), side


def full_image_translation(cam: np.ndarray, center, side: float, width: int, height: int, focal: float) -> np.ndarray:
    """HMR2's crop camera (s, tx, ty) -> translation [x, y, z] m for focal ``focal`` px at (W/2, H/2) (module doc)."""
    s, tx, ty = (float(v) for v in cam)
    bs = side * s + 1e-9
    return np.array([tx + 2 * (center[0] - width / 2) / bs, ty + 2 * (center[1] - height / 2) / bs, 2 * focal / bs])


class SMPLJoints:
    """The 24 posed SMPL joints (metres, model frame) from a user's SMPL model ``.npz`` (read without pickle)."""

    def __init__(self, path: str | Path):
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in SMPL_KEYS if key in data}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise CheckpointError(f"{path}: not a readable SMPL .npz without pickled objects ({first})") from None
        missing = [key for key in SMPL_KEYS if key not in arrays]
        if missing:
            raise CheckpointError(f"{path}: not an SMPL model file (no {', '.join(missing)})")
        if arrays["shapedirs"].ndim == 3:
            arrays["shapedirs"] = arrays["shapedirs"][..., :NUM_BETAS]  # the first 10 shape components
        v = arrays["v_template"].shape[0] if arrays["v_template"].ndim else 0
        wanted = {
            "v_template": (v, 3),
            "shapedirs": (v, 3, NUM_BETAS),
            "J_regressor": (NUM_JOINTS, v),
            "kintree_table": (2, NUM_JOINTS),
        }
        for key, shape in wanted.items():
            if arrays[key].shape != shape or arrays[key].dtype.kind not in "iuf":
                raise CheckpointError(
                    f"{path}: SMPL {key} is {arrays[key].dtype} {arrays[key].shape}, expected numbers of shape {shape}"
                )
        parents = arrays["kintree_table"][0].astype(np.int64)
        if not all(0 <= parents[i] < i for i in range(1, NUM_JOINTS)):
            raise CheckpointError(f"{path}: kintree_table is not a tree in joint order (parent index < child index)")
        self.v_template = torch.from_numpy(arrays["v_template"].astype(np.float32))
        self.shapedirs = torch.from_numpy(arrays["shapedirs"].astype(np.float32))
        self.J_regressor = torch.from_numpy(np.asarray(arrays["J_regressor"], np.float32))
        self.parents = torch.from_numpy(np.concatenate([[-1], parents[1:]]))
        try:
            from smplx import lbs
        except ImportError:
            raise TokzooError("SMPL joints need smplx: pip install 'tokzoo[labelers]'") from None
        self.lbs = lbs

    def __call__(self, betas: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
        """betas (N, 10), rotations (N, 24, 3, 3) (global orientation first) -> joints (N, 24, 3)."""
        shaped = self.v_template + self.lbs.blend_shapes(betas.float().cpu(), self.shapedirs)
        joints = self.lbs.vertices2joints(self.J_regressor, shaped)
        return self.lbs.batch_rigid_transform(rotations.float().cpu(), joints, self.parents)[0]


@register_labeler
class HMR2Smpl(Labeler):
    """rgb (+ optional semseg / instances) -> pose dict, skeleton ``smpl`` (the ``human_pose_smpl`` tokenizer's)."""

    name = "hmr2_smpl"
    modality = "pose"
    optional = ("semseg", "sam_instances")
    model_backed = True
    zoo_tokenizer = "human_pose_smpl"
    default_checkpoint = ""  # the weights are not on a hub: give a file

    def __init__(
        self,
        model: HMR2,
        device: str = "cpu",
        batch_size: int = 8,
        reference: str = "",
        person_class: int = 0,
        min_area: float = 0.001,
        rescale_factor: float = 1.0,
        focal_length: float = 5000.0,
        smpl_model: str | Path | None = None,
    ):
        super().__init__(device=device, batch_size=batch_size)
        for label, value in (("rescale_factor", rescale_factor), ("focal_length", focal_length)):
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ConfigError(f"{self.name}: {label} must be a positive number, got {value!r}")
        self.model = model.to(self.device).eval()
        self.reference, self.person_class, self.min_area = reference, person_class, min_area
        self.rescale_factor, self.focal_length = float(rescale_factor), float(focal_length)
        self.smpl = SMPLJoints(smpl_model) if smpl_model is not None else None

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str = "cpu",
        batch_size: int = 8,
        heads: int | None = None,
        decoder_heads: int | None = None,
        **kwargs,
    ) -> "HMR2Smpl":
        """Load ``path`` (module doc); ``heads`` / ``decoder_heads``: head counts if not the released 16 / 8."""
        if not str(path):
            raise ConfigError("hmr2_smpl needs its weights: hmr2_smpl:/path/to/hmr2.safetensors")
        model = build_from_state_dict(read_hmr2_tensors(path), str(path), heads=heads, decoder_heads=decoder_heads)
        return cls(model, device=device, batch_size=batch_size, reference=str(path), **kwargs)

    def _label(self, chunk):
        images = [np.asarray(image) for image in chunk["rgb"]]
        none = [None] * len(images)
        out_size = self.model.config.image_size
        crops, owners = [], []
        masks = zip(chunk.get("semseg", none), chunk.get("sam_instances", none))
        for k, (image, (semseg, instances)) in enumerate(zip(images, masks)):
            if image.ndim != 3 or image.shape[2] < 3:
                raise InvalidValueError(self.name, f"rgb must be (H, W, 3), got {image.shape}")
            for box in person_boxes(image.shape[:2], semseg, instances, self.person_class, self.min_area):
                crops.append((box, *crop_person(image, box, out_size, self.rescale_factor)))
                owners.append(k)
        predictions = []
        with torch.inference_mode():
            for start in range(0, len(crops), self.batch_size):
                batch = torch.from_numpy(np.stack([c[1] for c in crops[start : start + self.batch_size]])).to(
                    self.device
                )
                out = self.model(batch)
                predictions += [{key: value[i].float().cpu() for key, value in out.items()} for i in range(len(batch))]
        poses = [self._pose(image) for image in images]
        for k, (box, _, center, side), p in zip(owners, crops, predictions):
            poses[k]["humans"].append(self._human(p, box, center, side, poses[k]))
        return poses

    def _pose(self, image: np.ndarray) -> dict:
        height, width = image.shape[:2]
        f = self.focal_length / self.model.config.image_size[0] * max(width, height)
        return {
            "skeleton": "smpl",
            "width": width,
            "height": height,
            "intrinsics": {"fx": f, "fy": f, "cx": width / 2, "cy": height / 2},
            "humans": [],
        }

    def _human(self, p: dict, box, center, side: float, pose: dict) -> dict:
        intrinsics = pose["intrinsics"]
        translation = full_image_translation(
            p["cam"].numpy(), center, side, pose["width"], pose["height"], intrinsics["fx"]
        )
        human = {
            "box": [float(v) for v in box],
            "global_orient": p["global_orient"].tolist(),
            "body_pose": p["body_pose"].tolist(),
            "betas": p["betas"].tolist(),
            "weak_perspective": p["cam"].tolist(),
            "translation": translation.tolist(),
            "keypoints_2d": [],
        }
        if self.smpl is not None:
            rotations = torch.cat([p["global_orient"][None], p["body_pose"]])[None]
            joints = self.smpl(p["betas"][None], rotations)[0].double().numpy() + translation
            human["keypoints_3d"] = joints.tolist()
            human["keypoints_2d"] = [self._project(point, intrinsics, pose) for point in joints]
        return human

    @staticmethod
    def _project(point: np.ndarray, intrinsics: dict, pose: dict) -> list:
        x, y, z = point
        if not z > 1e-6:
            return [0.0, 0.0, 0]
        u, v = intrinsics["fx"] * x / z + intrinsics["cx"], intrinsics["fy"] * y / z + intrinsics["cy"]
        if not (np.isfinite(u) and np.isfinite(v)):
            return [0.0, 0.0, 0]
        return [float(u), float(v), 2 if 0 <= u < pose["width"] and 0 <= v < pose["height"] else 0]

    def describe(self) -> str:
        return f"{super().describe()} [HMR2 {describe_config(self.model.config)} {self.reference}]"
