"""Train the zoo's caption vocabulary (tokzoo/tokenizers/weights/captions/vocab.json), offline and reproducibly.

Corpus: the English prose of the Python documentation topics that ship with CPython
(``pydoc_data.topics``, ~0.5 MB), plus 20,000 template captions of tokzoo's procedural scenes (colours,
object classes, counts, places) so that common caption words are single tokens. Same Python version ->
same file.

    python scripts/train_caption_vocab.py [--vocab-size 8192]
"""

from __future__ import annotations

import argparse
import pydoc_data.topics

import numpy as np

from tokzoo.datasets.scenes import SCENE_CLASSES
from tokzoo.tokenizers.text import BUNDLED_VOCAB, train_vocab

COLORS = ("red", "green", "blue", "yellow", "white", "black", "gray", "orange", "purple", "brown", "pink")
NUMBERS = ("a", "one", "two", "three", "four", "five", "several", "many")
PLACES = (
    "on the floor",
    "near the wall",
    "in the corner",
    "under the sky",
    "next to a person",
    "in a room",
    "in the middle",
    "on the left",
    "on the right",
    "in front of the camera",
    "behind a box",
)
VERBS = ("standing", "walking", "sitting", "waving", "looking at the camera")
SUBJECTS = tuple(c for c in SCENE_CLASSES if c not in ("floor", "wall", "sky")) + (
    "person",
    "man",
    "woman",
    "ball",
    "table",
)


def scene_captions(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    captions = []
    for _ in range(n):
        count, colour, subject, place = (str(rng.choice(t)) for t in (NUMBERS, COLORS, SUBJECTS, PLACES))
        plural = "" if count in ("a", "one") else "s"
        text = f"{count} {colour} {subject}{plural} {place}"
        if rng.random() < 0.4:
            text += f", and a person {rng.choice(VERBS)}"
        captions.append((text[0].upper() + text[1:] + ".") if rng.random() < 0.5 else text)
    return captions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=8192)
    args = parser.parse_args()
    texts = list(pydoc_data.topics.topics.values()) + scene_captions(20_000)
    BUNDLED_VOCAB.parent.mkdir(parents=True, exist_ok=True)
    train_vocab(texts, args.vocab_size).save(str(BUNDLED_VOCAB))
    print(f"{BUNDLED_VOCAB}: {BUNDLED_VOCAB.stat().st_size} bytes")


if __name__ == "__main__":
    main()
