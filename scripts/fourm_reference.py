"""Shared set-up for the scripts that run ml-4m's own code as the reference for tokzoo.fourm.

ml-4m is not a tokzoo dependency. Bring it and its extra imports somewhere, e.g.::

    git clone https://github.com/apple/ml-4m /tmp/ml-4m      # checked at commit cda590f
    pip install --target /tmp/ml4m-extra --no-deps albumentations==1.4.0 qudida
    PYTHONPATH=/tmp/ml-4m:/tmp/ml4m-extra python scripts/<script>.py ...

:func:`import_fourm` makes ml-4m (written for diffusers 0.20) import under the newer diffusers that tokzoo's
environment has, by aliasing the modules diffusers has moved since; ml-4m's files are not changed.
:func:`register_tiny_vits` adds a reduced ViT size ``vit_t`` (width 16, one block, two heads) to ml-4m's model
registry, and a reduced patched UNet ``unet_t`` (32 channels, one level), so that fixtures stay small;
tokzoo.fourm.vqvae and tokzoo.fourm.unet know them under the same names.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TINY = dict(dim_tokens=16, depth=1, num_heads=2)
TINY_UNET = dict(patch_size=4, model_channels=32, num_res_blocks=1, attention_resolutions=[1], channel_mult=(1,))


def import_fourm():
    """Import ml-4m's ``fourm`` package (alias diffusers modules that moved after 0.20); returns it."""
    import diffusers.utils
    import diffusers.utils.torch_utils
    from diffusers.models.unets import unet_2d_blocks

    sys.modules.setdefault("diffusers.models.unet_2d_blocks", unet_2d_blocks)
    try:
        from diffusers.models.controlnets import controlnet

        sys.modules.setdefault("diffusers.models.controlnet", controlnet)
    except ImportError:
        pass
    if not hasattr(diffusers.utils, "randn_tensor"):
        diffusers.utils.randn_tensor = diffusers.utils.torch_utils.randn_tensor
    import fourm

    return fourm


def register_tiny_vits() -> None:
    """``vit_t_enc`` / ``vit_t_dec`` in ml-4m's vit_models: its own ViTEncoder / ViTDecoder at a reduced size."""
    import fourm.vq.models.vit_models as vit_models

    def encoder(in_channels, patch_size, resolution, patch_proj=True, post_mlp=False, **_):
        return vit_models.ViTEncoder(
            in_channels=in_channels,
            patch_size=patch_size,
            resolution=resolution,
            patch_proj=patch_proj,
            post_mlp=post_mlp,
            **TINY,
        )

    def decoder(out_channels, patch_size, resolution, patch_proj=True, post_mlp=False, out_conv=False, **_):
        return vit_models.ViTDecoder(
            out_channels=out_channels,
            patch_size=patch_size,
            resolution=resolution,
            patch_proj=patch_proj,
            post_mlp=post_mlp,
            out_conv=out_conv,
            **TINY,
        )

    vit_models.vit_t_enc, vit_models.vit_t_dec = encoder, decoder

    import fourm.vq.models.unet.unet as unet

    unet.unet_t = lambda **kwargs: unet.PatchedUNetCondCat(**TINY_UNET, **kwargs)


def fourm_commit() -> str:
    """The ml-4m commit on the path (``git rev-parse``), or 'unknown'."""
    import fourm

    root = Path(list(fourm.__path__)[0]).parent
    try:
        return subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        marker = root / "ML4M_COMMIT"
        return marker.read_text().strip() if marker.is_file() else "unknown"


def perturb_(model, seed: int, scale: float = 0.05) -> None:
    """Add seeded noise to every parameter and buffer float tensor, so no tensor keeps ml-4m's init
    (zero biases, unit norms): each one then matters for the comparison."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point() and tensor.numel() > 1:
                tensor.add_(torch.randn(tensor.shape, generator=generator) * scale * (tensor.std() + scale))
