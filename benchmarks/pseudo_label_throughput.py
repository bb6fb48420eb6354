"""Pseudo-labeler throughput on CPU: images/s per labeler.

Classical labelers run as shipped. Model-backed ones run on randomly initialised models of the real
architectures and sizes, built from the libraries' own config classes and constructors, saved to a
temporary folder and loaded through ``create_labeler("name:PATH")`` as a real checkpoint would be:
random weights cost the same compute as trained ones, and no weights can be downloaded here.
``mediapipe_pose`` runs its real BlazePose model, which ships inside the mediapipe wheel.

- ``dinov2_dense``: DINOv2-B/14, 224 px crop. ``clip_global``: CLIP ViT-B/16, 224 px. ``hf_depth``: Depth
  Anything small (DINOv2-S/14 backbone + DPT head), 518 px.
- ``openclip_global``: open_clip ViT-B-16, 224 px. ``imagebind_dense``: ImageBind-H's vision branch (open_clip
  ViT-H-14 layout, LayerNorm eps 1e-6, renamed to ImageBind's keys with a 2-frame Conv3d stem), 224 px.
- ``segment_anything_instances``: segment-anything ViT-B (``sam_model_registry["vit_b"]``) at 1024 px with
  SAM's automatic-mask defaults (32 x 32 point grid); when one image takes more than 60 CPU-seconds the
  same model is also measured with a 16 x 16 grid (``points_per_side=16``), labelled as such.
- ``hmr2_smpl``: HMR 2.0 (ViT-H/16 backbone at 256 x 192 + the 6-layer SMPL transformer head).
- ``marigold_normals``: MarigoldNormalsPipeline with Stable Diffusion 2's UNet (8 input channels, as Marigold),
  VAE and 23-layer OpenCLIP-H text encoder, DDIM (v-prediction, trailing), 1 denoising step, ensemble 1,
  processing resolution ``--marigold-resolution`` (default 768, Marigold's own).
- ``mediapipe_pose``: MediaPipe BlazePose full (bundled), the real model.

Inputs: procedural scenes of ``--size`` px; the two human-pose labelers get scikit-image's astronaut photo
(512 px, one person) with rgb only, so each image is one person box and BlazePose finds a person (on a
procedural scene it finds none and only its detector would run). Each labeler gets a warm-up batch, then
``--images`` images in batches of ``--batch-size``; wall and process CPU time (all threads) are reported, and the
peak resident memory: each model-backed labeler is built, then loaded and run, in fresh processes of their own,
and its figure is the peak of the process that imported the libraries, loaded the checkpoint and labelled (Linux
and macOS); classical labelers run in the main process before any model. The machine may be shared: read the CPU column.

    python benchmarks/pseudo_label_throughput.py [--size 256] [--images 8] [--batch-size 4] [--threads 1]
        [--only NAME[,NAME]] [--no-models] [--marigold-resolution 768] [--no-write]

Prints a markdown table and appends it to benchmarks/RESULTS.md under "## Pseudo-label throughput".
Without ``--only`` every labeler runs (the large models take several minutes each on one thread).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tokzoo.datasets import generate_scene
from tokzoo.labelers import create_labeler

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "RESULTS.md"
SECTION = "## Pseudo-label throughput"
CLASSICAL = ["normals_from_depth", "canny", "kmeans_palette", "metadata", "slic"]
SAM_SLOW_S = 60.0  # CPU-seconds per image above which SAM is also measured with a 16 x 16 grid


@dataclass
class Case:
    """One labeler to measure: its spec, create_labeler keywords, a description and which images it gets."""

    spec: str
    what: str
    kwargs: dict = field(default_factory=dict)
    images: str = "scenes"  # "scenes" (all modalities the labeler takes) or "person" (astronaut, rgb only)
    detail: Callable | None = None  # outputs -> a phrase for the description


# ---- random-weight checkpoints of the real sizes ------------------------------------------------------------
def build_dinov2(root: Path) -> list[Case]:
    import transformers as tf

    tf.Dinov2Model(tf.Dinov2Config()).save_pretrained(root)  # defaults = DINOv2-B/14
    tf.BitImageProcessor(
        size={"shortest_edge": 256},
        crop_size={"height": 224, "width": 224},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(root)
    return [Case(f"dinov2_dense:{root}", "DINOv2-B/14, 224 px crop")]


def build_clip(root: Path) -> list[Case]:
    import transformers as tf

    tf.CLIPVisionModelWithProjection(tf.CLIPVisionConfig(patch_size=16, projection_dim=512)).save_pretrained(root)
    tf.CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(root)
    return [Case(f"clip_global:{root}", "CLIP ViT-B/16, 224 px")]


def build_depth(root: Path) -> list[Case]:
    import transformers as tf

    backbone = tf.Dinov2Config(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        intermediate_size=1536,
        out_features=["stage3", "stage6", "stage9", "stage12"],
        reshape_hidden_states=False,
    )
    depth = tf.DepthAnythingForDepthEstimation(
        tf.DepthAnythingConfig(
            backbone_config=backbone, reassemble_hidden_size=384, neck_hidden_sizes=[48, 96, 192, 384]
        )
    )
    depth.save_pretrained(root)
    tf.DPTImageProcessor(
        size={"height": 518, "width": 518},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(root)
    return [Case(f"hf_depth:{root}", "Depth Anything small (ViT-S/14 + DPT head), 518 px")]


def build_openclip(root: Path) -> list[Case]:
    import open_clip
    from safetensors.torch import save_file

    from tokzoo.labelers.openclip import vision_tower

    visual = vision_tower(open_clip.get_model_config("ViT-B-16"))
    weights = root / "vit_b_16.safetensors"
    save_file({f"visual.{k}": v.contiguous() for k, v in visual.state_dict().items()}, str(weights))
    return [Case(f"openclip_global:ViT-B-16@{weights}", "open_clip ViT-B-16, 224 px")]


def imagebind_state(visual: torch.nn.Module) -> dict[str, torch.Tensor]:
    """An ImageBind-named state dict whose vision branch computes the open_clip tower ``visual`` (the layout of
    tests/test_labelers_openclip.py: a Conv3d stem over 2 repeated frames whose two time steps sum to the Conv2d
    weight, cls / pos tensors with batch dims, blocks renamed, head LayerNorm + Linear)."""
    stem, trunk, head = "modality_preprocessors.vision.", "modality_trunks.vision.", "modality_heads.vision."
    v = visual.state_dict()
    half = v["conv1.weight"] / 2
    state = {
        stem + "rgbt_stem.proj.1.weight": torch.stack([half, v["conv1.weight"] - half], dim=2),
        stem + "cls_token": v["class_embedding"][None, None],
        stem + "pos_embedding_helper.pos_embed": v["positional_embedding"][None],
        trunk + "pre_transformer_layer.0.weight": v["ln_pre.weight"],
        trunk + "pre_transformer_layer.0.bias": v["ln_pre.bias"],
        head + "0.weight": v["ln_post.weight"],
        head + "0.bias": v["ln_post.bias"],
        head + "2.weight": v["proj"].t(),
    }
    names = {"ln_1": "norm_1", "ln_2": "norm_2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}  # attn.*: same
    for key, tensor in v.items():
        if key.startswith("transformer.resblocks."):
            i, rest = key.removeprefix("transformer.resblocks.").split(".", 1)
            module, param = rest.rsplit(".", 1)
            state[f"{trunk}blocks.{i}.{names.get(module, module)}.{param}"] = tensor
    return {k: t.contiguous() for k, t in state.items()}


def build_imagebind(root: Path) -> list[Case]:
    import open_clip

    from tokzoo.labelers.openclip import vision_tower

    config = open_clip.get_model_config("ViT-H-14")  # ImageBind-H kept OpenCLIP ViT-H/14's image encoder
    config["vision_cfg"] = {**config["vision_cfg"], "norm_kwargs": {"eps": 1e-6}}  # ImageBind's LayerNorm eps
    torch.save(imagebind_state(vision_tower(config)), root / "imagebind_huge.pth")
    return [
        Case(
            f"imagebind_dense:{root / 'imagebind_huge.pth'}", "ImageBind-H vision (ViT-H/14), 224 px", {"num_heads": 16}
        )
    ]


def sam_masks(outputs) -> str:
    return f"{np.mean([int(x.max()) for x in outputs]):.0f} masks/image kept"


def build_sam(root: Path) -> list[Case]:
    from segment_anything import sam_model_registry

    torch.save(sam_model_registry["vit_b"]().state_dict(), root / "sam_vit_b.pth")
    spec = f"segment_anything_instances:{root / 'sam_vit_b.pth'}"
    return [Case(spec, "SAM ViT-B, 1024 px, 32x32 points (SAM defaults)", detail=sam_masks)]


def build_hmr2(root: Path) -> list[Case]:
    from safetensors.torch import save_file

    from tokzoo.labelers.hmr2_network import HMR2, RELEASED

    save_file({k: v.contiguous() for k, v in HMR2(RELEASED).state_dict().items()}, str(root / "hmr2.safetensors"))
    return [
        Case(
            f"hmr2_smpl:{root / 'hmr2.safetensors'}",
            "HMR 2.0: ViT-H/16 at 256x192 + SMPL head, 1 box/image",
            images="person",
        )
    ]


def build_marigold(root: Path, resolution: int) -> list[Case]:
    import diffusers
    import transformers as tf

    # Stable Diffusion 2's component configs (stabilityai/stable-diffusion-2: unet, vae, text_encoder), the UNet
    # taking 8 channels (image latent + noise latent) as Marigold's; scheduler as Marigold's (DDIM, v-prediction).
    unet = diffusers.UNet2DConditionModel(
        sample_size=96,
        in_channels=8,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        attention_head_dim=(5, 10, 20, 20),
        cross_attention_dim=1024,
        use_linear_projection=True,
        norm_num_groups=32,
        norm_eps=1e-5,
    )
    vae = diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=32,
        sample_size=768,
        scaling_factor=0.18215,
    )
    scheduler = diffusers.DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="v_prediction",
        timestep_spacing="trailing",
        set_alpha_to_one=False,
        clip_sample=False,
        steps_offset=1,
    )
    text = tf.CLIPTextModel(
        tf.CLIPTextConfig(
            vocab_size=49408,
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=23,
            num_attention_heads=16,
            max_position_embeddings=77,
            hidden_act="gelu",
            projection_dim=512,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    # Marigold encodes the empty prompt once; a two-token vocabulary gives the same ids-in, 1024-d-out text pass
    # (CLIP's real 49408-token vocabulary cannot be downloaded here).
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = tf.CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"), model_max_length=77)
    pipeline = diffusers.MarigoldNormalsPipeline(
        unet=unet,
        vae=vae,
        scheduler=scheduler,
        text_encoder=text,
        tokenizer=tokenizer,
        prediction_type="normals",
        use_full_z_range=True,
        default_denoising_steps=4,
        default_processing_resolution=768,
    )
    diffusers.utils.logging.disable_progress_bar()
    tf.utils.logging.disable_progress_bar()
    pipeline.save_pretrained(root / "marigold")
    note = "" if resolution == 768 else f" (not Marigold's 768: --marigold-resolution {resolution})"
    return [
        Case(
            f"marigold_normals:{root / 'marigold'}",
            f"Marigold normals: SD2 UNet + VAE + text encoder, 1 step, ensemble 1, {resolution} px{note}",
            {"steps": 1, "ensemble_size": 1, "processing_resolution": resolution},
        )
    ]


def humans_found(outputs) -> str:
    return f"{np.mean([len(p['humans']) for p in outputs]):.0f} person/image found"


def build_mediapipe(root: Path) -> list[Case]:
    return [
        Case("mediapipe_pose", "MediaPipe BlazePose full (bundled, real model)", images="person", detail=humans_found)
    ]


MODELS: dict[str, Callable] = {
    "dinov2_dense": build_dinov2,
    "clip_global": build_clip,
    "hf_depth": build_depth,
    "openclip_global": build_openclip,
    "imagebind_dense": build_imagebind,
    "segment_anything_instances": build_sam,
    "hmr2_smpl": build_hmr2,
    "marigold_normals": build_marigold,
    "mediapipe_pose": build_mediapipe,
}
WEIGHTED = {"mediapipe_pose"}  # ships its real model: no "random weights" label


# ---- measuring ------------------------------------------------------------------------------------------------
def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_gb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 2**20
    except (OSError, StopIteration, ValueError):
        return None


def measure(
    case: Case, batches: dict, batch_size: int, threads: int, fresh: bool = False
) -> tuple[float, float, float | None, str]:
    """(images/s wall, images/s CPU, peak RSS GB or None, detail) after one warm-up batch.

    ``fresh``: this is a process of its own, and its lifetime peak is the peak; else the peak is reset first.
    """
    torch.set_num_threads(threads)
    resettable = fresh or reset_peak_rss()
    labeler = create_labeler(case.spec, batch_size=batch_size, **case.kwargs)
    if fresh:
        print(f"{case.spec.split(':')[0]}: loaded, peak RSS so far {gb(lifetime_peak_rss_gb())} GB", file=sys.stderr)
    batch = batches[case.images]
    inputs = {m: v for m, v in batch.items() if m in (*labeler.needs, *labeler.optional)}
    labeler.label({m: v[:batch_size] for m, v in inputs.items()})
    wall, cpu = time.perf_counter(), time.process_time()
    outputs = labeler.label(inputs)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = len(batch["rgb"])
    peak = (lifetime_peak_rss_gb() if fresh else peak_rss_gb()) if resettable else None
    return n / wall, n / cpu, peak, case.detail(outputs) if case.detail else ""


def lifetime_peak_rss_gb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**30 if sys.platform == "darwin" else peak / 2**20  # bytes on macOS, KiB on Linux


def build(name: str, root: Path, marigold_resolution: int, threads: int) -> tuple[list[Case], float | None]:
    """The cases of labeler ``name`` with their checkpoints written under ``root``, and this process's peak RSS."""
    torch.set_num_threads(threads)
    cases = MODELS[name](root, marigold_resolution) if name == "marigold_normals" else MODELS[name](root)
    return cases, lifetime_peak_rss_gb()


