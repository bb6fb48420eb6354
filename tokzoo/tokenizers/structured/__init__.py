"""Deterministic tokenizers without weights for structured modalities: palette, metadata, boxes.

Importing this package registers their architectures ("binned_palette", "binned_metadata", "binned_boxes").
"""

from .boxes import BoxesTokenizer
from .common import PAD
from .metadata import DEFAULT_KEYS, MetadataTokenizer
from .palette import PaletteTokenizer

__all__ = ["PAD", "BoxesTokenizer", "DEFAULT_KEYS", "MetadataTokenizer", "PaletteTokenizer"]
