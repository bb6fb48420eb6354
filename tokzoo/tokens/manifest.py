"""``OUT/manifest.json`` written: a run's modalities added, counts filled in, and whether a run may add to OUT.

A run may add modalities to an existing OUT, or finish one, only with the same crop recipe and
shard size, the same tokenizer (content hash) and crop size for modalities already there, and
with every modality it does not ask for already complete. Anything else is refused with one line
(``--overwrite`` starts over). A run's modalities (``specs``) are read for ``modality``, ``reference``,
``content_hash``, ``size`` and their manifest ``entry(input)`` (:class:`tokzoo.pipeline.modalities.RunModality`).
"""

from __future__ import annotations

from pathlib import Path

import tokzoo
from tokzoo.errors import ConfigError
from tokzoo.failures import add_reasons
from tokzoo.storage import as_path

from .layout import complete_shards, read_stats

FORMAT = "tokzoo-tokens/1"


def check_compatible(
    manifest: dict | None, specs: list, crops: dict, samples_per_shard: int, out: Path | str = "OUT"
) -> None:
    """Raise ConfigError when this run cannot add to the OUT (folder ``out``) that ``manifest`` describes."""
    if manifest is None:
        return
    out = as_path(out)
    hint = "; pass --overwrite to start over, or choose another --output"
    if manifest["crops"] != crops:
        differ = [k for k in {**manifest["crops"], **crops} if manifest["crops"].get(k) != crops.get(k)]
        was = ", ".join(f"{k} {manifest['crops'].get(k)}" for k in differ)
        now = ", ".join(f"{k} {crops.get(k)}" for k in differ)
        raise ConfigError(f"{out} was cropped with {was} (--crops, --seed), this run asks for {now}{hint}")
    if manifest["samples_per_shard"] != samples_per_shard:
        raise ConfigError(
            f"{out} has {manifest['samples_per_shard']} samples per shard, this run asks for {samples_per_shard}{hint}"
        )
    requested = {spec.modality: spec for spec in specs}
    for modality, entry in manifest["modalities"].items():
        spec = requested.get(modality)
        if spec is None and not entry["complete"]:
            raise ConfigError(f"{out / modality} is incomplete; rerun with --modality {modality} first{hint}")
        if spec is not None and entry["content_hash"] != spec.content_hash:
            raise ConfigError(
                f"{out / modality} was made by tokenizer {entry['tokenizer']!r} "
                f"(hash {entry['content_hash'][:12]}), not {spec.reference!r}{hint}"
            )
        if spec is not None and entry["size"] != (list(spec.size) if spec.size else None):
            raise ConfigError(
                f"{out / modality} has crops of size {entry['size']}, this run asks for "
                f"{list(spec.size) if spec.size else None}{hint}"
            )


def build_manifest(manifest: dict | None, specs: list, crops: dict, samples_per_shard: int, source: str) -> dict:
    """The manifest with this run's new or unfinished modalities added, marked incomplete until
    :func:`finish_manifest`. A modality already complete (and checked compatible) stays as it is while the rerun
    checks its shards, so a trainer that starts reading it meanwhile is not refused; the run marks it incomplete
    before it writes a shard of it (a grown input, a damaged shard)."""
    modalities = dict(manifest["modalities"]) if manifest else {}
    for spec in specs:
        previous = modalities.get(spec.modality, {})
        if previous.get("complete"):
            continue
        modalities[spec.modality] = {
            **spec.entry(previous.get("input", source)),
            "complete": False,
            "shards": None,
            "samples": None,
        }
    return {
        "format": FORMAT,
        "tokzoo_version": tokzoo.__version__,
        "crops": crops,
        "samples_per_shard": samples_per_shard,
        "modalities": dict(sorted(modalities.items())),
    }


def finish_manifest(manifest: dict, out: Path, shards: int) -> dict:
    """Counts from every modality's stats; a modality is complete when all ``shards`` have stats."""
    modalities = {}
    for modality, entry in manifest["modalities"].items():
        done = complete_shards(out, modality)
        if done and done[-1] >= shards:
            raise ConfigError(
                f"{out / modality} has shards up to {done[-1]}, the input only {shards}: the input "
                f"changed since {out} was written; pass --overwrite to start over"
            )
        stats = [read_stats(out, modality, i) for i in done]
        counts = {field: sum(s[field] for s in stats) for field in ("count", "ok", "failed")}
        reasons: dict[str, int] = {}
        for s in stats:
            reasons = add_reasons(reasons, s.get("failed_by_reason"))
        counts["failed_by_reason"] = reasons
        modalities[modality] = {
            **entry,
            "complete": done == list(range(shards)),
            "shards": len(done),
            "samples": counts,
        }
    return {**manifest, "modalities": modalities}