def isolated(function, *args):
    """``function(*args)`` in a fresh Python process, so that one model's memory (built, loaded, or kept by the
    allocator after use) neither slows nor shows in the peak RSS of the next."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def gb(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def rate(x: float) -> str:
    return f"{x:.2f}" if x >= 0.995 else f"{x:#.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="", help="comma-separated labeler names (default: all)")
    parser.add_argument("--no-models", action="store_true", help="classical labelers only")
    parser.add_argument("--marigold-resolution", type=int, default=768)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    known = CLASSICAL + list(MODELS)
    only = [name for name in args.only.split(",") if name]
    unknown = sorted(set(only) - set(known))
    if unknown:
        parser.error(f"unknown labeler(s) {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = [name for name in known if (not only or name in only) and not (args.no_models and name in MODELS)]
    torch.set_num_threads(args.threads)
    scenes = [generate_scene(i, 2, args.size) for i in range(args.images)]
    batches = {
        "scenes": {
            m: [s[m] for s in scenes] for m in ("rgb", "depth", "camera", "semseg", "sam_instances", "normals", "pose")
        }
    }
    if any(name in ("mediapipe_pose", "hmr2_smpl") for name in chosen):
        import skimage.data

        batches["person"] = {"rgb": [skimage.data.astronaut()] * args.images}
    rows = []
    for name in chosen:
        if name in CLASSICAL:  # fast and small: in this process, before any model
            wall, cpu, peak, _ = measure(Case(name, "classical"), batches, args.batch_size, args.threads)
            rows.append((name, "classical", wall, cpu, peak))
            continue
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            cases, peak = isolated(build, name, Path(tmp), args.marigold_resolution, args.threads)
            print(
                f"{name}: checkpoint built and saved in {time.perf_counter() - start:.0f} s, peak RSS {gb(peak)} GB",
                file=sys.stderr,
            )
            while cases:
                case = cases.pop(0)
                wall, cpu, peak, detail = isolated(measure, case, batches, args.batch_size, args.threads, True)
                what = case.what + ("" if name in WEIGHTED else ", random weights") + (f"; {detail}" if detail else "")
                rows.append((name, what, wall, cpu, peak))
                print(f"{name}: {rate(wall)} images/s wall, {rate(cpu)} CPU, peak RSS {gb(peak)} GB", file=sys.stderr)
                slow_sam = name == "segment_anything_instances" and "points_per_side" not in case.kwargs
                if slow_sam and 1 / cpu > SAM_SLOW_S:
                    cases.append(
                        Case(
                            case.spec,
                            f"SAM ViT-B, 1024 px, 16x16 points (32x32 took {1 / cpu:.0f} CPU-s/image)",
                            {"points_per_side": 16},
                            detail=sam_masks,
                        )
                    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    inputs = f"procedural scenes of {args.size} px" + (
        "; pose labelers: the 512 px astronaut photo, one person" if "person" in batches else ""
    )
    lines = [
        f"{datetime.date.today()}, {platform.platform()}, {os.cpu_count()} CPUs, torch threads {args.threads}, "
        f"{args.images} images ({inputs}), batch {args.batch_size}, load average {load}.",
        "",
        "| labeler | model | images/s (wall) | images/s (CPU) | peak RSS (GB) |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {what} | {rate(wall)} | {rate(cpu)} | {gb(peak)} |" for name, what, wall, cpu, peak in rows]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        RESULTS.write_text(insert_in_section(RESULTS.read_text(), text))


def insert_in_section(content: str, text: str) -> str:
    """``content`` with ``text`` added at the end of the SECTION (before the next "## " heading), or a new SECTION."""
    if SECTION not in content:
        return content.rstrip() + f"\n\n{SECTION}\n\n{text}\n"
    start = content.index(SECTION) + len(SECTION)
    end = content.find("\n## ", start)
    end = len(content) if end < 0 else end + 1
    return content[:end].rstrip() + "\n\n" + text + "\n" + ("\n" + content[end:] if end < len(content) else "")


if __name__ == "__main__":
    main()
