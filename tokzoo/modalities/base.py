"""What every modality declares in one place: how its raw values are stored and cropped, its metrics, raw contract,
normalisation, loss, visualiser, default tokenizer.

Two registries, filled by the ``register_*`` decorators where each class is defined:

- ``MODALITIES``: tokenizer modality name -> codec class (``tokenize -m``, the zoo, evaluation, browse);
- ``STORED``: every name a raw file, folder or tar member carries -> its declaration (tokzoo.io reads files by it,
  tokzoo.crops crops by it): the modalities stored under their own name, plus the values no tokenizer encodes
  under that name (stored.py: pose, camera, palette, metadata, boxes, captions; crop_settings.py: crops).

The registry names the parts other packages own by string (an io file format, a crop rule, metric functions), so it
imports none of them: they read it.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import DtypeError, InvalidValueError, ShapeError
from .lazy_torch import torch

# Levels recommended by the FSQ paper (Mentzer et al. 2023, table 1) for a target codebook size: what the modalities'
# default tokenizers name, and what the quantizers resolve {"type": "fsq", "codebook_size": N} to.
FSQ_LEVELS = {
    2**8: [8, 6, 5],
    2**10: [8, 5, 5, 5],
    2**12: [7, 5, 5, 5, 5],
    2**14: [8, 8, 8, 6, 5],
    2**16: [8, 8, 8, 5, 5, 5],
}

MODALITIES: dict[str, type["Modality"]] = {}
STORED: dict[str, type["StoredValue"]] = {}


def register_stored(cls: type["StoredValue"]) -> type["StoredValue"]:
    """Class decorator adding a stored value to :data:`STORED` under ``cls.name``."""
    STORED[cls.name] = cls
    return cls


def register_modality(cls: type["Modality"]) -> type["Modality"]:
    """Class decorator adding a modality to :data:`MODALITIES`, and to :data:`STORED` unless it is ``stored_as``
    another value (human_pose reads pose files)."""
    MODALITIES[cls.name] = cls
    if cls.stored_as is None:
        register_stored(cls)
    return cls


class StoredValue:
    """How one kind of raw value is stored and cropped.

    ``file_format`` picks tokzoo.io's decoder and contract check (tokzoo/io/formats.py ``FORMATS``: ``image``,
    ``depth``, ``normals``, ``semseg``, ``instances``, ``edges``, ``features``, ``crops``, ``json``, ``pose``,
    ``camera``, ``text``, ``audio``); ``extensions`` are the file extensions it is read from; ``written_as`` the one a value
    computed in memory is written as (pseudo-label; None: the first of ``extensions``); ``crop_rule`` how
    tokzoo.crops cuts it (``tokzoo.crops.CROP_RULES``: ``bilinear``, ``nearest``, ``any_edge``, ``normals``,
    ``pose``, ``boxes``, ``camera``, ``unchanged``; None: no crop applies, cropping it is an error).
    """

    name: ClassVar[str]
    file_format: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]]
    written_as: ClassVar[str | None] = None
    crop_rule: ClassVar[str | None] = None
    old_names: ClassVar[tuple[str, ...]] = ()
    """Names it was stored under before, still read as this one (tokzoo.vocabulary)."""
    photographic: ClassVar[bool] = False
    """Pictures of it are shrunk by area averaging (photographs); others keep exact pixels (label maps, masks)."""


class Modality(StoredValue):
    """A modality's codec between raw values and the model's float tensors.

    ``to_model`` validates a raw batch against ``contract`` and returns float32 (B, in_channels, H, W)
    (or (B, in_channels) for vector modalities); ``from_model`` turns model output (B, out_channels, ...)
    back into raw values. Normalisation parameters (stored in the tokenizer config) are keyword arguments.
    """

    name: ClassVar[str]
    contract: ClassVar[str]
    in_channels: ClassVar[int]
    out_channels: ClassVar[int]
    sample_ndim: ClassVar[int]
    family: ClassVar[str] = "image"
    batch_is_samples: ClassVar[bool] = True
    """False when one ``encode`` call takes one image's set of items (instances, humans) on the batch axis."""
    croppable: ClassVar[bool] = True
    """False when values do not live on the image's pixel grid, so pixel crops cannot apply to them."""
    zoo_names: ClassVar[tuple[str, ...]] = ()
    default_zoo_name: ClassVar[str | None] = None
    """The zoo tokenizer ``tokenize -m NAME`` uses when no zoo name equals the modality's (None: none is a safe guess)."""
    stored_as: ClassVar[str | None] = None
    """The stored value (``STORED``) holding this codec's raw values when its name differs (``pose`` for human_pose);
    its file format, extensions and crop rule are then that value's."""
    metrics: ClassVar[tuple[str, ...]] = ()
    """Reconstruction metrics (names in tokzoo/tokenizers/evaluation/metrics.py ``FUNCTIONS``), the main one first."""

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(H, W) the pipeline crops raw values to by default when ``input_size`` is no pixel frame (sets of
        items: instance masks, humans); None for every other modality."""
        return None

    def __init__(self, **normalization):
        unknown = set(normalization) - set(self.default_normalization())
        if unknown:
            raise TypeError(f"unknown normalization parameter(s) for {self.name}: {sorted(unknown)}")
        self.normalization = {**self.default_normalization(), **normalization}

    @classmethod
    def default_normalization(cls) -> dict:
        return {}

    @classmethod
    def default_tokenizer(cls, name: str) -> dict:
        """Config of zoo tokenizer ``name`` (one of ``zoo_names``): model preset, latent_dim, quantizer,
        input_size, normalization, loss."""
        raise NotImplementedError

    def to_model(self, x) -> torch.Tensor:
        raise NotImplementedError

    def from_model(self, y: torch.Tensor):
        raise NotImplementedError

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of decoder output ``prediction`` against ``target`` = ``to_model(raw)``, same shape
        except where a modality predicts logits (e.g. semseg: num_classes logits vs one-hot + ignore)."""
        raise NotImplementedError

    def visualize(self, value) -> np.ndarray:
        """One raw sample -> uint8 (H, W, 3) picture."""
        raise NotImplementedError

    # -- helpers for subclasses -------------------------------------------------------------------
    def as_batch(self, x, dtypes: tuple, what: str) -> np.ndarray | torch.Tensor:
        """Add a batch axis to one sample; check ndim and dtype. Keeps torch tensors on their device."""
        if isinstance(x, (list, tuple)) and x and all(isinstance(v, (np.ndarray, torch.Tensor)) for v in x):
            if len({tuple(v.shape) for v in x}) > 1:
                raise ShapeError(
                    f"{self.name} input",
                    f"a list of samples must share one shape, got {sorted({tuple(v.shape) for v in x})}",
                )
            x = torch.stack([torch.as_tensor(v) for v in x]) if isinstance(x[0], torch.Tensor) else np.stack(x)
        if not isinstance(x, (np.ndarray, torch.Tensor)):
            raise DtypeError(
                f"{self.name} input", f"expected {what} as a numpy array or torch tensor, got {type(x).__name__}"
            )
        if isinstance(x, np.ndarray) and not x.dtype.isnative:  # e.g. big-endian '>f4' from a foreign .npy
            x = x.astype(x.dtype.newbyteorder("="))
        dtype = x.dtype if isinstance(x, np.ndarray) else x.dtype
        if dtype not in dtypes:
            raise DtypeError(f"{self.name} input", f"expected {what}, got dtype {dtype}")
        if x.ndim == self.sample_ndim:
            x = x[None]
        if x.ndim != self.sample_ndim + 1:
            raise ShapeError(f"{self.name} input", f"expected {what}, got shape {tuple(x.shape)}")
        return x


class FeatureModality(Modality):
    """A modality of extractor features whose channel count is ``normalization.dim``."""

    @classmethod
    def default_normalization(cls) -> dict:
        return {"dim": 768}

    @property
    def in_channels(self) -> int:
        return int(self.normalization["dim"])

    @property
    def out_channels(self) -> int:
        return int(self.normalization["dim"])


def to_tensor(x) -> torch.Tensor:
    """A tensor over ``x``; read-only arrays (decoded images, np.broadcast_to) are copied, since torch warns on them."""
    if isinstance(x, torch.Tensor):
        return x
    x = np.ascontiguousarray(x)
    return torch.from_numpy(x if x.flags.writeable else x.copy())


def require_finite_somewhere(valid: torch.Tensor, name: str) -> None:
    """Raise when a sample of the batch (B, ...) has no valid value at all."""
    empty = ~valid.flatten(1).any(dim=1)
    if bool(empty.any()):
        raise InvalidValueError(f"{name} input", f"sample(s) {empty.nonzero().flatten().tolist()} have no valid value")
