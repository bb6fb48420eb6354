"""Evaluate a tokenizer against its same-bit baselines on one set of raw samples."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ...datasets.scenes import generate_scene
from ...errors import CheckpointError, ConfigError
from ...io.safety import read_json_file
from ...io.writes import write_file
from ...modalities import MODALITIES
from ..training.codebook import CodebookUsage
from ..training.data import fit, read_values, source_key, synthetic_values
from .baselines import BASELINES, bits_per_sample
from .metrics import main_metric, metrics_for

HELDOUT_SEED = 1_000_003
"""Seed of the default held-out scenes; training recipes use other seeds."""

DEFAULT_SCENE_SIZE = 96
"""Scene size for per-image modalities whose tokenizer has no scenes recipe to take it from."""


def is_per_image(modality: str) -> bool:
    """Whether ``encode`` takes ONE image per call (its instances / humans are the batch axis; the modality's
    ``batch_is_samples`` is False): evaluated image by image, with metrics, baselines and bits per instance / human."""
    return modality in MODALITIES and not MODALITIES[modality].batch_is_samples


def as_rows(tokenizer, value) -> np.ndarray:
    """A per-image modality's raw value -> one array row per instance / human, as its metrics take them.

    sam_instances: an instance map -> its 64 x 64 box crops (``crop_instances``); decoded masks as given.
    human_pose (coco17): a pose dict -> float (N, 17, 3) keypoints [x, y, v] in pixels.
    """
    if tokenizer.modality == "sam_instances":
        from ...modalities.sam_instances import crop_instances

        value = np.asarray(value)
        return value if value.dtype == bool and value.ndim == 3 else crop_instances(value)[0]
    if tokenizer.codec.skeleton != "coco17":
        raise ConfigError(f"{tokenizer.name}: no evaluation metrics for {tokenizer.codec.skeleton!r} poses")
    from ...modalities.human_pose import COCO17_JOINTS, _human_arrays

    return _human_arrays(value, "coco17", "keypoints_2d", (COCO17_JOINTS, 3))


@dataclass
class Evaluation:
    """``report``: JSON-able numbers; ``originals`` and ``reconstructions[method]``: raw arrays for pictures."""

    report: dict
    originals: np.ndarray
    reconstructions: dict = field(default_factory=dict)


class HeldOut(NamedTuple):
    """Raw values to evaluate, a description of them, and ``"source: reason"`` of each unreadable sample."""

    values: np.ndarray | list
    description: str
    unreadable: tuple[str, ...] = ()


def _bar(progress: bool, **kwargs):
    """A tqdm bar on stderr, as the pipeline's and training's (``progress=False``: none)."""
    from tqdm import tqdm

    return tqdm(disable=not progress, dynamic_ncols=True, **kwargs)


def _scenes(n: int, seed: int, size, progress: bool, kind: str = "indoor"):
    """Procedural scenes ``0..n-1`` of stream ``seed`` and ``kind``, one at a time."""
    with _bar(progress, total=n, unit="scene", desc="held-out scenes") as bar:
        for index in range(n):
            yield generate_scene(index, seed, size, kind)
            bar.update()


def heldout_values(
    tokenizer,
    n: int = 256,
    seed: int = HELDOUT_SEED,
    data: str | None = None,
    progress: bool = False,
    kind: str = "indoor",
) -> HeldOut:
    """Raw values at the tokenizer's input size of ``data`` (unreadable samples skipped and listed) or of
    the default held-out set. ``progress``: a bar while scenes render or ``data`` is read.

    Default: procedural scenes of stream ``seed`` and ``kind`` (indoor / outdoor / mix); for modalities the scenes lack, the synthetic
    distribution of the tokenizer's training recipe (a split training never sees).
    """
    size = list(tokenizer.config["input_size"])
    modality = tokenizer.modality
    if is_per_image(modality):
        return _per_image_values(tokenizer, n, seed, data, progress, kind)
    if data is not None:
        values, unreadable = read_values(data, modality, progress)
        values = [fit(modality, v, size) for v in values[:n]]
        return HeldOut(np.stack(values), f"{len(values)} samples of {data}", tuple(unreadable))
    if source_key(modality) in generate_scene(0, 0, 8):
        values = [scene[source_key(modality)] for scene in _scenes(n, seed, size, progress, kind)]
        where = "" if kind == "indoor" else f"{kind} "
        return HeldOut(np.stack(values), f"{n} held-out {where}scenes (seed {seed}, {'x'.join(map(str, size))})")
    source = tokenizer.config.get("provenance", {}).get("recipe", {}).get("data", {})
    if "synthetic" not in source:
        raise ConfigError(f"{tokenizer.name}: the built-in scenes have no {modality!r}; pass --data")
    spec = source["synthetic"]
    values = synthetic_values(tokenizer.codec, n, spec["seed"], spec.get("rank", 8), size, split=2)
    return HeldOut(np.stack(values), f"{n} held-out synthetic samples (training distribution, seed {spec['seed']})")


def _per_image_values(tokenizer, n: int, seed: int, data: str | None, progress: bool, kind: str = "indoor") -> HeldOut:
    """Up to ``n`` images' values holding at least one instance / human (a list: one image per encode call)."""
    key = source_key(tokenizer.modality)
    if data is not None:
        values, unreadable = read_values(data, tokenizer.modality, progress)
        values = [v for v in values if len(as_rows(tokenizer, v))][:n]
        return HeldOut(values, f"{len(values)} images of {data}", tuple(unreadable))
    source = tokenizer.config.get("provenance", {}).get("recipe", {}).get("data", {})
    size = source.get("scenes", {}).get("size", DEFAULT_SCENE_SIZE)
    values = [v for v in (s[key] for s in _scenes(n, seed, size, progress, kind)) if len(as_rows(tokenizer, v))]
    where = "" if kind == "indoor" else f"{kind} "
    return HeldOut(values, f"{len(values)} of {n} held-out {where}scenes with a {key} (seed {seed}, {size} px)")


