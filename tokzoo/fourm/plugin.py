"""The ml-4m port plugged into the core's hooks (registered once by tokzoo/plugins.py on ``import tokzoo``).

- :mod:`tokzoo.tokens.foreign`: ml-4m's pre-tokenized layouts read by the loader and the trainer (:mod:`.reader`);
- :mod:`tokzoo.tokenizers.loaders`: 4M checkpoints (folder, single safetensors) and the released tokenizers' names
  (``4m_rgb``, :mod:`.catalog`) loaded by ``load_tokenizer`` (:mod:`.tokenizer`).

Registering imports nothing heavy: each hook imports the port's modules when it is first called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from tokzoo.errors import TokzooError
from tokzoo.tokenizers.loaders import TokenizerLoader, register_loader
from tokzoo.tokens.foreign import ForeignLayout, register_layout


def register() -> None:
    register_layout(ForeignLayout("ml-4m", _is_fourm_layout, _open_layout, _layout_manifest))
    register_loader(TokenizerLoader("ml-4m", _load_checkpoint, _released_names, _locate_released))


def _is_fourm_layout(root: Path) -> bool:
    from .reader import detect_layout

    return detect_layout(root) is not None


def _open_layout(root: Path, modalities: list[str]):
    from .reader import FourMLayout

    return FourMLayout(root, modalities)


def _layout_manifest(root: Path) -> dict:
    from .reader import manifest_for

    return manifest_for(root)


def _load_checkpoint(path: Path, name: str):
    """A released 4M tokenizer (folder, .safetensors; .pth refused) as a FourMTokenizer; None for other folders.
    A tokzoo folder saved from a FourMTokenizer gets its architecture registered, then tokzoo's reader loads it."""
    from .checkpoints import is_fourm_checkpoint, uses_fourm_architecture

    if not (is_fourm_checkpoint(path) or uses_fourm_architecture(path)):
        return None
    from .tokenizer import FourMTokenizer  # also registers its architecture for from_pretrained

    return FourMTokenizer.from_fourm(path, name=name) if is_fourm_checkpoint(path) else None


def _released_names() -> list[str]:
    from .catalog import RELEASED_TOKENIZERS

    return list(RELEASED_TOKENIZERS)


def _locate_released(name: str, download: Callable[[str], Path]) -> tuple[Path, str]:
    """A released 4M tokenizer's folder: the local copy, else the hub; offline, one line saying how to fetch it."""
    from .catalog import RELEASED_TOKENIZERS, fetch_hint, local_copy

    entry = RELEASED_TOKENIZERS[name]
    folder = local_copy(entry)
    if folder is None:
        try:
            folder = download(entry.hub_id)
        except TokzooError:
            raise TokzooError(
                f"{name}: the released 4M tokenizer {entry.hub_id} is not here and could not be fetched "
                f"(offline?); {fetch_hint(entry)}"
            ) from None
    return Path(folder), entry.repo_name
