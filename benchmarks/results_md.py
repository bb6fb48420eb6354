"""Writing a benchmark's entry into RESULTS.md: under its own ``## `` section, at that section's end."""

from __future__ import annotations

from pathlib import Path


def append_to_section(path: Path, section: str, text: str) -> None:
    """Append ``text`` at the end of ``section`` (a ``## `` heading line; created at the end of the file when
    missing), re-reading the file right before writing so entries other scripts wrote meanwhile are kept."""
    content = path.read_text() if path.exists() else ""
    if section not in content:
        path.write_text(content.rstrip("\n") + "\n\n" + section + "\n\n" + text + "\n")
        return
    head, _, tail = content.partition(section)
    cut = tail.find("\n## ")
    body, rest = (tail, "") if cut < 0 else (tail[:cut], tail[cut:])
    path.write_text(head + section + body.rstrip("\n") + "\n\n" + text + "\n" + rest)
