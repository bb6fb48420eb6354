"""Captions and question/answer pairs with exact answers, read off a rendered procedural scene.

Everything is derived from what the rendered image shows (its ``instances``, ``semseg``, ``depth`` and
``rgb``), so the answers hold for the pixels a model sees, whatever the layout code drew:

- the visible things: instances covering at least ``min_fraction`` of the image, each with its class
  (majority of ``semseg`` over its pixels; ``human`` is called ``person``), its colour name (hue of its mean
  rendered colour, ``gray`` when unsaturated; not given for people), its side (``left`` / ``right`` of the image
  centre, by its pixel centroid) and its distance (median depth of its pixels);
- a caption: the up-to-``max_items`` largest things, left to right, e.g. ``"a red sphere, a person and a
  blue box."``;
- questions, each with a one-word answer: ``is there a person?``, ``how many boxes are there?`` (per class and
  for all objects), ``what is the nearest thing?``, ``what colour is the nearest object?``, and for a class
  seen exactly once ``is the box on the left or on the right?`` / ``what colour is the box?``.

>>> item = scene_text(generate_scene(3, seed=0, size=64))
>>> item["caption"], item["qa"][0]
('a red sphere, a purple box, a person and a gray box.', ('is there a person?', 'yes'))
"""

from __future__ import annotations

import colorsys
import re

import numpy as np

from .scene_layout import SCENE_CLASSES
from .scenes import generate_scene

__all__ = [
    "COLOR_NAMES",
    "NUMBER_WORDS",
    "THING_WORDS",
    "SceneTextSet",
    "named_things",
    "question_type",
    "render_scene_text",
    "scene_text",
]

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
# Hue ranges in degrees (upper bounds, exclusive) -> colour name; saturation below GRAY_SATURATION is gray.
_HUES = ((20, "red"), (45, "orange"), (75, "yellow"), (165, "green"), (255, "blue"), (330, "purple"), (361, "red"))
COLOR_NAMES = ("red", "orange", "yellow", "green", "blue", "purple", "gray")
GRAY_SATURATION = 0.25
PERSON = "person"
# Object classes asked about by count even when absent (answer "zero"); others only when seen.
_COUNTED = ("sphere", "box", "cylinder", PERSON)
_STUFF = ("floor", "wall", "sky", "terrain")  # classes no instance has: never a caption's thing
THING_WORDS = tuple(PERSON if c == "human" else c for c in SCENE_CLASSES if c not in _STUFF)
"""The class words a caption can name: ``sphere``, ``box``, ``cylinder``, ``person``, ``building``, ``tree``."""


def colour_name(rgb_mean) -> str:
    """Name of a mean colour (3,) in 0..255: gray when unsaturated, else by hue (see ``_HUES``)."""
    h, s, _ = colorsys.rgb_to_hsv(*(float(c) / 255.0 for c in rgb_mean))
    if s < GRAY_SATURATION:
        return "gray"
    degrees = h * 360.0
    return next(name for bound, name in _HUES if degrees < bound)


def _plural(name: str, count: int) -> str:
    if count == 1:
        return name
    if name == PERSON:
        return "people"
    return name + ("es" if name.endswith(("s", "x")) else "s")


def visible_things(sample: dict, min_fraction: float = 0.002) -> list[dict]:
    """The instances the image shows: dicts with ``cls``, ``colour`` (None for people), ``side``,
    ``depth`` (metres), ``area`` (pixels), ``x`` (centroid column), sorted left to right."""
    instances, semseg, depth, rgb = sample["sam_instances"], sample["semseg"], sample["depth"], sample["rgb"]
    min_pixels = max(1, int(round(min_fraction * instances.size)))
    width = instances.shape[1]
    things = []
    for instance in np.unique(instances):
        if instance == 0:
            continue
        mask = instances == instance
        area = int(mask.sum())
        if area < min_pixels:
            continue
        cls = SCENE_CLASSES[int(np.bincount(semseg[mask]).argmax())]
        name = PERSON if cls == "human" else cls
        x = float(np.nonzero(mask)[1].mean())
        colour = None if name == PERSON else colour_name(rgb[mask].reshape(-1, 3).mean(axis=0))
        things.append(
            {
                "cls": name,
                "colour": colour,
                "side": "left" if x < (width - 1) / 2 else "right",
                "depth": float(np.nanmedian(depth[mask])),
                "area": area,
                "x": x,
            }
        )
    return sorted(things, key=lambda t: t["x"])


