"""The released 4M / 4M-21 tokenizers (EPFL-VILAB on the Hugging Face hub), loadable by a zoo-style name.

``load_tokenizer("4m_rgb")`` (or ``-t rgb=4m_rgb`` on the command line) looks for a local copy first, the folder
``$TOKZOO_4M_TOKENIZERS/<repo name>`` (the ``config.json`` + ``model.safetensors`` the hub serves), then fetches
the repository from the hub; offline and without a copy it fails in one line that names the hub id and the
command that fetches it. The checkpoints load through tokzoo's ml-4m port (tokzoo.fourm.tokenizer): safetensors
only, diffusion decoders carried (decode needs the ported scheduler; see docs/ARCHITECTURE.md).

These are the tokenizers for 4M-quality tokens on a GPU (ViT-B encoders at 224-448 px, 4k-16k codes). The small
tokenizers tokzoo ships (tokzoo/weights) are CPU-sized: for tests, demos, and models trained at 64-128 px.

Facts from apple/ml-4m (README, ``fourm/demo_4M_sampler.py``) at the commit in ../shared/fourm-interop.md; the
weights' licence is the Apple Sample Code License of ml-4m's ``LICENSE_WEIGHTS`` (code: Apache-2.0).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

LICENCE = "Apple Sample Code License (ml-4m LICENSE_WEIGHTS)"
ENVIRONMENT = "TOKZOO_4M_TOKENIZERS"


@dataclass(frozen=True)
class ReleasedTokenizer:
    name: str
    hub_id: str
    modality: str
    tokens: str  # per image at the base resolution
    vocab_size: int
    decoder: str

    @property
    def repo_name(self) -> str:
        return self.hub_id.split("/", 1)[1]


RELEASED_TOKENIZERS: dict[str, ReleasedTokenizer] = {
    t.name: t
    for t in [
        ReleasedTokenizer(
            "4m_rgb", "EPFL-VILAB/4M_tokenizers_rgb_16k_224-448", "rgb", "196 @224 px", 16384, "diffusion"
        ),
        ReleasedTokenizer(
            "4m_depth", "EPFL-VILAB/4M_tokenizers_depth_8k_224-448", "depth", "196 @224 px", 8192, "diffusion"
        ),
        ReleasedTokenizer(
            "4m_normals", "EPFL-VILAB/4M_tokenizers_normal_8k_224-448", "normals", "196 @224 px", 8192, "diffusion"
        ),
        ReleasedTokenizer(
            "4m_edges", "EPFL-VILAB/4M_tokenizers_edge_8k_224-512", "edges", "196 @224 px", 8192, "diffusion"
        ),
        ReleasedTokenizer(
            "4m_semseg", "EPFL-VILAB/4M_tokenizers_semseg_4k_224-448", "semseg", "196 @224 px", 4096, "ViT"
        ),
        ReleasedTokenizer(
            "4m_clip_b16", "EPFL-VILAB/4M_tokenizers_CLIP-B16_8k_224-448", "dense_features", "196 @224 px", 8192, "ViT"
        ),
        ReleasedTokenizer(
            "4m_dinov2_b14",
            "EPFL-VILAB/4M_tokenizers_DINOv2-B14_8k_224-448",
            "dense_features",
            "256 @224 px",
            8192,
            "ViT",
        ),
        ReleasedTokenizer(
            "4m_imagebind_h14",
            "EPFL-VILAB/4M_tokenizers_ImageBind-H14_8k_224-448",
            "dense_features",
            "256 @224 px",
            8192,
            "ViT",
        ),
        ReleasedTokenizer(
            "4m_dinov2_global",
            "EPFL-VILAB/4M_tokenizers_DINOv2-B14-global_8k_16_224",
            "global_feature",
            "16",
            8192,
            "MLP",
        ),
        ReleasedTokenizer(
            "4m_imagebind_global",
            "EPFL-VILAB/4M_tokenizers_ImageBind-H14-global_8k_16_224",
            "global_feature",
            "16",
            8192,
            "MLP",
        ),
        ReleasedTokenizer(
            "4m_sam_instances",
            "EPFL-VILAB/4M_tokenizers_sam-instance_1k_64",
            "sam_instances",
            "64 per instance",
            1024,
            "ViT",
        ),
        ReleasedTokenizer(
            "4m_human_pose", "EPFL-VILAB/4M_tokenizers_human-poses_1k_8", "human_pose", "8 per human", 1024, "MLP"
        ),
    ]
}


def local_copy(entry: ReleasedTokenizer) -> Path | None:
    """``$TOKZOO_4M_TOKENIZERS/<repo name>`` when it holds a config.json, else None."""
    root = os.environ.get(ENVIRONMENT)
    folder = Path(root) / entry.repo_name if root else None
    return folder if folder is not None and (folder / "config.json").is_file() else None


def fetch_hint(entry: ReleasedTokenizer) -> str:
    """The one-line way to get ``entry`` onto a machine that is (or was once) online."""
    return (
        f"huggingface-cli download {entry.hub_id} config.json model.safetensors --local-dir "
        f"DIR/{entry.repo_name}, then set {ENVIRONMENT}=DIR"
    )


def download_size(entry: ReleasedTokenizer) -> int | None:
    """Bytes of the local copy's or the hub cache's model.safetensors, None when neither holds it."""
    folder = local_copy(entry)
    candidates = [folder / "model.safetensors"] if folder is not None else []
    hub_cache = (
        os.environ.get("HF_HUB_CACHE")
        or Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface") / "hub"
    )
    candidates += sorted(
        (Path(hub_cache) / f"models--{entry.hub_id.replace('/', '--')}").glob("snapshots/*/model.safetensors")
    )
    for path in candidates:
        if path.is_file():
            return path.stat().st_size
    return None
