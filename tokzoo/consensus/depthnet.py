"""Small monocular depth networks trained here on a stream of procedural scenes: the independent depth
scorer of the consensus loop and the real labelers of the fusion benchmark.

Three architectures of different inductive bias (so their errors differ, yet stay correlated: same data
family, same loss):

- ``unet``: a two-level U-Net (16 / 32 / 64 channels) with skip connections;
- ``dilated``: full resolution throughout, 24 channels, dilations 1, 2, 4, 8 (a wide receptive field, no pooling);
- ``coarse``: an encoder to 1/8 resolution and a bilinear upsampling of its prediction (a low-resolution model).

Input rgb uint8 (B, H, W, 3); output metric z-depth float32 (B, H, W) metres (the net predicts log depth).
Training: L1 on log depth over pixels with ground truth (sky has none), AdamW, scenes ``0 .. scenes-1`` of
``stream`` (:func:`tokzoo.datasets.generate_scene`), each a pure function of (stream, index): two nets on
different streams never see one scene in common. A folder holds ``config.json`` and ``model.safetensors``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn
from torch.nn import functional as F

from tokzoo.errors import CheckpointError, ConfigError
from tokzoo.io.safety import read_json_file
from tokzoo.io.writes import make_folder, write_file

ARCHITECTURES = ("unet", "dilated", "coarse")
CONFIG, WEIGHTS = "config.json", "model.safetensors"
FORMAT = "tokzoo-depthnet"


@dataclass(frozen=True)
class DepthNetConfig:
    architecture: str = "unet"
    stream: int = 101  # scene stream seed of the training scenes
    scenes: int = 2048  # training scenes 0 .. scenes-1 of the stream
    size: int = 64  # scene resolution (square)
    steps: int = 1000
    batch_size: int = 16
    lr: float = 2e-3
    seed: int = 0

    def check(self) -> "DepthNetConfig":
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(f"depth net architecture {self.architecture!r} is not one of {', '.join(ARCHITECTURES)}")
        for name in ("scenes", "size", "steps", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"depth net {name} must be >= 1, got {getattr(self, name)}")
        return self


def _block(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation), nn.GroupNorm(4, cout), nn.GELU())


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.e1, self.e2, self.e3 = _block(3, 16), _block(16, 32), _block(32, 64)
        self.d2, self.d1 = _block(64 + 32, 32), _block(32 + 16, 16)
        self.out = nn.Conv2d(16, 1, 1)

    def forward(self, x):
        a = self.e1(x)
        b = self.e2(F.max_pool2d(a, 2))
        c = self.e3(F.max_pool2d(b, 2))
        b = self.d2(torch.cat([F.interpolate(c, scale_factor=2, mode="bilinear", align_corners=False), b], 1))
        a = self.d1(torch.cat([F.interpolate(b, scale_factor=2, mode="bilinear", align_corners=False), a], 1))
        return self.out(a)[:, 0]


class Dilated(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(_block(3, 24), *[_block(24, 24, d) for d in (2, 4, 8)])
        self.out = nn.Conv2d(24, 1, 1)

    def forward(self, x):
        return self.out(self.body(x))[:, 0]


class Coarse(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            _block(3, 16),
            nn.MaxPool2d(2),
            _block(16, 32),
            nn.MaxPool2d(2),
            _block(32, 64),
            nn.MaxPool2d(2),
            _block(64, 64),
        )
        self.out = nn.Conv2d(64, 1, 1)

    def forward(self, x):
        return F.interpolate(self.out(self.body(x)), size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


_NETS = {"unet": UNet, "dilated": Dilated, "coarse": Coarse}


class DepthNet(nn.Module):
    """rgb -> log depth, with its config."""

    def __init__(self, config: DepthNetConfig):
        super().__init__()
        self.config = config.check()
        self.net = _NETS[config.architecture]()
        self.register_buffer("log_offset", torch.tensor(1.0))  # the training set's mean log depth

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """uint8 or float (B, H, W, 3) in [0, 255] -> log depth (B, H, W)."""
        x = rgb.float().permute(0, 3, 1, 2) / 127.5 - 1.0
        return self.net(x) + self.log_offset

    @torch.inference_mode()
    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 (B, H, W, 3) or (H, W, 3) -> depth float32 metres, same leading shape."""
        self.eval()
        single = rgb.ndim == 3
        x = torch.from_numpy(np.ascontiguousarray(rgb[None] if single else rgb))
        depth = torch.exp(self(x)).numpy().astype(np.float32)
        return depth[0] if single else depth


