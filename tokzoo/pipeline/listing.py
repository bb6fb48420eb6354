"""``tokzoo inspect``: what a token dataset (``tokzoo tokenize``) or a labelled one (``tokzoo pseudo-label``)
holds, read without torch: manifest, counts, failures and a few samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tokzoo.indices import unpad
from tokzoo.tokens.layout import (
    LABELLED,
    MANIFEST,
    complete_shards,
    read_json,
    read_manifest,
    read_npy_tar,
    read_stats,
    read_table,
    require_manifest,
    table_path,
    table_paths,
    tar_path,
)


def inspect_lines(out: Path, samples: int = 3, failures: int = 5) -> list[str]:
    """The manifest (without tokenizer configs), per-modality counts and failures, a few samples' tokens; for
    ``tokzoo pseudo-label`` output, :func:`labelled_lines`."""
    if read_manifest(out) is None and (Path(out) / LABELLED / MANIFEST).is_file():
        return labelled_lines(Path(out), samples, failures)
    manifest = require_manifest(out)
    short = {
        **manifest,
        "modalities": {m: {k: v for k, v in e.items() if k != "config"} for m, e in manifest["modalities"].items()},
    }
    lines = ["manifest:", *("  " + line for line in json.dumps(short, indent=2, sort_keys=True).splitlines())]
    for modality, entry in manifest["modalities"].items():
        shards = complete_shards(out, modality)
        stats = [read_stats(out, modality, i) for i in shards]
        ok, failed = sum(s["ok"] for s in stats), sum(s["failed"] for s in stats)
        label = " UNTRAINED" if entry["untrained"] else ""
        lines.append(
            f"{modality}: {len(shards)} complete shards, ok {ok}, failed {failed}, tokens "
            f"{_shape_text(entry)} {entry['dtype']} per crop{_items_text(entry)}, "
            f"vocab {entry['vocab_size']}, tokenizer {entry['name']}{label}"
        )
        bad = [r for i in shards for r in read_table(table_path(out, modality, i)) if r["status"] == "failed"]
        lines += [f"  failed {r['key']}: {r['error']}" for r in bad[:failures]]
        if len(bad) > failures:
            lines.append(f"  ... {len(bad) - failures} more in {out / modality}/*.samples.jsonl")
        for key, tokens in _first(out, modality, shards, samples):
            crop, what = tokens[0], "crop 0: "
            if entry.get("items"):
                crop = unpad(crop, entry["pad_id"])
                what = f"crop 0, {len(crop)} items: " if len(crop) else "crop 0: no items"
            head = " ".join(str(t) for t in crop.reshape(-1)[:12])
            lines.append(f"  {key}: {tokens.shape} {tokens.dtype}  {what}{head}{' ...' if crop.size else ''}")
    return lines


def _shape_text(entry: dict) -> str:
    """``[64]``; ``[N, 16]`` for set-valued modalities."""
    return "[" + ", ".join("N" if n is None else str(n) for n in entry["token_shape"]) + "]"


def _items_text(entry: dict) -> str:
    return (
        f" (N items, 0 or more; crops padded to the sample's largest N with id {entry['pad_id']})"
        if entry.get("items")
        else ""
    )


def _first(out: Path, modality: str, shards: list[int], n: int) -> list[tuple[str, np.ndarray]]:
    found = []
    for index in shards:
        for item in read_npy_tar(tar_path(out, modality, index)):
            found.append(item)
            if len(found) == n:
                return found
    return found


def labelled_lines(out: Path, samples: int = 3, failures: int = 5) -> list[str]:
    """``tokzoo pseudo-label`` output: its manifest (labelers, counts), the failures, and the files of a few samples."""
    from tokzoo.io.safety import MAX_FILE_BYTES
    from tokzoo.io.tar import split_member
    from tokzoo.io.tarwalk import BLOCK, walk_tar

    status = out / LABELLED
    manifest = read_json(status / MANIFEST, "pass --overwrite to pseudo-label again")
    lines = [
        "labelled (tokzoo pseudo-label) manifest:",
        *("  " + line for line in json.dumps(manifest, indent=2, sort_keys=True).splitlines()),
    ]
    bad = [r for path in table_paths(out, LABELLED) for r in read_table(path) if r["status"] == "failed"]
    lines += [f"  failed {r['key']}: {r['error']}" for r in bad[:failures]]
    if len(bad) > failures:
        lines.append(f"  ... {len(bad) - failures} more in {status}/*.samples.jsonl")
    files: dict[str, list[str]] = {}
    for shard in sorted(out.glob("shard-*.tar")):
        for member, _ in walk_tar(str(shard), max_skip=MAX_FILE_BYTES + BLOCK):
            parts = split_member(member.name) if member.regular else None
            if parts is not None and (parts[0] in files or len(files) < samples):
                files.setdefault(parts[0], []).append(f"{parts[1]}{parts[2]} ({member.size} B)")
        if len(files) >= samples:
            break
    lines += [f"  {key}: {', '.join(names)}" for key, names in files.items()]
    lines.append(f"tokenize it: tokzoo tokenize -m {','.join(manifest.get('labelers', {}))} --input {out} -o TOKENS")
    return lines
