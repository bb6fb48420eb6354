"""``pseudo_label``: label every input sample with the requested modalities and write raw webdataset shards.

OUT layout (the raw-sample layout of docs/ARCHITECTURE.md, so ``tokzoo tokenize --input OUT`` reads it as it is)::

    OUT/shard-000000.tar                       per ok sample, contiguous: <key>.rgb.<ext>, the input modalities
                                               the labelers used, <key>.<modality>.<ext> per labelled modality
    OUT/.pseudo-label/manifest.json            labelers, input, shard size, counts
    OUT/.pseudo-label/shard-000000.samples.jsonl   one line per input sample: key, source, status, error
    OUT/.pseudo-label/shard-000000.stats.json      written last = completion marker (count, ok, failed, ...)

Status files live in a hidden folder because a folder that is read as shards may hold tars only.
Every tar holds the same modalities for every sample (aligned keys); a sample that fails any
labeler is left out and listed as failed. Input shards map to output shards as in the tokenize
pipeline (one per input tar, else ``samples_per_shard`` samples); a rerun skips complete shards.
The shard loop is the engine's, handed in by the caller (:mod:`tokzoo.pipeline.engine`): it gets a
:class:`LabelWork`, labels each unit with :meth:`LabelWork.label` and commits it with :meth:`LabelWork.commit`.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tokzoo.errors import ConfigError, InputError, TokzooError
from tokzoo.failures import add_reasons, count_reasons, image_problem
from tokzoo.io import MODALITIES, decode_sample, write_modality
from tokzoo.io.formats import written_extension
from tokzoo.io.output_lock import OutputLock, lock_then_check
from tokzoo.io.readers import holds_nothing
from tokzoo.io.safety import MAX_FILE_BYTES
from tokzoo.io.samples import RawSample, Sample
from tokzoo.io.writes import make_folder
from tokzoo.labelers.base import DEFAULTS, Labeler, create_labeler
from tokzoo.storage import as_path, is_url
from tokzoo.tokens.layout import (
    LABELLED,
    MANIFEST,
    complete_shards,
    json_bytes,
    read_counts,
    read_json,
    shard_name,
    stats_path,
    table_bytes,
    table_path,
)
from tokzoo.tokens.sources import open_input, units

from .engine import Engine, LocalEngine
from .state import labelled_shard_done
from .writer import recover, write_atomic

STATUS = LABELLED
FORMAT = "tokzoo-pseudo-label/1"


@dataclass
class LabelJob:
    modalities: list[str]
    input: str
    output: Path
    labelers: dict[str, str] = field(default_factory=dict)
    labeler_options: dict[str, dict] = field(default_factory=dict)  # modality -> {option: value}
    device: str = "cpu"
    batch_size: int = 8
    samples_per_shard: int = 256
    overwrite: bool = False
    progress: bool = True
    max_member_bytes: int = MAX_FILE_BYTES  # larger input files / tar members are not read (the sample fails)
    min_image_size: int = 0  # images whose shorter side is smaller fail (img2dataset's filter)
    max_aspect_ratio: float = math.inf  # images whose longer side exceeds this times the shorter one fail


@dataclass
class LabelSummary:
    ok: int
    failed: int
    total: int
    shards: int
    written: int
    labelers: dict[str, Labeler]
    nodes: list[str] = field(default_factory=list)  # ray: one line per node and per actor
    failed_by_reason: dict[str, int] = field(default_factory=dict)  # tokzoo.failures.REASONS -> count


def plan_labelers(
    modalities: list[str], specs: dict[str, str], device: str, batch_size: int, options: dict[str, dict] | None = None
) -> list[Labeler]:
    """Labelers for ``modalities`` plus those ``specs`` names for other modalities (``options[m]``: keyword
    options of m's labeler), ordered so that each runs after the labelers of the modalities it needs or can use."""
    options = options or {}
    stray = [m for m in options if m not in modalities and m not in specs]
    if stray:
        raise ConfigError(f"labeler options for {stray[0]!r}, which is neither labelled nor given a --labeler")
    unknown = [m for m in [*modalities, *specs] if m not in MODALITIES or m in ("rgb", "crops")]
    if unknown:
        raise ConfigError(
            f"cannot pseudo-label {unknown[0]!r}; labelled modalities must be stored by tokzoo.io "
            f"({', '.join(m for m in MODALITIES if m not in ('rgb', 'crops'))})"
        )
    labelers = {}
    for m in dict.fromkeys([*modalities, *specs]):
        if m not in specs and m not in DEFAULTS:
            raise ConfigError(f"no default labeler for {m!r}; name one with --labeler {m}=NAME_OR_PATH")
        labelers[m] = create_labeler(
            specs.get(m, DEFAULTS.get(m)), device=device, batch_size=batch_size, **options.get(m, {})
        )
        if labelers[m].modality != m:
            raise ConfigError(f"--labeler {m}={specs[m]}: that labeler makes {labelers[m].modality}, not {m}")
    ordered, seen = [], set()

    def visit(m, path=()):
        if m in path:
            raise ConfigError(f"labelers depend on each other in a cycle: {' -> '.join((*path, m))}")
        if m in seen or m not in labelers:
            return
        for dep in (*labelers[m].needs, *labelers[m].optional):
            visit(dep, (*path, m))
        seen.add(m)
        ordered.append(labelers[m])

    for m in labelers:
        visit(m)
    return ordered


def pseudo_label(job: LabelJob, engine: Engine | None = None) -> LabelSummary:
    """Run ``job``, its shards made by ``engine`` (default: :class:`~tokzoo.pipeline.engine.LocalEngine`); returns
    counts. Raises ConfigError for a foreign or incompatible OUT."""
    engine = engine or LocalEngine()
    device = "cpu" if engine.remote else job.device  # remote: the engine's workers place the models, not the driver
    labelers = plan_labelers(job.modalities, job.labelers, device, job.batch_size, job.labeler_options)
    out = as_path(job.output)
    manifest = {
        "format": FORMAT,
        "input": str(job.input),
        "samples_per_shard": job.samples_per_shard,
        "labelers": {lab.modality: lab.describe() for lab in labelers},
        "labeler_options": {m: dict(sorted(o.items())) for m, o in sorted(job.labeler_options.items()) if o},
    }
    labelled = {lab.modality for lab in labelers}
    used = {m for lab in labelers for m in (*lab.needs, *lab.optional)} - labelled
    reader, wanted = _open(job.input, ["rgb", *sorted(used - {"rgb"})], job.max_member_bytes)
    required = {m: lab.name for lab in reversed(labelers) for m in lab.needs if m not in labelled}
    absent = [m for m in required if m not in wanted]
    if absent:  # the input's layout cannot hold it (e.g. a plain folder of images is rgb only)
        raise ConfigError(
            f"{job.input}: {required[absent[0]]} needs {absent[0]}, which this input does not hold; "
            f"label it with --labeler {absent[0]}=NAME_OR_PATH"
        )
    if holds_nothing(reader):  # before OUT is made: an empty input leaves no empty output behind
        raise InputError(str(job.input), "no samples to label (an empty folder?); nothing written")
    with _claim(out, manifest, job.overwrite):  # held until the run ends: one run at a time per OUT
        return _label_claimed(job, engine, out, manifest, labelers, reader, wanted, required)


def _label_claimed(job: LabelJob, engine: Engine, out, manifest, labelers, reader, wanted, required) -> LabelSummary:
    status = out / STATUS
    plan = LabelPlan(status, wanted, required, (job.min_image_size, job.max_aspect_ratio))
    remote = any(is_url(s) for s in getattr(reader, "shards", []))  # counting would read every remote tar
    total = None if remote else _length(reader)
    written, nodes = engine.pseudo_label(
        LabelWork(
            job,
            out,
            plan,
            units(reader, job.samples_per_shard),
            labelers,
            total,
            len(getattr(reader, "shards", [])) or None,
        )
    )
    counts = _count(status)
    write_atomic(status / MANIFEST, json_bytes({**manifest, "samples": counts, "shards": plan.shards}), out)
    return LabelSummary(
        counts["ok"],
        counts["failed"],
        counts["count"],
        plan.shards,
        written,
        {lab.modality: lab for lab in labelers},
        nodes,
        counts["failed_by_reason"],
    )


class LabelPlan:
    """The units of a job still to label (``shards`` counts all seen), and how a unit's samples are decoded."""

    def __init__(
        self, status: Path, wanted: list[str], required: dict[str, str], image_filter: tuple[int, float] = (0, math.inf)
    ):
        self.status, self.wanted, self.required, self.shards = status, wanted, required, 0
        self.image_filter = image_filter  # (min_image_size, max_aspect_ratio), tokzoo.failures.image_problem

    def todo(self, all_units):
        for unit in all_units:
            self.shards += 1
            if not labelled_shard_done(self.status, unit.index):  # a damaged shard is labelled again
                yield unit

    def decode(self, unit) -> list[tuple[RawSample, Sample]]:
        return [(raw, _filtered(_decode(raw, self.wanted, self.required), *self.image_filter)) for raw in unit.raws]


@dataclass
class LabelWork:
    """What an engine gets to make the missing shards: ``plan.todo(units)`` gives the units to label,
    :meth:`label` labels one with ``labelers`` (an engine with its own copies calls :func:`label_shard`),
    :meth:`commit` writes it."""

    job: LabelJob
    out: Path
    plan: LabelPlan
    units: Iterator  # the input's units (tokzoo.tokens.sources.units)
    labelers: list[Labeler]  # created on the driver (on the CPU when the engine runs its own)
    total: int | None  # samples, when known cheaply (progress bars)
    units_total: int | None = None  # units in the input, when known without reading it (tars)

    def label(self, unit) -> ShardPayload:
        return label_shard(self.labelers, self.plan.decode(unit))

    def commit(self, unit, payload: ShardPayload, seconds: float) -> None:
        write_shard(self.out, unit.index, unit.source, payload, seconds)


def _claim(out: Path, manifest: dict, overwrite: bool) -> OutputLock:
    """Lock OUT (returned; the caller releases it when the run ends); refuse a non-empty OUT that is not ours or was
    labelled differently; wipe ours on ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    _make_folder(out)
    return lock_then_check(out, lambda: _claim_locked(out, manifest, overwrite))


def _make_folder(out, path=None) -> None:
    """:func:`make_folder` for a local OUT (no link below it is followed); an object store has no folders to make."""
    if isinstance(out, Path):
        make_folder(out, path)


def _claim_locked(out: Path, manifest: dict, overwrite: bool) -> None:
    previous = out / STATUS / MANIFEST
    if out.exists() and any(out.iterdir()) and not previous.is_file():
        raise ConfigError(f"{out}: not empty and not a pseudo-label output; choose another --output")
    if previous.is_file() and overwrite:
        for entry in [*out.glob("shard-*.tar"), *(out / STATUS).iterdir()]:
            entry.unlink()
    elif previous.is_file():
        old = {k: v for k, v in read_json(previous).items() if k in manifest}
        if old != manifest:
            raise ConfigError(
                f"{out} was labelled with other settings ({old['labelers']}, input {old['input']}); "
                "pass --overwrite to start over"
            )
    _make_folder(out, out / STATUS)
    write_atomic(out / STATUS / MANIFEST, json_bytes(manifest), out)
    recover(out)  # drops *.tmp files a killed run left


def _open(source: str, wanted: list[str], max_member_bytes: int = MAX_FILE_BYTES):
    """Reader over ``source`` for ``wanted`` (rgb first); a plain folder of images gives rgb only, and a
    folder of modality subfolders the wanted ones it has."""
    path = Path(source)
    if path.is_dir() and (path / "rgb").is_dir():
        wanted = [m for m in wanted if (path / m).is_dir()]
    elif path.is_dir() and not any(p.suffix == ".tar" for p in path.iterdir()):
        wanted = ["rgb"]
    return open_input(source, wanted, max_member_bytes), wanted


def _decode(raw: RawSample, wanted: list[str], required: dict[str, str]) -> Sample:
    """Decode ``raw``; a wanted modality it lacks is an error only when a labeler (``required[m]``) needs it."""
    errors = {m: e for m, e in raw.errors.items() if m in raw.files or m not in wanted}
    errors.update(
        {
            m: f"{required[m]} needs {m}, which this sample lacks; label it with --labeler {m}=NAME_OR_PATH"
            for m in required
            if m not in raw.files
        }
    )
    return decode_sample(RawSample(raw.key, raw.files, errors))


def _filtered(sample: Sample, min_image_size: int, max_aspect_ratio: float) -> Sample:
    """``sample`` with an rgb error when its image fails the size filters (tokzoo.failures.image_problem)."""
    if sample.ok and "rgb" in sample.values:
        problem = image_problem(*sample.values["rgb"].shape[:2], min_image_size, max_aspect_ratio)
        if problem is not None:
            sample.errors["rgb"] = f"{sample.sources['rgb']}: {problem}"
    return sample


def _run_labelers(labelers: list[Labeler], samples: list[Sample]) -> None:
    """Add each labeler's output to ``samples`` (in place), batch by batch; a sample a labeler fails on gets
    the error and leaves the later labelers' batches."""
    for labeler in labelers:
        todo = [s for s in samples if s.ok]
        for start in range(0, len(todo), labeler.batch_size):
            _label_batch(labeler, todo[start : start + labeler.batch_size])


def _label_batch(labeler: Labeler, batch: list[Sample]) -> None:
    inputs = {m: [s.values.get(m) for s in batch] for m in (*labeler.needs, *labeler.optional)}
    try:
        outputs = labeler.label(
            {m: v for m, v in inputs.items() if m in labeler.needs or any(x is not None for x in v)}
        )
    except TokzooError as error:
        if len(batch) == 1:
            batch[0].errors[labeler.modality] = f"{labeler.name}: {error}"
            return
        for sample in batch:
            _label_batch(labeler, [sample])
        return
    for sample, value in zip(batch, outputs):
        sample.values[labeler.modality] = value


def _members(raw: RawSample, sample: Sample, labelers: list[Labeler]) -> dict[str, bytes]:
    """``{"rgb.jpg": bytes, "normals.npy": bytes, ...}``: input files as they were (those with bytes), the
    other values encoded."""
    labelled = {lab.modality for lab in labelers}
    members = {}
    for m, value in sample.values.items():
        ref = raw.files.get(m)
        if m not in labelled and ref is not None and ref.ext and (ref.data is not None or ref.path):
            members[f"{m}{ref.ext}"] = ref.read_bytes()
        else:
            ext = written_extension(m)  # declared with the modality (float maps stay exact in .npy)
            members[f"{m}{ext}"] = write_modality(m, value, ext)
    return members


def _tar(samples: list[tuple[str, dict[str, bytes]]]) -> bytes:
    """Deterministic webdataset tar: mtime 0, fixed owner and mode, members of a sample contiguous."""
    import webdataset as wds

    buffer = io.BytesIO()
    with wds.TarWriter(buffer, encoder=False, mtime=0.0, user="tokzoo", group="tokzoo", mode=0o444) as tar:
        for key, members in samples:
            tar.write({"__key__": key, **dict(sorted(members.items()))})
    return buffer.getvalue()


@dataclass
class ShardPayload:
    """A labelled shard before it is written: the tar's bytes, the table's records, the keys in the tar."""

    data: bytes
    records: list[dict]
    keys: list[str]


def label_shard(labelers: list[Labeler], results: list[tuple[RawSample, Sample]]) -> ShardPayload:
    """Label a unit's decoded samples (``(raw, sample)`` in input order) and build its tar and table."""
    _run_labelers(labelers, [s for _, s in results if s.ok])
    ok, samples = [], [sample for _, sample in results]
    for raw, sample in results:
        if sample.ok:
            try:
                ok.append((sample.key, _members(raw, sample, labelers)))
            except TokzooError as error:  # a labeler's value breaks the modality's contract
                sample.errors["output"] = str(error)
    records = [
        {
            "key": s.key,
            "source": s.sources.get("rgb"),
            "status": "ok" if s.ok else "failed",
            "error": "; ".join(f"{m}: {e}" for m, e in s.errors.items()) or None,
        }
        for s in samples
    ]
    return ShardPayload(_tar(ok), records, [key for key, _ in ok])


def write_shard(out: Path, index: int, source: str, payload: ShardPayload, seconds: float) -> None:
    """Write the shard's tar, then its table, then its stats (the completion marker)."""
    write_atomic(out / f"{shard_name(index)}.tar", payload.data, out)
    write_atomic(table_path(out, STATUS, index), table_bytes(payload.records), out)
    keys = "\n".join(payload.keys)
    stats = {
        "count": len(payload.records),
        "ok": len(payload.keys),
        "failed": len(payload.records) - len(payload.keys),
        "bytes": len(payload.data),
        "failed_by_reason": count_reasons(payload.records),
        "seconds": round(seconds, 3),
        "input": source,
        "keys_hash": hashlib.sha256(keys.encode()).hexdigest(),
    }
    write_atomic(stats_path(out, STATUS, index), json_bytes(stats), out)


def _count(status: Path) -> dict:
    totals, reasons = {"count": 0, "ok": 0, "failed": 0}, {}
    for index in complete_shards(status.parent, status.name):
        stats = read_counts(stats_path(status.parent, status.name, index))
        totals = {k: totals[k] + stats[k] for k in totals}
        reasons = add_reasons(reasons, stats.get("failed_by_reason"))
    return {**totals, "failed_by_reason": reasons}


def _length(reader) -> int | None:
    try:
        return len(reader)
    except TypeError:
        return None
