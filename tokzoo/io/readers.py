"""Readers: one interface over folders, modality folders, webdataset tars and Hugging Face datasets.

Every reader is iterable (yielding decoded :class:`~tokzoo.io.samples.Sample` s) and has
``raw()`` (yielding undecoded :class:`~tokzoo.io.samples.RawSample` s for worker processes, decode
with :func:`~tokzoo.io.samples.decode_sample`), ``source_of(key)`` and ``modalities``. A bad or
missing file never stops a reader: it becomes an entry in the sample's ``errors``. Folder readers
yield samples sorted by key; tar and dataset readers keep their stored order.
"""

from __future__ import annotations

import os
import stat
from collections import defaultdict
from pathlib import Path
from typing import Iterator, Sequence

from tokzoo.errors import ConfigError, InputError
from tokzoo.io.formats import MODALITIES
from tokzoo.io.hf import HFReader, is_hf_dataset
from tokzoo.io.keys import key_from_stem, split_ext
from tokzoo.io.safety import MAX_FILE_BYTES, check_limit, file_kind
from tokzoo.io.samples import FileRef, RawSample, Reader, check_modalities
from tokzoo.io.tar import TarReader
from tokzoo.vocabulary import aliases, canonical

__all__ = ["Reader", "FolderReader", "ModalityFoldersReader", "TarReader", "HFReader", "open_reader", "holds_nothing"]


def _list_files(root: Path) -> list[str]:
    """Relative posix paths of all non-hidden files under ``root`` (special files and symlinks included, see
    :func:`file_problem`; symlinked folders are not entered), sorted."""
    if not root.is_dir():
        raise InputError(root, "not a directory")
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        out += [f if rel_dir == "." else f"{rel_dir}/{f}" for f in filenames if not f.startswith(".")]
    return sorted(out)


def file_problem(root: Path, rel: str, inside: Path | None = None) -> str | None:
    """Why the listed file ``root/rel`` is not read, or None: not a regular file (FIFO, device, socket), a dangling
    symlink, or a symlink whose target lies outside both ``root`` and ``inside`` (the input folder)."""
    path = root / rel
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            target = Path(os.path.realpath(path))
            folders = {Path(os.path.realpath(folder)) for folder in (root, inside or root)}
            if not any(target.is_relative_to(folder) for folder in folders):
                return f"{path}: symlink to {target}, outside the input folder {inside or root}; not read"
            mode = os.stat(path).st_mode
    except OSError as exc:
        return f"{path}: cannot be read ({exc.strerror or exc}; a dangling symlink?)"
    if not stat.S_ISREG(mode):
        return f"{path}: not a regular file ({file_kind(mode)}); not read"
    return None


def _stems(root: Path, rel_paths: list[str]) -> dict[str, list[str]]:
    stems: dict[str, list[str]] = defaultdict(list)
    for rel in rel_paths:
        stems[split_ext(rel)[0]].append(rel)
    return stems


def _unique(keys: dict[str, str], key: str, origin: str, root: Path) -> None:
    if key in keys:
        raise InputError(root, f"{keys[key]!r} and {origin!r} map to the same key {key!r}; rename one")
    keys[key] = origin


class FolderReader(Reader):
    """All files under ``root`` (recursively, hidden ones skipped) as one modality; one file = one sample.

    Key = :func:`~tokzoo.io.keys.key_from_stem` of the relative path without extension; when two
    files share that stem (``x.png`` and ``x.jpg``) each uses its full relative path instead.
    """

    def __init__(self, root: str | Path, modality: str, max_member_bytes: int = MAX_FILE_BYTES):
        self.root = Path(root)
        self.modalities = check_modalities([modality], str(root))
        self.max_bytes = check_limit(max_member_bytes, "max_member_bytes")
        self._files: dict[str, str] = {}
        for stem, rels in _stems(self.root, _list_files(self.root)).items():
            for rel in rels:
                _unique(self._files, key_from_stem(stem if len(rels) == 1 else rel), rel, self.root)

    def raw(self) -> Iterator[RawSample]:
        (modality,) = self.modalities
        for key in sorted(self._files):
            rel = self._files[key]
            problem = file_problem(self.root, rel)
            if problem is not None:
                yield RawSample(key, {}, {modality: problem})
                continue
            path = str(self.root / rel)
            yield RawSample(key, {modality: FileRef(path, split_ext(rel)[1], path=path, max_bytes=self.max_bytes)})

    def source_of(self, key: str) -> str:
        return str(self.root / self._files[key])

    def __len__(self) -> int:
        return len(self._files)


