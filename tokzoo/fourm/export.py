"""Export a tokzoo token dataset into ml-4m's pre-tokenized layouts.

```
webdataset:  DST/<4M name>/shard-00000.tar       <key>.npy  int16 (n_crops, n_tokens)
             DST/crop_settings/shard-00000.tar   <key>.npy  int64 (n_crops, 5) [top, left, h, w, hflip]
folder:      DST/<4M name>/shard-00000/<key>.npy     (same arrays, one file per sample)
             DST/crop_settings/shard-00000/<key>.npy
both:        DST/fourm_modalities.json, DST/fourm_modalities.py   (tokzoo.fourm.info)
```
One tokzoo shard becomes one ml-4m shard (webdataset) or one sub-folder (folder layout), samples in the
same order. Tokens are stored as int16 like ml-4m's ``save_vq_tokens.py`` (a vocabulary past 32,768 ids
is refused); crop rows are tokzoo's (same meaning as ml-4m's), as int64. The output is deterministic:
the same dataset gives the same bytes.

Set-valued modalities (sam_instances, human_pose) are refused: ml-4m stores SAM instances as pickled
per-crop dicts that also carry each instance's box and polygon (tokzoo's tokens hold neither) and poses
as text, so there is no faithful int16 array form; ``allow_sets=True`` writes the pickled form (object
arrays of ``{"token_ids": int16 (N, T)}`` per crop, loadable only with ``allow_pickle=True``).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tokzoo.errors import ConfigError, InputError
from tokzoo.pipeline.writer import write_atomic
from tokzoo.tokens.layout import CROPS, complete_shards, read_npy_tar, require_manifest, tar_path
from tokzoo.tokens.tars import npy_bytes, tar_bytes

from .info import INFO_JSON, INFO_PY, info_json, info_py
from .names import CROP_SETTINGS, RELEASED, ModalityFacts, check_name, derived_name, facts_for

LAYOUTS = ("webdataset", "folder")
_KEY = re.compile(r"[A-Za-z0-9_-]{1,200}")
INT16_IDS = 2**15
"""int16 holds ids 0..32767."""


@dataclass(frozen=True)
class Planned:
    """One modality of an export: where it comes from and what it becomes."""

    modality: str
    facts: ModalityFacts
    items: bool


def plan_export(
    src: Path, names: dict[str, str] | None = None, modalities: list[str] | None = None, allow_sets: bool = False
) -> list[Planned]:
    """Check every modality can be expressed in 4M's layout; one-line :class:`ConfigError` otherwise."""
    manifest = require_manifest(src)
    entries = manifest["modalities"]
    modalities = list(modalities or entries)
    names = dict(names or {})
    for modality in [*modalities, *names]:
        if modality not in entries:
            raise ConfigError(f"{src}: no modality {modality!r} in this dataset (has {', '.join(entries)})")
    planned, taken = [], {}
    for modality in modalities:
        entry, where = entries[modality], f"{src / modality}"
        if not entry.get("complete"):
            raise ConfigError(f"{where}: modality is not complete; finish `tokzoo tokenize` first")
        vocab = entry["vocab_size"] + (1 if entry.get("items") else 0)
        if vocab > INT16_IDS:
            raise ConfigError(
                f"{where}: vocabulary of {entry['vocab_size']} ids overflows int16, the dtype ml-4m "
                f"stores tokens in (at most {INT16_IDS} ids)"
            )
        if entry.get("items") and not allow_sets:
            raise ConfigError(
                f"{where}: set-valued modality; ml-4m keeps these as pickled per-crop dicts with boxes "
                f"tokzoo tokens lack, so it is not exported (allow_sets / --allow-pickled-sets writes that form)"
            )
        shape = [n for n in entry["token_shape"] if n is not None]
        n_tokens = int(np.prod(shape))
        if modality in names:
            name = check_name(names[modality], f"--name {modality}")
        else:
            size = entry.get("size")
            if not size or size[0] != size[1]:
                raise ConfigError(
                    f"{where}: crops are {'not of one size' if not size else 'not square'}; name the "
                    f"4M modality with --name {modality}=tok_<name>@<size>"
                )
            name = derived_name(modality, size[0])
        if name in taken:
            raise ConfigError(f"{where}: 4M name {name!r} also given to {taken[name]!r}")
        taken[name] = modality
        if entry.get("items"):
            facts = ModalityFacts(check_name(name, where), entry["vocab_size"] + 1, 0, 1, type="seq")
        else:
            facts = facts_for(name, entry["vocab_size"], n_tokens, where)
            size = entry.get("size")
            if size and name not in RELEASED and [facts.input_size] * 2 != list(size):
                raise ConfigError(
                    f"{where}: crops are {size[0]}x{size[1]} px but {name} says {facts.input_size} px; "
                    f"name it tok_<name>@{size[0]}"
                )
        planned.append(Planned(modality, facts, bool(entry.get("items"))))
    return planned


