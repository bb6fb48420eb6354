"""One chunk of samples -> its images on disk and the JSON the sample pages show.

A sample's JSON: ``key, source, status, errors`` (modality -> reason), ``crops`` (rows or None), ``boxes``
(the full source with its crop boxes, an image path or None) and ``m``: per modality a section
``{"source", "recon", "tokens"}`` (image paths relative to the site, or None), ``metrics`` (name -> number or
"inf"/"nan"; all of the modality's but :data:`SKIPPED_METRICS`), ``text`` (JSON text of values that are no picture) and ``notes``. Token datasets: the source
is crop 0 as the pipeline cut it, the reconstruction is its tokens decoded, metrics compare the two with
tokzoo.tokenizers.evaluation.metrics. Raw datasets: sources only, uncropped.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from tokzoo.crops import PIXEL_RULES, apply_crop
from tokzoo.errors import TokzooError
from tokzoo.indices import unpad
from tokzoo.io import decode_sample
from tokzoo.io.writes import file_name
from tokzoo.modalities import STORED
from tokzoo.pipeline.report import items_reconstruction
from tokzoo.tokenizers.evaluation.metrics import METRICS
from tokzoo.tokens.tokenizer import entry_tokenizer

from .pictures import THUMBNAIL_SIDE, token_grid, with_crop_boxes, write_thumbnail

BOXES = "_boxes"
"""Section name of the sample-level picture (full source with crop boxes) in fingerprints."""
DRAWN_ITEMS = 8
"""Items of a set-valued modality (SAM instances, humans) a site decodes per sample; a page notes the rest."""
SAMPLE_PICTURE = "sample"
"""Name of the sample-level picture (the source with its crop boxes) among a sample's pictures."""
TEXT_LIMIT = 2000
SKIPPED_METRICS = {"ssim"}
"""Left to ``tokzoo eval``: its 11 x 11 Gaussian windows cost more than a sample's other metrics, decoding
and pictures together."""


def is_photographic(name: str) -> bool:
    """Whether pictures of ``name`` are shrunk by area averaging: photographic stored values (their registry
    declaration) and the crop-boxes picture drawn on the rgb source."""
    return name == SAMPLE_PICTURE or getattr(STORED.get(name), "photographic", False)


def image_path(chunk: str, pos: int, modality: str, kind: str) -> str:
    """Relative to the site; the modality through :func:`tokzoo.io.writes.file_name` (plain names unchanged, as the
    pages build these paths from the names)."""
    return f"img/{file_name(chunk)}/{pos}.{file_name(modality)}.{kind}.png"


def number(value: float):
    """JSON-safe metric value: 4 significant digits; inf and nan as strings."""
    value = float(value)
    return float(f"{value:.4g}") if math.isfinite(value) else str(value)


def as_text(value) -> str:
    text = json.dumps(value, default=_jsonable, sort_keys=True)  # one line; the page wraps it
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + f"\n... ({len(text):,} characters)"


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f"array {value.dtype} {list(value.shape)}"
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def codecs_by_stored() -> dict[str, object]:
    """Raw (tokzoo.io) modality -> a codec with default normalisation, for drawing raw values."""
    from tokzoo.modalities import MODALITIES

    return {(cls.stored_as or cls.name): cls() for cls in MODALITIES.values()}


class Writer:
    """Writes a chunk's images; ``written`` counts them."""

    def __init__(self, site: Path, chunk: str):
        self.site, self.chunk, self.written = site, chunk, 0

    def __call__(self, picture, pos: int, modality: str, kind: str) -> str | None:
        if picture is None:
            return None
        path = image_path(self.chunk, pos, modality, kind)
        write_thumbnail(picture, self.site, self.site / path, smooth=is_photographic(modality))
        self.written += 1
        return path


def box_sources() -> list[str]:
    """Raw modalities the crop boxes are drawn on, first present wins: the stored values on the image's pixel grid
    (a pixel crop rule, tokzoo.crops.PIXEL_RULES), in registry order (rgb first)."""
    return [name for name, stored in STORED.items() if stored.crop_rule in PIXEL_RULES]


def boxes_picture(values: dict, crops, codecs: dict):
    """The first box source among ``values`` drawn full size with ``crops`` (None when none is there)."""
    for modality in box_sources():
        if modality in values and modality in codecs:
            return modality, with_crop_boxes(codecs[modality].visualize(values[modality]), crops)
    return None, None


