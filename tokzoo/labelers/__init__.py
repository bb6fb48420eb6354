"""Pseudo-labelers: turn images (and modalities already labelled) into other modalities' raw values.

``create_labeler("canny")``, ``create_labeler("hf_depth:<dir or hub id>")``; ``DEFAULTS[modality]``
names the labeler ``tokzoo pseudo-label`` uses for a modality unless told otherwise.

``DEFAULTS`` holds classical labelers only, so nothing is downloaded unasked; a model-backed labeler named
without a path loads its ``default_checkpoint`` hub id (``--labeler semseg=mask2former_semseg``,
``pose=vitpose``). Model-backed: ``hf_depth``, ``mask2former_semseg``, ``vitpose``, ``sam_instances`` /
``sam_edges`` (also ``segment_anything_instances`` / ``segment_anything_edges:FILE``: the official package
and its ``.pth`` files, see ``sam_official.py``), ``dinov2_*`` / ``clip_*`` features and ``blip_captions``
(Python API only, like the features: their modalities have no file format). ``consensus:SPEC,SPEC`` combines
depth / normals labelers.
``marigold_normals`` predicts normals from rgb with diffusers' Marigold (``prs-eth/marigold-normals-v1-1``,
see ``marigold.py``).
``hmr2_smpl:FILE`` gives SMPL poses (HMR 2.0 weights extracted to safetensors, see ``smpl.py``).
``openclip_*`` (``MODEL@WEIGHTS``) and ``imagebind_*`` (the official ``imagebind_huge.pth``, its vision branch
mapped onto open_clip's ViT) features run on open_clip (see ``openclip.py``); the ``dense_features`` /
``global_feature`` tokenizers take any channel count.
"""

from . import captions, consensus, depth, features, geometry, image, marigold, mediapipe_pose, metadata, openclip, palette, pose, sam, sam_official, semantic, smpl
from .base import DEFAULTS, LABELERS, Labeler, create_labeler, register_labeler

__all__ = ["DEFAULTS", "LABELERS", "Labeler", "create_labeler", "register_labeler"]
