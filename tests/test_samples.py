"""Bundled real samples: load offline, meet the contract, and the stereo depth agrees with its disparity."""

import sys

import numpy as np
import pytest

from tokzoo.datasets.samples import SAMPLES, list_samples, load_sample
from tokzoo.errors import ConfigError, TokzooError


def test_every_sample_loads_offline_and_meets_the_contract():
    names = list_samples()
    assert names == sorted(names) and len(names) >= 12
    for name in names:
        sample = load_sample(name)
        assert tuple(sample) == SAMPLES[name].modalities, name
        if "rgb" in sample:
            rgb = sample["rgb"]
            assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.std() > 5, name
        if "depth" in sample:
            depth = sample["depth"]
            assert depth.dtype == np.float32 and depth.ndim == 2 and np.nanmin(depth) > 0, name


def test_motorcycle_depth_reprojects_onto_the_ground_truth_disparity():
    import skimage.data

    _, _, disparity = skimage.data.stereo_motorcycle()
    left, right = load_sample("motorcycle"), load_sample("motorcycle_right")
    depth, cam_l, cam_r = left["depth"], left["camera"], right["camera"]
    assert depth.shape == (500, 741) and 1.5 < np.nanmin(depth) and np.nanmax(depth) < 6.0
    assert np.array_equal(np.isnan(depth), ~np.isfinite(disparity))
    v, u = np.nonzero(np.isfinite(depth))
    z = depth[v, u].astype(np.float64)
    x = (u - cam_l["cx"]) * z / cam_l["fx"]  # left camera frame = world frame
    x_right = x - np.asarray(cam_r["cam_to_world"])[0, 3]
    u_right = cam_r["fx"] * x_right / z + cam_r["cx"]
    np.testing.assert_allclose(u - u_right, disparity[v, u], atol=1e-3)


def test_unknown_sample_and_missing_package_are_clear_errors(monkeypatch):
    with pytest.raises(ConfigError, match="available"):
        load_sample("lena")
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import now fails
    with pytest.raises(TokzooError, match="scikit-learn.*tokzoo\\[samples\\]"):
        load_sample("china")
