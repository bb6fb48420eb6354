"""rgb -> captions scored by the class words a caption names (``sphere``, ``box``, ``cylinder``, ``person``,
``building``, ``tree``: :data:`tokzoo.datasets.scene_text.THING_WORDS`), against the true caption.

- **class-word accuracy**: over samples and words, the share of decisions (the word named or not) that agree with
  the true caption;
- **class-word F1**: micro-averaged over the words the true captions name;
- **text-only prior**: the caption naming exactly the words more than half of the training captions name: the
  constant caption with the best accuracy, what a model that sees no image does at best.
"""

from __future__ import annotations


def _words():
    from tokzoo.datasets.scene_text import THING_WORDS, named_things

    return THING_WORDS, named_things


def class_word_accuracy(truths: list[str], predictions: list[str]) -> float:
    """Share of (sample, word) decisions that agree, in [0, 1]; nan for no samples."""
    words, named = _words()
    if not truths:
        return float("nan")
    agree = sum(len(words) - len(named(t) ^ named(p)) for t, p in zip(truths, predictions))
    return agree / (len(words) * len(truths))


def class_word_f1(truths: list[str], predictions: list[str]) -> float:
    """Micro F1 of the named words, in [0, 1]; 1 when neither side names any word."""
    _, named = _words()
    hits = predicted = true = 0
    for t, p in zip(truths, predictions):
        t, p = named(t), named(p)
        hits, predicted, true = hits + len(t & p), predicted + len(p), true + len(t)
    if predicted + true == 0:
        return 1.0
    return 2 * hits / (predicted + true)


def text_prior(captions: list[str]) -> str:
    """The text-only prior (module docstring) as a caption: its words joined by ``" and "`` (``""``: none)."""
    words, named = _words()
    counts = {w: sum(w in named(c) for c in captions) for w in words}
    return " and ".join(w for w in words if 2 * counts[w] > len(captions))
