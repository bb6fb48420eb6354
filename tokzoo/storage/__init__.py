"""Local paths and object-storage URLs behind one small path API.

:func:`as_path` gives a :class:`pathlib.Path` for a local path and an :class:`ObjectPath` for a URL
(``s3://bucket/tokens``, ``gs://...``, ``memory://...``; any fsspec protocol whose package is installed).
Both offer the subset of ``pathlib`` the pipeline's writer and readers use (``/``, ``name``, ``exists``,
``is_file``, ``glob``, ``read_bytes``, ``write_bytes``, ``replace``, ...), so the same journaled commit runs on
both: files are staged under ``<name>.tmp``, a journal is written, then each file is moved into place (on an
object store a move is a server-side copy, then a delete: replaying a journal repeats it harmlessly) and the
completion marker goes last. fsspec is imported only when a URL is met.
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath
from typing import Iterator

from tokzoo.errors import InputError

__all__ = ["ObjectPath", "as_path", "is_url", "open_binary", "rmtree"]


def is_url(text: object) -> bool:
    """True for ``protocol://...`` strings other than ``file://`` (those are local paths)."""
    if isinstance(text, ObjectPath):
        return True
    text = str(text)
    protocol, sep, _ = text.partition("://")
    return bool(sep) and protocol.isidentifier() and protocol != "file"


def as_path(value: str | Path | "ObjectPath") -> "Path | ObjectPath":
    """``value`` as a :class:`Path` (local) or :class:`ObjectPath` (URL); paths pass through."""
    if isinstance(value, (Path, ObjectPath)):
        return value
    text = str(value)
    if text.startswith("file://"):
        return Path(text[len("file://") :])
    return ObjectPath.from_url(text) if is_url(text) else Path(text)


def rmtree(path: "Path | ObjectPath") -> None:
    """Delete a folder (or prefix) and everything under it."""
    if isinstance(path, ObjectPath):
        path.fs.rm(path.path, recursive=True)
    else:
        shutil.rmtree(path)


def open_binary(url: str):
    """A readable binary file object for a URL (fsspec), e.g. an input tar on S3."""
    import fsspec

    return fsspec.open(url, "rb").open()


class ObjectPath:
    """A path on an fsspec filesystem: ``fs`` and ``path`` (no protocol, no trailing slash).

    Listings are not cached, so a rerun or another process sees what was written since. Folders are
    prefixes: ``mkdir`` does nothing where the store has no folders.
    """

    def __init__(self, fs, path: str):
        self.fs, self.path = fs, path.rstrip("/") or "/"

    @classmethod
    def from_url(cls, url: str) -> "ObjectPath":
        import fsspec

        try:
            fs, path = fsspec.core.url_to_fs(url.rstrip("/"), use_listings_cache=False)
        except (ImportError, ValueError) as error:  # unknown protocol, or its package (s3fs, gcsfs) missing
            raise InputError(url, f"cannot open this URL ({str(error).splitlines()[0]})") from None
        return cls(fs, path)

    # names
    def __truediv__(self, part: str) -> "ObjectPath":
        return ObjectPath(self.fs, f"{self.path}/{part}")

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def parent(self) -> "ObjectPath":
        return ObjectPath(self.fs, self.path.rsplit("/", 1)[0] if "/" in self.path.strip("/") else self.path)

    def with_name(self, name: str) -> "ObjectPath":
        return self.parent / name

    def relative_to(self, other: "ObjectPath") -> PurePosixPath:
        return PurePosixPath(self.path).relative_to(other.path)

    def as_posix(self) -> str:
        return str(self)

    def __str__(self) -> str:
        return self.fs.unstrip_protocol(self.path)

    def __repr__(self) -> str:
        return f"ObjectPath({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ObjectPath) and str(other) == str(self)

    def __hash__(self) -> int:
        return hash(str(self))

    def __lt__(self, other: "ObjectPath") -> bool:
        return self.path < other.path

    # queries
    def exists(self) -> bool:
        return self.fs.exists(self.path)

    def is_file(self) -> bool:
        return self.fs.isfile(self.path)

    def is_dir(self) -> bool:
        return self.fs.isdir(self.path)

    def is_symlink(self) -> bool:
        return False  # object stores have no links

    def iterdir(self) -> Iterator["ObjectPath"]:
        for child in sorted(self.fs.ls(self.path, detail=False)):
            if child.rstrip("/") != self.path:
                yield ObjectPath(self.fs, child)

    def glob(self, pattern: str) -> Iterator["ObjectPath"]:
        for match in sorted(self.fs.glob(f"{self.path}/{pattern}")):
            yield ObjectPath(self.fs, match)

    # contents
    def read_bytes(self) -> bytes:
        return self.fs.cat_file(self.path)

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def write_bytes(self, data: bytes) -> int:
        self.fs.pipe_file(self.path, data)
        return len(data)

    def open(self, mode: str = "rb"):
        return self.fs.open(self.path, mode)

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        self.fs.makedirs(self.path, exist_ok=True)

    def unlink(self, missing_ok: bool = False) -> None:
        if missing_ok and not self.exists():
            return
        self.fs.rm_file(self.path)

    def replace(self, target: "ObjectPath") -> "ObjectPath":
        """Move to ``target`` (copy, then delete this one; the copy appears whole or not at all)."""
        self.fs.mv(self.path, target.path)
        return target
