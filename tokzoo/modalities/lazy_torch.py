"""torch for the modality codecs, imported on first use.

Declaring a modality (its stored name, file extensions, crop rule, metrics) must not load torch: tokzoo.io
reads the registry, and ``tokzoo inspect`` / ``tokzoo scenes`` stay torch-free. The codecs' methods use
``torch`` / ``F`` from here; the first attribute read imports the real module.
"""

from __future__ import annotations

import importlib


class LazyModule:
    """Stands for module ``name``; attribute reads go to the real module, imported on the first one."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)


torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")
