"""Deterministic DDIM sampling for 4M's diffusion decoders, with ml-4m's noise schedules.

The schedule comes from the tokenizer's DiVAE arguments as ml-4m's ``DDIMScheduler`` builds it
(fourm/vq/scheduling): betas ``linear`` (1e-4 .. 0.02), ``scaled_linear``, ``squaredcos_cap_v2`` or
``shifted_cosine:<s>`` (alphas-bar from a shifted log-SNR), rescaled to zero terminal SNR when
``zero_terminal_snr`` (default on), predictions ``sample`` / ``epsilon`` / ``v_prediction``, x0 thresholded
(dynamic thresholding, ratio 0.995, max 1: a clamp to [-1, 1]) when ``thresholding`` (default on) or clipped
when ``clip_sample``. Steps: ``trailing`` (default), ``linspace`` or ``leading`` spacing; eta = 0, so the only
randomness is the starting noise ``torch.randn((B, C, H, W), generator=Generator().manual_seed(seed))``, drawn
on the CPU as ml-4m's pipeline does.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tokzoo.errors import ConfigError

DIVAE_DEFAULTS = dict(
    num_train_timesteps=1000,
    beta_schedule="squaredcos_cap_v2",
    prediction_type="v_prediction",
    clip_sample=False,
    thresholding=True,
    zero_terminal_snr=True,
)
"""ml-4m's DiVAE constructor defaults for the scheduler arguments."""


def alphas_cumprod(config: dict) -> torch.Tensor:
    """(T,) float32 cumulative alphas of the DiVAE ``config``'s schedule."""
    c = {**DIVAE_DEFAULTS, **config}
    n, schedule = int(c["num_train_timesteps"]), str(c["beta_schedule"])
    if schedule.startswith("shifted_cosine:"):
        t = torch.linspace(0, 1, n).to(torch.float64)
        log_snr = (
            (-2 * (torch.tan(torch.pi * t / 2).log() + np.log(float(schedule.split(":")[1])))).clamp(-15, 15).float()
        )
        cumprod = log_snr.sigmoid()
        cumprod[-1] = 0.0
        return cumprod
    if schedule == "linear":
        betas = torch.linspace(0.0001, 0.02, n, dtype=torch.float32)
    elif schedule == "scaled_linear":
        betas = torch.linspace(0.0001**0.5, 0.02**0.5, n, dtype=torch.float32) ** 2
    elif schedule == "squaredcos_cap_v2":
        bar = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        betas = torch.tensor([min(1 - bar((i + 1) / n) / bar(i / n), 0.999) for i in range(n)], dtype=torch.float32)
    else:
        raise ConfigError(f"4M diffusion schedule {schedule!r} is not supported")
    if c["zero_terminal_snr"]:
        betas = _zero_terminal_snr(betas)
    return torch.cumprod(1.0 - betas, dim=0)


def _zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Shift and scale sqrt(alphas-bar) so the last step has zero SNR (Lin et al. 2023), same arithmetic as ml-4m."""
    root = (1 - betas).cumprod(0).sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root -= last
    root *= first / (first - last)
    bar = root**2
    return 1 - torch.cat([bar[0:1], bar[1:] / bar[:-1]])


def timesteps(n_train: int, steps: int, mode: str = "trailing") -> list[int]:
    """The inference timesteps, high to low."""
    if not 1 <= steps <= n_train:
        raise ConfigError(f"diffusion steps must be in 1..{n_train}, got {steps}")
    ratio = n_train // steps
    if mode == "trailing":
        values = np.arange(n_train, 0, -ratio).round().astype(np.int64) - 1
    elif mode == "linspace":
        values = np.linspace(n_train, 1, steps).round().astype(np.int64) - 1
    elif mode == "leading":
        values = (np.arange(0, steps) * ratio).round()[::-1].astype(np.int64)
    else:
        raise ConfigError(f"diffusion timestep mode {mode!r}: expected trailing, linspace or leading")
    return values.tolist()


def _threshold(x0: torch.Tensor) -> torch.Tensor:
    b = x0.shape[0]
    flat = x0.reshape(b, -1)
    s = torch.quantile(flat.abs(), 0.995, dim=1).clamp(min=1, max=1.0)[:, None]
    return (torch.clamp(flat, -s, s) / s).reshape(x0.shape)


@torch.no_grad()
def ddim_sample(
    model,
    cond: torch.Tensor,
    shape: tuple[int, int, int, int],
    config: dict,
    steps: int,
    seed: int,
    mode: str = "trailing",
) -> torch.Tensor:
    """Run ``model(x_t, t, cond)`` down the DDIM chain from seeded noise; returns x_0 (B, C, H, W) float32."""
    c = {**DIVAE_DEFAULTS, **config}
    cumprod = alphas_cumprod(c)
    n_train = int(c["num_train_timesteps"])
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(cond.device)
    for t in timesteps(n_train, steps, mode):
        output = model(x, torch.tensor(t), cond).float()
        prev = t - n_train // steps
        a_t = cumprod[t]
        a_prev = cumprod[prev] if prev >= 0 else torch.tensor(1.0)
        b_t = 1 - a_t
        kind = c["prediction_type"]
        if kind == "epsilon":
            x0, eps = (x - b_t**0.5 * output) / a_t**0.5, output
        elif kind == "sample":
            x0 = output
            eps = (x - a_t**0.5 * x0) / b_t**0.5
        elif kind == "v_prediction":
            x0, eps = a_t**0.5 * x - b_t**0.5 * output, a_t**0.5 * output + b_t**0.5 * x
        else:
            raise ConfigError(f"4M diffusion prediction type {kind!r} is not supported")
        if c["thresholding"]:
            x0 = _threshold(x0)
        elif c["clip_sample"]:
            x0 = x0.clamp(-1.0, 1.0)
        x = a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * eps
    return x
