"""T5-style span corruption with sentinel tokens for ``sequence`` modalities (captions, metadata, palette, boxes).

A sequence's *content* is its ids before the first PAD (id 0; captions keep their EOS). Its model vocabulary
is the data's ``V`` ids followed by sentinels: sentinel ``k`` (1-based) is id ``V + k - 1``.

Per sample (facts from 4M's masking; the code is tokzoo's own):

- a keep probability p is drawn uniformly in [0, 1] (0 when the modality's input budget is 0; the mixture
  component's ``keep`` scheme may set it to 1 or to 0-or-1 instead: :data:`KEEP_SCHEMES`); every
  content token is kept with probability p; each maximal run of dropped tokens is a *span*;
- input  = the content with each span replaced by one sentinel (S1, S2, ... in order);
- target = for each span its sentinel followed by its tokens, then one more sentinel that ends the target;
- while the input is longer than its budget, p is lowered (x 0.9) and the draw repeated (no input budget:
  nothing is drawn, the whole content is one span);
- a target longer than its budget is cut to start at a sentinel: a random one (not the final one) when
  the rest from there fills the budget (then truncated to the budget), else the earliest one whose rest fits.

The decoder sees the target sequence only (each slot reads the previous *target* id), so a dropped token is
never fed to it unless it is also a target, and sentinels hide each span's length and position.

Generation inverts this with :func:`merge_spans`: each input sentinel is replaced by the tokens the decoder
emitted after the same sentinel.
"""

from __future__ import annotations

import numpy as np

PAD = 0
KEEP_DECAY = 0.9
MAX_TRIES = 400  # lowering p 400 times by 0.9 reaches 5e-19: afterwards every token is dropped
KEEP_SCHEMES = ("random", "all", "binary")
"""How the first keep probability is drawn (4M's ``keep`` per modality and mixture direction): ``random``
uniform in [0, 1]; ``all`` 1, the whole content is the input (a condition given whole, as at generation);
``binary`` 0 or 1 with equal chance. Over the input budget, p is lowered as always."""


def content_length(row: np.ndarray) -> int:
    """Ids before the first PAD."""
    pads = np.flatnonzero(row == PAD)
    return int(pads[0]) if len(pads) else len(row)


def span_starts(dropped: np.ndarray) -> np.ndarray:
    """(n,) bool: where a maximal run of ``dropped`` (n,) bool positions begins."""
    return dropped & ~np.concatenate([[False], dropped[:-1]])


def corrupt(content: np.ndarray, keep: np.ndarray, vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """(input ids, target ids) of ``content`` (n,) with ``keep`` (n,) bool; sentinels numbered from ``vocab``."""
    dropped = ~keep
    starts = span_starts(dropped)
    sentinel = vocab + np.cumsum(starts) - 1  # the sentinel id of the span each position belongs to
    n_spans = int(starts.sum())
    inputs = np.where(starts, sentinel, content)[keep | starts]
    pieces = np.stack([np.where(starts, sentinel, -1), content], 1)  # (n, 2): [sentinel or -1, token]
    body = pieces[dropped].ravel()
    target = np.concatenate([body[body >= 0], [vocab + n_spans]]).astype(np.int64)
    return inputs.astype(np.int64), target


def input_length(keep: np.ndarray) -> int:
    """Length of the corrupted input for ``keep`` (n,) bool: the kept ids plus one sentinel per dropped span."""
    return int(keep.sum()) + int(span_starts(~keep).sum())


def mask_sequence(
    content: np.ndarray, n_input: int, n_target: int, vocab: int, rng: np.random.Generator, scheme: str = "random"
) -> tuple[np.ndarray, np.ndarray]:
    """Span-corrupt ``content`` within the budgets: (input ids (<= n_input,), target ids (<= n_target,)).
    ``scheme`` (:data:`KEEP_SCHEMES`) sets the first keep probability."""
    if scheme not in KEEP_SCHEMES:
        raise ValueError(f"keep scheme {scheme!r}: one of {', '.join(KEEP_SCHEMES)}")
    n = len(content)
    keep = np.zeros(n, bool)  # no input budget, or no draw fits it: the whole content is one span, all target
    if n_input > 0:
        p = float(rng.uniform()) if scheme == "random" else 1.0 if scheme == "all" else float(rng.integers(2))
        for _ in range(MAX_TRIES):
            draw = rng.random(n) < p
            if input_length(draw) <= n_input:
                keep = draw
                break
            p *= KEEP_DECAY
    inputs, target = corrupt(content, keep, vocab)
    if n_input == 0:
        inputs = inputs[:0]
    return inputs, cut_target(target, n_target, vocab, rng)


def cut_target(target: np.ndarray, budget: int, vocab: int, rng: np.random.Generator) -> np.ndarray:
    """``target`` when it fits ``budget``, else a piece of it starting at a sentinel (module docstring)."""
    if len(target) <= budget:
        return target
    if budget <= 0:
        return target[:0]
    sentinels = np.flatnonzero(target >= vocab)
    start = int(sentinels[rng.integers(max(1, len(sentinels) - 1))])
    if len(target) - start >= budget:
        return target[start : start + budget]
    return target[int(sentinels[np.argmax(len(target) - sentinels <= budget)]) :]


def merge_spans(inputs: np.ndarray, target: np.ndarray, vocab: int, length: int) -> np.ndarray:
    """The sequence (``length``,) that ``inputs`` (with sentinels) and a generated ``target`` describe.

    Each input sentinel k becomes the ids the target holds after sentinel k (up to the next sentinel);
    a sentinel the target never emitted becomes nothing. The result is cut to ``length`` and PAD-filled.
    """
    spans, current = {}, None
    for t in target.tolist():
        if t >= vocab:
            current = t
            spans.setdefault(current, [])
        elif current is not None:
            spans[current].append(t)
    out = []
    for t in inputs.tolist():
        out.extend(spans.get(t, []) if t >= vocab else [t])
    row = np.full(length, PAD, np.int64)
    ids = np.asarray([t for t in out if t != PAD][:length], np.int64)
    row[: len(ids)] = ids
    return row
