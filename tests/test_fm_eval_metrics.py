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
