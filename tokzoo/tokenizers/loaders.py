"""Ways into ``load_tokenizer`` that plug-ins add (tokzoo/plugins.py): other checkpoint formats, catalogs of names.

:func:`tokzoo.tokenizers.zoo.load_tokenizer` asks every registered :class:`TokenizerLoader`, in registration order,
before reading a folder as a tokzoo tokenizer, and resolves the names in their catalogs after its own zoo names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Collection

if TYPE_CHECKING:
    from .base import Tokenizer


@dataclass(frozen=True)
class TokenizerLoader:
    """``load(path, name)``: the tokenizer at ``path`` (a folder or file) when it is in this plug-in's format, else
    None (it may first register an architecture that tokzoo's own reader then needs); ``names()``: the names it
    resolves; ``locate(name, download)``: (folder, display name) of such a name, ``download(hub id) -> folder``."""

    name: str
    load: Callable[[Path, str], Tokenizer | None]
    names: Callable[[], Collection[str]] = tuple
    locate: Callable[[str, Callable[[str], Path]], tuple[Path, str]] | None = None


_LOADERS: dict[str, TokenizerLoader] = {}


def register_loader(loader: TokenizerLoader) -> None:
    """Add ``loader`` to ``load_tokenizer`` (a plug-in calls this once; again replaces it)."""
    _LOADERS[loader.name] = loader


def loaders() -> list[TokenizerLoader]:
    """The registered loaders, in registration order."""
    return list(_LOADERS.values())


def loader_naming(name: str) -> TokenizerLoader | None:
    """The loader whose catalog holds ``name``, else None."""
    return next((loader for loader in _LOADERS.values() if name in loader.names()), None)
