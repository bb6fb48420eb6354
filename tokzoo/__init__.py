"""tokzoo: modality tokenizers, pseudo-labelers and webdataset sharding for any-to-any multimodal models.

``Tokenizer`` and ``load_tokenizer`` import torch when first used, not on ``import tokzoo``, so that commands
that need no model (``tokzoo --help``, ``zoo list``, ``inspect``, ``scenes``) start fast.
"""

__version__ = "0.1.0"

from . import plugins  # noqa: E402  (fills the core's hooks: tokzoo/plugins.py)

plugins.load()

__all__ = ["Tokenizer", "load_tokenizer", "__version__"]


def __getattr__(name: str):
    if name == "Tokenizer":
        from .tokenizers.base import Tokenizer

        return Tokenizer
    if name == "load_tokenizer":
        from .tokenizers.zoo import load_tokenizer

        return load_tokenizer
    raise AttributeError(f"module 'tokzoo' has no attribute {name!r}")
