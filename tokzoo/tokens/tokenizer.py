"""The tokenizer that wrote a modality of a token dataset, as the manifest names it, checked against its hash."""

from __future__ import annotations

from functools import lru_cache

from tokzoo.errors import ConfigError
from tokzoo.tokenizers.base import Tokenizer
from tokzoo.tokenizers.zoo import load_tokenizer


def entry_tokenizer(entry: dict) -> Tokenizer:
    """The tokenizer a manifest entry names (``tokenizer``, ``untrained``, ``content_hash``)."""
    return checked_tokenizer(entry["tokenizer"], entry["untrained"], entry["content_hash"])


@lru_cache(maxsize=8)
def checked_tokenizer(reference: str, untrained: bool, content_hash: str) -> Tokenizer:
    """``load_tokenizer(reference)``; ConfigError when its content hash is no longer the recorded one (cached per
    process: clear with ``checked_tokenizer.cache_clear()``)."""
    tok = load_tokenizer(reference, untrained_ok=untrained)
    if tok.content_hash() != content_hash:
        raise ConfigError(
            f"tokenizer {reference!r} changed since the tokens were written "
            f"(hash {tok.content_hash()[:12]}, manifest {content_hash[:12]})"
        )
    return tok
