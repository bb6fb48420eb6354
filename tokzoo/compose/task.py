"""The scene question-answering and captioning task as token batches.

An example is one scene's image and one text: ``caption:`` -> its caption, or a question -> its one-word
answer (:mod:`tokzoo.datasets.scene_text`). Text is tokenized with the zoo's caption BPE
(:class:`tokzoo.text.CaptionTokenizer`): ids = prompt + " " target + EOS, right-padded with PAD (0). The loss
is on the target tokens (EOS included), predicted from the position before each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..datasets.scene_text import SceneTextSet, question_type
from ..text import EOS, PAD, CaptionTokenizer
from .components import Stream

CAPTION_PROMPT = "caption:"


@dataclass
class Example:
    scene: int
    kind: str  # "caption" or a question type (tokzoo.datasets.scene_text.question_type)
    prompt: list[int]
    target: list[int]  # ends with EOS
    prompt_text: str
    target_text: str


class SceneTask:
    """Examples of one :class:`SceneTextSet`, with the images normalised once by ``normalize`` (float (N, C, H, W))."""

    def __init__(self, scenes: SceneTextSet, normalize, tokenizer: CaptionTokenizer | None = None):
        self.scenes = scenes
        self.tokenizer = tokenizer or CaptionTokenizer()
        self.images = normalize(scenes.images)
        self.image_state: tuple[int, dict] | None = None
        texts = []
        for i in range(len(scenes)):
            texts.append((i, "caption", CAPTION_PROMPT, scenes.captions[i]))
            texts += [(i, question_type(q), q, a) for q, a in scenes.qa[i]]
        encode = self.tokenizer.bpe.encode_batch
        prompts = encode([t[2] for t in texts], add_special_tokens=False)
        targets = encode([" " + t[3] for t in texts], add_special_tokens=False)
        self.examples = [Example(i, kind, p.ids, t.ids + [EOS], prompt, target)
                         for (i, kind, prompt, target), p, t in zip(texts, prompts, targets)]  # fmt: skip
        self.captions = [k for k, e in enumerate(self.examples) if e.kind == "caption"]
        self.questions = [k for k, e in enumerate(self.examples) if e.kind != "caption"]

    @torch.no_grad()
    def cache_encoder(self, encoder, layer: int, batch_size: int = 256) -> None:
        """Replace the images by the frozen ``encoder``'s hidden state after ``layer`` (computed once per scene)."""
        states, extra = [], {}
        for start in range(0, len(self.images), batch_size):
            stream = encoder.run(encoder.begin(self.images[start: start + batch_size]), layer)
            states.append(stream.h)
            extra = stream.extra
        self.images, self.image_state = torch.cat(states), (layer, extra)

    def encoder_input(self, images: torch.Tensor):
        """A batch of ``images`` as the encoder takes it: the tensor, or a Stream when states are cached."""
        if self.image_state is None:
            return images
        layer, extra = self.image_state
        return Stream(images, layer, dict(extra))

    def sample(self, rng: np.random.Generator, batch_size: int, caption_fraction: float) -> list[int]:
        """Example indices: ``round(caption_fraction * batch_size)`` captions, the rest questions, uniformly."""
        n_cap = int(round(caption_fraction * batch_size))
        return list(rng.choice(self.captions, n_cap)) + list(rng.choice(self.questions, batch_size - n_cap))

    def batch(self, indices, with_target: bool = True) -> dict:
        """``images`` float (B, C, H, W), ``ids`` int64 (B, T), ``prompt_len`` int64 (B,), ``loss_mask`` bool (B, T)
        (True where ids[:, t] is a target token, predicted by logits[:, t - 1])."""
        rows = [self.examples[k] for k in indices]
        seqs = [e.prompt + (e.target if with_target else []) for e in rows]
        length = max(len(s) for s in seqs)
        ids = torch.full((len(rows), length), PAD, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.bool)
        for r, (e, s) in enumerate(zip(rows, seqs)):
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, len(e.prompt): len(s)] = True
        scenes = torch.tensor([e.scene for e in rows])
        return {"images": self.images[scenes], "ids": ids, "prompt_len": torch.tensor([len(e.prompt) for e in rows]),
                "loss_mask": mask}  # fmt: skip


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
