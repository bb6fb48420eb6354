"""Every file tokzoo writes goes through here: names from data become file names through :func:`file_name`, and
files are created inside an output root without following links (docs/ARCHITECTURE.md, "Reliability / writes
and the site").

The rules, for a ``path`` under ``root`` (``root`` itself may be a link the user chose; nothing below it may be):

- ``path`` must be ``root`` joined with relative parts: an absolute path elsewhere, a ``..`` part, an empty or
  NUL-holding part, or a part over 255 bytes is refused before anything is touched;
- folders are walked from ``root`` with ``O_DIRECTORY | O_NOFOLLOW`` descriptors (made when missing), so a
  symlink planted anywhere below ``root`` is refused, never followed, and cannot be swapped in between a check
  and the write;
- a file is written under a fresh temporary name opened with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and renamed over
  its name in the same folder: an existing symlink or folder of that name is refused, an existing regular file
  (even one hard-linked elsewhere) is replaced, never written into.

Refusals raise :class:`~tokzoo.errors.UnsafeOutputError`, OS errors (full disk, file size limit, permissions)
:class:`~tokzoo.errors.OutputError`; both are one line naming the path. Local paths only: object-store outputs
(:mod:`tokzoo.storage`) have no links and keep their own writes.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from tokzoo.errors import OutputError, UnsafeOutputError

from .keys import short_hash
from .safety import file_kind

MAX_NAME_CHARS = 120
"""Longest name :func:`file_name` returns (a file system allows 255 bytes; suffixes are added to it)."""
_PLAIN = re.compile(r"[A-Za-z0-9_@+=-][A-Za-z0-9_.@+=-]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@+=-]")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def is_plain_name(name: object) -> bool:
    """A name usable as one file name as it is: ``[A-Za-z0-9_@+=-]`` first, then those and ``.``, no ``..``,
    at most :data:`MAX_NAME_CHARS` characters (``rgb``, ``tok_depth@224``, ``shard-000001-002``)."""
    return (
        isinstance(name, str)
        and len(name) <= MAX_NAME_CHARS
        and _PLAIN.fullmatch(name) is not None
        and ".." not in name
    )


def file_name(text: str) -> str:
    """The one way a name from data becomes a file name: ``text`` itself when :func:`is_plain_name`, else every
    other character and every ``.`` replaced by ``_``, cut to fit, ``-`` and 10 hex digits of the SHA-1 of
    ``text`` appended (``../x`` -> ``___x-<hash>``), so distinct names stay distinct and none is hidden."""
    text = str(text)
    if is_plain_name(text):
        return text
    safe = _UNSAFE.sub("_", text).replace(".", "_")[: MAX_NAME_CHARS - 11]
    return f"{safe or '_'}-{short_hash(text)}"


def parts_inside(root: str | os.PathLike, path: str | os.PathLike) -> tuple[str, ...]:
    """The parts of ``path`` (``root / ...``, normalised lexically) below ``root``; UnsafeOutputError naming
    ``path`` when it lies elsewhere (``..`` out of it, an absolute path) or a part is no usable name."""
    base, text = os.path.normpath(os.fspath(root)), os.path.normpath(os.fspath(path))
    if text == base:
        return ()
    if base == ".":
        inside = not os.path.isabs(text) and text != ".." and not text.startswith(".." + os.sep)
    else:
        inside = text.startswith(base if base.endswith(os.sep) else base + os.sep)
    if not inside:
        raise UnsafeOutputError(path, f"outside the output folder {os.fspath(root)}; not written")
    parts = tuple(text[len(base) :].lstrip(os.sep).split(os.sep)) if base != "." else tuple(text.split(os.sep))
    for part in parts:
        if "\0" in part or len(part.encode("utf-8", "surrogateescape")) > 255:
            raise UnsafeOutputError(path, "not a usable file name (a NUL byte, or a part over 255 bytes)")
    return parts


@contextmanager
def _folder(root: str | os.PathLike, parts: tuple[str, ...], path, create: bool = True) -> Iterator[int]:
    """A descriptor of the folder ``root/parts...``, walked without following links (made when missing)."""
    os.makedirs(root, exist_ok=True) if create else None
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if not create:
            raise
        raise OutputError(root, "cannot open the output folder (it vanished)") from None
    except OSError as error:
        raise OutputError(root, f"cannot open the output folder ({error.strerror or error})") from None
    try:
        for index, part in enumerate(parts):
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                _mkdir(part, fd, path)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as error:
                _refuse_entry(part, fd, path, root, parts[: index + 1], error)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _mkdir(part: str, fd: int, path) -> None:
    try:
        os.mkdir(part, 0o777, dir_fd=fd)
    except FileExistsError:
        pass  # made meanwhile; opened (and checked) next
    except OSError as error:
        raise OutputError(path, f"cannot make folder {part!r} ({error.strerror or error})") from None


def _refuse_entry(part: str, fd: int, path, root, parts: tuple[str, ...], error: OSError) -> None:
    where = os.path.join(os.fspath(root), *parts)
    try:
        mode = os.lstat(part, dir_fd=fd).st_mode
    except OSError:
        raise OutputError(path, f"cannot open {where} ({error.strerror or error})") from None
    if stat.S_ISLNK(mode):
        raise UnsafeOutputError(
            path,
            f"{where} is a symlink (to {_target(part, fd)}); tokzoo writes only inside "
            f"{root} and never through links: remove it",
        )
    raise UnsafeOutputError(path, f"{where} is a {file_kind(mode)}, not a folder")


def _target(part: str, fd: int) -> str:
    try:
        return os.readlink(part, dir_fd=fd)
    except OSError:
        return "?"


def _check_destination(name: str, fd: int, path) -> None:
    """Refuse a symlink, folder or special file where a regular file is to be written."""
    try:
        mode = os.lstat(name, dir_fd=fd).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise UnsafeOutputError(
            path, f"is a symlink (to {_target(name, fd)}); tokzoo never writes through links: remove it"
        )
    if not stat.S_ISREG(mode):
        raise UnsafeOutputError(path, f"is a {file_kind(mode)}, not a regular file; not replaced")


Content = bytes | str | Callable[[object], None]
"""What to write: bytes, text (UTF-8), or a function writing into a binary file object."""


def write_file(root: str | os.PathLike, path: str | os.PathLike, content: Content) -> Path:
    """Write ``content`` to ``path`` inside ``root`` atomically (temporary name + rename in the same folder);
    returns ``Path(root, *parts)``. See the module docstring for what is refused."""
    parts = parts_inside(root, path)
    if not parts:
        raise UnsafeOutputError(path, "is the output folder itself, not a file in it")
    with _folder(root, parts[:-1], path) as fd:
        name = parts[-1]
        _check_destination(name, fd, path)
        temporary = _create(f".{name[:200]}.{os.getpid()}-{os.urandom(3).hex()}.tmp", fd, path, content)
        try:
            os.replace(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
        except OSError as error:
            _unlink(temporary, fd)
            raise OutputError(path, f"cannot write ({error.strerror or error})") from None
    return Path(root, *parts)


def create_file(root: str | os.PathLike, path: str | os.PathLike, content: Content) -> Path:
    """Write ``content`` to ``path`` inside ``root`` in place (no rename: for staging files a caller renames
    itself, :func:`rename_inside`); an existing regular file of that name is removed first, never written into."""
    parts = parts_inside(root, path)
    if not parts:
        raise UnsafeOutputError(path, "is the output folder itself, not a file in it")
    with _folder(root, parts[:-1], path) as fd:
        _check_destination(parts[-1], fd, path)
        _unlink(parts[-1], fd)
        _create(parts[-1], fd, path, content)
    return Path(root, *parts)


def _create(name: str, fd: int, path, content: Content) -> str:
    _unlink(name, fd)  # a leftover of a killed run (a link there is removed, not followed)
    try:
        file_fd = os.open(name, _NEW_FILE, 0o666, dir_fd=fd)
    except OSError as error:
        raise OutputError(path, f"cannot create ({error.strerror or error})") from None
    try:
        with os.fdopen(file_fd, "wb") as file:
            _write_content(file, content)
    except OSError as error:
        _unlink(name, fd)
        raise OutputError(path, f"cannot write ({error.strerror or error})") from None
    except BaseException:
        _unlink(name, fd)
        raise
    return name


def _write_content(file, content: Content) -> None:
    if callable(content):
        content(file)
    else:
        file.write(content.encode("utf-8") if isinstance(content, str) else content)


def _unlink(name: str, fd: int) -> None:
    try:
        os.unlink(name, dir_fd=fd)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        pass


def append_file(root: str | os.PathLike, path: str | os.PathLike, text: str) -> Path:
    """Append ``text`` (UTF-8) to the log ``path`` inside ``root``, made when missing; a symlink, a special file or
    a file with other hard links is refused (appending into it would write elsewhere)."""
    parts = parts_inside(root, path)
    if not parts:
        raise UnsafeOutputError(path, "is the output folder itself, not a file in it")
    with _folder(root, parts[:-1], path) as fd:
        _check_destination(parts[-1], fd, path)
        try:
            file_fd = os.open(
                parts[-1],
                os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0),
                0o666,
                dir_fd=fd,
            )
        except OSError as error:
            _check_destination(parts[-1], fd, path)  # swapped for a link meanwhile: say so
            raise OutputError(path, f"cannot open for appending ({error.strerror or error})") from None
        with os.fdopen(file_fd, "ab") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                what = file_kind(info.st_mode) if not stat.S_ISREG(info.st_mode) else f"{info.st_nlink} hard links"
                raise UnsafeOutputError(path, f"has {what}; tokzoo appends only to a log file of its own")
            try:
                file.write(text.encode("utf-8"))
            except OSError as error:
                raise OutputError(path, f"cannot write ({error.strerror or error})") from None
    return Path(root, *parts)


def make_folder(root: str | os.PathLike, path: str | os.PathLike | None = None) -> Path:
    """Make the folder ``path`` inside ``root`` (default: ``root`` itself), refusing links below ``root``."""
    parts = parts_inside(root, root if path is None else path)
    with _folder(root, parts, path):
        pass
    return Path(root, *parts)


def rename_inside(root: str | os.PathLike, source: str | os.PathLike, target: str | os.PathLike) -> None:
    """``os.replace(source, target)``, both inside ``root`` with no link on the way; ``target`` must not be a link
    or folder (a file or folder ``source`` both work)."""
    source_parts, target_parts = parts_inside(root, source), parts_inside(root, target)
    if not source_parts or not target_parts:
        raise UnsafeOutputError(target, "is the output folder itself")
    try:
        with (
            _folder(root, source_parts[:-1], source, create=False) as source_fd,
            _folder(root, target_parts[:-1], target) as target_fd,
        ):
            _check_destination(target_parts[-1], target_fd, target)
            os.replace(source_parts[-1], target_parts[-1], src_dir_fd=source_fd, dst_dir_fd=target_fd)
    except OSError as error:
        raise OutputError(target, f"cannot rename {source} into place ({error.strerror or error})") from None


def remove_inside(root: str | os.PathLike, path: str | os.PathLike) -> None:
    """Remove the file, link or folder tree ``path`` inside ``root`` without following any link (a link is
    removed, never what it points to); missing is fine."""
    parts = parts_inside(root, path)
    if not parts:
        raise UnsafeOutputError(path, "is the output folder itself; not removed")
    try:
        with _folder(root, parts[:-1], path, create=False) as fd:
            mode = os.lstat(parts[-1], dir_fd=fd).st_mode
            if stat.S_ISDIR(mode):
                shutil.rmtree(parts[-1], dir_fd=fd)
            else:
                os.unlink(parts[-1], dir_fd=fd)
    except FileNotFoundError:
        return
    except OSError as error:
        raise OutputError(path, f"cannot remove ({error.strerror or error})") from None


def check_own_file(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """True when ``path`` inside ``root`` is a regular file of its own (no link on the way, one hard link), False
    when missing; UnsafeOutputError otherwise. For reading back a file tokzoo wrote before rewriting it."""
    parts = parts_inside(root, path)
    try:
        with _folder(root, parts[:-1], path, create=False) as fd:
            _check_destination(parts[-1], fd, path)
            info = os.lstat(parts[-1], dir_fd=fd)
    except FileNotFoundError:
        return False
    if info.st_nlink != 1:
        raise UnsafeOutputError(path, f"has {info.st_nlink} hard links; tokzoo rewrites only files of its own")
    return True


def copy_folder_into(root: str | os.PathLike, source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy the regular files another library wrote into the private folder ``source`` (a fresh temporary one)
    into the folder ``target`` inside ``root``, each through :func:`write_file`."""
    for entry in sorted(Path(source).iterdir()):
        if entry.is_file() and not entry.is_symlink():
            with open(entry, "rb") as file:
                write_file(root, Path(target, entry.name), lambda out, file=file: shutil.copyfileobj(file, out))


def write_output(path: str | os.PathLike, content: Content) -> Path:
    """Write a file the user named (``-o report.png``): atomically, and never through a link or hard link of that
    name; the folders on the way are the user's choice (made when missing)."""
    path = Path(path)
    return write_file(path.parent, path, content)
