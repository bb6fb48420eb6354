"""A camera turning in a procedural scene: 2-4 rgb frames of one room, and questions about an earlier view.

Scene ``index`` of stream ``seed`` is the layout of :func:`tokzoo.datasets.scenes.generate_scene` (same room,
things and lights), seen ``n_frames`` times while the camera turns about the vertical axis by ``turn`` radians
between frames (centred on the original view). Each view is described by :func:`.scene_text.visible_things`.

The text interleaves the frames: ``"view one. view two. view three. in view one, what was the nearest thing?"``,
frame k seen after the text ``view k.``. Questions are about the first view and kept only when the same question
about the last view has another answer, so that the last frame alone does not decide them:
``in view one, was there a person?`` (``frames_person``), ``... what was the nearest thing?`` (``frames_nearest``),
``... what colour was the nearest object?`` (``frames_colour``), ``... what was the leftmost thing?``
(``frames_leftmost``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .scene_humans import _rot
from .scene_layout import sample_layout
from .scene_render import render
from .scene_text import NUMBER_WORDS, PERSON, visible_things

__all__ = ["FrameTextSet", "frame_questions", "frame_type", "generate_frames", "view_marker"]

QUESTIONS = {
    "frames_person": "in view one, was there a person?",
    "frames_nearest": "in view one, what was the nearest thing?",
    "frames_colour": "in view one, what colour was the nearest object?",
    "frames_leftmost": "in view one, what was the leftmost thing?",
}


def view_marker(k: int) -> str:
    """The text after which frame ``k`` (0-based) is seen: ``view one.``."""
    return f"view {NUMBER_WORDS[k + 1]}."


def generate_frames(index: int, seed: int = 0, size: int = 64, n_frames: int = 3, turn: float = 0.35) -> list[dict]:
    """``n_frames`` renders (dicts as :func:`generate_scene`'s) of one layout, the camera turned by ``turn`` radians
    about the world's vertical axis between frames, centred on the layout's own view."""
    if not 2 <= n_frames <= 4:
        raise ValueError(f"n_frames must be 2..4, got {n_frames}")
    layout = sample_layout(np.random.default_rng([seed, index]), size, size)
    frames = []
    for k in range(n_frames):
        pose = layout.cam_to_world.copy()
        pose[:3, :3] = _rot([0, 0, 1], turn * (k - (n_frames - 1) / 2)) @ pose[:3, :3]
        frames.append(render(replace(layout, cam_to_world=pose)))
    return frames


def _answers(things: list[dict]) -> dict:
    objects = [t for t in things if t["cls"] != PERSON]
    return {
        "frames_person": "yes" if any(t["cls"] == PERSON for t in things) else "no",
        "frames_nearest": min(things, key=lambda t: t["depth"])["cls"] if things else None,
        "frames_colour": min(objects, key=lambda t: t["depth"])["colour"] if objects else None,
        "frames_leftmost": things[0]["cls"] if things else None,
    }


def frame_questions(frames: list[dict]) -> list[tuple[str, str]]:
    """(question, answer) about the first view whose answer about the last view differs."""
    first, last = _answers(visible_things(frames[0])), _answers(visible_things(frames[-1]))
    return [(QUESTIONS[kind], answer) for kind, answer in first.items() if answer is not None and answer != last[kind]]


def frame_type(question: str) -> str:
    """The type name of a question of :data:`QUESTIONS`."""
    return next(kind for kind, text in QUESTIONS.items() if text == question)


class FrameTextSet:
    """``n`` scenes of stream ``seed``: ``images`` uint8 (n, n_frames, size, size, 3), ``qa`` [n] lists of
    (question, answer) (a scene may have none), ``n_frames``; ``progress(k)`` is called after each scene."""

    def __init__(self, n: int, seed: int = 0, size: int = 64, n_frames: int = 3, turn: float = 0.35, progress=None):
        self.n, self.seed, self.size, self.n_frames = n, seed, size, n_frames
        images, self.qa = [], []
        for i in range(n):
            frames = generate_frames(i, seed, size, n_frames, turn)
            images.append(np.stack([f["rgb"] for f in frames]))
            self.qa.append(frame_questions(frames))
            if progress is not None:
                progress(1)
        self.images = np.stack(images) if images else np.zeros((0, n_frames, size, size, 3), np.uint8)
        self.captions = [None] * n  # no captions in this task

    def __len__(self) -> int:
        return self.n
