"""The modality entries ml-4m needs for exported tokens: ``fourm_modalities.json`` and ``fourm_modalities.py``.

ml-4m looks every modality up in ``fourm.data.modality_info.MODALITY_INFO`` (vocabulary, input size,
patch size -> number of tokens, type, embeddings) and its data transform in ``MODALITY_TRANSFORMS``
by the name's part before ``@``. An export writes both files at its root: the JSON is what tokzoo
reads back; the Python file, run or imported inside an ml-4m checkout (``import fourm_modalities``
before building the model and loader), adds the entries that ml-4m does not have yet and checks the
ones it has against the tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokzoo.errors import ConfigError, InputError
from tokzoo.io.safety import MAX_JSON_BYTES, load_json, read_file
from tokzoo.limits import check_field

from .names import RELEASED, ModalityFacts

INFO_JSON = "fourm_modalities.json"
INFO_PY = "fourm_modalities.py"
FORMAT = "tokzoo-4m-modalities/1"


def info_json(facts: list[ModalityFacts], layout: str, n_shards: int, extra: dict) -> bytes:
    """Deterministic JSON: format, layout, the ml-4m data path to use, and one entry per modality."""
    value = {
        "format": FORMAT,
        "layout": layout,
        "data_path": data_path(facts, layout, n_shards),
        "modalities": {f.name: {**f.as_dict(), "released": f.name in RELEASED} for f in facts},
        **extra,
    }
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def data_path(facts: list[ModalityFacts], layout: str, n_shards: int) -> str:
    """What ml-4m's data config takes as ``data_path`` (relative to the export root)."""
    folders = ",".join([f.name for f in facts] + ["crop_settings"])
    if layout == "webdataset":
        return f"[{folders}]/shard-{{00000..{n_shards - 1:05d}}}.tar"
    return "."


def info_py(facts: list[ModalityFacts]) -> bytes:
    """A module that registers the entries with ml-4m when imported (it imports ml-4m, tokzoo is not needed)."""
    lines = [
        '"""Written by `tokzoo export --to 4m`: registers these token modalities with ml-4m.',
        "",
        "Import it (``import fourm_modalities``) in ml-4m's training script before the model and data are",
        "built. Entries ml-4m already has are checked against the tokens instead of replaced.",
        '"""',
        "",
        "from functools import partial",
        "",
        "from fourm.data.modality_info import MODALITY_INFO, MODALITY_TRANSFORMS",
        "from fourm.data.modality_transforms import TokTransform",
        "from fourm.models.decoder_embeddings import ImageTokenDecoderEmbedding",
        "from fourm.models.encoder_embeddings import ImageTokenEncoderEmbedding",
        "from fourm.utils import generate_uint15_hash",
        "",
        "ENTRIES = {",
    ]
    for f in facts:
        lines.append(
            f"    {f.name!r}: dict(vocab_size={f.vocab_size}, input_size={f.input_size}, "
            f"patch_size={f.patch_size}, type={f.type!r}),"
        )
    lines += [
        "}",
        "",
        "for name, facts in ENTRIES.items():",
        "    known = MODALITY_INFO.get(name)",
        "    if known is not None:",
        "        size = known.get('input_size') or facts['input_size']",
        "        if (size // known['patch_size']) != facts['input_size'] // facts['patch_size'] \\",
        "                or known['vocab_size'] < facts['vocab_size']:",
        "            raise ValueError(f'{name}: ml-4m already defines it with another token grid or a smaller '",
        "                             f'vocabulary ({known}); export under another name')",
        "        continue",
        "    vocab = facts['vocab_size']",
        "    MODALITY_INFO[name] = {",
        "        'input_size': facts['input_size'], 'patch_size': facts['patch_size'], 'vocab_size': vocab,",
        "        'encoder_embedding': partial(ImageTokenEncoderEmbedding, vocab_size=vocab),",
        "        'decoder_embedding': partial(ImageTokenDecoderEmbedding, vocab_size=vocab),",
        "        'min_tokens': 0, 'max_tokens': None, 'type': facts['type'],",
        "        'id': generate_uint15_hash(name), 'pretokenized': True,",
        "    }",
        "    MODALITY_TRANSFORMS.setdefault(name.split('@')[0], TokTransform())",
        "",
    ]
    return "\n".join(lines).encode()


def read_info(root: Path) -> dict[str, ModalityFacts] | None:
    """Entries of ``root/fourm_modalities.json`` by name, or None when there is no such file."""
    path = Path(root) / INFO_JSON
    if not path.exists():  # a FIFO or device is refused by the reader, not skipped
        return None
    try:
        value = _load(path)
        return {
            name: ModalityFacts(
                name,
                check_field(e["vocab_size"], path, f"{name} vocab_size", "fourm.codebook_size"),
                check_field(e["input_size"], path, f"{name} input_size", "fourm.info.input_size"),
                check_field(e["patch_size"], path, f"{name} patch_size", "fourm.patch_size"),
                str(e.get("type", "img")),
            )
            for name, e in value["modalities"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError, ZeroDivisionError) as e:
        raise ConfigError(f"{path}: unreadable 4M modality info ({type(e).__name__}: {e})") from None


def read_aliases(root: Path) -> dict[str, str]:
    """tokzoo modality name -> 4M folder name, as ``tokzoo export`` recorded them (empty without the file)."""
    path = Path(root) / INFO_JSON
    if not path.exists():
        return {}
    try:
        return {m: name for name, m in _load(path).get("tokzoo_modalities", {}).items()}
    except (ValueError, AttributeError, TypeError) as e:
        raise ConfigError(f"{path}: unreadable 4M modality info ({type(e).__name__}: {e})") from None


def _load(path: Path):
    """The JSON of a file that came with foreign data: a regular file of at most 16 MiB."""
    try:
        return load_json(read_file(path, MAX_JSON_BYTES), str(path))  # nesting and integer digits guarded
    except InputError as e:
        raise ConfigError(str(e)) from None
