"""Pseudo-labeler throughput on CPU: images/s per labeler on procedural scenes.

Classical labelers run as shipped. Model-backed ones run on randomly initialised models built from the
real architectures' configs (DINOv2-B/14, CLIP ViT-B/16, Depth Anything small: a DINOv2-S/14 backbone
and the DPT head), saved and loaded through ``create_labeler("name:DIR")``: random weights cost the
same compute as trained ones, and no weights can be downloaded here. Each labeler gets a warm-up
batch, then ``--images`` images in batches of ``--batch-size``; wall and process CPU time are both
reported (the machine is shared).

    python benchmarks/pseudo_label_throughput.py [--size 256] [--images 8] [--threads 1] [--no-models] [--no-write]

Prints a markdown table and appends it to benchmarks/RESULTS.md under "## Pseudo-label throughput".
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from tokzoo.datasets import generate_scene
from tokzoo.labelers import create_labeler

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "RESULTS.md"
SECTION = "## Pseudo-label throughput"
CLASSICAL = ["normals_from_depth", "canny", "kmeans_palette", "metadata", "slic"]


def tiny_free_models(root: Path) -> dict[str, str]:
    """Random-weight models of the real sizes, saved under ``root``: labeler spec -> description."""
    import transformers as tf

    tf.utils.logging.disable_progress_bar()
    specs = {}
    dino = tf.Dinov2Model(tf.Dinov2Config())  # defaults = DINOv2-B/14
    dino.save_pretrained(root / "dinov2")
    tf.BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                         image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(root / "dinov2")
    specs[f"dinov2_dense:{root / 'dinov2'}"] = "DINOv2-B/14, 224 px crop"
    clip = tf.CLIPVisionModelWithProjection(tf.CLIPVisionConfig(patch_size=16, projection_dim=512))
    clip.save_pretrained(root / "clip")
    tf.CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(root / "clip")
    specs[f"clip_global:{root / 'clip'}"] = "CLIP ViT-B/16, 224 px"
    backbone = tf.Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                               out_features=["stage3", "stage6", "stage9", "stage12"], reshape_hidden_states=False)
    depth = tf.DepthAnythingForDepthEstimation(tf.DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=384,
                                                                      neck_hidden_sizes=[48, 96, 192, 384]))
    depth.save_pretrained(root / "depth")
    tf.DPTImageProcessor(size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14,
                         image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(root / "depth")
    specs[f"hf_depth:{root / 'depth'}"] = "Depth Anything small (ViT-S/14 + DPT head), 518 px"
    return specs


def measure(spec: str, batch: dict, batch_size: int) -> tuple[float, float]:
    """(images/s wall, images/s CPU) after one warm-up batch."""
    labeler = create_labeler(spec, batch_size=batch_size)
    inputs = {m: v for m, v in batch.items() if m in (*labeler.needs, *labeler.optional)}
    labeler.label({m: v[:batch_size] for m, v in inputs.items()})
    wall, cpu = time.perf_counter(), time.process_time()
    labeler.label(inputs)
    n = len(batch["rgb"])
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-models", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scenes = [generate_scene(i, 2, args.size) for i in range(args.images)]
    batch = {m: [s[m] for s in scenes] for m in ("rgb", "depth", "camera", "semseg", "instances", "normals", "pose")}
    rows = [(name, "classical", *measure(name, batch, args.batch_size)) for name in CLASSICAL]
    if not args.no_models:
        with tempfile.TemporaryDirectory() as tmp:
            for spec, what in tiny_free_models(Path(tmp)).items():
                rows.append((spec.split(":")[0], what + ", random weights", *measure(spec, batch, args.batch_size)))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [f"{datetime.date.today()}, {platform.platform()}, {os.cpu_count()} CPUs, torch threads {args.threads}, "
             f"{args.images} scenes of {args.size} px, batch {args.batch_size}, load average {load}.", "",
             "| labeler | model | images/s (wall) | images/s (CPU) |", "|---|---|---|---|"]
    lines += [f"| {name} | {what} | {wall:.2f} | {cpu:.2f} |" for name, what, wall, cpu in rows]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        content = RESULTS.read_text()
        if SECTION not in content:
            content = content.rstrip() + f"\n\n{SECTION}\n"
        RESULTS.write_text(content.rstrip() + "\n\n" + text + "\n")


if __name__ == "__main__":
    main()
