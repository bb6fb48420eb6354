"""Held-out metrics of a composition and of its components on their own.

- answers: greedy generation after each question; exact match of the decoded answer, per question type, their
  mean over types (``answer_accuracy``, the headline: every type weighs the same) and over questions, and each
  question's hit (``answer_hits``, with ``answer_kinds``, in the task's order: for paired comparisons);
- captions: greedy generation after ``caption:``; exact match, corpus BLEU-4 (word n-grams, brevity penalty,
  +1 smoothing for n > 1) and teacher-forced token accuracy of the reference caption;
- components' own tasks: the LM's held-out text-only cross-entropy and next-token accuracy on the same texts
  (no image), an encoder's tokenizer reconstruction PSNR (encoder -> quantizer -> decoder) on the images.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import torch

from ..tokenizers.evaluation.metrics import psnr
from ..tokenizers.text import EOS, PAD
from .task import SceneTask, predicting, target_loss


@torch.no_grad()
def generate(composition, task: SceneTask, indices, image_key: str, max_new: int, batch_size: int = 128) -> list[str]:
    """Greedy continuation of each example's prompt until EOS or ``max_new`` tokens; decoded strings."""
    composition.eval()
    texts = []
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        batch = task.batch(chunk, with_target=False)
        prompt_len = batch["prompt_len"]
        ids = torch.full((len(chunk), int(prompt_len.max()) + max_new), PAD, dtype=torch.long)
        ids[:, : batch["ids"].shape[1]] = batch["ids"]
        lengths, done = prompt_len.clone(), torch.zeros(len(chunk), dtype=torch.bool)
        rows = torch.arange(len(chunk))
        for _ in range(max_new):
            inputs = {
                composition.lm_name: ids[:, : int(lengths.max())],
                image_key: task.encoder_input(batch["images"], batch.get("frame_times")),
            }
            select = torch.zeros(len(chunk), int(lengths.max()), dtype=torch.bool)
            select[rows, lengths - 1] = True
            next_ids = composition(inputs, prompt_len, select).argmax(-1)
            active = ~done
            ids[rows[active], lengths[active]] = next_ids[active]
            lengths[active] += 1
            done |= active & (next_ids == EOS)
            if bool(done.all()):
                break
        for r, n in enumerate(prompt_len.tolist()):
            texts.append(task.tokenizer.decode(ids[r, n:])[0].strip())
    return texts


def bleu4(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU-4 over whitespace words (+1 smoothing for 2..4-grams), in 0..1."""
    matches, totals = [0] * 4, [0] * 4
    hyp_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references):
        h, r = hyp.split(), ref.split()
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
        for n in range(1, 5):
            hc = Counter(tuple(h[i : i + n]) for i in range(len(h) - n + 1))
            rc = Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
            matches[n - 1] += sum(min(c, rc[g]) for g, c in hc.items())
            totals[n - 1] += max(0, len(h) - n + 1)
    if hyp_len == 0 or matches[0] == 0:
        return 0.0
    logs = [math.log(matches[0] / totals[0])] + [math.log((matches[n] + 1) / (totals[n] + 1)) for n in range(1, 4)]
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return brevity * math.exp(sum(logs) / 4)


@torch.no_grad()
def token_accuracy(composition, task: SceneTask, indices, image_key: str, batch_size: int = 256) -> tuple[float, float]:
    """Teacher-forced (target cross-entropy, target token accuracy) over ``indices``."""
    composition.eval()
    losses, correct, n = 0.0, 0, 0
    for start in range(0, len(indices), batch_size):
        batch = task.batch(indices[start : start + batch_size])
        inputs = {
            composition.lm_name: batch["ids"],
            image_key: task.encoder_input(batch["images"], batch.get("frame_times")),
        }
        logits = composition(inputs, batch["prompt_len"], predicting(batch["loss_mask"]))
        loss, hits = target_loss(logits, batch["ids"], batch["loss_mask"])
        losses += float(loss) * hits.numel()
        correct, n = correct + int(hits.sum()), n + hits.numel()
    return losses / max(1, n), correct / max(1, n)


def evaluate_task(
    composition, task: SceneTask, image_key: str, max_caption_tokens: int = 40, with_captions: bool = True
) -> dict:
    """Answer accuracy (per type, mean over types, over questions) and caption metrics on ``task`` (None when
    ``with_captions`` is False: a run trained on questions only)."""
    questions, captions = task.questions, task.captions
    answers = generate(composition, task, questions, image_key, max_new=4)
    per_type: dict[str, list[bool]] = {}
    hits = []
    for k, answer in zip(questions, answers):
        example = task.examples[k]
        hits.append(answer == example.target_text)
        per_type.setdefault(example.kind, []).append(hits[-1])
    type_acc = {kind: float(np.mean(hits)) for kind, hits in sorted(per_type.items())}
    answers = {
        "answer_accuracy": float(np.mean(list(type_acc.values()))),
        "answer_accuracy_questions": float(np.mean([h for hits in per_type.values() for h in hits])),
        "answer_accuracy_by_type": type_acc,
        "n_questions": len(questions),
        "answer_hits": [int(h) for h in hits],
        "answer_kinds": [task.examples[k].kind for k in questions],
    }
    if not with_captions:
        return {
            **answers,
            "caption_exact": None,
            "caption_bleu4": None,
            "caption_token_accuracy": None,
            "n_captions": 0,
            "caption_samples": [],
        }
    generated = generate(composition, task, captions, image_key, max_new=max_caption_tokens)
    references = [task.examples[k].target_text for k in captions]
    _, caption_tokens = token_accuracy(composition, task, captions, image_key)
    return {
        **answers,
        "caption_exact": float(np.mean([g == r for g, r in zip(generated, references)])),
        "caption_bleu4": bleu4(generated, references),
        "caption_token_accuracy": caption_tokens,
        "n_captions": len(captions),
        "caption_samples": list(zip(generated[:3], references[:3])),
    }


@torch.no_grad()
def lm_text_metrics(lm, task: SceneTask, batch_size: int = 256) -> dict:
    """The LM alone on the held-out texts (prompt + target, no image): next-token cross-entropy and accuracy."""
    lm.eval()
    losses, correct, n = 0.0, 0, 0
    for start in range(0, len(task.examples), batch_size):
        batch = task.batch(range(start, min(start + batch_size, len(task.examples))))
        ids = batch["ids"]
        real = ids != PAD
        real[:, 0] = False  # the first token is not predicted
        logits = lm.logits(ids, predicting(real))
        loss, hits = target_loss(logits, ids, real)
        losses += float(loss) * hits.numel()
        correct, n = correct + int(hits.sum()), n + hits.numel()
    return {"text_cross_entropy": losses / max(1, n), "text_token_accuracy": correct / max(1, n)}


@torch.no_grad()
def encoder_reconstruction(encoder, raw_images: np.ndarray, batch_size: int = 128) -> dict:
    """PSNR (dB) of the encoder's tokenizer (encoder -> quantizer -> decoder) on uint8 images (N, H, W, 3)."""
    tokenizer = encoder.tokenizer
    was_training = tokenizer.training
    tokenizer.eval()
    outputs = []
    for start in range(0, len(raw_images), batch_size):
        chunk = raw_images[start : start + batch_size]
        reconstruction, _, _ = tokenizer(tokenizer.codec.to_model(chunk))
        outputs.append(tokenizer.codec.from_model(reconstruction))
    tokenizer.train(was_training)
    return {"reconstruction_psnr": psnr(raw_images, np.concatenate(outputs))}
