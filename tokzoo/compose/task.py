"""The scene question-answering and captioning task as token batches.

An example is one scene's image and one text: ``caption:`` -> its caption, or a question -> its one-word
answer (:mod:`tokzoo.datasets.scene_text`). With a :class:`tokzoo.datasets.scene_frames.FrameTextSet` an example
is F frames and ``view one. view two. ... <question>``: frame k is seen after the text ``view k.`` (its
``frame_times``), and batches give the encoder :class:`.components.Frames` (only GATS reads frames).
Text is tokenized with the zoo's caption BPE (:class:`tokzoo.tokenizers.text.CaptionTokenizer`): ids = prompt + " " target + EOS, right-padded with PAD (0). The loss
is on the target tokens (EOS included), predicted from the position before each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..datasets.scene_frames import frame_type, view_marker
from ..datasets.scene_text import SceneTextSet, question_type
from ..tokenizers.text import EOS, PAD, CaptionTokenizer
from .components import Frames, Stream

CAPTION_PROMPT = "caption:"


@dataclass
class Example:
    scene: int
    kind: str  # "caption" or a question type (tokzoo.datasets.scene_text.question_type)
    prompt: list[int]
    target: list[int]  # ends with EOS
    prompt_text: str
    target_text: str
    frame_times: list[int] | None = None  # multi-frame task: the prompt position after which each frame is seen


class SceneTask:
    """Examples of one :class:`SceneTextSet`, with the images normalised once by ``normalize`` (float (N, C, H, W))."""

    def __init__(self, scenes: SceneTextSet, normalize, tokenizer: CaptionTokenizer | None = None):
        self.scenes = scenes
        self.tokenizer = tokenizer or CaptionTokenizer()
        self.n_frames = scenes.images.shape[1] if scenes.images.ndim == 5 else 0
        if self.n_frames:  # (N, F, H, W, 3) -> (N, F, C, H, W)
            flat = normalize(scenes.images.reshape(-1, *scenes.images.shape[2:]))
            self.images = flat.reshape(len(scenes.images), self.n_frames, *flat.shape[1:])
        else:
            self.images = normalize(scenes.images)
        self.image_state: tuple[int, dict] | None = None
        if self.n_frames:
            self._frame_examples()
            return
        texts = []
        for i in range(len(scenes)):
            texts.append((i, "caption", CAPTION_PROMPT, scenes.captions[i]))
            texts += [(i, question_type(q), q, a) for q, a in scenes.qa[i]]
        encode = self.tokenizer.bpe.encode_batch
        prompts = encode([t[2] for t in texts], add_special_tokens=False)
        targets = encode([" " + t[3] for t in texts], add_special_tokens=False)
        self.examples = [
            Example(i, kind, p.ids, t.ids + [EOS], prompt, target)
            for (i, kind, prompt, target), p, t in zip(texts, prompts, targets)
        ]
        self.captions = [k for k, e in enumerate(self.examples) if e.kind == "caption"]
        self.questions = [k for k, e in enumerate(self.examples) if e.kind != "caption"]

    def _frame_examples(self) -> None:
        """The multi-frame examples: markers ``view k.`` then the question; frame k seen after its marker."""
        encode = self.tokenizer.bpe.encode_batch
        markers = [
            m.ids
            for m in encode(
                [("" if k == 0 else " ") + view_marker(k) for k in range(self.n_frames)], add_special_tokens=False
            )
        ]
        head = [i for m in markers for i in m]
        times = list(np.cumsum([len(m) for m in markers]) - 1)
        texts = [(i, q, a) for i, qa in enumerate(self.scenes.qa) for q, a in qa]
        questions = encode([" " + t[1] for t in texts], add_special_tokens=False)
        targets = encode([" " + t[2] for t in texts], add_special_tokens=False)
        marker_text = " ".join(view_marker(k) for k in range(self.n_frames))
        self.examples = [
            Example(i, frame_type(q), head + p.ids, t.ids + [EOS], f"{marker_text} {q}", a, [int(x) for x in times])
            for (i, q, a), p, t in zip(texts, questions, targets)
        ]
        self.captions, self.questions = [], list(range(len(self.examples)))

    @torch.no_grad()
    def cache_encoder(self, encoder, layer: int, batch_size: int = 256) -> None:
        """Replace the images by the frozen ``encoder``'s hidden state after ``layer`` (computed once per scene)."""
        images = self.images.flatten(0, 1) if self.n_frames else self.images
        states, extra = [], {}
        for start in range(0, len(images), batch_size):
            stream = encoder.run(encoder.begin(images[start : start + batch_size]), layer)
            states.append(stream.h)
            extra = stream.extra
        states = torch.cat(states)
        self.images = states.reshape(len(self.images), self.n_frames, *states.shape[1:]) if self.n_frames else states
        self.image_state = (layer, extra)

    def encoder_input(self, images: torch.Tensor, frame_times: torch.Tensor | None = None):
        """A batch of ``images`` as the encoder takes it: the tensor, or a Stream when states are cached; with
        ``frame_times`` (B, F), :class:`.components.Frames` of them (frames flattened into the Stream when cached)."""
        if self.image_state is not None:
            layer, extra = self.image_state
            images = Stream(images.flatten(0, 1) if frame_times is not None else images, layer, dict(extra))
        return images if frame_times is None else Frames(images, frame_times)

    def sample(self, rng: np.random.Generator, batch_size: int, caption_fraction: float) -> list[int]:
        """Example indices: ``round(caption_fraction * batch_size)`` captions, the rest questions, uniformly."""
        n_cap = int(round(caption_fraction * batch_size))
        return list(rng.choice(self.captions, n_cap)) + list(rng.choice(self.questions, batch_size - n_cap))

    def batch(self, indices, with_target: bool = True) -> dict:
        """``images`` float (B, C, H, W) (frames: (B, F, C, H, W) and ``frame_times`` int64 (B, F)), ``ids`` int64 (B, T),
        ``prompt_len`` int64 (B,), ``loss_mask`` bool (B, T) (True where ids[:, t] is a target token, predicted by
        logits[:, t - 1])."""
        rows = [self.examples[k] for k in indices]
        seqs = [e.prompt + (e.target if with_target else []) for e in rows]
        length = max(len(s) for s in seqs)
        ids = torch.full((len(rows), length), PAD, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.bool)
        for r, (e, s) in enumerate(zip(rows, seqs)):
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, len(e.prompt) : len(s)] = True
        scenes = torch.tensor([e.scene for e in rows])
        out = {
            "images": self.images[scenes],
            "ids": ids,
            "prompt_len": torch.tensor([len(e.prompt) for e in rows]),
            "loss_mask": mask,
        }
        if self.n_frames:
            out["frame_times"] = torch.tensor([e.frame_times for e in rows])
        return out


def predicting(loss_mask: torch.Tensor) -> torch.Tensor:
    """bool (B, T): the positions whose logits predict a target token (the one before each True of ``loss_mask``)."""
    select = torch.zeros_like(loss_mask)
    select[:, :-1] = loss_mask[:, 1:]
    return select


def target_loss(logits: torch.Tensor, ids: torch.Tensor, loss_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy over the target tokens and their correctness (bool (n,)). ``logits``: (n, vocab) at
    ``predicting(loss_mask)``, in row-major order."""
    target = ids[:, 1:][loss_mask[:, 1:]]
    loss = torch.nn.functional.cross_entropy(logits.float(), target)
    return loss, logits.argmax(-1) == target
