"""Pseudo-labelers: turn images (and modalities already labelled) into other modalities' raw values.

One file per backend, named after the model or algorithm that computes the labels (``canny.py``, ``slic.py``,
``normals_from_depth.py``, ``kmeans.py``, ``image_statistics.py``; ``hf_depth.py``, ``hf_features.py``,
``mask2former.py``, ``vitpose.py``, ``sam.py``, ``segment_anything.py``, ``marigold.py``, ``mediapipe_pose.py``,
``hmr2.py``, ``openclip.py``, ``blip.py``; ``consensus.py`` combines other labelers); a backend's labelers are
registered as ``<backend>_<modality>`` where it writes several. Support modules are named for what they provide:
``base.py`` (the interface, the registry), ``hf.py`` (transformers loading), ``hmr2_network.py`` (HMR 2.0's
network), ``metrics.py`` / ``evaluate.py`` (labeler evaluation). The pseudo-label job is tokzoo/pipeline/pseudo_label.py.

``create_labeler("canny")``, ``create_labeler("hf_depth:<dir or hub id>")``; ``DEFAULTS[modality]``
names the labeler ``tokzoo pseudo-label`` uses for a modality unless told otherwise.

``DEFAULTS`` (the labelers declaring ``default = True``) holds classical labelers only, so nothing is downloaded unasked; a model-backed labeler named
without a path loads its ``default_checkpoint`` hub id (``--labeler semseg=mask2former_semseg``,
``pose=vitpose``). Model-backed: ``hf_depth``, ``mask2former_semseg``, ``vitpose``, ``sam_instances`` /
``sam_edges`` (also ``segment_anything_instances`` / ``segment_anything_edges:FILE``: the official package
and its ``.pth`` files, see ``segment_anything.py``), ``dinov2_*`` / ``clip_*`` / ``vit_*`` (any ``ViTModel``
folder) features and ``blip_captions``. ``consensus:SPEC,SPEC`` combines
depth / normals labelers.
``marigold_normals`` predicts normals from rgb with diffusers' Marigold (``prs-eth/marigold-normals-v1-1``,
see ``marigold.py``).
``hmr2_smpl:FILE`` gives SMPL poses (HMR 2.0 weights extracted to safetensors, see ``hmr2.py``).
``openclip_*`` (``MODEL@WEIGHTS``) and ``imagebind_*`` (the official ``imagebind_huge.pth``, its vision branch
mapped onto open_clip's ViT) features run on open_clip (see ``openclip.py``); the ``dense_features`` /
``global_feature`` tokenizers take any channel count.
"""

from . import (
    blip,
    canny,
    consensus,
    hf_depth,
    hf_features,
    hmr2,
    image_statistics,
    kmeans,
    marigold,
    mask2former,
    mediapipe_pose,
    normals_from_depth,
    openclip,
    sam,
    segment_anything,
    slic,
    vitpose,
)
from .base import DEFAULTS, LABELERS, Labeler, create_labeler, register_labeler

__all__ = ["DEFAULTS", "LABELERS", "Labeler", "create_labeler", "register_labeler"]
