"""Check tokzoo.fourm against ml-4m's own code at the released tokenizer configurations (random weights).

    PYTHONPATH=/tmp/ml-4m:/tmp/ml4m-extra:scripts OMP_NUM_THREADS=1 python scripts/check_fourm_port.py [--only NAME]

Per released tokenizer (README "Tokenizers" of ml-4m; arguments from its cfgs/default/tokenization): build it with
ml-4m (``VQVAE`` / ``DiVAE``), perturb every tensor with seeded noise, save it in a released form (the hub folder via
ml-4m's ``save_pretrained``, or one ``.safetensors`` with the config as metadata), load it with
``tokzoo.load_tokenizer``, and compare on two random samples at 224 px: strict tensor load (no missing or unexpected
tensor), tensors mapped back to ml-4m's names bit-equal, the encoder input of tokzoo's raw values against ml-4m's
transforms, tokens, and the ViT decoder output (max abs difference). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from fourm_reference import fourm_commit, import_fourm, perturb_
from make_fourm_fixtures import raw_and_fourm_input, scheduler_for
from safetensors.torch import load_file, save_file

DIFFUSION_STEPS, DIFFUSION_SEED = 2, 0
"""The diffusion comparison: DDIM steps (trailing spacing, eta 0) and the seed of the starting noise, one sample."""

VQ = dict(
    enc_type="vit_b_enc",
    quant_type="lucid",
    latent_dim=32,
    norm_codes=True,
    post_mlp=True,
    patch_proj=True,
    sync_codebook=False,
    image_size=224,
    patch_size=16,
)
DIVAE = dict(
    VQ,
    dec_type="unet_patched",
    num_train_timesteps=1000,
    beta_schedule="linear",
    prediction_type="sample",
    clip_sample=False,
    thresholding=True,
    zero_terminal_snr=True,
)
RELEASED = {  # hub name: (domain, class, arguments, form)
    "4M_tokenizers_semseg_4k_224-448": (
        "semseg_coco",
        "VQVAE",
        dict(VQ, dec_type="vit_b_dec", codebook_size=4096, n_channels=64, n_labels=134),
        "folder",
    ),
    "4M_tokenizers_CLIP-B16_8k_224-448": (
        "CLIP-B16",
        "VQVAE",
        dict(VQ, dec_type="vit_b_dec", codebook_size=8192, n_channels=768, patch_proj=False),
        "file",
    ),
    "4M_tokenizers_DINOv2-B14_8k_224-448": (
        "DINOv2-B14",
        "VQVAE",
        dict(VQ, dec_type="vit_b_dec", codebook_size=8192, n_channels=768, patch_size=14, patch_proj=False),
        "folder",
    ),
    "4M_tokenizers_ImageBind-H14_8k_224-448": (
        "ImageBind-H14",
        "VQVAE",
        dict(VQ, dec_type="vit_b_dec", codebook_size=8192, n_channels=1280, patch_size=14, patch_proj=False),
        "file",
    ),
    "4M_tokenizers_DINOv2-B14-global_8k_16_224": (
        "DINOv2-B14-global",
        "VQVAE",
        dict(
            enc_type="BottleneckMLP/B_6-Wi_1024",
            dec_type="BottleneckMLP/B_6-Wi_1024",
            quant_type="memcodes",
            num_codebooks=8,
            codebook_size=8192,
            latent_dim=1024,
            n_channels=768,
            image_size=224,
            patch_size=14,
        ),
        "folder",
    ),
    "4M_tokenizers_ImageBind-H14-global_8k_16_224": (
        "ImageBind-H14-global",
        "VQVAE",
        dict(
            enc_type="BottleneckMLP/B_6-Wi_1024",
            dec_type="BottleneckMLP/B_6-Wi_1024",
            quant_type="memcodes",
            num_codebooks=8,
            codebook_size=8192,
            latent_dim=1024,
            n_channels=1024,
            image_size=224,
            patch_size=14,
        ),
        "file",
    ),
    "4M_tokenizers_human-poses_1k_8": (
        "human_poses",
        "VQVAE",
        dict(
            enc_type="BottleneckMLP/B_6-Wi_1024",
            dec_type="BottleneckMLP/B_6-Wi_1024",
            quant_type="memcodes",
            num_codebooks=8,
            codebook_size=1024,
            latent_dim=1024,
            n_channels=207,
            image_size=224,
            patch_size=16,
        ),
        "folder",
    ),
    "4M_tokenizers_sam-instance_1k_64": (
        "sam_mask",
        "VQVAE",
        dict(
            VQ,
            dec_type="vit_b_dec",
            out_conv=True,
            post_mlp=False,
            codebook_size=1024,
            latent_dim=1024,
            n_channels=1,
            image_size=64,
            mask_size=64,
        ),
        "folder",
    ),
    "4M_tokenizers_rgb_16k_224-448": ("rgb", "DiVAE", dict(DIVAE, codebook_size=16384, n_channels=3), "folder"),
    "4M_tokenizers_depth_8k_224-448": ("depth", "DiVAE", dict(DIVAE, codebook_size=8192, n_channels=1), "folder"),
    "4M_tokenizers_normal_8k_224-448": ("normal", "DiVAE", dict(DIVAE, codebook_size=8192, n_channels=3), "file"),
    "4M_tokenizers_edge_8k_224-512": ("canny_edge", "DiVAE", dict(DIVAE, codebook_size=8192, n_channels=3), "folder"),
}


def check(name: str, domain: str, cls_name: str, config: dict, form: str, work: Path, seed: int) -> dict:
    import fourm.vq.vqvae as vqvae

    import tokzoo
    from tokzoo.fourm.checkpoints import to_fourm

    torch.manual_seed(seed)
    model = getattr(vqvae, cls_name)(**config).eval()
    perturb_(model, seed, scale=0.3)
    raw, fourm_input = raw_and_fourm_input(domain, config, np.random.default_rng(seed))
    raw, fourm_input = raw[:2], fourm_input[:2]
    with torch.no_grad():
        tokens = model.tokenize(fourm_input)  # memcodes: (B, heads, 1, 1)
        if cls_name == "VQVAE":
            decoded = model.decode_tokens(tokens)
        else:  # ml-4m's pipeline with its DDIM scheduler, fixed steps and noise
            decoded = model.decode_tokens(
                tokens[:1],
                timesteps=DIFFUSION_STEPS,
                scheduler=scheduler_for(config),
                generator=torch.Generator().manual_seed(DIFFUSION_SEED),
                verbose=False,
            )
    target = work / name
    if form == "folder":
        model.save_pretrained(target, config=config)
        original_path = target / "model.safetensors"
    else:
        target.mkdir(parents=True)
        original_path = target / f"{name}.safetensors"
        save_file(
            {k: v.contiguous() for k, v in model.state_dict().items()},
            str(original_path),
            metadata={k: str(v) for k, v in config.items()},
        )
    n_tensors = len(model.state_dict())
    reference = model
    start = time.perf_counter()
    tok = tokzoo.load_tokenizer(str(target if form == "folder" else original_path))  # strict: raises on any mismatch
    load_s = time.perf_counter() - start
    original = load_file(str(original_path))
    mapped = to_fourm(tok.tensors())
    same_tensors = sorted(mapped) == sorted(original) and all(
        torch.equal(mapped[k].to(v.dtype), v) for k, v in original.items()
    )
    del original, mapped
    model_input = tok.codec.to_model(raw)
    ours = tok.encode(raw)
    if "224-448" in name:  # multi-resolution: ml-4m resizes the position embedding bicubically, so does the port
        raw2, input2 = raw_and_fourm_input(domain, {**config, "image_size": 448}, np.random.default_rng(seed + 100))
        raw2, input2 = raw2[:1], input2[:1]
        with torch.no_grad():
            tokens2 = reference.tokenize(input2)
        at_448 = f"{int((tok.encode(raw2) == tokens2.flatten(1)).sum())}/{tokens2.numel()}"
    else:
        at_448 = "-"
    row = {
        "tokenizer": name,
        "form": form,
        "tensors": n_tensors,
        "strict load + names/values": same_tensors,
        "input equal": bool(torch.equal(model_input, fourm_input)),
        "tokens equal": f"{int((ours == tokens.flatten(1)).sum())}/{tokens.numel()}",
        "distinct tokens": int(tokens.unique().numel()),
        "tokens equal @448": at_448,
        "load s": round(load_s, 1),
    }
    with torch.no_grad():
        if cls_name == "VQVAE":
            ours_decoded = tok.model.decode_tokens(tokens)
        else:
            from tokzoo.fourm.diffusion import ddim_sample

            ours_decoded = ddim_sample(
                tok.unet,
                tok.model.codes(tokens[:1]),
                tuple(decoded.shape),
                tok.config["fourm"],
                DIFFUSION_STEPS,
                DIFFUSION_SEED,
            )
    row["decoder"] = (
        config["dec_type"].split("/")[0]
        if cls_name == "VQVAE"
        else f"UNet, DDIM {DIFFUSION_STEPS} steps, seed {DIFFUSION_SEED}"
    )
    row["decoder max abs diff"] = f"{float((ours_decoded - decoded).abs().max()):.1e}"
    del reference
    gc.collect()
    shutil.rmtree(target)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated tokenizer names")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import_fourm()
    names = args.only.split(",") if args.only else list(RELEASED)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for seed, name in enumerate(names):
            rows.append(check(name, *RELEASED[name], Path(work), seed))
            print(rows[-1], file=sys.stderr, flush=True)
    print(f"ml-4m commit {fourm_commit()}, torch {torch.__version__}")
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    if not all(
        r["strict load + names/values"]
        and r["input equal"]
        and r["tokens equal"].split("/")[0] == r["tokens equal"].split("/")[1]
        for r in rows
    ):
        raise SystemExit("FAILED")


if __name__ == "__main__":
    main()
