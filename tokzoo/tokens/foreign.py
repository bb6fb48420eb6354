"""Token layouts written by other tools, read as tokzoo's (the hook a plug-in fills: tokzoo/plugins.py).

A plug-in registers a :class:`ForeignLayout`; the loader (:mod:`.loader`) and the trainer's modality specs
(:mod:`.spec`) ask :func:`find_layout` when a folder has no ``manifest.json``. A layout's reader gives
``shards`` (names shared by every modality, sorted), ``counts`` (samples per shard), ``id_limits()``
(modality -> vocabulary bound or None) and ``open(modality, shard)`` -> :class:`~.shards.Shard`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class ForeignLayout:
    """``detect(root)``: whether ``root`` is in this layout; ``reader(root, modalities)``: its shards;
    ``manifest(root)``: a manifest-shaped summary (``{"modalities": {name: entry}}``) of its token folders."""

    name: str
    detect: Callable[[Path], bool]
    reader: Callable[[Path, list[str]], object]
    manifest: Callable[[Path], dict]


_LAYOUTS: dict[str, ForeignLayout] = {}


def register_layout(layout: ForeignLayout) -> None:
    """Make ``layout`` readable by the loader and the trainer (a plug-in calls this once; again replaces it)."""
    _LAYOUTS[layout.name] = layout


def find_layout(root: str | Path) -> ForeignLayout | None:
    """The registered layout ``root`` is in, else None."""
    return next((layout for layout in _LAYOUTS.values() if layout.detect(Path(root))), None)
