"""One modality vocabulary for every command and file, and the older names still accepted.

Files, folders, ``--modality`` and ``--labeler`` use the canonical names; an old name is read as its
canonical one (``key.instances.png`` members and ``instances/`` folders written before the rename are
``sam_instances``). Both are declared with the modality (``StoredValue.old_names``, ``Modality.stored_as``);
this module reads the registry (tokzoo/modalities, torch-free) when asked and imports nothing at load, so the
CLI can use it before anything heavy loads.
"""

from __future__ import annotations


def aliases() -> dict[str, str]:
    """Old raw-modality name -> canonical name (files, folders, --modality, --labeler)."""
    from tokzoo.modalities import STORED

    return {old: name for name, stored in STORED.items() for old in stored.old_names}


def canonical(name: str) -> str:
    """The canonical raw-modality name of ``name`` (itself when it is not an old name)."""
    return aliases().get(name, name)


def tokenized_name(name: str) -> str:
    """The tokenizer modality for a ``--modality`` entry of ``tokenize``: ``instances`` -> ``sam_instances``,
    ``pose`` -> ``human_pose`` (the modality ``stored_as`` it); other names unchanged."""
    from tokzoo.modalities import MODALITIES

    name = canonical(name)
    return next((modality for modality, cls in MODALITIES.items() if cls.stored_as == name), name)
