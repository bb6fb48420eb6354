"""``tokenize``: the tokenize job from top to bottom.

1. Claim OUT: refuse a foreign folder, wipe it on ``overwrite``, finish commits a killed run began.
2. Load each modality's tokenizer; check that they fit what OUT already holds; write the manifest.
3. Stream input shard after input shard: worker processes decode and crop samples (stored crops
   reused), the main process encodes them in input-order batches (a refused batch is retried
   sample by sample, so only the bad samples fail), each finished shard is committed atomically. Shards already complete for every requested modality are skipped.
   That step is the engine's, handed in by the caller (:class:`~tokzoo.pipeline.engine.LocalEngine` by default;
   ``tokzoo.scale.RayEngine`` across a cluster): it gets a :class:`ShardWork` and must hand every shard to the same
   builder and writer.
4. Finish the manifest with counts; return the summary.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tokzoo.errors import ConfigError, InputError
from tokzoo.failures import reasons_text
from tokzoo.io.output_lock import OutputLock, lock_then_check
from tokzoo.io.readers import holds_nothing
from tokzoo.io.safety import MAX_FILE_BYTES
from tokzoo.limits import check_field
from tokzoo.storage import as_path, is_url, rmtree
from tokzoo.tokens.layout import CROPS, JOURNALS, MANIFEST, SOURCE, json_bytes, read_manifest
from tokzoo.tokens.manifest import build_manifest, check_compatible, finish_manifest
from tokzoo.tokens.sources import open_input, units

from .encode import set_codec, worker_codec
from .engine import Engine, LocalEngine
from .modalities import CROP_RECIPE, RunModality, load_specs
from .scenes_source import scenes_source
from .shard import ShardBuilder, ShardState
from .state import check_entries
from .worker import CHUNK, WorkerJob
from .writer import commit_shard, recover, write_atomic


@dataclass
class TokenizeJob:
    modalities: list[str]
    output: Path
    input: str | None = None
    tokenizers: dict[str, str] = field(default_factory=dict)
    untrained: bool = False
    crops: int = 1
    size: tuple[int, int] | None = None
    batch_size: int = 32
    workers: int = 1
    device: str | None = None
    samples_per_shard: int = 256
    seed: int = 0
    overwrite: bool = False
    scenes: int = 64
    scene_size: int = 256
    progress: bool = True
    max_member_bytes: int = MAX_FILE_BYTES  # larger input files / tar members are not read (the sample fails)
    min_image_size: int = 0  # samples whose pixel frame's shorter side is smaller fail (img2dataset's filter)
    max_aspect_ratio: float = math.inf  # samples whose longer side exceeds this times the shorter one fail


@dataclass
class Summary:
    ok: int
    failed: int
    total: int
    shards: int
    written: int
    manifest: dict
    nodes: list[str] = field(default_factory=list)  # ray: one line per node and per actor

    def line(self, out: Path) -> str:
        first = next(iter(self.manifest["modalities"]))
        reasons = reasons_text(self.manifest["modalities"][first]["samples"].get("failed_by_reason") or {})
        return (
            f"ok {self.ok} / failed {self.failed} / total {self.total}{reasons}; "
            f"errors listed in {out / first}/*.samples.jsonl"
        )


def tokenize(job: TokenizeJob, engine: Engine | None = None) -> Summary:
    """Run ``job``, its shards made by ``engine`` (default: :class:`~tokzoo.pipeline.engine.LocalEngine`)."""
    out, engine = as_path(job.output), engine or LocalEngine()
    if is_url(out) and not job.input:
        raise ConfigError(f"{out}: the built-in scenes need a local --output; pass --input")
    # Everything a typo can break is checked before OUT is touched: tokenizers, crop size, the input.
    device = "cpu" if engine.remote else job.device  # remote: the engine's workers place the models, not the driver
    specs = load_specs(job.modalities, job.tokenizers, job.untrained, device, job.size)
    check_chunk_bytes(specs, job.crops, job.batch_size)
    if not job.input:
        check_field(job.scenes, "tokenize", "--scenes", "scenes.count")
    requested = [spec.modality for spec in specs]
    stored = [spec.stored for spec in specs]  # raw modalities read: pose for human_pose, ...
    if len(set(stored)) != len(stored):
        raise ConfigError(
            f"--modality {','.join(requested)}: two of them are tokenized from the same stored values "
            f"({', '.join(stored)}); tokenize them into separate --output folders"
        )
    reader = open_input(job.input, stored, job.max_member_bytes) if job.input else None
    if reader is not None and holds_nothing(reader):  # before OUT is made: no empty output left behind
        raise InputError(str(job.input), "no samples to tokenize (an empty folder?); nothing written")
    with claim_output(out, job.overwrite):  # held until the run ends: one run at a time per OUT
        return _tokenize_claimed(job, engine, out, specs, requested, stored, reader)


def _tokenize_claimed(job: TokenizeJob, engine: Engine, out, specs, requested, stored, reader) -> Summary:
    crops = {"n_crops": job.crops, "seed": job.seed, **CROP_RECIPE}
    previous = read_manifest(out)
    check_compatible(previous, specs, crops, job.samples_per_shard, out)
    source = job.input or str(
        scenes_source(
            out, job.scenes, job.seed, job.scene_size, job.samples_per_shard, job.workers, job.progress, stored
        ).resolve()
    )
    manifest = build_manifest(previous, specs, crops, job.samples_per_shard, source)
    write_atomic(out / MANIFEST, json_bytes(manifest), out)

    reader = (
        reader if reader is not None else open_input(source, stored, job.max_member_bytes)
    )  # not `or`: that would count the tars
    codecs = {s.stored: worker_codec(s.tokenizer) for s in specs if worker_codec(s.tokenizer)}
    set_codecs = {s.stored: set_codec(s.tokenizer) for s in specs if set_codec(s.tokenizer)}
    worker_job = WorkerJob(
        sizes={s.stored: s.size for s in specs},
        n_crops=job.crops,
        seed=job.seed,
        crop_recipe=CROP_RECIPE,
        codecs=codecs,
        set_codecs=set_codecs,
        min_image_size=job.min_image_size,
        max_aspect_ratio=job.max_aspect_ratio,
    )
    plan = Plan(out, list(manifest["modalities"]), requested)
    # counting reads every tar header once more (for a URL: the whole tar), so not for URLs
    total = _length(reader) if job.progress and not any(is_url(s) for s in getattr(reader, "shards", [])) else None
    work = ShardWork(
        job,
        out,
        specs,
        requested,
        worker_job,
        plan,
        units(reader, job.samples_per_shard),
        total,
        _shared_bytes(specs, codecs, job.crops),
        len(getattr(reader, "shards", [])) or None,
        manifest,
    )
    written, nodes = engine.tokenize(work)

    manifest = finish_manifest(manifest, out, plan.shards)
    write_atomic(out / MANIFEST, json_bytes(manifest), out)
    counts = manifest["modalities"][requested[0]]["samples"]
    return Summary(counts["ok"], counts["failed"], counts["count"], plan.shards, written, manifest, nodes)


@dataclass
class ShardWork:
    """What an engine gets to make the missing shards: ``plan.todo(units)`` gives ``(state, unit)`` for each,
    :class:`ShardBuilder` (with :meth:`specs_for` and the job's batch size) encodes it, :meth:`commit` writes it."""

    job: TokenizeJob
    out: Path
    specs: list[RunModality]
    requested: list[str]
    worker_job: WorkerJob
    plan: "Plan"
    units: Iterator
    total: int | None  # samples, when known cheaply (progress bars)
    shared: dict[str, int]  # bytes per chunk per modality for shared-memory slots (local workers)
    units_total: int | None = None  # units in the input, when known without reading it (tars)
    manifest: dict | None = None  # as written at the start; a complete modality stays complete until it gets work

    def specs_for(self, state: ShardState) -> list[RunModality]:
        return [s for s in self.specs if s.modality in state.todo(self.requested)]

    def commit(self, shard: ShardBuilder, seconds: float) -> None:
        self._mark_incomplete(shard.state.todo(self.requested))
        commit_shard(self.out, shard, self.plan.sources[shard.state.index], seconds)

    def _mark_incomplete(self, modalities) -> None:
        """Before a rerun adds or rebuilds a shard of a modality the manifest calls complete (a grown input, a
        damaged shard), the manifest says it is not: a reader never takes a folder in change for a finished one."""
        entries = (self.manifest or {}).get("modalities", {})
        stale = [m for m in modalities if entries.get(m, {}).get("complete")]
        if stale:
            for m in stale:
                entries[m] = {**entries[m], "complete": False}
            write_atomic(self.out / MANIFEST, json_bytes(self.manifest), self.out)


class Plan:
    """Feeds the worker pool: for each unit not yet complete, ``((state, last), chunk)`` pairs."""

    def __init__(self, out: Path, in_out: list[str], requested: list[str]):
        self.out, self.in_out, self.requested = out, in_out, requested
        self.shards, self.sources = 0, {}

    def todo(self, all_units):
        """``(state, unit)`` for each unit some requested modality still lacks (counting all in ``shards``)."""
        for unit in all_units:
            self.shards += 1
            state = ShardState.read(self.out, unit.index, self.in_out, self.requested)
            if state.todo(self.requested):
                self.sources[unit.index] = unit.source
                yield state, unit

    def chunks(self, all_units):
        for state, unit in self.todo(all_units):
            items = self.items(state, unit)
            chunk = list(itertools.islice(items, CHUNK))
            while True:
                following = list(itertools.islice(items, CHUNK))
                yield (state, not following), chunk
                if not following:
                    break
                chunk = following

    @staticmethod
    def items(state: ShardState, unit):
        """``(raw, stored crops, known error)`` per sample of ``unit``, checked against what OUT holds."""
        count = 0
        for position, raw in enumerate(unit.raws):
            yield raw, state.crops.get(raw.key), state.known_error(position, raw.key)
            count += 1
        state.check_count(count)


MAX_BATCH_BYTES = 8 << 30
"""Largest float32 batch of normalised crops one modality may need (a chunk in a worker, a batch at the encoder)."""


def check_chunk_bytes(specs, n_crops: int, batch_size: int) -> None:
    """ConfigError (naming --crops, --size, --batch-size and the limit) when one chunk or encoder batch of crops
    would exceed :data:`MAX_BATCH_BYTES`, before anything is allocated."""
    for spec in specs:
        if spec.size:
            channels = getattr(getattr(spec.tokenizer, "codec", None), "in_channels", 3)
            need = max(CHUNK, batch_size) * n_crops * channels * spec.size[0] * spec.size[1] * 4
            if need > MAX_BATCH_BYTES:
                raise ConfigError(
                    f"--crops {n_crops} x --size {spec.size[0]}x{spec.size[1]} x --batch-size {batch_size} "
                    f"({spec.modality}): batches of {need} bytes, over the limit of {MAX_BATCH_BYTES}"
                )


def _shared_bytes(specs, codecs: dict, n_crops: int) -> dict[str, int]:
    """Bytes per chunk of the float32 normalised crops of each modality with a fixed crop size."""
    return {
        s.stored: CHUNK * n_crops * codecs[s.stored].in_channels * s.size[0] * s.size[1] * 4
        for s in specs
        if s.stored in codecs and s.size
    }


def _length(reader) -> int | None:
    try:
        return len(reader)
    except TypeError:
        return None


def claim_output(out: Path, overwrite: bool) -> OutputLock:
    """Make OUT ready and lock it (returned; the caller releases it when the run ends): refuse a non-empty folder
    tokzoo did not write; wipe ours on ``overwrite``; otherwise finish or drop what a killed run left."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    return lock_then_check(out, lambda: _claim_locked(out, overwrite))


def _claim_locked(out: Path, overwrite: bool) -> None:
    entries = sorted(out.iterdir()) if out.exists() else []  # an object-store prefix exists once it holds a file
    manifest = _manifest_to_overwrite(out) if overwrite else read_manifest(out) if out.exists() else None
    modalities = set(manifest["modalities"]) if manifest else set()
    foreign = [e for e in entries if not _ours(e, modalities)]
    if foreign:
        raise ConfigError(
            f"{out}: not empty and not a tokzoo token dataset ({foreign[0].name}); choose another --output"
        )
    check_entries(out, overwrite)  # no symlinks out of OUT (removed, not followed, with --overwrite)
    if overwrite:
        for entry in (e for e in entries if e.exists() or e.is_symlink()):
            rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    recover(out)


def _manifest_to_overwrite(out: Path) -> dict | None:
    """The manifest, for ``--overwrite``: a damaged one names no modalities, so folders named after any are ours."""
    try:
        return read_manifest(out) if out.exists() else None
    except ConfigError:
        from tokzoo.modalities import MODALITIES

        return {"modalities": dict.fromkeys(MODALITIES)}


def _ours(entry: Path, modalities: set[str]) -> bool:
    """Written by tokzoo tokenize: the manifest, its modality folders, crops, private ``_`` entries, temporaries."""
    return (
        entry.name in (MANIFEST, CROPS, JOURNALS)
        or entry.name in modalities
        or entry.name.startswith(SOURCE)
        or entry.name.endswith(".tmp")
    )
