"""Read ml-4m's pre-tokenized layouts as tokzoo token shards (the layout hook :mod:`.plugin` fills in tokzoo.tokens).

Both of ml-4m's layouts are read, whoever wrote them (ml-4m's ``save_vq_tokens.py`` or ``tokzoo export``):

- webdataset: ``ROOT/<modality>/shard-*.tar`` of ``<key>.npy``, shards aligned across modality folders;
- folder: ``ROOT/<modality>/<subdir>/<file>.npy``, files aligned by sub-folder and name.

Crop settings live in ``ROOT/crop_settings`` (same layout); tokzoo's loader asks for them as ``"crops"``.
Token members are (n_crops, n_tokens) integers (int16 as ml-4m writes them), never unpickled: ml-4m's
pickled set-valued modalities (SAM instances) are refused by name. Modalities are named as their
folders (``tok_depth@224``); when ``fourm_modalities.json`` maps a tokzoo modality name to a folder
(``tokzoo export`` writes it) that name works too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tokzoo.errors import ConfigError, DtypeError, InputError, ShapeError
from tokzoo.io.safety import load_npy, read_file
from tokzoo.tokens.layout import CROPS as TOKZOO_CROPS
from tokzoo.tokens.layout import MANIFEST
from tokzoo.tokens.shards import Shard, count_members, open_shard

from .info import INFO_JSON, read_aliases, read_info
from .names import CROP_SETTINGS, RELEASED, ModalityFacts


def detect_layout(root: str | Path) -> str | None:
    """``"webdataset"`` or ``"folder"`` for an ml-4m layout (a ``crop_settings`` folder, no tokzoo manifest), else None."""
    root = Path(root)
    crops = root / CROP_SETTINGS
    if (root / MANIFEST).is_file() or not crops.is_dir():
        return None
    if any(crops.glob("*.tar")):
        return "webdataset"
    return "folder" if any(p.is_dir() for p in crops.iterdir()) else None


class FourMLayout:
    """The shards of an ml-4m layout under ``root`` for ``modalities`` (folder names, tokzoo names or ``"crops"``).

    ``shards``: shard names shared by every folder (tar names, or sub-folder names in the folder layout), sorted;
    ``counts``: samples per shard; :meth:`open` gives one modality's :class:`Shard`.
    """

    def __init__(self, root: str | Path, modalities: list[str]):
        self.root = Path(root)
        self.layout = detect_layout(self.root)
        if self.layout is None:
            raise ConfigError(
                f"{self.root}: not an ml-4m token layout (no {CROP_SETTINGS}/ folder of tars or sub-folders)"
            )
        self.info = read_info(self.root) or {}
        self.aliases = read_aliases(self.root)
        self.folders = {m: self.folder(m) for m in modalities}
        self.shards = self._common_shards()
        first = self.folders[modalities[0]]
        self.counts = [self._count(first, name) for name in self.shards]

    def folder(self, modality: str) -> str:
        """The folder holding ``modality``."""
        if modality == TOKZOO_CROPS:
            return CROP_SETTINGS
        if (self.root / modality).is_dir():
            return modality
        alias = self.aliases.get(modality)
        if alias and (self.root / alias).is_dir():
            return alias
        found = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        raise InputError(self.root / modality, f"no such 4M modality folder (found: {', '.join(found) or 'none'})")

    def facts(self, modality: str) -> ModalityFacts:
        """The modality's entry: from ``fourm_modalities.json``, else ml-4m's released table; else a one-line error."""
        name = self.folders.get(modality, modality)
        facts = self.info.get(name) or RELEASED.get(name)
        if facts is None:
            raise ConfigError(
                f"{self.root / name}: unknown 4M modality name {name!r}: not a released 4M modality and "
                f"not in {self.root / INFO_JSON}; add its entry (vocab_size, input_size, patch_size) there"
            )
        return facts

    def id_limits(self) -> dict[str, int | None]:
        """Per modality: the vocabulary its ids must stay under when its entry is known, else None (crops: None)."""
        limits = {}
        for modality, folder in self.folders.items():
            facts = None if folder == CROP_SETTINGS else self.info.get(folder) or RELEASED.get(folder)
            limits[modality] = facts.vocab_size if facts is not None and facts.type == "img" else None
        return limits

    def open(self, modality: str, shard: str) -> Shard:
        folder = self.folders[modality]
        path = self.root / folder / shard
        opened = open_shard(path) if self.layout == "webdataset" else _open_folder(path)
        if folder != CROP_SETTINGS:
            _check_grid(opened, self.info.get(folder) or RELEASED.get(folder))
        return opened

    def _common_shards(self) -> list[str]:
        names = {}
        for modality, folder in self.folders.items():
            path = self.root / folder
            if self.layout == "webdataset":
                names[modality] = sorted(p.name for p in path.glob("*.tar"))
            else:
                names[modality] = sorted(p.name for p in path.iterdir() if p.is_dir())
            if not names[modality]:
                raise InputError(path, "no shards (.tar files or sub-folders of .npy files)")
        first, *rest = self.folders
        for modality in rest:
            for name in sorted(set(names[first]) ^ set(names[modality]))[:1]:
                absent, present = (modality, first) if name in names[first] else (first, modality)
                raise InputError(
                    self.root / self.folders[absent] / name, f"shard missing (present in {self.folders[present]!r})"
                )
        return names[first]

    def _count(self, folder: str, shard: str) -> int:
        path = self.root / folder / shard
        return count_members(path) if self.layout == "webdataset" else len(list(path.glob("*.npy")))


def _open_folder(path: Path) -> Shard:
    """One sub-folder of the folder layout as a :class:`Shard` (files in sorted order, like ml-4m's loader)."""
    files = sorted(path.glob("*.npy"))
    arrays = []
    for file in files:
        try:  # a regular file of at most 256 MiB (a FIFO would block np.load), its header checked before any data
            array = load_npy(read_file(file), str(file))
        except DtypeError as e:
            raise DtypeError(
                file,
                "pickled .npy (ml-4m's set-valued form); tokzoo never unpickles data files"
                if "object arrays" in e.reason
                else e.reason,
            ) from None
        if array.dtype.kind not in "iu":
            raise DtypeError(file, f"token ids must be a plain integer dtype, got {array.dtype}")
        if array.ndim < 2 or len(array) < 1:
            raise ShapeError(file, f"expected (n_crops >= 1, *token_shape), got shape {array.shape}")
        arrays.append(array)
    names = np.array([f.name.encode() for f in files], dtype=object).astype(bytes)
    n_crops = np.array([len(a) for a in arrays], np.int64)
    if arrays and len({(a.shape, a.dtype) for a in arrays}) == 1:
        tokens = np.stack(arrays)
    else:
        tokens = arrays
    return Shard(path, names, tokens, n_crops)


def _check_grid(shard: Shard, facts: ModalityFacts | None) -> None:
    if facts is None or facts.type != "img" or not len(shard):
        return
    shapes = {shard.tokens.shape[2:]} if isinstance(shard.tokens, np.ndarray) else {t.shape[1:] for t in shard.tokens}
    for shape in shapes:
        if int(np.prod(shape)) != facts.n_tokens:
            raise ShapeError(
                shard.path,
                f"token grid mismatch: {shape} tokens per crop, {facts.name} holds "
                f"{facts.grid}x{facts.grid} = {facts.n_tokens}",
            )


def manifest_for(root: str | Path) -> dict:
    """A tokzoo-manifest-shaped summary of an ml-4m layout, for code that reads ``manifest.json`` (the trainer's
    modality specs): per token folder ``vocab_size``, ``token_shape`` [n_tokens], ``size`` (the 4M input size),
    ``complete``, ``samples.ok``; ``tokenizer`` None (ml-4m data names none). Folders whose entry is unknown
    (not released, not in fourm_modalities.json) or that are not token data are left out."""
    root = Path(root)
    entries = {}
    for folder in sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != CROP_SETTINGS):
        try:
            layout = FourMLayout(root, [folder])
            facts = layout.facts(folder)
            layout.open(folder, layout.shards[0])
        except (ConfigError, InputError):
            continue
        if facts.type != "img":
            continue
        entries[folder] = {
            "vocab_size": facts.vocab_size,
            "token_shape": [facts.n_tokens],
            "complete": True,
            "samples": {"ok": sum(layout.counts), "failed": 0, "count": sum(layout.counts)},
            "size": [facts.input_size, facts.input_size],
            "tokenizer": None,
            "content_hash": None,
            "untrained": False,
            "dtype": "int16",
            "name": folder,
        }
    return {"format": "ml-4m", "layout": detect_layout(root), "modalities": entries}
