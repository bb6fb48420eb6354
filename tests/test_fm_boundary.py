"""Semseg boundary F1: the structure-sensitive metric beside per-pixel mIoU in ``tokzoo fm eval``."""

import numpy as np

from tokzoo.tokenizers.evaluation.metrics import boundary_f1, label_boundaries, mean_iou


def halves(split=16, size=32):
    x = np.zeros((1, size, size), np.uint8)
    x[:, :, split:] = 1
    return x


def test_boundaries_and_tolerance():
    truth = halves()
    assert label_boundaries(truth[0]).sum() == 2 * 32  # both sides of the vertical edge
    assert boundary_f1(truth, truth) == 1.0
    assert boundary_f1(truth, halves(split=17)) == 1.0  # one pixel off: within the tolerance
    assert boundary_f1(truth, halves(split=20)) == 0.0
    assert boundary_f1(truth, np.zeros_like(truth)) == 0.0  # no boundary predicted
    assert boundary_f1(np.zeros_like(truth), np.zeros_like(truth)) == 1.0
    ignored = truth.copy()
    ignored[:, :, 14:18] = 255  # a boundary inside the ignore region does not count
    assert not label_boundaries(ignored[0]).any() and boundary_f1(ignored, halves(split=15)) == 1.0


def test_structure_separates_predictions_that_per_pixel_scores_do_not():
    truth = halves()
    rng = np.random.default_rng(0)
    noisy = truth.copy()
    flip = rng.random(truth.shape) < 0.06  # scattered wrong pixels: 6% of the area
    noisy[flip] = 1 - noisy[flip]
    shifted = halves(split=18)  # a clean layout whose edge sits 2 px off: 6.25% of the area wrong
    assert abs(mean_iou(truth, noisy) - mean_iou(truth, shifted)) < 0.03
    assert boundary_f1(truth, shifted, tolerance=2) > 0.9 and boundary_f1(truth, noisy, tolerance=2) < 0.7
