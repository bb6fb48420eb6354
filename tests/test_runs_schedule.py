"""The one warm-up + cosine schedule (tokzoo.runs.schedule) gives, bit for bit, the learning rates of the three
schedules it replaced (their formulas frozen below as they stood in the tokenizer, fm and compose trainers), so
training runs and their saved weights are unchanged."""

import math

import pytest
import torch

from tokzoo.runs.schedule import warmup_cosine


def tokenizer_learning_rate(recipe: dict, step: int) -> float:  # tokzoo/tokenizers/training/loop.py, before
    peak, schedule, total = recipe["optimizer"]["lr"], recipe["schedule"], recipe["steps"]
    warmup = schedule["warmup_steps"]
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    floor = schedule["min_lr_ratio"]
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def fm_lr_at(step: int, lr: float, warmup_steps: int, steps: int) -> float:  # tokzoo/fm/train.py, before
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, steps - warmup_steps)
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def compose_factor(opt: dict, steps: int):  # tokzoo/compose/train.py, before (a LambdaLR factor)
    def factor(step: int) -> float:
        if step < opt["warmup_steps"]:
            return (step + 1) / opt["warmup_steps"]
        progress = (step - opt["warmup_steps"]) / max(1, steps - opt["warmup_steps"])
        return opt["min_lr_ratio"] + (1 - opt["min_lr_ratio"]) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


PEAKS = [3e-4, 1e-3, 2e-4, 5e-5, 0.1, 1 / 3, 7.77e-4]
SHAPES = [(0, 1), (0, 10), (1, 1), (3, 7), (10, 100), (30, 1000), (200, 200), (7, 5)]  # (warmup, total)
FLOORS = [0.0, 0.1, 0.05, 1 / 3, 1.0]


@pytest.mark.parametrize("warmup,total", SHAPES)
def test_the_tokenizer_schedule_is_unchanged_bit_for_bit(warmup, total):
    for peak in PEAKS:
        for floor in FLOORS:
            recipe = {
                "optimizer": {"lr": peak},
                "schedule": {"warmup_steps": warmup, "min_lr_ratio": floor},
                "steps": total,
            }
            for step in range(total + 3):
                assert warmup_cosine(step, peak, warmup, total, floor) == tokenizer_learning_rate(recipe, step)


@pytest.mark.parametrize("warmup,total", SHAPES)
def test_the_fm_schedule_is_unchanged_bit_for_bit(warmup, total):
    for peak in PEAKS:
        for step in range(total + 3):
            assert warmup_cosine(step, peak, warmup, total) == fm_lr_at(step, peak, warmup, total)


@pytest.mark.parametrize("warmup,total", SHAPES)
def test_the_compose_schedule_gives_the_same_group_rates_bit_for_bit(warmup, total):
    """Through LambdaLR, with two parameter groups at their own rates (glue and components)."""
    for floor in FLOORS:
        opt = {"warmup_steps": warmup, "min_lr_ratio": floor}
        runs = []
        for factor in (compose_factor(opt, total), lambda step: warmup_cosine(step, 1.0, warmup, total, floor)):
            groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": peak} for peak in (3e-4, 1e-5)]
            optimizer = torch.optim.AdamW(groups)
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
            rates = []
            for _ in range(total + 3):
                rates.append([g["lr"] for g in optimizer.param_groups])
                optimizer.step()
                schedule.step()
            runs.append(rates)
        assert runs[0] == runs[1]


def test_warm_up_then_decay_to_the_floor():
    rates = [warmup_cosine(s, 1e-3, 10, 100, 0.1) for s in range(120)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(x >= y for x, y in zip(rates[9:], rates[10:]))
    assert rates[100] == rates[119] == pytest.approx(1e-4)