class TokenChunkRenderer:
    """Renders chunks of a :class:`~tokzoo.browse.catalog.TokenCatalog` (tokenizers loaded once)."""

    def __init__(self, dataset, site: Path):
        self.dataset, self.site = dataset, site
        self.codecs = codecs_by_stored()
        self.tokenizers, self.unavailable = {}, {}
        for modality, entry in dataset.entries.items():
            try:
                self.tokenizers[modality] = entry_tokenizer(entry)
            except TokzooError as error:
                self.unavailable[modality] = f"no reconstruction: {error}"

    def render(
        self, chunk: str, records: list, shard_data: dict, modalities: list[str], boxes: bool
    ) -> tuple[list, int]:
        """Sample sections of ``modalities`` (and the boxes picture when ``boxes``) for ``records``;
        ``shard_data``: tokens (modality -> key -> array), crops (key -> rows), sources (input -> key -> raw),
        sources_note. Returns (one dict per record, images written)."""
        write = Writer(self.site, chunk)
        decoded = {}
        for record in records:
            raws = [raws[record.key] for raws in shard_data["sources"].values() if record.key in raws]
            values = {}
            for raw in raws:
                values.update(decode_sample(raw).values)
            decoded[record.key] = values
        samples = []
        for pos, record in enumerate(records):
            crops = shard_data["crops"].get(record.key)
            sample = {**record.as_json(), "crops": crops.tolist() if crops is not None else None, "m": {}}
            if boxes:
                sample["boxes_of"], picture = boxes_picture(decoded[record.key], crops, self.codecs)
                sample["boxes"] = write(picture, pos, SAMPLE_PICTURE, "boxes")
            samples.append(sample)
        for modality in modalities:
            sections = self._modality(modality, records, decoded, shard_data, write)
            for sample, section in zip(samples, sections):
                sample["m"][modality] = section
        return samples, write.written

    def _modality(self, modality: str, records, decoded, shard_data, write) -> list[dict]:
        entry = self.dataset.entries[modality]
        stored = self.dataset.stored(modality)
        tok = self.tokenizers.get(modality)
        codec = getattr(tok, "codec", None) or self.codecs.get(stored)
        size = tuple(entry["size"]) if entry["size"] else None
        tokens = shard_data["tokens"][modality]
        batched = {}  # key -> reconstruction, decoded in one call for the chunk (not for set-valued modalities)
        if tok is not None and getattr(tok, "codec", None) is not None and not entry.get("items"):
            keys = [r.key for r in records if r.key in tokens]
            if keys:
                batched = dict(zip(keys, tok.decode(np.stack([tokens[k][0] for k in keys]), input_size=size)))
        sections = []
        for pos, record in enumerate(records):
            notes = [self.unavailable[modality]] if modality in self.unavailable else []
            section = {"source": None, "recon": None, "tokens": None, "metrics": {}, "text": {}, "notes": notes}
            value = decoded[record.key].get(stored)
            crops, ids = shard_data["crops"].get(record.key), tokens.get(record.key)
            source = value
            if value is not None and crops is not None and size:
                source = apply_crop({stored: value}, crops[0], size)[stored]
            if value is None:
                notes.append(shard_data["sources_note"] or f"source {entry['input']}: no {stored} for this sample")
            elif crops is None:
                notes.append("source shown uncropped: the sample has no crop rows (it failed)")
            if ids is not None:
                self._tokens(modality, entry, tok, ids, size, section, write, pos)
            if ids is not None and tok is not None:
                self._reconstruct(
                    modality,
                    entry,
                    tok,
                    ids,
                    source if crops is not None else None,
                    size,
                    section,
                    write,
                    pos,
                    batched.get(record.key),
                )
            if source is not None:
                if codec is not None:
                    section["source"] = write(_picture(codec, source, notes), pos, modality, "source")
                else:
                    section["text"]["source"] = as_text(source)
            sections.append(section)
        return sections

    @staticmethod
    def _tokens(modality, entry, tok, ids, size, section, write, pos) -> None:
        """Crop 0's token grid; on the encoder's latent grid when the tokenizer is there, else square or a row
        (the ids and the vocabulary come from the dataset alone)."""
        items = bool(entry.get("items"))
        first = unpad(ids[0], entry["pad_id"]) if items else ids[0]
        codec, grid = getattr(tok, "codec", None), None
        if codec is not None and codec.family == "image" and not items:
            grid = tok.encoder.token_grid(size or tuple(tok.config["input_size"]))
        picture = token_grid(first, int(entry["vocab_size"]), grid, entry["pad_id"] if items else None)
        section["tokens"] = write(picture, pos, modality, "tokens")
        section["token_count"] = int(np.asarray(first).size)

    def _reconstruct(self, modality, entry, tok, ids, source, size, section, write, pos, recon) -> None:
        notes, codec = section["notes"], getattr(tok, "codec", None)
        first = unpad(ids[0], entry["pad_id"]) if entry.get("items") else ids[0]
        if codec is None:
            section["text"]["recon"] = as_text(tok.decode(ids[:1])[0])
            return
        if entry.get("items"):
            drawn = first[:DRAWN_ITEMS]  # decoding is the cost of a page of photos: 40-55 SAM instances each
            if len(drawn) < len(first):
                notes.append(f"the first {len(drawn)} of {len(first)} items are decoded, drawn and measured")
            picture, decoded = items_reconstruction(tok, drawn, source, size, notes, leading=True)
            section["recon"] = write(picture, pos, modality, "recon")
            section["items"] = int(len(first))
            if source is not None:
                section["metrics"] = _item_metrics(modality, tok, source, decoded, notes, len(drawn))
            return
        section["recon"] = write(codec.visualize(recon), pos, modality, "recon")
        if source is not None:
            section["metrics"] = {
                name: number(fn(np.asarray(source)[None], np.asarray(recon)[None]))
                for name, fn in METRICS.get(modality, {}).items()
                if name not in SKIPPED_METRICS
            }


