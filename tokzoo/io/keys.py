"""Sample keys from file paths: stable, unique, dot-free, and traceable to their source.

A key is the relative path without its extension with every character outside ``[A-Za-z0-9_-]``
(slashes, dots, spaces, non-ASCII) replaced by ``_``. When that replacement changed anything, or
the clean name already ends like a hash suffix, ``-`` plus the first 10 hex digits of the SHA-1 of
the original relative stem is appended, so ``a/x`` -> ``a_x-<hash>`` never meets a file named
``a_x``. Keys depend only on the path (NFC-normalised, so macOS and Linux spellings of ``é``
agree), so they are the same across runs and machines.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_HASH_SUFFIX = re.compile(r"-[0-9a-f]{10}$")


def short_hash(text: str) -> str:
    """First 10 hex digits of the SHA-1 of ``text`` (UTF-8)."""
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:10]


def key_from_stem(stem: str) -> str:
    """Relative path without extension (``/`` separated) -> key. Unicode is NFC-normalised first."""
    stem = unicodedata.normalize("NFC", stem)
    safe = _UNSAFE.sub("_", stem)
    if safe != stem or not safe or _HASH_SUFFIX.search(safe):
        return f"{safe}-{short_hash(stem)}"
    return safe


def split_ext(rel_path: str) -> tuple[str, str]:
    """``"a/b.v2.png"`` -> ``("a/b.v2", ".png")``: only the last suffix is the extension."""
    head, dot, ext = rel_path.rpartition(".")
    if not dot or "/" in ext or not head or head.endswith("/"):
        return rel_path, ""
    return head, "." + ext.lower()
