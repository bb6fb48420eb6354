"""Write tests/fixtures/fourm/: small 4M tokenizers built, perturbed and saved by ml-4m's own code, with
reference tensors ml-4m computed, so that tests/test_fourm_tokenizers.py checks tokzoo.fourm without ml-4m.

    PYTHONPATH=/tmp/ml-4m:/tmp/ml4m-extra OMP_NUM_THREADS=1 python scripts/make_fourm_fixtures.py [--out DIR]

Per case: the tokenizer in one of ml-4m's released forms (hub folder via ml-4m's ``save_pretrained``, or one
``.safetensors`` with the constructor arguments as metadata, as ml-4m's ``load_safetensors`` reads them), at a
reduced size (``vit_t``, see scripts/fourm_reference.py), and ``reference.safetensors`` holding:

- ``raw``: tokzoo raw values (the tokzoo contract of the domain);
- ``fourm_input``: what ml-4m's tokenization transforms (``MODALITY_TRANSFORMS_DIVAE``) make of the same data
  read the way ml-4m reads it (PNG images through PIL; teacher features as (B, C, h, w));
- ``tokens``: ml-4m's ``model.tokenize(fourm_input)`` (B, h, w) int64;
- ``decoded``: ml-4m's ``model.decode_tokens(tokens)`` float32; for the DiVAE case through its UNet with ml-4m's
  ``DDIMScheduler`` (the DiVAE's schedule), ``DIFFUSION`` steps and a ``torch.Generator`` seeded with its seed.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from fourm_reference import fourm_commit, import_fourm, perturb_, register_tiny_vits
from PIL import Image
from safetensors.torch import save_file

BASE = dict(
    enc_type="vit_t_enc",
    dec_type="vit_t_dec",
    quant_type="lucid",
    codebook_size=64,
    latent_dim=32,
    norm_codes=True,
    post_mlp=True,
    patch_proj=True,
    sync_codebook=False,
    ema_decay=0.99,
    threshold_ema_dead_code=0.25,
    commitment_weight=1.0,
    kmeans_init=False,
)

N = 3
"""Samples per case."""

CASES = {  # folder name: (domain, ml-4m constructor arguments, form)
    "4M_tokenizers_rgb_tiny": ("rgb", dict(image_size=16, patch_size=4, n_channels=3, out_conv=True), "folder"),
    "4M_tokenizers_depth_tiny": ("depth", dict(image_size=16, patch_size=4, n_channels=1), "folder"),
    "4M_tokenizers_normal_tiny": ("normal", dict(image_size=16, patch_size=4, n_channels=3), "folder"),
    "4M_tokenizers_edge_tiny": ("canny_edge", dict(image_size=16, patch_size=4, n_channels=3), "folder"),
    "4M_tokenizers_semseg_tiny": (
        "semseg_coco",
        dict(image_size=8, patch_size=2, n_channels=8, n_labels=134),
        "folder",
    ),
    "4M_tokenizers_CLIP-B16_tiny": (
        "CLIP-B16",
        dict(image_size=16, patch_size=4, n_channels=24, patch_proj=False),
        "file",
    ),
    "4M_tokenizers_DINOv2-B14-global_tiny": (
        "DINOv2-B14-global",
        dict(
            enc_type="BottleneckMLP/B_1-Wi_32",
            dec_type="BottleneckMLP/B_1-Wi_32",
            quant_type="memcodes",
            num_codebooks=4,
            codebook_size=16,
            latent_dim=32,
            n_channels=24,
            image_size=224,
            patch_size=14,
        ),
        "folder",
    ),
    "4M_tokenizers_human-poses_tiny": (
        "human_poses",
        dict(
            enc_type="BottleneckMLP/B_1-Wi_32",
            dec_type="BottleneckMLP/B_1-Wi_32",
            quant_type="memcodes",
            num_codebooks=4,
            codebook_size=16,
            latent_dim=32,
            n_channels=207,
            image_size=224,
            patch_size=16,
        ),
        "folder",
    ),
    "4M_tokenizers_sam-instance_tiny": (
        "sam_mask",
        dict(image_size=64, patch_size=16, n_channels=1, out_conv=True),
        "folder",
    ),
    "4M_tokenizers_depth_divae_tiny": (
        "depth",
        dict(
            image_size=16,
            patch_size=4,
            n_channels=1,
            dec_type="unet_t",
            num_train_timesteps=1000,
            beta_schedule="linear",
            prediction_type="sample",
            clip_sample=False,
            thresholding=True,
            zero_terminal_snr=True,
        ),
        "folder",
    ),
}
DIFFUSION = dict(steps=3, seed=0)
"""DDIM steps and noise seed of the diffusion reference decode (trailing timesteps, eta 0)."""


def scheduler_for(config: dict):
    """ml-4m's DDIMScheduler with the DiVAE's own schedule arguments."""
    from fourm.vq.scheduling import DDIMScheduler

    keys = (
        "num_train_timesteps",
        "beta_schedule",
        "prediction_type",
        "clip_sample",
        "thresholding",
        "zero_terminal_snr",
    )
    return DDIMScheduler(**{k: config[k] for k in keys})


def raw_and_fourm_input(domain: str, config: dict, rng: np.random.Generator) -> tuple[np.ndarray, torch.Tensor]:
    """Two samples of tokzoo raw values, and ml-4m's transform of the same data as ml-4m would read it."""
    from fourm.data.modality_transforms import DepthTransform, NormalTransform, RGBTransform, SemsegTransform

    s = config["image_size"]
    if domain == "rgb":
        raw = rng.integers(0, 256, (N, s, s, 3), dtype=np.uint8)
        t = RGBTransform(imagenet_default_mean_and_std=False)
        return raw, torch.stack([t.postprocess(t.preprocess(Image.fromarray(x))) for x in raw])
    if domain == "depth":
        png = rng.integers(500, 20000, (N, s, s)).astype(np.uint16)  # Omnidata units: 1/512 m
        t = DepthTransform(standardize_depth=True)
        return (png / 512.0).astype(np.float32), torch.stack([t.postprocess(Image.fromarray(x)) for x in png])
    if domain == "normal":
        v = rng.normal(size=(N, s, s, 3))
        v[..., 2] = -np.abs(v[..., 2]) - 0.2  # facing the camera (OpenCV z < 0)
        raw = (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)
        omnidata = raw * np.array([1, 1, -1], np.float32)
        png = np.round((omnidata + 1) / 2 * 255).clip(0, 255).astype(np.uint8)  # how a labeler writes the PNG
        t = NormalTransform(standardize_surface_normals=False)
        return raw, torch.stack([t.postprocess(Image.fromarray(x)) for x in png])
    if domain == "canny_edge":
        raw = (rng.random((N, s, s)) < 0.2).astype(np.uint8)
        t = RGBTransform(imagenet_default_mean_and_std=False)
        return raw, torch.stack([t.postprocess(t.preprocess(Image.fromarray(x * 255).convert("RGB"))) for x in raw])
    if domain == "semseg_coco":
        raw = rng.integers(0, 133, (N, s, s)).astype(np.uint8)
        raw[:, 0, :3] = 255
        t = SemsegTransform(shift_idx_by_one=True)
        ids = torch.stack([t.postprocess(t.preprocess(Image.fromarray(x, mode="L"))) for x in raw])
        assert torch.equal(ids, torch.from_numpy((raw.astype(np.int64) + 1) % 256)), "PIL changed the label values"
        return raw, ids
    if domain == "sam_mask":  # instance masks of their own boxes (each touches all four borders), as ml-4m feeds them
        masks = rng.random((N, s, s)) < 0.5
        masks[:, 0, 0] = masks[:, -1, -1] = True
        return masks, torch.from_numpy(masks.astype(np.float32))[:, None].contiguous()
    if domain == "human_poses":  # one human per sample: SMPL body_pose rotations, as HMR2.0 writes them
        from fourm.data.modality_transforms import HumanPoseTransform

        q, r = np.linalg.qr(rng.normal(size=(N, 23, 3, 3)))
        raw = (q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]).astype(np.float32)
        t = HumanPoseTransform(only_pose=True)
        vectors = [t.preprocess({"pred_smpl_params": {"body_pose": [x.tolist()]}}) for x in raw]
        return raw, torch.stack(vectors)[:, :, None, None].contiguous()
    if domain.endswith("-global"):  # the teacher's embedding, as (B, D, 1, 1) (save_vq_tokens.py)
        raw = rng.normal(size=(N, config["n_channels"])).astype(np.float32)
        return raw, torch.from_numpy(raw.copy())[:, :, None, None].contiguous()
    if domain in ("CLIP-B16", "DINOv2-B14", "ImageBind-H14"):
        g = s // config["patch_size"]
        raw = rng.normal(size=(N, g, g, config["n_channels"])).astype(np.float32)
        return raw, torch.from_numpy(raw).permute(0, 3, 1, 2).contiguous()
    raise ValueError(domain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "fourm"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    import_fourm()
    register_tiny_vits()
    from fourm.utils.checkpoint import load_safetensors
    from fourm.vq.vqvae import VQVAE, DiVAE

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for seed, (name, (domain, extra, form)) in enumerate(CASES.items()):
        config = {**BASE, **extra}
        torch.manual_seed(seed)
        diffusion = config["dec_type"].startswith("unet")
        model = (DiVAE if diffusion else VQVAE)(**config).eval()
        perturb_(model, seed, scale=0.3)
        raw, fourm_input = raw_and_fourm_input(domain, config, rng)
        with torch.no_grad():
            tokens = model.tokenize(fourm_input)
            if diffusion:
                decoded = model.decode_tokens(
                    tokens,
                    timesteps=DIFFUSION["steps"],
                    scheduler=scheduler_for(config),
                    generator=torch.Generator().manual_seed(DIFFUSION["seed"]),
                    verbose=False,
                )
            else:
                decoded = model.decode_tokens(tokens)
        folder = args.out / name
        if form == "folder":
            model.save_pretrained(folder, config=config)  # ml-4m's hub form: config.json + model.safetensors
            (folder / "README.md").unlink(missing_ok=True)  # the hub mixin's model card
            again = (DiVAE if diffusion else VQVAE).from_pretrained(folder).eval()
        else:
            folder.mkdir()
            save_file(
                {k: v.contiguous() for k, v in model.state_dict().items()},
                str(folder / f"{name}.safetensors"),
                metadata={k: str(v) for k, v in config.items()},
            )
            tensors, metadata = load_safetensors(str(folder / f"{name}.safetensors"))
            again = VQVAE(config=metadata).eval()
            again.load_state_dict(tensors)
        with torch.no_grad():
            assert torch.equal(again.tokenize(fourm_input), tokens), f"{name}: ml-4m does not read its own save back"
        save_file(
            {
                "raw": torch.from_numpy(raw),
                "fourm_input": fourm_input.contiguous(),
                "tokens": tokens.contiguous(),
                "decoded": decoded.contiguous(),
            },
            str(folder / "reference.safetensors"),
            metadata={
                "domain": domain,
                "form": form,
                "ml4m_commit": fourm_commit(),
                **({k: str(v) for k, v in DIFFUSION.items()} if diffusion else {}),
            },
        )
        print(
            f"{name}: {domain}, tokens {tuple(tokens.shape)}, {len(tokens.unique())} distinct, "
            f"{sum(p.stat().st_size for p in folder.iterdir()) / 1e3:.0f} kB"
        )
    (args.out / "README.md").write_text(
        "Made by `scripts/make_fourm_fixtures.py` with ml-4m's own code (commit "
        f"{fourm_commit()}); read by tests/test_fourm_tokenizers.py. Random (perturbed) weights at a reduced "
        "ViT size; do not edit by hand, rerun the script.\n"
    )
    print(json.dumps({"total_kB": round(sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file()) / 1e3)}))


if __name__ == "__main__":
    main()