def export_4m(
    src: str | Path,
    dst: str | Path,
    *,
    layout: str = "webdataset",
    names: dict[str, str] | None = None,
    modalities: list[str] | None = None,
    allow_sets: bool = False,
    progress: bool = True,
) -> dict:
    """Write ``src`` (a ``tokzoo tokenize`` folder) into ``dst`` in ml-4m's ``layout``; returns the info dict."""
    src, dst = Path(src), Path(dst)
    if layout not in LAYOUTS:
        raise ConfigError(f"--layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    planned = plan_export(src, names, modalities, allow_sets)
    if dst.exists() and any(dst.iterdir()):
        raise ConfigError(f"{dst}: not empty; export into a new folder")
    shards = _shards(src, [p.modality for p in planned])
    for out_index, index in enumerate(tqdm(shards, desc="export 4m", unit="shard", disable=not progress)):
        crops = list(read_npy_tar(tar_path(src, CROPS, index)))
        keys = [_checked_key(k, tar_path(src, CROPS, index)) for k, _ in crops]
        _write(dst, CROP_SETTINGS, out_index, layout, [(k, a.astype(np.int64)) for k, a in crops])
        for p in planned:
            members = list(read_npy_tar(tar_path(src, p.modality, index)))
            if [k for k, _ in members] != keys:
                raise InputError(tar_path(src, p.modality, index), "keys differ from the crops shard's")
            _write(
                dst,
                p.facts.name,
                out_index,
                layout,
                [(k, _tokens(a, p, tar_path(src, p.modality, index))) for k, a in members],
            )
    facts = [p.facts for p in planned]
    extra = {"source": str(src), "tokzoo_modalities": {p.facts.name: p.modality for p in planned}}
    write_atomic(dst / INFO_JSON, info_json(facts, layout, len(shards), extra), dst)
    write_atomic(dst / INFO_PY, info_py([p.facts for p in planned if not p.items]), dst)
    return json.loads((dst / INFO_JSON).read_text())


def _shards(src: Path, modalities: list[str]) -> list[int]:
    found = {m: complete_shards(src, m) for m in modalities}
    first = found[modalities[0]]
    for modality, shards in found.items():
        if shards != first:
            raise InputError(src / modality, f"complete shards {shards} differ from {modalities[0]!r}'s {first}")
    return first


def _tokens(array: np.ndarray, planned: Planned, source: Path):
    """(n_crops, *token_shape) stored ids -> int16 (n_crops, n_tokens); set-valued: object array of dicts."""
    if planned.items:
        pad = planned.facts.vocab_size - 1
        crops = np.empty(len(array), dtype=object)
        _check_ids(array, planned.facts.vocab_size, source)
        for c, crop in enumerate(array):
            crops[c] = {"token_ids": crop[crop[:, 0] != pad].astype(np.int16)}
        return crops
    if array.ndim < 2 or int(np.prod(array.shape[1:])) != planned.facts.n_tokens:
        raise InputError(
            source,
            f"token grid mismatch: member of shape {array.shape}, {planned.facts.name} "
            f"holds {planned.facts.n_tokens} tokens per crop",
        )
    _check_ids(array, planned.facts.vocab_size, source)
    return array.reshape(len(array), -1).astype(np.int16)


def _checked_key(key: str, source: Path) -> str:
    """A member key as tokzoo writes them (``[A-Za-z0-9_-]``): it becomes a file or member name of the export, so
    ``../x``, ``/etc/x`` or a dotted name (ml-4m splits keys at the first dot) is refused in one line."""
    if not _KEY.fullmatch(key):
        raise InputError(
            source,
            f"member {key[:80]!r}.npy: not a tokzoo sample key ([A-Za-z0-9_-], at most 200 "
            "characters); it would become a file name of the export, so the export stops here",
        )
    return key


def _check_ids(array: np.ndarray, vocab_size: int, source: Path) -> None:
    """InputError unless ``array`` holds integer ids in [0, vocab_size): an id past the vocabulary would be written
    as it is, and one past 32,767 would wrap around in int16 (40000 -> -25536)."""
    if array.dtype.kind not in "iu":
        raise InputError(source, f"token ids must be integers, got dtype {array.dtype}")
    if array.size and (int(array.min()) < 0 or int(array.max()) >= vocab_size):
        raise InputError(
            source,
            f"token ids in [{int(array.min())}, {int(array.max())}] outside the vocabulary "
            f"[0, {vocab_size}); not exported",
        )


def _write(dst: Path, folder: str, index: int, layout: str, members: list[tuple[str, np.ndarray]]) -> None:
    """One shard of ``folder`` inside ``dst`` (tokzoo.io.writes: no link followed, nothing outside ``dst``)."""
    if layout == "webdataset":
        write_atomic(dst / folder / f"shard-{index:05d}.tar", tar_bytes([(k, _npy(a)) for k, a in members]), dst)
    else:
        for key, array in members:
            write_atomic(dst / folder / f"shard-{index:05d}" / f"{key}.npy", _npy(array), dst)


def _npy(array: np.ndarray) -> bytes:
    if array.dtype == object:  # only with allow_sets: ml-4m's pickled per-crop dicts
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=True)
        return buffer.getvalue()
    return npy_bytes(array)
