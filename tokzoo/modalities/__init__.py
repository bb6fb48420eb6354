"""One module per modality; importing this package registers them all in ``MODALITIES``."""

from . import audio, dense_features, depth, edges, global_features, human_pose, normals, rgb, sam_instances, semseg
from .base import MODALITIES, Modality, register_modality

__all__ = ["MODALITIES", "Modality", "register_modality", "get_modality"]


def get_modality(name: str) -> type[Modality]:
    from ..errors import ConfigError

    if name not in MODALITIES:
        raise ConfigError(f"unknown modality {name!r}; known: {', '.join(sorted(MODALITIES))}")
    return MODALITIES[name]
