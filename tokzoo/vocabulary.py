"""One modality vocabulary for every command and file, and the older names still accepted.

Files, folders, ``--modality`` and ``--labeler`` use the canonical names; an old name is read as its
canonical one (``key.instances.png`` members and ``instances/`` folders written before the rename are
``sam_instances``). This module imports nothing, so the CLI can use it before torch loads.
"""

from __future__ import annotations

ALIASES = {"instances": "sam_instances"}
"""Old raw-modality name -> canonical name (files, folders, --modality, --labeler)."""

TOKENIZED_AS = {"pose": "human_pose"}
"""Raw modality -> the tokenizer modality made from it, where the names differ (``tokenize -m pose``)."""


def canonical(name: str) -> str:
    """The canonical raw-modality name of ``name`` (itself when it is not an old name)."""
    return ALIASES.get(name, name)


def tokenized_name(name: str) -> str:
    """The tokenizer modality for a ``--modality`` entry of ``tokenize``: ``instances`` -> ``sam_instances``,
    ``pose`` -> ``human_pose``; other names unchanged."""
    name = canonical(name)
    return TOKENIZED_AS.get(name, name)

