"""Top-down 2D human pose with ViTPose (``VitPoseForPoseEstimation``), COCO-17 keypoints.

Person boxes: when the sample has ``semseg``, one box per connected region of class ``person_class``
(COCO's "person" is 0; the built-in scenes' "human" is 6), or, when it also has ``instances``, one box per
instance whose pixels are mostly that class; regions under ``min_area`` of the image are dropped, and a
sample without person pixels gets no humans. Without ``semseg`` the whole image is one box (``instances``
alone carry no class). Output: the ``pose`` dict of docs/ARCHITECTURE.md with ``keypoints_2d`` only (ViTPose
is 2D), plus per human its ``box`` [x, y, w, h] px and ``scores`` (17 heatmap maxima). Visibility: 0 when
the keypoint falls outside the image, 2 when its score is >= ``min_score``, else 1 (a low score stands for
"occluded"; the model does not say).

For a labeler that needs no weights at all, ``mediapipe_pose`` runs the BlazePose model bundled in the
mediapipe 0.10.14 wheel (tokzoo/labelers/mediapipe_pose.py).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from tokzoo.errors import ConfigError

from .base import register_labeler
from .hf import HFLabeler


def person_boxes(
    shape: tuple[int, int], semseg=None, instances=None, person_class: int = 0, min_area: float = 0.001
) -> list[list[float]]:
    """[x, y, w, h] boxes in pixels (COCO convention) of the people in a (H, W) sample (see the module doc)."""
    h, w = shape
    if semseg is None:
        return [[0.0, 0.0, float(w), float(h)]]
    person = semseg == person_class
    if instances is not None:
        ids = [i for i in np.unique(instances[person]) if i and person[instances == i].mean() > 0.5]
        regions = [instances == i for i in ids]
    else:
        labels, n = ndimage.label(person)
        regions = [labels == i for i in range(1, n + 1)]
    boxes = []
    for region in regions:
        if region.sum() < max(min_area * region.size, 1):
            continue
        rows, cols = np.nonzero(region)
        boxes.append(
            [
                float(cols.min()),
                float(rows.min()),
                float(cols.max() - cols.min() + 1),
                float(rows.max() - rows.min() + 1),
            ]
        )
    return boxes


@register_labeler
class VitPose(HFLabeler):
    """rgb (+ optional semseg / instances) -> pose dict, skeleton ``coco17``."""

    name = "vitpose"
    modality = "pose"
    optional = ("semseg", "sam_instances")
    model_class = "VitPoseForPoseEstimation"
    default_checkpoint = "usyd-community/vitpose-base-simple"

    def __init__(
        self, model, processor, person_class: int = 0, min_area: float = 0.001, min_score: float = 0.3, **kwargs
    ):
        super().__init__(model, processor, **kwargs)
        if model.config.num_labels != 17:
            raise ConfigError(f"{self.name}: the model predicts {model.config.num_labels} keypoints, not COCO's 17")
        self.person_class, self.min_area, self.min_score = person_class, min_area, min_score

    def _label(self, chunk):
        images = chunk["rgb"]
        none = [None] * len(images)
        boxes = [
            person_boxes(im.shape[:2], s, i, self.person_class, self.min_area)
            for im, s, i in zip(images, chunk.get("semseg", none), chunk.get("sam_instances", none))
        ]
        todo = [k for k, b in enumerate(boxes) if b]
        humans = [[] for _ in images]
        if todo:
            with torch.inference_mode():
                inputs = self.inputs([images[k] for k in todo], boxes=[boxes[k] for k in todo])
                out = self.model(**inputs)
                results = self.processor.post_process_pose_estimation(out, boxes=[boxes[k] for k in todo])
            for k, people in zip(todo, results):
                humans[k] = [self._human(p, box, images[k].shape[:2]) for p, box in zip(people, boxes[k])]
        return [{"skeleton": "coco17", "humans": h} for h in humans]

    def _human(self, person: dict, box: list[float], shape: tuple[int, int]) -> dict:
        xy = person["keypoints"].float().cpu().numpy()
        scores = person["scores"].float().cpu().numpy()
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < shape[1]) & (xy[:, 1] >= 0) & (xy[:, 1] < shape[0])
        visibility = np.where(inside, np.where(scores >= self.min_score, 2, 1), 0)
        return {
            "keypoints_2d": [[float(x), float(y), int(v)] for (x, y), v in zip(xy, visibility)],
            "box": box,
            "scores": [float(s) for s in scores],
        }
