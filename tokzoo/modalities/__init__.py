"""One module per modality; importing this package registers them all in ``MODALITIES`` and every stored value
in ``STORED`` (tokzoo/modalities/base.py says what each declares)."""

# isort: off
# Registration order is the order stored values are listed in (io readers, the browse site's columns).
from . import rgb, depth, normals, semseg, sam_instances, edges
from . import crop_settings, dense_features, global_features, stored, human_pose, audio

# isort: on
from .base import MODALITIES, STORED, Modality, StoredValue, register_modality, register_stored

__all__ = ["MODALITIES", "STORED", "Modality", "StoredValue", "register_modality", "register_stored", "get_modality"]


def get_modality(name: str) -> type[Modality]:
    from ..errors import ConfigError

    if name not in MODALITIES:
        raise ConfigError(f"unknown modality {name!r}; known: {', '.join(sorted(MODALITIES))}")
    return MODALITIES[name]
