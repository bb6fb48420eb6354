"""Classical pseudo-labelers: exact answers on synthetic inputs, accuracy on the scenes, output contracts."""

from __future__ import annotations

import numpy as np
import pytest
import skimage  # noqa: E402,F401  (dev extra: tokzoo[samples])

from tokzoo.datasets import generate_scene
from tokzoo.errors import ConfigError, InvalidValueError
from tokzoo.io.formats import from_value
from tokzoo.labelers import DEFAULTS, LABELERS, create_labeler
from tokzoo.labelers.image_statistics import metadata, rgb_statistics
from tokzoo.labelers.kmeans import palette
from tokzoo.labelers.metrics import angular_errors, edge_counts, f1, segmentation_accuracy
from tokzoo.labelers.normals_from_depth import intrinsics, normals_from_depth
from tokzoo.tokenizers.structured import DEFAULT_KEYS, MetadataTokenizer, PaletteTokenizer

CAMERA = {"fx": 100.0, "fy": 110.0, "cx": 31.5, "cy": 23.5}


@pytest.fixture(scope="module")
def scenes():
    return [generate_scene(i, seed=7, size=96) for i in range(3)]


def plane_depth(normal, offset, camera=CAMERA, shape=(48, 64)):
    """z-depth of the plane n . P = offset seen through ``camera`` (n facing the camera)."""
    v, u = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    rays = np.stack([(u - camera["cx"]) / camera["fx"], (v - camera["cy"]) / camera["fy"], np.ones_like(u)], -1)
    return (offset / (rays @ np.asarray(normal))).astype(np.float32)


def test_normals_of_a_tilted_plane_are_exact_and_face_the_camera():
    n = np.array([0.3, -0.4, -1.0])
    n /= np.linalg.norm(n)
    out = normals_from_depth(plane_depth(n, -3.0), CAMERA)
    assert out.dtype == np.float32 and out.shape == (48, 64, 3)
    assert np.isfinite(out).all()
    assert angular_errors(out, np.broadcast_to(n, out.shape).astype(np.float32)).max() < 0.05
    assert (out[..., 2] < 0).all()


def test_normals_are_nan_at_invalid_depth_and_at_depth_edges_only():
    depth = np.full((40, 40), 2.0, np.float32)
    depth[:, 20:] = 5.0  # a fronto-parallel step: both sides stay (0, 0, -1)
    depth[5, 5] = np.nan
    out = normals_from_depth(depth, CAMERA)
    assert np.isnan(out[5, 5]).all()
    assert np.allclose(out[20, 10], [0, 0, -1], atol=1e-5) and np.allclose(out[20, 30], [0, 0, -1], atol=1e-5)
    assert np.allclose(out[20, 19], [0, 0, -1], atol=1e-5)  # edge pixels take their own side's difference
    depth[:, 20] = np.nan  # an isolated valid column between a hole and a jump has no column tangent
    depth[:, 21] = 9.0
    assert np.isnan(normals_from_depth(depth, CAMERA)[20, 21]).all()


def test_fov_guess_and_scene_accuracy(scenes):
    fx, fy, cx, cy = intrinsics(48, 64, None, 90.0)
    assert fx == fy == pytest.approx(32.0) and (cx, cy) == (31.5, 23.5)
    errors = np.concatenate([angular_errors(normals_from_depth(s["depth"], s["camera"]), s["normals"]) for s in scenes])
    assert np.median(errors) < 0.5 and errors.mean() < 3.0
    labelled = create_labeler("normals_from_depth").label({"depth": [s["depth"] for s in scenes]})
    assert all(np.isnan(x).all(-1).sum() >= np.isnan(s["depth"]).sum() for x, s in zip(labelled, scenes))
    assert np.allclose(from_value("normals", labelled[0], "x"), labelled[0], atol=1e-6, equal_nan=True)


def test_canny_finds_a_square_and_scores_on_scenes(scenes):
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[16:48, 16:48] = 200
    target = np.zeros((64, 64), np.uint8)
    target[16:48, 16] = target[16:48, 47] = target[16, 16:48] = target[47, 16:48] = 1
    (edges,) = create_labeler("canny").label({"rgb": [rgb]})
    assert edges.dtype == np.uint8 and set(np.unique(edges)) == {0, 1}
    assert f1(*edge_counts(edges, target, 1.5))[2] > 0.9
    totals = np.sum(
        [
            edge_counts(e, s["edges"], 2)
            for e, s in zip(create_labeler("canny").label({"rgb": [s["rgb"] for s in scenes]}), scenes)
        ],
        axis=0,
    )
    assert f1(*totals)[2] > 0.45


