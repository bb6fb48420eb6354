"""Main-process side: encode a batch of prepared samples with one modality's tokenizer."""

from __future__ import annotations

import numpy as np

from tokzoo.errors import TokzooError
from tokzoo.indices import to_storage

from .manifest import ModalitySpec
from .worker import Prepared


def worker_codec(tokenizer):
    """The modality codec worker processes normalise with, or None when ``encode`` must take raw values
    (structured tokenizers; codecs whose batch axis is one image's items, not samples)."""
    codec = getattr(tokenizer, "codec", None)
    return codec if codec is not None and codec.batch_is_samples else None


def encode_batch(spec: ModalitySpec, samples: list[Prepared]) -> list[np.ndarray | str]:
    """Per sample: tokens (n_crops, *token_shape) in the smallest safe dtype, or the error message.

    Crops arrive stacked (n_crops, ...) and normalised when the modality has a :func:`worker_codec`, as
    lists of raw per-crop values otherwise. All crops of all samples go through the tokenizer in one
    call; when it refuses the batch, each sample is encoded alone so that only the offending ones fail.
    """
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
            return [f"{spec.modality}: {samples[0].sources.get(spec.stored, samples[0].key)}: {error}"]
        return [result for sample in samples for result in encode_batch(spec, [sample])]
    return list(tokens.reshape(len(samples), -1, *tokens.shape[1:]))