def subsampled(value):
    """An image-like array (H, W, ...) subsampled by the integer stride that brings it to about THUMBNAIL_SIDE (the
    nearest-pixel thumbnail of its picture, drawn without colouring the pixels it drops); other values unchanged."""
    if not isinstance(value, np.ndarray) or value.ndim < 2 or value.dtype == bool:
        return value
    stride = max(value.shape[:2]) // THUMBNAIL_SIDE
    return value[::stride, ::stride] if stride > 1 else value


def _picture(codec, value, notes: list[str]):
    try:
        return codec.visualize(value)
    except (TokzooError, ValueError, KeyError, TypeError) as error:
        notes.append(f"no picture of this value: {error}")
        return None


def _item_metrics(modality: str, tok, source, decoded, notes: list[str], leading: int | None = None) -> dict:
    """Metrics of a set-valued modality's items when source and reconstruction hold as many (``leading``: the
    reconstruction holds the source's first ``leading`` items only)."""
    from tokzoo.tokenizers.evaluation.evaluate import as_rows

    try:
        if leading is not None and tok.modality == "sam_instances":  # cut only the instances drawn
            from tokzoo.modalities.sam_instances import crop_instances

            original = crop_instances(source, leading)[0]
        else:
            original = as_rows(tok, source)[:leading]
        reconstruction = as_rows(tok, decoded)
    except TokzooError as error:
        notes.append(f"no metrics: {error}")
        return {}
    if len(original) != len(reconstruction):
        notes.append(f"no metrics: the source crop holds {len(original)} items, the tokens {len(reconstruction)}")
        return {}
    if not len(original):
        return {}
    return {name: number(fn(original, reconstruction)) for name, fn in METRICS.get(modality, {}).items()}


class RawChunkRenderer:
    """Renders chunks of raw samples: every modality's value as it is stored (no tokens)."""

    def __init__(self, site: Path):
        self.site, self.codecs = site, codecs_by_stored()

    def render(self, chunk: str, records: list, raws: dict) -> tuple[list, int, list[str]]:
        """Returns (one dict per record, images written, modalities seen). Decoding errors mark the record failed."""
        write, samples, seen = Writer(self.site, chunk), [], []
        for pos, record in enumerate(records):
            raw = raws.get(record.key)
            values = {}
            if raw is not None:
                sample = decode_sample(raw)
                values = sample.values
                if sample.errors:
                    record.status = "failed"
                    record.errors.update(sample.errors)
            crops = values.pop("crops", None)
            entry = {**record.as_json(), "crops": np.asarray(crops).tolist() if crops is not None else None, "m": {}}
            entry["boxes_of"], picture = boxes_picture(values, crops, self.codecs)
            entry["boxes"] = write(picture, pos, SAMPLE_PICTURE, "boxes") if crops is not None else None
            for modality, value in values.items():
                seen.append(modality)
                notes = []
                codec = self.codecs.get(modality)
                section = {"source": None, "recon": None, "tokens": None, "metrics": {}, "text": {}, "notes": notes}
                if codec is not None:
                    small = (
                        value if is_photographic(modality) else subsampled(value)
                    )  # label maps: draw only what is shown
                    section["source"] = write(_picture(codec, small, notes), pos, modality, "source")
                if section["source"] is None:
                    section["text"]["source"] = as_text(value)
                entry["m"][modality] = section
            samples.append(entry)
        return samples, write.written, seen