def _describe(thing: dict) -> str:
    words = thing["cls"] if thing["colour"] is None else f"{thing['colour']} {thing['cls']}"
    return ("an " if words[0] in "aeiou" else "a ") + words


def caption(things: list[dict], max_items: int = 5) -> str:
    """``"a red sphere, a person and a blue box."``: the ``max_items`` largest things, left to right."""
    if not things:
        return "an empty room."
    largest = sorted(sorted(things, key=lambda t: -t["area"])[:max_items], key=lambda t: t["x"])
    parts = [_describe(t) for t in largest]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return text + "."


def named_things(text: str) -> frozenset[str]:
    """The :data:`THING_WORDS` that ``text`` names, as whole words in any case, singular or plural (``boxes``,
    ``people``): ``"a red box and two people."`` -> ``{"box", "person"}``."""
    words = set(re.findall(r"[a-z]+", text.lower()))
    return frozenset(w for w in THING_WORDS if w in words or _plural(w, 2) in words)


def questions(things: list[dict]) -> list[tuple[str, str]]:
    """(question, one-word answer) pairs that the visible things decide exactly."""
    counts = {}
    for t in things:
        counts[t["cls"]] = counts.get(t["cls"], 0) + 1
    qa = [("is there a person?", "yes" if counts.get(PERSON) else "no")]
    for name in sorted(set(_COUNTED) | set(counts)):
        qa.append((f"how many {_plural(name, 2)} are there?", NUMBER_WORDS[min(counts.get(name, 0), 10)]))
    objects = [t for t in things if t["cls"] != PERSON]
    qa.append(("how many objects are there?", NUMBER_WORDS[min(len(objects), 10)]))
    if things:
        qa.append(("what is the nearest thing?", min(things, key=lambda t: t["depth"])["cls"]))
    if objects:
        qa.append(("what colour is the nearest object?", min(objects, key=lambda t: t["depth"])["colour"]))
    for name in sorted(counts):
        if counts[name] == 1 and name != PERSON:
            (thing,) = (t for t in objects if t["cls"] == name)
            qa.append((f"is the {name} on the left or on the right?", thing["side"]))
            qa.append((f"what colour is the {name}?", thing["colour"]))
    return qa


def question_type(question: str) -> str:
    """Short name of a question's template: ``person``, ``count``, ``nearest``, ``nearest_colour``, ``side``, ``colour``."""
    if question.startswith("is there"):
        return "person"
    if question.startswith("how many"):
        return "count"
    if question == "what is the nearest thing?":
        return "nearest"
    if question == "what colour is the nearest object?":
        return "nearest_colour"
    return "side" if question.endswith("right?") else "colour"


def scene_text(sample: dict, max_items: int = 5, min_fraction: float = 0.002) -> dict:
    """``{"caption": str, "qa": [(question, answer), ...], "things": [...]}`` for one rendered scene."""
    things = visible_things(sample, min_fraction)
    return {"caption": caption(things, max_items), "qa": questions(things), "things": things}


def render_scene_text(index: int, seed: int = 0, size: int = 64) -> tuple[np.ndarray, dict]:
    """Scene ``index`` of stream ``seed``: its rgb uint8 (size, size, 3) and :func:`scene_text`."""
    sample = generate_scene(index, seed, size)
    return sample["rgb"], scene_text(sample)


class SceneTextSet:
    """``n`` scenes of stream ``seed`` at ``size`` px: ``images`` uint8 (n, size, size, 3), ``captions`` [n] str,
    ``qa`` [n] lists of (question, answer). Rendering is a pure function of the arguments (about 14 ms a scene at
    64 px on one core); ``progress(k)`` is called after each scene."""

    def __init__(self, n: int, seed: int = 0, size: int = 64, progress=None):
        self.n, self.seed, self.size = n, seed, size
        images, self.captions, self.qa = [], [], []
        for i in range(n):
            rgb, text = render_scene_text(i, seed, size)
            images.append(rgb)
            self.captions.append(text["caption"])
            self.qa.append(text["qa"])
            if progress is not None:
                progress(1)
        self.images = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)

    def __len__(self) -> int:
        return self.n
