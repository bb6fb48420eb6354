"""Held-out evaluation of cross-modal prediction against exact ground truth and two references.

For each target modality predicted from the sources (crop 0 of every held-out sample), decoded by its
tokenizer and compared with the sample's raw value cut by the same crop (the dataset's ``_source`` or
``--input``):

- **model**: the prediction;
- **tokenizer ceiling**: the tokenizer's reconstruction of the true tokens (the best a token model can do);
- **training prior**: what knowing no input gives, from the training set's raw values at crop 0: the
  per-pixel mean depth (over valid pixels), the per-pixel mean normal (renormalised), the per-pixel
  majority class, the caption naming the class words most training captions name (the text-only prior), the
  per-pixel majority edge map (the empty map where no pixel is an edge in most images), the per-position mean
  feature vector, one human in the mean pose of the training humans.

With ``samples=K`` the model's prediction is a decision over K sampled predictions (seeds ``seed .. seed+K-1``,
at the settings' temperature) made by the prior's own rule: the per-pixel majority class of the K sampled maps, the
caption naming the class words more than half of the K sampled captions name, their per-pixel mean depth, and so
on. The prior is that rule over the training values (the marginal); the decision is the same rule over the model's
conditional samples, so both sides get the same kind of point estimate. Greedy decoding (temperature 0, the
default) takes each token's mode, which is not the metric's best point estimate: a caption decoded greedily can
repeat its likeliest phrase, and a map decoded greedily is one coherent guess, not the per-pixel mode.

Metrics (tokzoo.tokenizers.evaluation.metrics): depth abs-rel (mean over samples), normals mean angular error
(mean over samples), semseg mIoU (accumulated over the set) and, structure-sensitive, semseg boundary F1
(1-pixel tolerance, mean over samples; under ``also`` in the report); captions: class-word accuracy, and
class-word F1 under ``also`` (:mod:`.caption_words`); edges: F1 of edge pixels at 1-pixel tolerance (counts
summed over the set; the empty map scores 0); dense_features: mean cosine similarity of the feature vectors;
human_pose: per true human, the mean distance in pixels over its labelled joints (v > 0) to the closest predicted
human, the frame's diagonal when nothing is predicted (mean over true humans; extra predictions cost nothing).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from tokzoo.crops import apply_crop
from tokzoo.errors import ConfigError, TokzooError
from tokzoo.labelers.metrics import edge_counts, f1
from tokzoo.limits import check_int
from tokzoo.modalities import MODALITIES
from tokzoo.tokenizers.evaluation.metrics import abs_rel, angular_error, boundary_f1, cosine, mean_iou
from tokzoo.tokens import make_loader
from tokzoo.tokens.spec import check_same_vocabularies, dataset_manifest, dataset_parts, specs_from_manifest

from .caption_words import class_word_accuracy, class_word_f1, text_prior
from .generate import DecodeSettings, check_request, decode_tokens, generate
from .masking import flatten_batch
from .model import FourM
from .stream import ordered_batches

UNDECODABLE = np.full((16, 16, 3), 160, np.uint8)
"""The grey cell ``tokzoo fm generate`` draws for a prediction its tokenizer cannot decode."""
METRICS = {
    "depth": ("abs_rel", "lower"),
    "normals": ("angular_error_deg", "lower"),
    "semseg": ("miou", "higher"),
    "captions": ("class_word_accuracy", "higher"),
    "edges": ("edge_f1_1px", "higher"),
    "dense_features": ("cosine", "higher"),
    "human_pose": ("keypoint_error_px", "lower"),
}
ALSO = {
    "semseg": {
        "boundary_f1": ("higher", lambda truths, predictions: boundary_f1(np.stack(truths), np.stack(predictions)))
    },
    "captions": {"class_word_f1": ("higher", class_word_f1)},
}
"""Further metrics per target, reported beside the main one."""


def raw_crops(
    root: str | Path, modality: str, limit: int | None = None, keys: set[str] | None = None
) -> dict[str, np.ndarray]:
    """key -> the raw ``modality`` value at crop 0, at the tokens' size, of the first ``limit`` samples of token
    dataset ``root`` (or of those in ``keys``)."""
    from tokzoo.io import decode_sample
    from tokzoo.tokens.sources import open_input

    # "a,b": the folder holding the modality
    root = next((p for p in dataset_parts(root) if modality in dataset_manifest(p)["modalities"]), root)
    entry = dataset_manifest(root)["modalities"][modality]
    stored = getattr(MODALITIES.get(modality), "stored_as", None) or modality  # human_pose is stored as pose
    loader = make_loader(root, ["crops", modality], 256, shuffle=False, crop=0)
    boxes = {}
    for batch in loader:
        boxes.update((k, b) for k, b in zip(batch["__key__"], batch["crops"].numpy()) if keys is None or k in keys)
        if limit and len(boxes) >= limit:
            break
    values = {}
    for raw in open_input(entry["input"], [stored]).raw():
        if raw.key not in boxes:
            continue
        value = decode_sample(raw).values.get(stored)
        if value is None:
            raise ConfigError(f"{entry['input']}: sample {raw.key!r} has no readable {modality}")
        values[raw.key] = (
            apply_crop({stored: value}, boxes[raw.key], tuple(entry["size"]))[stored] if entry.get("size") else value
        )
        if len(values) == len(boxes):
            break
    return values


def training_prior(modality: str, values: list) -> np.ndarray | str:
    """The prior's rule of ``modality`` over ``values`` (see the module docstring): per pixel, or one caption. Over
    training values it is the training prior; over a model's sampled predictions, the model's decision."""
    if modality == "captions":
        return text_prior(values)
    if modality == "human_pose":
        return _mean_pose(values)
    stack = np.stack(values)
    if modality == "depth":
        with np.errstate(invalid="ignore"):
            return np.nanmean(np.where(stack > 0, stack, np.nan), 0).astype(np.float32)
    if modality == "normals":
        mean = np.nanmean(stack, 0)
        return (mean / np.linalg.norm(mean, axis=-1, keepdims=True)).astype(np.float32)
    if modality == "semseg":
        counts = np.stack([(stack == c).sum(0) for c in range(int(stack[stack != 255].max(initial=0)) + 1)])
        return counts.argmax(0).astype(np.uint8)
    if modality == "edges":
        return (stack.astype(bool).mean(0) > 0.5).astype(np.uint8)
    if modality == "dense_features":
        return stack.astype(np.float32).mean(0)
    raise ConfigError(f"no evaluation for target modality {modality!r} (known: {', '.join(METRICS)})")


def score(modality: str, truths: list, predictions: list) -> float:
    if modality == "captions":
        return class_word_accuracy(truths, predictions)
    if modality == "depth":
        return float(np.nanmean([abs_rel(t, p) for t, p in zip(truths, predictions)]))
    if modality == "normals":
        return float(np.nanmean([angular_error(t, p) for t, p in zip(truths, predictions)]))
    if modality == "edges":
        counts = np.sum([edge_counts(p, t, tolerance=1.0) for t, p in zip(truths, predictions)], 0)
        return f1(*map(int, counts))[2]
    if modality == "dense_features":
        return float(np.mean([cosine(t, p) for t, p in zip(truths, predictions)]))
    if modality == "human_pose":
        errors = [e for t, p in zip(truths, predictions) for e in _keypoint_errors(t, p)]
        return float(np.mean(errors)) if errors else float("nan")
    return mean_iou(np.stack(truths), np.stack(predictions))


def _humans(pose: dict, width: float, height: float) -> list[np.ndarray]:
    """The pose dict's humans as (17, 3) arrays with x, y in the frame ``width`` x ``height``; none for a
    prediction that decoded to nothing (None)."""
    if pose is None:
        return []
    sx, sy = width / pose.get("width", width), height / pose.get("height", height)
    return [np.asarray(h["keypoints_2d"], np.float64) * [sx, sy, 1.0] for h in pose.get("humans", [])]


def _keypoint_errors(truth: dict, prediction: dict) -> list[float]:
    """Per true human with a labelled joint: mean joint distance (pixels of the truth's frame) to the closest
    predicted human; the frame's diagonal when none is predicted."""
    width, height = truth.get("width", 1.0), truth.get("height", 1.0)
    predicted = _humans(prediction, width, height)
    errors = []
    for human in _humans(truth, width, height):
        seen = human[:, 2] > 0
        if not seen.any():
            continue
        if not predicted:
            errors.append(float(np.hypot(width, height)))
            continue
        gaps = [np.linalg.norm(p[seen, :2] - human[seen, :2], axis=1).mean() for p in predicted]
        errors.append(float(min(gaps)))
    return errors


def _mean_pose(values: list[dict | None]) -> dict | None:
    """One human whose every joint sits at that joint's mean position over the values' humans where labelled, in
    the frame of the first value (visible); None when every value is None (nothing predicted)."""
    values = [v for v in values if v is not None]  # sampled predictions that decoded to nothing
    if not values:
        return None
    width, height = values[0].get("width", 1.0), values[0].get("height", 1.0)
    humans = [h for v in values for h in _humans(v, width, height)]
    if not humans:
        return {"skeleton": "coco17", "width": width, "height": height, "humans": []}
    stack = np.stack(humans)
    seen = stack[..., 2] > 0
    mean = (stack[..., :2] * seen[..., None]).sum(0) / np.maximum(seen.sum(0), 1)[:, None]  # 0 where never labelled
    keypoints = np.concatenate([mean, np.full((len(mean), 1), 2.0)], 1)
    return {"skeleton": "coco17", "width": width, "height": height, "humans": [{"keypoints_2d": keypoints.tolist()}]}


def evaluate(
    model: FourM,
    data: str | Path,
    train_data: str | Path,
    sources: list[str],
    targets: list[str],
    *,
    limit: int | None = None,
    settings: DecodeSettings = DecodeSettings(temperature=0.0),
    batch_size: int = 32,
    train_limit: int | None = None,
    progress: bool = False,
    samples: int = 0,
) -> dict:
    """Scores of the model, the tokenizer ceiling and the training prior per target on held-out ``data``; with
    ``samples`` K >= 1 the model's prediction is the decision over K sampled predictions (module docstring)."""
    from tqdm.auto import tqdm

    if samples and settings.temperature <= 0:
        raise ConfigError("a decision over sampled predictions needs a temperature > 0 (temperature 0 is greedy)")
    check_int(samples, "decoding", "--samples", 0, 1 << 10)
    for target in targets:
        if target not in METRICS:
            raise ConfigError(f"no evaluation for target modality {target!r} (known: {', '.join(METRICS)})")
    check_request(model, sources, targets, settings)
    names = list(dict.fromkeys(list(sources) + list(targets)))
    data_specs = specs_from_manifest(data, names)
    check_same_vocabularies(model.specs, data_specs, data)
    by_name = {s.name: s for s in model.specs}
    truths = {t: raw_crops(data, t, limit) for t in targets}
    predictions, ceilings, keys = {t: {} for t in targets}, {t: {} for t in targets}, []
    bar = tqdm(total=limit, disable=not progress, desc="fm eval", unit="sample")
    for batch in ordered_batches(data, names, batch_size):  # a dataset of several folders ("a,b") too
        if limit and len(keys) >= limit:
            break
        batch_keys = batch["__key__"]
        masked = flatten_batch(batch, model.specs)
        draws = [
            generate(model, masked, sources, targets, replace(settings, seed=settings.seed + k))
            for k in range(max(samples, 1))
        ]
        for t in targets:
            decoded = [decode_tokens(by_name[t], d[t], masked.valid[t]) for d in draws]
            chosen = [training_prior(t, list(v)) for v in zip(*decoded)] if samples else decoded[0]
            predictions[t].update(zip(batch_keys, chosen))
            ceilings[t].update(zip(batch_keys, decode_tokens(by_name[t], masked.tokens[t], masked.valid[t])))
        keys += batch_keys
        bar.update(len(batch_keys))
    bar.close()
    keys = keys[:limit] if limit else keys
    report = {
        "samples": len(keys),
        "sources": list(sources),
        "decode": settings.__dict__,
        "decision_samples": samples,
        "targets": {},
    }
    for t in targets:
        prior = training_prior(t, list(raw_crops(train_data, t, train_limit).values()))
        truth = [truths[t][k] for k in keys]
        metric, direction = METRICS[t]
        candidates = {
            "model": [predictions[t][k] for k in keys],
            "tokenizer_ceiling": [ceilings[t][k] for k in keys],
            "training_prior": [prior] * len(keys),
        }
        report["targets"][t] = {
            "metric": metric,
            "better": direction,
            **{name: score(t, truth, values) for name, values in candidates.items()},
            "also": {
                name: {"better": better, **{c: fn(truth, v) for c, v in candidates.items()}}
                for name, (better, fn) in ALSO.get(t, {}).items()
            },
        }
    return report


def example_rows(
    model: FourM, data: str | Path, keys: list[str], sources: list[str], targets: list[str], settings: DecodeSettings
) -> list[list[np.ndarray]]:
    """Pictures for ``tokzoo fm generate``: per key one row of sources, predictions, then ground truths
    (the raw crop when the source is available, else the tokenizer's reconstruction)."""
    from tokzoo.tokens.tokenizer import checked_tokenizer

    names = list(dict.fromkeys(list(sources) + list(targets)))
    check_request(model, sources, targets, settings)
    check_same_vocabularies(model.specs, specs_from_manifest(data, names), data)
    by_name = {s.name: s for s in model.specs}
    batches = {}
    for batch in ordered_batches(data, names, 64):
        for i, k in enumerate(batch["__key__"]):
            if k in keys:
                batches[k] = {m: batch[m][i : i + 1] for m in names} | {"__key__": [k]}
    missing = [k for k in keys if k not in batches]
    if missing:
        raise ConfigError(f"{data}: no sample with key {missing[0]!r}")
    truths = {t: _raw_or_none(data, t, set(keys)) for t in names}
    rows = []
    for key in keys:
        masked = flatten_batch(batches[key], model.specs)
        generated = generate(model, masked, sources, targets, settings)
        row = []
        for kind, m in (
            [("source", s) for s in sources] + [("prediction", t) for t in targets] + [("truth", t) for t in targets]
        ):
            spec = by_name[m]
            tok = checked_tokenizer(spec.tokenizer, spec.untrained, spec.content_hash)
            tokens = generated[m] if kind == "prediction" else masked.tokens[m]
            try:
                value = decode_tokens(spec, tokens, masked.valid[m])[0]
            except TokzooError:  # a generated sequence that is no valid structure (a palette without a colour count)
                row.append(UNDECODABLE)
                continue
            if kind != "prediction" and key in truths[m]:
                value = truths[m][key]
            row.append(_picture(tok, value))
        rows.append(row)
    return rows


def _picture(tok, value) -> np.ndarray:
    """uint8 (H, W, 3) of a decoded value: the codec's picture; a palette's colour swatches; other structures
    (metadata, boxes, captions) as a text strip."""
    if hasattr(tok, "codec"):
        return tok.codec.visualize(value)
    if isinstance(value, dict) and "colors" in value:
        colors = np.asarray(value["colors"], np.uint8).reshape(-1, 3)
        return np.repeat(np.repeat(colors[None], 16, 0), 16, 1) if len(colors) else UNDECODABLE
    from PIL import Image, ImageDraw

    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    lines = [text[i : i + 40] for i in range(0, min(len(text), 400), 40)] or [""]
    image = Image.new("RGB", (6 * 40 + 4, 11 * len(lines) + 4), (255, 255, 255))
    ImageDraw.Draw(image).multiline_text((2, 2), "\n".join(lines), fill=(0, 0, 0))
    return np.asarray(image)


def _raw_or_none(data, modality: str, keys: set[str]) -> dict:
    """The keys' raw crops, or nothing when the dataset's source is gone (reconstructions stand in)."""
    try:
        return raw_crops(data, modality, None, keys)
    except (TokzooError, OSError):
        return {}
