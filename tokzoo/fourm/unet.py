"""The patched UNet of 4M's diffusion decoders (DiVAE), with ml-4m's tensor names.

ml-4m's ``unet_patched`` (fourm/vq/models/unet/unet.py, after guided-diffusion's UNet): the noisy image is cut
into ``patch`` x ``patch`` patches stacked on channels, the quantized codes are upsampled (nearest) to that grid
and concatenated, a UNet of residual blocks (GroupNorm(32), SiLU, 3x3 convs, additive timestep embedding) and
single-head self-attention at the listed downsampling rates runs, and the patches are put back.
Operations follow ml-4m's order so the outputs match.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tokzoo.errors import ConfigError

UNETS = {
    "unet_patched": dict(patch=4, channels=256, res_blocks=3, attention=(4, 8), mult=(1, 2, 2, 2)),
    "unet_t": dict(patch=4, channels=32, res_blocks=1, attention=(1,), mult=(1,)),
}
"""Decoder name -> hyperparameters: ml-4m's released ``unet_patched``; ``unet_t`` is the reduced one the reference
fixtures register in ml-4m (scripts/fourm_reference.py), not a released decoder."""


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) timesteps -> (N, dim) [cos | sin] of t * 10000^(-i / (dim / 2))."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half).to(t.device)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class GroupNorm32(nn.GroupNorm):
    def __init__(self, channels: int):
        super().__init__(32, channels)

    def forward(self, x):
        return super().forward(x.float()).type(x.dtype)


class ResBlock(nn.Module):
    """GN, SiLU, conv; + Linear(SiLU(emb)); GN, SiLU, conv; plus the (1x1-projected) input."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int | None = None):
        super().__init__()
        out = out_channels or channels
        self.in_layers = nn.Sequential(GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, out, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out))
        self.out_layers = nn.Sequential(GroupNorm32(out), nn.SiLU(), nn.Dropout(0.0), nn.Conv2d(out, out, 3, padding=1))
        self.skip_connection = nn.Identity() if out == channels else nn.Conv2d(channels, out, 1)

    def forward(self, x, emb):
        h = self.in_layers(x) + self.emb_layers(emb).type(x.dtype)[..., None, None]
        return self.skip_connection(x) + self.out_layers(h)


class AttentionBlock(nn.Module):
    """Single-head self-attention over positions (guided-diffusion's legacy q/k/v order)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x, emb=None):
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        q, k, v = self.qkv(self.norm(x)).split(c, dim=1)
        scale = 1 / math.sqrt(math.sqrt(c))
        weight = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale).float(), dim=-1)
        h = self.proj_out(torch.einsum("bts,bcs->bct", weight, v).reshape(b, c, -1))
        return (x + h).reshape(b, c, *spatial)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x, emb=None):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x, emb=None):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Step(nn.ModuleList):
    """ml-4m's TimestepEmbedSequential: layers applied in turn, residual blocks also given the embedding."""

    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, (ResBlock, AttentionBlock, Downsample, Upsample)) else layer(x)
        return x


class PatchedUNet(nn.Module):
    """(B, C, H, W) noisy image, timestep, (B, D, h, w) codes -> (B, C, H, W) model output."""

    def __init__(self, name: str, image_channels: int, cond_channels: int):
        super().__init__()
        if name not in UNETS:
            raise ConfigError(f"4M diffusion decoder {name!r} is not ported (known: {', '.join(UNETS)})")
        hp = UNETS[name]
        self.patch, self.model_channels, self.image_channels = hp["patch"], hp["channels"], image_channels
        mc, emb = hp["channels"], 4 * hp["channels"]
        self.time_embed = nn.Sequential(nn.Linear(mc, emb), nn.SiLU(), nn.Linear(emb, emb))
        ch = input_ch = hp["mult"][0] * mc
        self.input_blocks = nn.ModuleList(
            [Step([nn.Conv2d(image_channels * self.patch**2 + cond_channels, ch, 3, padding=1)])]
        )
        skips, ds = [ch], 1
        for level, mult in enumerate(hp["mult"]):
            for _ in range(hp["res_blocks"]):
                layers = [ResBlock(ch, emb, mult * mc)]
                ch = mult * mc
                if ds in hp["attention"]:
                    layers.append(AttentionBlock(ch))
                self.input_blocks.append(Step(layers))
                skips.append(ch)
            if level != len(hp["mult"]) - 1:
                self.input_blocks.append(Step([Downsample(ch)]))
                skips.append(ch)
                ds *= 2
        self.middle_block = Step([ResBlock(ch, emb), AttentionBlock(ch), ResBlock(ch, emb)])
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(hp["mult"]))[::-1]:
            for i in range(hp["res_blocks"] + 1):
                layers = [ResBlock(ch + skips.pop(), emb, mult * mc)]
                ch = mult * mc
                if ds in hp["attention"]:
                    layers.append(AttentionBlock(ch))
                if level and i == hp["res_blocks"]:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(Step(layers))
        self.out = nn.Sequential(
            GroupNorm32(ch), nn.SiLU(), nn.Conv2d(input_ch, image_channels * self.patch**2, 3, padding=1)
        )

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        b, c, h, w = sample.shape
        p = self.patch
        nh, nw = h // p, w // p
        x = sample.reshape(b, c, nh, p, nw, p).permute(0, 1, 3, 5, 2, 4).reshape(b, c * p * p, nh, nw)
        x = torch.cat([x, F.interpolate(cond, (nh, nw), mode="nearest")], dim=1)
        t = timestep.reshape(-1).to(x.device)
        emb = self.time_embed(timestep_embedding(t, self.model_channels))
        skips = []
        for block in self.input_blocks:
            x = block(x, emb)
            skips.append(x)
        x = self.middle_block(x, emb)
        for block in self.output_blocks:
            x = block(torch.cat([x, skips.pop()], dim=1), emb)
        x = self.out(x)
        return x.reshape(b, c, p, p, nh, nw).permute(0, 1, 4, 2, 5, 3).reshape(b, c, h, w)