def test_palette_recovers_flat_colours_deterministically():
    rng = np.random.default_rng(0)
    colours = np.array([[200, 30, 30], [20, 40, 220], [240, 240, 240]])
    index = np.repeat([0, 1, 2], [2000, 1200, 896])
    rgb = np.clip(colours[index] + rng.normal(0, 3, (len(index), 3)), 0, 255).astype(np.uint8).reshape(64, 64, 3)
    out = palette(rgb)
    assert len(out["colors"]) == 3
    assert np.abs(np.array(out["colors"]) - colours).max() <= 2
    assert np.allclose(out["weights"], [2000 / 4096, 1200 / 4096, 896 / 4096], atol=0.01)
    assert palette(rgb) == out and len(palette(np.full((8, 8, 3), 9, np.uint8))["colors"]) == 1
    assert PaletteTokenizer().decode(PaletteTokenizer().encode(out))[0]["colors"] == out["colors"]


def test_palette_distances_equal_the_reduction_bit_for_bit():
    # the channel sums give the labeler's old values exactly, so palettes do not change with the speed-up
    from tokzoo.labelers.kmeans import _squared_distances

    rng = np.random.default_rng(3)
    pixels, centres = rng.integers(0, 256, (4096, 3)).astype(np.float64), rng.random((7, 3)) * 255
    assert np.array_equal(_squared_distances(pixels, centres), ((pixels[:, None] - centres[None]) ** 2).sum(-1))


def test_metadata_statistics_have_known_values_and_tokenize(scenes):
    gray = rgb_statistics(np.full((10, 20, 3), 77, np.uint8))
    assert gray == {
        "original_width": 20,
        "original_height": 10,
        "brightness": pytest.approx(77),
        "contrast": 0,
        "saturation": 0,
        "colorfulness": 0,
        "entropy": 0,
    }
    red = rgb_statistics(np.tile(np.array([255, 0, 0], np.uint8), (4, 4, 1)))
    assert red["colorfulness"] == pytest.approx(0.3 * np.hypot(255, 127.5)) and red["saturation"] == 1
    halves = np.zeros((4, 4, 3), np.uint8)
    halves[2:] = 255
    assert rgb_statistics(halves)["entropy"] == pytest.approx(1.0)
    s = scenes[0]
    full = metadata(s["rgb"], s["semseg"], s["sam_instances"], s["normals"], s["depth"], s["pose"])
    assert set(full) <= {k["name"] for k in DEFAULT_KEYS} and len(full) == 14  # all but num_objects
    assert full["num_instances"] == len(np.unique(s["sam_instances"])) - 1
    assert full["walkability"] == pytest.approx((s["semseg"] == 0).mean())
    assert full["num_humans"] == len(s["pose"]["humans"])
    assert 0 <= full["geometric_complexity"] <= 1 and 0 < full["occlusion_score"] < 1
    assert MetadataTokenizer().encode([full]).shape == (1, 30)
    assert set(create_labeler("metadata").label({"rgb": [s["rgb"]]})[0]) == set(gray)


def test_superpixels_are_a_crude_but_useful_segmentation(scenes):
    segs = create_labeler("slic").label({"rgb": [s["rgb"] for s in scenes]})
    for seg, s in zip(segs, scenes):
        assert seg.dtype == np.uint16 and seg.min() >= 1 and 10 < seg.max() < 200
        assert segmentation_accuracy(seg, s["semseg"]) > 0.85
        assert segmentation_accuracy(np.ones_like(seg), s["semseg"]) < 0.8


def test_registry_batching_and_errors(scenes):
    assert set(DEFAULTS.values()) <= set(LABELERS)
    rgb = [s["rgb"] for s in scenes]
    assert all(
        np.array_equal(a, b)
        for a, b in zip(
            create_labeler("canny", batch_size=1).label({"rgb": rgb}),
            create_labeler("canny", batch_size=3).label({"rgb": rgb}),
        )
    )
    with pytest.raises(ConfigError, match="unknown labeler 'nope'"):
        create_labeler("nope")
    with pytest.raises(ConfigError, match="has no weights"):
        create_labeler("canny:/some/dir")
    with pytest.raises(InvalidValueError, match="needs depth"):
        create_labeler("normals_from_depth").label({"rgb": rgb})
    with pytest.raises(ConfigError, match="batch_size"):
        create_labeler("canny", batch_size=0)
