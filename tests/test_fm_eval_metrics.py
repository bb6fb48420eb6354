"""fm eval's new directions: edges (F1 at 1-px tolerance vs the per-pixel majority map, the empty map on sparse
edges) and dense feature maps (mean cosine vs the per-position mean feature)."""

import numpy as np
import pytest

from tokzoo.fm.evaluate import METRICS, score, training_prior


def _edges(rows):
    m = np.zeros((16, 16), np.uint8)
    m[rows, 2:14] = 1
    return m


def test_edges_score_f1_with_one_pixel_of_tolerance_and_the_prior_is_empty():
    truths = [_edges([4]), _edges([8]), _edges([12])]
    assert METRICS["edges"] == ("edge_f1_1px", "higher")
    prior = training_prior("edges", truths)
    assert not prior.any()  # no pixel is an edge in most images
    assert score("edges", truths, [prior] * 3) == 0.0
    assert score("edges", truths, truths) == 1.0
    shifted = [_edges([5]), _edges([9]), _edges([13])]  # one pixel off: within tolerance
    assert score("edges", truths, shifted) == 1.0
    far = [_edges([7]), _edges([11]), _edges([1])]
    assert score("edges", truths, far) == 0.0
    half = [_edges([4]), _edges([1]), _edges([12])]
    assert score("edges", truths, half) == pytest.approx(2 / 3)


def test_features_score_cosine_and_the_prior_is_the_mean_map():
    rng = np.random.default_rng(0)
    truths = [rng.standard_normal((4, 4, 8)).astype(np.float32) for _ in range(3)]
    prior = training_prior("dense_features", truths)
    assert prior.shape == (4, 4, 8) and np.allclose(prior, np.mean(truths, 0))
    assert score("dense_features", truths, truths) == pytest.approx(1.0)
    assert score("dense_features", truths, [2 * t for t in truths]) == pytest.approx(1.0)  # scale-free
    assert score("dense_features", truths, [-t for t in truths]) == pytest.approx(-1.0)
    assert -1.0 < score("dense_features", truths, [prior] * 3) < 1.0


def _pose(*centres, width=64, height=64):
    """One human per (x, y) centre: 17 joints on a small vertical line, all visible."""
    joints = lambda x, y: [[x, y + j, 2] for j in range(17)]  # noqa: E731
    return {
        "skeleton": "coco17",
        "width": width,
        "height": height,
        "humans": [{"keypoints_2d": joints(x, y)} for x, y in centres],
    }


def test_human_pose_error_is_to_the_closest_predicted_human_and_the_prior_is_the_mean_pose():
    assert METRICS["human_pose"] == ("keypoint_error_px", "lower")
    truths = [_pose((10, 10)), _pose((30, 20), (50, 20))]
    assert score("human_pose", truths, truths) == 0.0
    assert score("human_pose", truths, [_pose((13, 14)), _pose((50, 20), (30, 20))]) == pytest.approx(5 / 3)
    nothing = [_pose(), None]  # no human predicted; an undecodable prediction (None)
    assert score("human_pose", truths, nothing) == pytest.approx(np.hypot(64, 64))
    halved = [  # the same poses in a 32 x 32 frame: the error is measured in the truth's frame
        {
            **t,
            "width": 32,
            "height": 32,
            "humans": [{"keypoints_2d": (np.asarray(h["keypoints_2d"]) * [0.5, 0.5, 1]).tolist()} for h in t["humans"]],
        }
        for t in truths
    ]
    assert score("human_pose", truths, halved) == pytest.approx(0.0)
    prior = training_prior("human_pose", truths)
    (human,) = prior["humans"]
    assert np.allclose(np.asarray(human["keypoints_2d"])[0], [30, 50 / 3, 2])  # mean of the three humans' joint 0
    assert 0 < score("human_pose", truths, [prior] * 2) < np.hypot(64, 64)
    unlabelled = {"skeleton": "coco17", "width": 64, "height": 64, "humans": [{"keypoints_2d": [[0, 0, 0]] * 17}]}
    assert np.isnan(score("human_pose", [unlabelled], [prior]))  # no labelled joint: nothing to score