def _evaluate_per_image(tokenizer, values: list, bar) -> tuple[np.ndarray, dict, CodebookUsage]:
    usage = CodebookUsage(tokenizer.vocab_size)
    originals, decoded = [], []
    for value in values:
        tokens = tokenizer.encode(value)
        usage.update(tokens)
        originals.append(as_rows(tokenizer, value))
        decoded.append(as_rows(tokenizer, tokenizer.decode(tokens)))
        bar.update()
    bar.set_postfix_str("baselines")
    reconstructions = {"tokenizer": (np.concatenate(decoded), bits_per_sample(tokenizer))}
    for name, baseline in BASELINES.items():
        result = baseline(tokenizer, values)
        if result is not None:
            reconstructions[name] = (as_rows(tokenizer, result[0]), result[1])
    return np.concatenate(originals), reconstructions, usage


def evaluate(
    tokenizer, values, data: str = "", batch_size: int = 16, unreadable=(), progress: bool = False
) -> Evaluation:
    """Metrics of the tokenizer and of each applicable baseline on ``values``, plus codebook usage.

    Per-image modalities (:func:`is_per_image`) take a list of images' values; their metrics, bits and
    ``n_samples`` count instances / humans (``n_images`` the images). ``unreadable`` (samples of ``data``
    skipped, ``"source: reason"``) goes into the report as is, with its count. ``progress``: a bar on
    stderr counting samples (images) through the tokenizer, then naming the phase (baselines, metrics).
    """
    metrics = metrics_for(tokenizer.modality)
    per_image = is_per_image(tokenizer.modality)
    unit = "image" if per_image else "sample"
    with _bar(progress, total=len(values), unit=unit, desc=f"eval {tokenizer.name}") as bar:
        if per_image:
            originals, reconstructions, usage = _evaluate_per_image(tokenizer, values, bar)
            bar.set_postfix_str("metrics")
            report = _report(tokenizer, data, originals, reconstructions, metrics, usage, unreadable)
            report["n_images"] = len(values)
            return Evaluation(report, originals, {m: r for m, (r, _) in reconstructions.items()})
        usage = CodebookUsage(tokenizer.vocab_size)
        decoded = []
        for start in range(0, len(values), batch_size):
            tokens = tokenizer.encode(values[start : start + batch_size])
            usage.update(tokens)
            decoded.append(tokenizer.decode(tokens))
            bar.update(len(tokens))
        bar.set_postfix_str("baselines")
        reconstructions = {"tokenizer": (np.concatenate(decoded), bits_per_sample(tokenizer))}
        for name, baseline in BASELINES.items():
            result = baseline(tokenizer, values)
            if result is not None:
                reconstructions[name] = result
        bar.set_postfix_str("metrics")
        report = _report(tokenizer, data, values, reconstructions, metrics, usage, unreadable)
    return Evaluation(report, values, {m: r for m, (r, _) in reconstructions.items()})


def _report(tokenizer, data, values, reconstructions, metrics, usage, unreadable) -> dict:
    rows = [
        {
            "method": method,
            "bits_per_sample": round(float(bits), 2),
            "metrics": {name: _number(fn(values, recon)) for name, fn in metrics.items()},
        }
        for method, (recon, bits) in reconstructions.items()
    ]
    return {
        "tokenizer": tokenizer.name,
        "modality": tokenizer.modality,
        "data": data,
        "n_samples": len(values),
        "vocab_size": tokenizer.vocab_size,
        "token_shape": list(tokenizer.token_shape),
        "bits_per_sample": round(bits_per_sample(tokenizer), 2),
        "main_metric": main_metric(tokenizer.modality),
        "codebook": usage.summary(),
        "rows": rows,
        "n_unreadable": len(unreadable),
        "unreadable": list(unreadable),
    }


def _number(value: float):
    """JSON-safe: inf and nan become strings."""
    return value if math.isfinite(value) else str(value)


def attach_evaluation(directory: str | Path, report: dict) -> None:
    """Store ``report`` under ``"evaluation"`` in a saved tokenizer's config.json (no effect on its hash)."""
    path = Path(directory) / "config.json"
    config = read_json_file(path, CheckpointError)
    config["evaluation"] = report
    write_file(Path(directory), path, json.dumps(config, indent=2, sort_keys=True) + "\n")
