"""The tokenize pipeline: input samples -> consistent crops -> tokens, sharded per modality (docs/ARCHITECTURE.md).

The names below import torch when first used, so that reading a token dataset (``tokzoo inspect``) does not.
"""

__all__ = ["Summary", "TokenizeJob", "tokenize"]


def __getattr__(name: str):
    if name in __all__:
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module 'tokzoo.pipeline' has no attribute {name!r}")
