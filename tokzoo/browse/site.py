"""``build_site``: a dataset -> a static site that opens from disk (docs/ARCHITECTURE.md, "Dataset browser").

```
SITE/index.html  sample.html  dataset.html  assets/browse.js  assets/browse.css
SITE/data/site.js                  what every page needs: modalities, sources, views and their page counts
SITE/data/views/<view>/<n>.js      page n (1-based) of a filtered sample list: one tile record per sample
SITE/data/chunks.js                chunk ids in order (prev / next across chunks)
SITE/data/chunks/<chunk>.js        up to CHUNK_SIZE samples in full: errors, crops, image paths, metrics
SITE/data/dataset.js               counts, failures, codebook usage, metric means, the manifest
SITE/img/<chunk>/<pos>.<modality>.<source|recon|tokens>.png, <pos>.sample.boxes.png
```
Data files are scripts calling ``tokzoo.receive(name, payload)`` because browsers refuse ``fetch`` of
``file://`` URLs; a page loads only the files it shows, so a 100k-sample dataset is never loaded at once.
A view is a (status, source, modality) filter; modality views exist for failed samples (those that
failed in that modality), for other statuses the modality only picks the tiles' pictures. ``worst.all.<m>``
lists the WORST_LISTED samples with the worst main metric of modality m, worst first.

A chunk file is written after its images, so it marks them complete. A rebuild reuses a chunk whose
samples and statuses are unchanged, redrawing only the modalities whose fingerprint (tokenizer hash,
crop size, input; for raw shards the files' size and time) changed; views and summaries are rewritten.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from heapq import heappush, heappushpop
from importlib import resources
from pathlib import Path

import numpy as np

from tokzoo.errors import ConfigError, TokzooError
from tokzoo.io.safety import read_file
from tokzoo.io.writes import file_name, make_folder, remove_inside, write_file
from tokzoo.tokenizers.evaluation.metrics import HIGHER_IS_BETTER, METRICS, main_metric
from tokzoo.tokens.layout import shard_name

from .catalog import RawCatalog, TokenCatalog, listing_hash, open_dataset, source_group
from .pictures import frequency_plot, write_png
from .render import BOXES, RawChunkRenderer, TokenChunkRenderer

FORMAT = 2
"""Of the chunk files: a chunk of another format is redrawn (bump it when what a chunk holds changes)."""
CHUNK_SIZE = 100
PAGE_SIZE = 60
MAX_FAILURES_LISTED = 1000
WORST_LISTED = 600
"""Samples per modality in the 'worst main metric first' view (10 pages)."""
MAX_SOURCE_VIEWS = 500
"""More distinct sources than this get no per-source views (the filter then lists none)."""
STATIC = ("index.html", "sample.html", "dataset.html", "assets/browse.js", "assets/browse.css")


@dataclass
class BuildSummary:
    site: Path
    samples: int = 0
    ok: int = 0
    failed: int = 0
    chunks_drawn: int = 0
    chunks_reused: int = 0
    images_written: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def index(self) -> Path:
        return self.site / "index.html"

    def line(self) -> str:
        return (
            f"{self.samples} samples (ok {self.ok}, failed {self.failed}) in {self.site}: "
            f"{self.chunks_drawn} chunks drawn, {self.chunks_reused} reused, {self.images_written} images written, "
            f"{self.seconds:.1f} s"
        )


def data_file(site: Path, name: str, payload) -> None:
    """``SITE/<name>`` as a script handing ``payload`` to ``tokzoo.receive``; JSON alone on its second line."""
    text = (
        f"tokzoo.receive({json.dumps(name)},\n"
        + json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
        + "\n);\n"
    )
    write_file(site, site / name, text)


def read_data_file(path: Path):
    """The payload of a file :func:`data_file` wrote, or None when it is missing, unreadable, a link or no regular
    file (never read through: a link to /dev/zero or a FIFO would never end; the rewrite then refuses it)."""
    try:
        if path.is_symlink():
            return None
        return json.loads(read_file(path).decode("utf-8").split("\n")[1])
    except (TokzooError, OSError, IndexError, ValueError):
        return None


class Views:
    """Tile records per view, written page by page as they fill."""

    def __init__(self, site: Path, page_size: int):
        self.site, self.page_size = site, page_size
        self.buffers: dict[str, list] = {}
        self.counts: dict[str, int] = {}
        remove_inside(site, site / "data" / "views")

    def add(self, view: str, tile: dict) -> None:
        buffer = self.buffers.setdefault(view, [])
        buffer.append(tile)
        self.counts[view] = self.counts.get(view, 0) + 1
        if len(buffer) == self.page_size:
            self._flush(view)

    def _flush(self, view: str) -> None:
        page = -(-self.counts[view] // self.page_size)
        data_file(self.site, f"data/views/{file_name(view)}/{page}.js", self.buffers[view])
        self.buffers[view] = []

    def close(self) -> dict:
        for view, buffer in self.buffers.items():
            if buffer:
                self._flush(view)
        return {view: {"count": n, "pages": -(-n // self.page_size)} for view, n in sorted(self.counts.items())}


def view_ids(sample: dict, source: int | None, modalities: list[str]) -> list[str]:
    """Views holding ``sample``: status all / its own, source all / its own, and for failed samples each
    of ``modalities`` it failed in."""
    sources = ["all"] if source is None else ["all", str(source)]
    ids = [f"{status}.{s}.all" for status in ("all", sample["status"]) for s in sources]
    if sample["status"] == "failed":
        ids += [f"failed.{s}.{m}" for s in sources for m in sample["errors"] if m in modalities]
    return ids


def tile(sample: dict, chunk: str, pos: int) -> dict:
    """What a grid tile needs: key, where its details are, status, first error, which pictures exist."""
    have = {m: ("s" if s["source"] else "") + ("r" if s["recon"] else "") for m, s in sample["m"].items()}
    record = {
        "k": sample["key"],
        "c": chunk,
        "i": pos,
        "s": sample["status"],
        "h": {m: v for m, v in have.items() if v},
        "b": 1 if sample.get("boxes") else 0,
    }
    if sample["errors"]:
        modality, reason = next(iter(sample["errors"].items()))
        record["e"] = (reason if reason.startswith(f"{modality}:") else f"{modality}: {reason}")[:160]
    return record


class Worst:
    """Per modality, the WORST_LISTED samples whose main metric (tokzoo.tokenizers.evaluation.metrics.main_metric) is
    worst, kept in a bounded heap, written as view ``worst.all.<modality>`` (worst first)."""

    def __init__(self):
        self.heaps: dict[str, list] = {}
        self.names: dict[str, str] = {}
        self._seen = 0

    def add(self, sample: dict, tile_record: dict) -> None:
        for modality, section in sample["m"].items():
            if modality not in METRICS:
                continue
            name = main_metric(modality)
            value = section.get("metrics", {}).get(name)
            if not isinstance(value, (int, float)):
                continue
            self.names[modality] = name
            badness = -value if name in HIGHER_IS_BETTER else value
            self._seen += 1
            heap = self.heaps.setdefault(modality, [])
            item = (badness, -self._seen, {**tile_record, "v": f"{name} {value:.4g}"})
            if len(heap) < WORST_LISTED:
                heappush(heap, item)
            else:
                heappushpop(heap, item)

    def write(self, views: "Views") -> None:
        for modality, heap in self.heaps.items():
            for _, _, tile_record in sorted(heap, reverse=True):
                views.add(f"worst.all.{modality}", tile_record)


class Totals:
    """What the dataset page sums over all samples: counts, failures, metric means, token histograms."""

    def __init__(self):
        self.samples = self.ok = self.failed = 0
        self.per_modality: dict[str, dict] = {}
        self.failures: list[dict] = []
        self.metric_sums: dict[str, dict[str, list[float]]] = {}

    def add(self, sample: dict, chunk: str, pos: int, modalities: list[str]) -> None:
        self.samples += 1
        ok = sample["status"] == "ok"
        self.ok += ok
        self.failed += not ok
        for m in modalities:
            counts = self.per_modality.setdefault(m, {"failed": 0, "present": 0})
            counts["failed"] += m in sample["errors"]
            section = sample["m"].get(m)
            counts["present"] += bool(section and (section["source"] or section["text"].get("source")))
            for name, value in (section or {}).get("metrics", {}).items():
                if isinstance(value, (int, float)):
                    sums = self.metric_sums.setdefault(m, {}).setdefault(name, [0.0, 0])
                    sums[0] += value
                    sums[1] += 1
        if not ok and len(self.failures) < MAX_FAILURES_LISTED:
            self.failures.append(
                {
                    "key": sample["key"],
                    "chunk": chunk,
                    "pos": pos,
                    "source": sample["source"],
                    "errors": sample["errors"],
                }
            )

    def means(self, modality: str) -> dict:
        return {name: float(f"{total / n:.4g}") for name, (total, n) in self.metric_sums.get(modality, {}).items() if n}


def build_site(
    dataset: str | Path,
    site: str | Path,
    progress: bool = True,
    chunk_size: int = CHUNK_SIZE,
    page_size: int = PAGE_SIZE,
) -> BuildSummary:
    """Write (or bring up to date) the browser site of ``dataset`` in ``site``; see the module docstring."""
    from tqdm import tqdm

    started = time.perf_counter()
    dataset, site = Path(dataset), Path(site)
    if site.resolve() == dataset.resolve() or dataset.resolve() in site.resolve().parents:
        raise ConfigError(f"{site}: the site must be outside the dataset {dataset} (readers take its folders as data)")
    data = open_dataset(dataset)
    make_folder(site)
    summary = BuildSummary(site)
    views, totals, worst, chunks, sources = Views(site, page_size), Totals(), Worst(), [], {}
    counters = {m: _usage(data, m) for m in data.modalities} if isinstance(data, TokenCatalog) else {}
    builder = _TokenChunks(data, site, counters) if isinstance(data, TokenCatalog) else _RawChunks(data, site)
    total = next(iter(data.entries.values()))["samples"]["count"] if isinstance(data, TokenCatalog) else None
    with tqdm(total=total, unit="sample", desc="browse", disable=not progress, dynamic_ncols=True) as bar:
        for shard in data.shards():
            for chunk, records, samples in builder.chunks(shard, chunk_size, summary):
                chunks.append([chunk, len(samples)])
                for pos, sample in enumerate(samples):
                    group = source_group(sample["source"])
                    source = sources.setdefault(group, len(sources))
                    tile_record = tile(sample, chunk, pos)
                    for view in view_ids(
                        sample, source if len(sources) <= MAX_SOURCE_VIEWS else None, builder.modalities
                    ):
                        views.add(view, tile_record)
                    totals.add(sample, chunk, pos, builder.modalities)
                    worst.add(sample, tile_record)
                bar.update(len(samples))
    summary.samples, summary.ok, summary.failed = totals.samples, totals.ok, totals.failed
    if isinstance(data, TokenCatalog) and data.incomplete:
        summary.notes.append(f"shards {data.incomplete} are not complete in every modality yet; not shown")
    summary.notes += builder.notes
    _remove_stale(site, {c for c, _ in chunks})
    worst.write(views)
    view_table = views.close()
    data_file(site, "data/chunks.js", chunks)
    data_file(site, "data/dataset.js", _dataset_page(data, site, totals, counters, builder.modalities, summary))
    data_file(
        site,
        "data/site.js",
        {
            "format": FORMAT,
            "kind": data.kind,
            "root": str(dataset),
            "modalities": builder.modalities,
            "sources": list(sources) if len(sources) <= MAX_SOURCE_VIEWS else [],
            "views": view_table,
            "main_metrics": worst.names,
            "tokenizers": {m: e["name"] + (" (UNTRAINED)" if e["untrained"] else "") for m, e in data.entries.items()}
            if isinstance(data, TokenCatalog)
            else {},
            "page_size": page_size,
            "samples": totals.samples,
            "ok": totals.ok,
            "failed": totals.failed,
            "notes": summary.notes,
        },
    )
    for name in STATIC:
        write_file(site, site / name, resources.files("tokzoo.browse").joinpath("assets", Path(name).name).read_bytes())
    summary.seconds = time.perf_counter() - started
    return summary


def _usage(data: TokenCatalog, modality: str):
    from tokzoo.tokenizers.training.codebook import CodebookUsage

    return CodebookUsage(int(data.entries[modality]["vocab_size"]))


class _TokenChunks:
    def __init__(self, data: TokenCatalog, site: Path, counters: dict):
        self.data, self.site, self.counters = data, site, counters
        self.modalities = data.modalities
        self.renderer = TokenChunkRenderer(data, site)  # loads the tokenizers: which can draw reconstructions
        unavailable = self.renderer.unavailable
        self.notes: list[str] = [f"{m}: {n}" for m, n in unavailable.items()]
        # drawn without a tokenizer -> redrawn once it is back
        self.fingerprints = {
            m: data.fingerprint(m) + ("-notokenizer" if m in unavailable else "") for m in data.modalities
        }
        self.fingerprints[BOXES] = data.boxes_fingerprint()

    def chunks(self, shard, chunk_size: int, summary: BuildSummary):
        import torch

        tokens = {m: self.data.tokens(m, shard.index) for m in self.modalities}
        for m, by_key in tokens.items():
            pad = self.data.entries[m].get("pad_id")
            for ids in by_key.values():
                ids = ids[ids != pad] if pad is not None else ids
                self.counters[m].update(torch.from_numpy(ids.astype(np.int64)))
        shard_data = None
        # drawn without sources -> redrawn once they are back
        missing = "-nosource" if any(c.error for c in shard.sources.cursors.values()) else ""
        fingerprints = {section: fp + missing for section, fp in self.fingerprints.items()}
        for part, start in enumerate(range(0, len(shard.records), chunk_size)):
            records = shard.records[start : start + chunk_size]
            chunk = f"{shard_name(shard.index)}-{part:03d}"
            listing = listing_hash(records)
            old = read_data_file(self.site / "data" / "chunks" / f"{chunk}.js")
            if old is not None and (old.get("format") != FORMAT or old.get("listing") != listing):
                old = None
            stale = [s for s, fp in fingerprints.items() if old is None or old["fingerprints"].get(s) != fp]
            if not stale:
                summary.chunks_reused += 1
                yield chunk, records, old["samples"]
                continue
            if shard_data is None:
                shard_data = {"tokens": tokens, "crops": self.data.crops(shard.index), "sources": shard.sources()}
                errors = [c.error for c in shard.sources.cursors.values() if c.error]
                shard_data["sources_note"] = errors[0] if errors else None
                self.notes += [e for e in errors if e not in self.notes]
            drawn, written = self.renderer.render(
                chunk, records, shard_data, [m for m in stale if m != BOXES], BOXES in stale
            )
            if old is not None:  # keep the sections that are still current
                for new, previous in zip(drawn, old["samples"]):
                    new["m"] = {**{m: s for m, s in previous["m"].items() if m not in stale}, **new["m"]}
                    if BOXES not in stale:
                        new["boxes"], new["boxes_of"] = previous.get("boxes"), previous.get("boxes_of")
                    new["m"] = {m: new["m"][m] for m in self.modalities if m in new["m"]}
            summary.chunks_drawn += 1
            summary.images_written += written
            data_file(
                self.site,
                f"data/chunks/{chunk}.js",
                {"format": FORMAT, "id": chunk, "listing": listing, "fingerprints": fingerprints, "samples": drawn},
            )
            yield chunk, records, drawn


class _RawChunks:
    def __init__(self, data: RawCatalog, site: Path):
        from tokzoo.io import MODALITIES

        self.data, self.site, self.renderer, self.notes = data, site, RawChunkRenderer(site), []
        self._order = {m: i for i, m in enumerate(MODALITIES)}
        self._seen: set[str] = set()

    @property
    def modalities(self) -> list[str]:
        return sorted(self._seen, key=lambda m: self._order.get(m, len(self._order)))

    def chunks(self, shard, chunk_size: int, summary: BuildSummary):
        raws = None
        fingerprint = shard.fingerprint
        for part, start in enumerate(range(0, len(shard.records), chunk_size)):
            records = shard.records[start : start + chunk_size]
            chunk = f"{shard_name(shard.index)}-{part:03d}"
            listing = listing_hash(records)
            old = read_data_file(self.site / "data" / "chunks" / f"{chunk}.js")
            if (
                old is not None
                and old.get("format") == FORMAT
                and old.get("listing") == listing
                and old.get("fingerprints") == {"raw": fingerprint}
            ):
                summary.chunks_reused += 1
                self._seen.update(m for s in old["samples"] for m in s["m"])
                yield chunk, records, old["samples"]
                continue
            if raws is None:
                raws = shard.sources()[""]
            drawn, written, seen = self.renderer.render(chunk, records, raws)
            self._seen.update(seen)
            summary.chunks_drawn += 1
            summary.images_written += written
            data_file(
                self.site,
                f"data/chunks/{chunk}.js",
                {
                    "format": FORMAT,
                    "id": chunk,
                    "listing": listing,
                    "fingerprints": {"raw": fingerprint},
                    "samples": drawn,
                },
            )
            yield chunk, records, drawn


def _remove_stale(site: Path, chunks: set[str]) -> None:
    """Chunk files and image folders of chunks the dataset no longer has."""
    for path in (site / "data" / "chunks").glob("*.js"):
        if path.stem not in chunks:
            remove_inside(site, path)
    for folder in (site / "img").glob("*"):
        if (folder.is_dir() or folder.is_symlink()) and folder.name not in chunks and folder.name != "plots":
            remove_inside(site, folder)  # a link is removed, never followed


def _dataset_page(
    data, site: Path, totals: Totals, counters: dict, modalities: list[str], summary: BuildSummary
) -> dict:
    rows = []
    for m in modalities:
        row = {"name": m, **totals.per_modality.get(m, {"failed": 0, "present": 0}), "metrics": totals.means(m)}
        row["higher_is_better"] = [name for name in row["metrics"] if name in HIGHER_IS_BETTER]
        if isinstance(data, TokenCatalog):
            entry = data.entries[m]
            row.update(
                tokenizer=entry["name"],
                untrained=entry["untrained"],
                vocab_size=entry["vocab_size"],
                token_shape=entry["token_shape"],
                dtype=entry["dtype"],
                size=entry["size"],
            )
            usage = counters[m]
            row["codebook"] = usage.summary()
            plot = f"img/plots/{file_name(m)}.tokens.png"
            title = m if entry["name"] == m else f"{m} ({entry['name']})"
            write_png(frequency_plot(usage.counts.numpy(), title), site, site / plot)
            row["plot"] = plot
        rows.append(row)
    manifest = data.manifest
    return {
        "kind": data.kind,
        "root": str(data.root),
        "samples": totals.samples,
        "ok": totals.ok,
        "failed": totals.failed,
        "modalities": rows,
        "failures": totals.failures,
        "failures_listed": len(totals.failures),
        "notes": summary.notes,
        "manifest": manifest,
    }
