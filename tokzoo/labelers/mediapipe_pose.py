"""2D human pose from MediaPipe's BlazePose model, which ships inside the ``mediapipe`` wheel (runs offline).

Install with ``pip install 'tokzoo[mediapipe]'``: mediapipe 0.10.14 is pinned because it is the last release
that both bundles the pose models (``pose_detection.tflite``, ``pose_landmark_full.tflite``) and installs
beside numpy 2 (0.10.18-0.10.21 require numpy < 2; 0.10.30+ no longer bundle the models). Only the "full"
landmark model (``model_complexity=1``) ships; "lite" and "heavy" would be downloaded, so they are refused.

BlazePose finds one person per image, so each person box (``person_boxes``: from ``semseg`` / ``instances``
when present, else the whole image) is cropped with a ``margin`` and run on its own. Its 33 landmarks are
mapped to COCO-17 (:data:`BLAZEPOSE_TO_COCO17`) in image pixels. Visibility: 0 when the point falls outside the
image, 2 when BlazePose's visibility score is >= ``min_score``, else 1. A box where no person is detected
gives no human. Output: the ``pose`` dict of docs/ARCHITECTURE.md (skeleton ``coco17``, ``keypoints_2d``,
``box`` [x, y, w, h] px, ``scores``: BlazePose's 17 visibility scores).
"""

from __future__ import annotations

import os

import numpy as np

from tokzoo.errors import ConfigError, TokzooError

from .base import Labeler, register_labeler
from .vitpose import person_boxes

BLAZEPOSE_TO_COCO17 = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
"""COCO-17 joint j is BlazePose landmark ``BLAZEPOSE_TO_COCO17[j]`` (nose, eyes, ears, shoulders, elbows,
wrists, hips, knees, ankles; left before right, the person's own left)."""


def _mediapipe_pose():
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ start-up chatter on stderr
    try:
        from mediapipe.python.solutions import pose
    except ImportError:
        raise TokzooError("the mediapipe_pose labeler needs mediapipe: pip install 'tokzoo[mediapipe]'") from None
    return pose


def crop_box(box: list[float], shape: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """[x, y, w, h] px grown by ``margin`` x its size on each side, clipped to the (H, W) image -> x0, y0, x1, y1."""
    x, y, w, h = box
    x0, y0 = int(max(np.floor(x - margin * w), 0)), int(max(np.floor(y - margin * h), 0))
    x1, y1 = int(min(np.ceil(x + w + margin * w), shape[1])), int(min(np.ceil(y + h + margin * h), shape[0]))
    return x0, y0, x1, y1


@register_labeler
class MediapipePose(Labeler):
    """rgb (+ optional semseg / instances) -> pose dict, skeleton ``coco17`` (see the module doc)."""

    name = "mediapipe_pose"
    modality = "pose"
    optional = ("semseg", "sam_instances")

    def __init__(
        self,
        device: str = "cpu",
        batch_size: int = 8,
        person_class: int = 0,
        min_area: float = 0.001,
        min_score: float = 0.5,
        margin: float = 0.15,
        min_detection_confidence: float = 0.5,
        model_complexity: int = 1,
    ):
        super().__init__(device=device, batch_size=batch_size)
        if model_complexity != 1:
            raise ConfigError(f"{self.name}: only model_complexity=1 ships inside mediapipe (0 and 2 are downloaded)")
        pose = _mediapipe_pose()
        self.person_class, self.min_area, self.min_score, self.margin = person_class, min_area, min_score, margin
        self.estimator = pose.Pose(
            static_image_mode=True,
            model_complexity=1,
            enable_segmentation=False,
            min_detection_confidence=min_detection_confidence,
        )

    def _label(self, chunk):
        none = [None] * len(chunk["rgb"])
        return [
            self._one(np.ascontiguousarray(image, dtype=np.uint8), semseg, instances)
            for image, semseg, instances in zip(
                chunk["rgb"], chunk.get("semseg", none), chunk.get("sam_instances", none)
            )
        ]

    def _one(self, image: np.ndarray, semseg, instances) -> dict:
        humans = []
        for box in person_boxes(image.shape[:2], semseg, instances, self.person_class, self.min_area):
            x0, y0, x1, y1 = crop_box(box, image.shape[:2], self.margin)
            found = self.estimator.process(np.ascontiguousarray(image[y0:y1, x0:x1])).pose_landmarks
            if found is None:
                continue
            points = [found.landmark[i] for i in BLAZEPOSE_TO_COCO17]
            xy = np.array([[x0 + p.x * (x1 - x0), y0 + p.y * (y1 - y0)] for p in points])
            scores = np.array([p.visibility for p in points])
            inside = (xy[:, 0] >= 0) & (xy[:, 0] < image.shape[1]) & (xy[:, 1] >= 0) & (xy[:, 1] < image.shape[0])
            visibility = np.where(inside, np.where(scores >= self.min_score, 2, 1), 0)
            humans.append(
                {
                    "keypoints_2d": [[float(x), float(y), int(v)] for (x, y), v in zip(xy, visibility)],
                    "box": [float(v) for v in box],
                    "scores": [float(s) for s in scores],
                }
            )
        return {"skeleton": "coco17", "humans": humans}

    def describe(self) -> str:
        return f"{super().describe()} [MediaPipe BlazePose full, bundled]"
