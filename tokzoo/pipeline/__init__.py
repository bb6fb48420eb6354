"""The tokenize pipeline: input samples -> consistent crops -> tokens, sharded per modality (docs/ARCHITECTURE.md)."""

from .run import Summary, TokenizeJob, tokenize

__all__ = ["Summary", "TokenizeJob", "tokenize"]
