"""The MediaPipe pose labeler on the real BlazePose model that ships inside the mediapipe wheel, run on a real
photo (scikit-image's astronaut: one person facing the camera, head near (230, 120) px)."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from tokzoo.errors import ConfigError
from tokzoo.io.formats import from_value
from tokzoo.labelers import create_labeler
from tokzoo.labelers.mediapipe_pose import crop_box

NOSE, LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP = 0, 5, 6, 11, 12


@pytest.fixture(scope="module")
def labeler():
    return create_labeler("mediapipe_pose", batch_size=2)


@pytest.fixture(scope="module")
def astronaut():
    return skimage.data.astronaut()


def test_finds_the_astronaut_upright_and_facing_the_camera(labeler, astronaut):
    (pose,) = labeler.label({"rgb": [astronaut]})
    assert pose["skeleton"] == "coco17" and len(pose["humans"]) == 1
    (human,) = pose["humans"]
    points = np.array(human["keypoints_2d"])
    assert points.shape == (17, 3) and human["box"] == [0.0, 0.0, 512.0, 512.0]
    nose_x, nose_y, nose_v = points[NOSE]
    assert 170 < nose_x < 290 and 60 < nose_y < 180 and nose_v == 2
    assert points[LEFT_SHOULDER, 0] > nose_x > points[RIGHT_SHOULDER, 0]  # her left is the image's right
    assert min(points[LEFT_SHOULDER, 1], points[RIGHT_SHOULDER, 1]) > nose_y + 40  # shoulders below the head
    assert from_value("pose", pose, "test")["humans"][0]["keypoints_2d"] == human["keypoints_2d"]


def test_visibility_follows_the_image_bounds_and_scores(labeler, astronaut):
    (human,) = labeler.label({"rgb": [astronaut]})[0]["humans"]
    for (x, y, v), score in zip(human["keypoints_2d"], human["scores"]):
        inside = 0 <= x < 512 and 0 <= y < 512
        assert v == (0 if not inside else 2 if score >= labeler.min_score else 1)


def test_person_box_from_semseg_moves_keypoints_with_the_person(labeler, astronaut):
    canvas = np.zeros((700, 800, 3), np.uint8)
    canvas[100:612, 150:662] = astronaut
    semseg = np.full((700, 800), 3, np.uint8)
    semseg[100:612, 150:662] = 0  # the person class
    moved, alone = labeler.label({"rgb": [canvas, astronaut], "semseg": [semseg, np.zeros((512, 512), np.uint8)]})
    (human,) = moved["humans"]
    assert human["box"] == [150.0, 100.0, 512.0, 512.0]
    shift = np.array(human["keypoints_2d"])[:, :2] - np.array(alone["humans"][0]["keypoints_2d"])[:, :2]
    face = [NOSE, 1, 2]  # eyes; the shoulders move more: the crop's black margin changes the body's context
    assert np.abs(shift[face] - [150, 100]).max() < 8


def test_no_person_gives_no_humans_and_output_is_deterministic(labeler, astronaut):
    blank = np.zeros((120, 160, 3), np.uint8)
    first = labeler.label({"rgb": [blank, astronaut]})
    assert first[0] == {"skeleton": "coco17", "humans": []}
    assert labeler.label({"rgb": [blank, astronaut]}) == first
    no_person = np.full((512, 512), 3, np.uint8)
    assert labeler.label({"rgb": [astronaut], "semseg": [no_person]})[0]["humans"] == []


def test_crop_box_grows_and_clips():
    assert crop_box([10, 20, 100, 50], (200, 300), 0.1) == (0, 15, 120, 75)
    assert crop_box([250, 150, 50, 50], (200, 300), 0.5) == (225, 125, 300, 200)


def test_models_that_would_be_downloaded_are_refused():
    with pytest.raises(ConfigError, match="only model_complexity=1 ships"):
        create_labeler("mediapipe_pose", model_complexity=2)
    with pytest.raises(ConfigError, match="has no weights"):
        create_labeler("mediapipe_pose:/some/path")
