"""A small CNN that learns whether a scene shows a person, whose feature map the scene ViT's patch tokens regress.

A ViT trained from scratch on a few thousand 64-px scenes does not learn "is there a person?" from the image-level
label, where this CNN does in about 1,000 steps (benchmarks/person_detector.py, RESULTS "people at the pixel"):
its 3 x 3 convolutions and pooling see a person's limbs that an 8-px linear patch embedding does not. Distilling
the CNN's last feature map into the patch tokens (``compose.pretrain_vision.teacher_steps``) gives the ViT a dense
target that carries what the CNN found, at the patch grid.

Input contract: rgb float (B, 3, H, W) in [0, 1], H and W multiples of 8. :func:`teacher_features` returns the
third block's map pooled to the ViT's patch grid, (B, h * w, 128) row-major, standardised per channel over the batch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FEATURES = 128  # channels of the third block: the distilled feature's width


def build_teacher() -> nn.Sequential:
    """Three blocks of (3x3 conv, batch norm, ReLU) x 2 then 2x2 max pool (32 / 64 / 128 channels), a global max
    pool and one person logit: (B, 3, H, W) in [0, 1] -> (B, 1)."""

    def block(c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(
            *(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()),
            *(nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()),
            nn.MaxPool2d(2),
        )

    return nn.Sequential(
        block(3, 32), block(32, 64), block(64, FEATURES), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(FEATURES, 1)
    )


def train_teacher(
    images: torch.Tensor, labels: torch.Tensor, steps: int, seed: int, batch_size: int = 64, progress=None
) -> nn.Sequential:
    """Train :func:`build_teacher` with BCE on ``labels`` (N,) {0, 1} of ``images`` (N, 3, H, W) in [0, 1],
    mirrored left-right at random; AdamW 1e-3, weight decay 0.05 (the schedule of the reference run)."""
    torch.manual_seed(seed)
    teacher = build_teacher()
    optimizer = torch.optim.AdamW(teacher.parameters(), 1e-3, weight_decay=0.05)
    rng = np.random.default_rng(seed)
    teacher.train()
    for _ in range(steps):
        index = torch.from_numpy(rng.choice(len(images), batch_size))
        flip = torch.from_numpy(rng.random(batch_size) < 0.5)
        batch = torch.where(flip[:, None, None, None], images[index].flip(-1), images[index])
        loss = F.binary_cross_entropy_with_logits(teacher(batch)[:, 0], labels[index].float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if progress is not None:
            progress(1)
    return teacher.eval().requires_grad_(False)


@torch.no_grad()
def teacher_accuracy(teacher: nn.Sequential, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of ``images`` whose person logit has the sign of ``labels``."""
    return float(((teacher(images)[:, 0] > 0) == labels.bool()).float().mean())


@torch.no_grad()
def teacher_features(teacher: nn.Sequential, images: torch.Tensor, grid: int) -> torch.Tensor:
    """The third block's map of ``images`` (B, 3, H, W) in [0, 1], average-pooled to ``grid`` x ``grid`` and
    standardised per channel over the batch and positions: (B, grid * grid, :data:`FEATURES`)."""
    maps = F.adaptive_avg_pool2d(teacher[:3](images), grid).flatten(2).transpose(1, 2)
    return (maps - maps.mean((0, 1))) / (maps.std((0, 1)) + 1e-6)
