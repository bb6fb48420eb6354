"""Main-process side: encode a batch of prepared samples with one modality's tokenizer."""

from __future__ import annotations

import numpy as np

from tokzoo.errors import TokzooError
from tokzoo.indices import to_storage

from .modalities import RunModality
from .worker import Prepared


def worker_codec(tokenizer):
    """The modality codec worker processes normalise with, or None when ``encode`` must take raw values
    (structured tokenizers; codecs whose batch axis is one image's items, not samples)."""
    codec = getattr(tokenizer, "codec", None)
    return codec if codec is not None and codec.batch_is_samples else None


def set_codec(tokenizer):
    """The codec of a set-valued modality (one image's items per call) that workers normalise with, crop by
    crop, or None (then each crop's raw value goes through ``tokenizer.encode`` here)."""
    codec = getattr(tokenizer, "codec", None)
    normalised = hasattr(tokenizer, "encode_normalized")
    return codec if codec is not None and not codec.batch_is_samples and normalised else None


def encode_batch(spec: RunModality, samples: list[Prepared]) -> list[np.ndarray | str]:
    """Per sample: tokens (n_crops, *token_shape) in the smallest safe dtype, or the error message.

    Crops arrive stacked (n_crops, ...) and normalised when the modality has a :func:`worker_codec`, as
    lists of raw per-crop values otherwise. All crops of all samples go through the tokenizer in one
    call; when it refuses the batch, each sample is encoded alone so that only the offending ones fail.
    Set-valued modalities go to :func:`encode_items`.
    """
    if spec.items:
        return encode_items(spec, samples)
    values = [sample.values[spec.stored] for sample in samples]
    if all(isinstance(v, np.ndarray) for v in values):
        batch = np.concatenate(values) if len(values) > 1 else values[0]
    else:
        crops = [crop for value in values for crop in value]
        batch = np.stack(crops) if all(isinstance(c, np.ndarray) for c in crops) else crops
    encode = spec.tokenizer.encode_normalized if worker_codec(spec.tokenizer) else spec.tokenizer.encode
    try:
        tokens = to_storage(encode(batch), spec.tokenizer.vocab_size)
    except TokzooError as error:
        if len(samples) == 1:
            return [_failure(spec, samples[0], error)]
        return [result for sample in samples for result in encode_batch(spec, [sample])]
    return list(tokens.reshape(len(samples), -1, *tokens.shape[1:]))


def encode_items(spec: RunModality, samples: list[Prepared]) -> list[np.ndarray | str]:
    """Set-valued modalities: per sample, tokens (n_crops, N_max, *item_shape) in ``spec.dtype``, or the error.

    Crop c of a sample holds N_c >= 0 items; N_max is the sample's largest N_c (0 when no crop has any), rows
    N_c.. of crop c hold ``spec.pad_id`` (= vocab_size). Crops arrive normalised by a :func:`set_codec` (float32
    (N_c, C, ...)): the items of all crops of all samples go through the model in one call and are split
    back by count. Without one, each crop's raw value is encoded on its own. A refused batch is retried
    sample by sample, as in :func:`encode_batch`.
    """
    tok, item_shape = spec.tokenizer, tuple(spec.tokenizer.token_shape)
    crops = [crop for sample in samples for crop in sample.values[spec.stored]]
    try:
        if set_codec(tok) is None:
            per_crop = [to_storage(tok.encode(crop), tok.vocab_size).reshape(-1, *item_shape) for crop in crops]
        else:
            counts = [len(crop) for crop in crops]
            rows = [crop for crop in crops if len(crop)]
            ids = (
                to_storage(tok.encode_normalized(np.concatenate(rows)), tok.vocab_size)
                if rows
                else np.zeros((0, *item_shape), spec.dtype)
            )
            per_crop = np.split(ids, np.cumsum(counts)[:-1])
    except TokzooError as error:
        if len(samples) == 1:
            return [_failure(spec, samples[0], error)]
        return [result for sample in samples for result in encode_items(spec, [sample])]
    results, start = [], 0
    for sample in samples:
        mine = per_crop[start : start + len(sample.values[spec.stored])]
        start += len(mine)
        tokens = np.full((len(mine), max(len(c) for c in mine), *item_shape), spec.pad_id, spec.dtype)
        for c, crop in enumerate(mine):
            tokens[c, : len(crop)] = crop
        results.append(tokens)
    return results


def _failure(spec: RunModality, sample: Prepared, error: TokzooError) -> str:
    return f"{spec.modality}: {sample.sources.get(spec.stored, sample.key)}: {error}"