class ModalityFoldersReader(Reader):
    """``root/<modality>/<rel>.<ext>`` (4M layout): files of different modalities match by relative stem.

    ``modalities=None`` takes every subfolder named after a known modality (or its old name, ``instances/``
    for sam_instances). A sample lacking a modality, or holding two files with its stem in one modality
    folder, gets an error entry.
    """

    def __init__(
        self, root: str | Path, modalities: Sequence[str] | None = None, max_member_bytes: int = MAX_FILE_BYTES
    ):
        self.root = Path(root)
        self.max_bytes = check_limit(max_member_bytes, "max_member_bytes")
        if modalities is None:
            modalities = [m for m in MODALITIES if _folder(self.root, m).is_dir()]
            if not modalities:
                raise InputError(self.root, f"no subfolder named after a modality ({', '.join(MODALITIES)})")
        self.modalities = check_modalities(modalities, str(root))
        self._folders = {m: _folder(self.root, m) for m in self.modalities}
        self._by_modality = {m: _stems(folder, _list_files(folder)) for m, folder in self._folders.items()}
        self._stems: dict[str, str] = {}
        for stem in sorted({s for stems in self._by_modality.values() for s in stems}):
            _unique(self._stems, key_from_stem(stem), stem, self.root)

    def raw(self) -> Iterator[RawSample]:
        for key in sorted(self._stems):
            stem = self._stems[key]
            files, errors = {}, {}
            for m in self.modalities:
                folder, rels = self._folders[m], self._by_modality[m].get(stem, [])
                problem = file_problem(folder, rels[0], self.root) if len(rels) == 1 else None
                if problem is not None:
                    errors[m] = problem
                elif len(rels) == 1:
                    path = str(folder / rels[0])
                    files[m] = FileRef(path, split_ext(rels[0])[1], path=path, max_bytes=self.max_bytes)
                elif rels:
                    errors[m] = f"{folder}: {len(rels)} files share the stem {stem!r}: {', '.join(rels)}"
                else:
                    errors[m] = f"{folder / stem}.*: missing (no {m} file for this sample)"
            yield RawSample(key, files, errors)

    def source_of(self, key: str) -> str:
        return str(self.root / "*" / self._stems[key]) + ".*"

    def __len__(self) -> int:
        return len(self._stems)


def _folder(root: Path, modality: str) -> Path:
    """``root/<modality>``, or the folder under an old name of it (``instances/``) when only that exists."""
    own = root / canonical(modality)
    old = [root / name for name, new in aliases().items() if new == own.name and (root / name).is_dir()]
    return old[0] if old and not own.is_dir() else own


def holds_nothing(reader: Reader) -> bool:
    """True when ``reader`` certainly yields no sample (no tars; a folder or dataset of length 0), without reading
    a tar; False when that cannot be told cheaply (a streamed dataset)."""
    if isinstance(reader, TarReader):
        return not reader.shards
    try:
        return len(reader) == 0
    except TypeError:
        return False


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()


def open_reader(src: object, modalities: Sequence[str] | None = None, **kwargs) -> Reader:
    """Pick a reader for ``src``.

    - a ``datasets`` object, ``"hf:<name or dir>"`` or a ``save_to_disk`` folder -> :class:`HFReader`
    - ``*.tar``, a brace pattern (``shards/s-{000..009}.tar``), a list of tars, or a folder of
      tars only -> :class:`TarReader`
    - a folder with subfolders named after modalities -> :class:`ModalityFoldersReader`
    - any other folder with exactly one modality requested -> :class:`FolderReader`

    ``kwargs`` go to the reader (``max_member_bytes`` for files and tar members, default
    :data:`~tokzoo.io.safety.MAX_FILE_BYTES`; ``columns``, ``split``, ``streaming`` for HFReader).
    """
    if is_hf_dataset(src):
        return HFReader(src, modalities=modalities, **kwargs)
    if isinstance(src, (list, tuple)):
        return TarReader(list(src), modalities, **kwargs)
    text = str(src)
    path = Path(text)
    if text.startswith("hf:") or (path.is_dir() and _is_saved_dataset(path)):
        return HFReader(text, modalities=modalities, **kwargs)
    if text.endswith(".tar") or ("{" in text and ".." in text):
        return TarReader(text, modalities, **kwargs)
    if not path.is_dir():
        raise InputError(text, "not a directory, .tar file, brace pattern or hf: dataset")
    if any(_folder(path, m).is_dir() for m in (modalities or MODALITIES)):
        return ModalityFoldersReader(path, modalities, **kwargs)
    tars = sorted(str(p) for p in path.iterdir() if p.suffix == ".tar")
    if tars and len(tars) == len([p for p in path.iterdir() if not p.name.startswith(".")]):
        return TarReader(tars, modalities, **kwargs)
    if modalities is None or len(modalities) != 1:
        raise ConfigError(
            f"{text}: a plain folder holds one modality; name it (--modality rgb on the command line, "
            "modalities=['rgb'] in Python)"
        )
    return FolderReader(path, modalities[0], **kwargs)