def scene_arrays(stream: int, indices, size: int) -> tuple[np.ndarray, np.ndarray]:
    """rgb uint8 (N, size, size, 3) and depth float32 (N, size, size) (NaN: sky) of scenes ``indices`` of ``stream``."""
    from tokzoo.datasets import generate_scene

    scenes = [generate_scene(int(i), seed=stream, size=size) for i in indices]
    return np.stack([s["rgb"] for s in scenes]), np.stack([s["depth"] for s in scenes])


def train_depth_net(config: DepthNetConfig, log=None) -> DepthNet:
    """A :class:`DepthNet` trained as the module docstring says; ``log(step, loss)`` every 100 steps."""
    config.check()
    torch.manual_seed(config.seed)
    rgb, depth = scene_arrays(config.stream, range(config.scenes), config.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_depth = np.where(depth > 0, np.log(depth), np.nan).astype(np.float32)
    model = DepthNet(config)
    model.log_offset.fill_(float(np.nanmean(log_depth)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.steps, pct_start=0.05)
    rng = np.random.default_rng(config.seed)
    rgb_t, target_t = torch.from_numpy(rgb), torch.from_numpy(log_depth)
    model.train()
    for step in range(config.steps):
        rows = torch.from_numpy(rng.integers(0, config.scenes, config.batch_size))
        x, y = rgb_t[rows], target_t[rows]
        if rng.uniform() < 0.5:  # a mirrored scene is a scene
            x, y = x.flip(2), y.flip(2)
        valid = torch.isfinite(y)
        loss = (model(x) - torch.nan_to_num(y))[valid].abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if log is not None and (step % 100 == 0 or step == config.steps - 1):
            log(step, loss.item())
    return model.eval()


def save_depth_net(model: DepthNet, folder: str | Path) -> Path:
    folder = make_folder(Path(folder))
    write_file(
        folder, folder / CONFIG, json.dumps({"format": FORMAT, **asdict(model.config)}, indent=2, sort_keys=True) + "\n"
    )
    write_file(
        folder, folder / WEIGHTS, safetensors_bytes({k: v.detach().contiguous() for k, v in model.state_dict().items()})
    )
    return folder


def load_depth_net(folder: str | Path) -> DepthNet:
    """A saved :class:`DepthNet`; one-line CheckpointError / ConfigError for a folder that is not one."""
    folder = Path(folder)
    if not (folder / CONFIG).is_file():
        raise CheckpointError(f"{folder}: not a depth net folder (no {CONFIG})")
    raw = read_json_file(folder / CONFIG, CheckpointError)
    if not isinstance(raw, dict) or raw.pop("format", None) != FORMAT:
        raise CheckpointError(f'{folder / CONFIG}: not a tokzoo depth net config (no "format": "{FORMAT}")')
    fields = set(DepthNetConfig.__dataclass_fields__)
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise CheckpointError(f"{folder / CONFIG}: unknown field {unknown[0]!r}")
    try:
        model = DepthNet(DepthNetConfig(**raw))
        tensors = load_file(str(folder / WEIGHTS))
        model.load_state_dict(tensors)
    except (SafetensorError, OSError, RuntimeError, TypeError, ValueError) as error:
        raise CheckpointError(f"{folder / WEIGHTS}: cannot load ({str(error).splitlines()[0][:200]})") from None
    return model.eval()
