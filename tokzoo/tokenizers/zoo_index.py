"""The zoo's listing (name, modality, token shape, vocabulary, weights) without loading torch.

Building every tokenizer to read its token shape costs torch's import (2-10 s); ``tokzoo zoo list`` reads the rows
from ``tokzoo/tokenizers/weights/index.json`` instead, and rebuilds them (torch) whenever a shipped ``config.json`` differs
from the one the index was made from. Refresh it after training or changing a zoo tokenizer::

    python -m tokzoo.tokenizers.zoo_index
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

WEIGHTS_DIR = Path(__file__).parent / "weights"
INDEX = WEIGHTS_DIR / "index.json"


def _config_sha(name: str) -> str | None:
    """sha256 of ``weights/<name>/config.json``, None when no weights ship for ``name``."""
    path = WEIGHTS_DIR / name / "config.json"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def build_rows() -> list[dict]:
    """One row per zoo name, from the tokenizers themselves (imports torch)."""
    from .zoo import build_zoo_tokenizer, zoo_entries

    rows = []
    for name, entry in zoo_entries().items():
        tokenizer = build_zoo_tokenizer(name, untrained_ok=True)
        weights = "yes" if entry.weights_dir else ("not needed" if not entry.learned else "no (untrained)")
        rows.append(
            {
                "name": name,
                "modality": entry.modality,
                "tokens": "x".join(map(str, tokenizer.token_shape)),
                "vocab": tokenizer.vocab_size,
                "weights": weights,
                "config_sha": _config_sha(name),
            }
        )
    return rows


def zoo_rows() -> list[dict]:
    """The rows of :data:`INDEX` when it matches the shipped weights, else :func:`build_rows`."""
    try:
        rows = json.loads(INDEX.read_text(encoding="utf-8"))["rows"]
    except (OSError, ValueError, KeyError, TypeError):
        return build_rows()
    shipped = {p.parent.name for p in WEIGHTS_DIR.glob("*/config.json")}
    if shipped - {row["name"] for row in rows} or any(_config_sha(row["name"]) != row["config_sha"] for row in rows):
        return build_rows()
    return rows


def write_index() -> Path:
    INDEX.write_text(json.dumps({"rows": build_rows()}, indent=1) + "\n", encoding="utf-8")
    return INDEX


if __name__ == "__main__":
    print(f"wrote {write_index()}")
