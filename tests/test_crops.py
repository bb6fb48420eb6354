"""Crop settings are reproducible; every modality stays aligned after crop + resize + flip."""

import numpy as np
import pytest

from tokzoo.crops import COCO17_FLIP_PAIRS, apply_crop, make_crop_settings
from tokzoo.errors import ConfigError, ShapeError

H, W, K = 60, 90, 6
PALETTE = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255]], np.uint8)
DIRECTIONS = np.array(
    [[0.6, 0, -0.8], [-0.6, 0, -0.8], [0, 0.6, -0.8], [0, -0.6, -0.8], [0.8, 0.6, 0], [0, 0, -1]], np.float32
)


def scene():
    """Blocks of 10 x 15 pixels; every modality is a function of the block's class."""
    rows, cols = np.mgrid[0:H, 0:W]
    semseg = ((rows // 10) * 7 + (cols // 15) * 3) % K
    depth = (1.0 + 0.5 * semseg).astype(np.float32)
    depth[semseg == 5] = np.nan  # class 5 has no valid depth
    normals = DIRECTIONS[semseg].copy()
    normals[semseg == 5] = np.nan
    return {
        "rgb": PALETTE[semseg],
        "semseg": semseg.astype(np.uint8),
        "depth": depth,
        "normals": normals,
        "sam_instances": (rows * W + cols + 1).astype(np.uint16),  # a unique id per source pixel
        "edges": ((cols % 15) == 0).astype(np.uint8),
    }


def test_settings_are_reproducible_and_crop_0_is_the_centre_square():
    a = make_crop_settings(H, W, 8, seed=3, key="scene_000001")
    assert a.dtype == np.int32 and a.shape == (8, 5)
    assert np.array_equal(a, make_crop_settings(H, W, 8, seed=3, key="scene_000001"))
    assert not np.array_equal(a, make_crop_settings(H, W, 8, seed=4, key="scene_000001"))
    assert not np.array_equal(a, make_crop_settings(H, W, 8, seed=3, key="scene_000002"))
    assert a[0].tolist() == [0, 15, 60, 60, 0]
    assert make_crop_settings(90, 60, 1, 0, "k")[0].tolist() == [15, 0, 60, 60, 0]


def test_random_crops_respect_bounds_scale_and_ratio():
    rows = make_crop_settings(H, W, 400, seed=0, key="k", scale=(0.3, 0.8), hflip_p=0.5)[1:]
    top, left, h, w, flip = rows.T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= H).all() and (left + w <= W).all()
    area = h * w / (H * W)
    assert area.min() > 0.27 and area.max() < 0.83
    assert (w / h).min() > 0.7 and (w / h).max() < 1.4
    assert 0.4 < flip.mean() < 0.6 and set(np.unique(flip)) == {0, 1}
    assert (make_crop_settings(H, W, 50, 0, "k", hflip_p=0.0)[:, 4] == 0).all()


def test_crop_settings_refuse_bad_parameters():
    with pytest.raises(ConfigError):
        make_crop_settings(0, 10, 2, 0, "k")
    with pytest.raises(ConfigError):
        make_crop_settings(10, 10, 2, 0, "k", scale=(0.5, 1.5))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_image_modalities_stay_aligned_after_crop_and_flip(seed):
    values = scene()
    crops = make_crop_settings(H, W, 6, seed=seed, key="aligned")
    assert crops[1:, 4].any() or seed  # some flips happen
    for row in crops:
        out = apply_crop(values, row, (48, 64))
        sem = out["semseg"]
        assert sem.shape == (48, 64) and sem.dtype == np.uint8
        distance = ((out["rgb"][..., None, :].astype(int) - PALETTE.astype(int)) ** 2).sum(axis=3)
        assert (distance.argmin(axis=2) == sem).mean() > 0.99  # a mirrored or shifted map scores <= 0.94
        valid = sem != 5
        np.testing.assert_array_equal(out["depth"][valid], 1.0 + 0.5 * sem[valid])
        assert np.isnan(out["depth"][~valid]).all()
        expected = DIRECTIONS[sem] * (np.array([-1, 1, 1], np.float32) if row[4] else 1)
        interior = valid & (np.abs(out["normals"] - expected).max(axis=2) < 1e-4)
        assert interior.mean() > 0.7 * valid.mean()
        assert np.isnan(out["normals"][sem == 5]).mean() > 0.7
        assert np.isfinite(out["normals"][valid]).all(axis=1).mean() > 0.9


def test_hflip_negates_normals_x_and_mirrors_every_map():
    values = scene()
    plain = apply_crop(values, [5, 10, 40, 60, 0], (40, 60))
    flipped = apply_crop(values, [5, 10, 40, 60, 1], (40, 60))
    for m in ("rgb", "semseg", "depth", "sam_instances", "edges"):
        np.testing.assert_array_equal(flipped[m], plain[m][:, ::-1], err_msg=m)
    mirrored = plain["normals"][:, ::-1] * np.array([-1, 1, 1], np.float32)
    np.testing.assert_allclose(flipped["normals"], mirrored, atol=1e-6)
    assert (flipped["normals"][..., 0] * plain["normals"][:, ::-1, 0] <= 0).all() or np.isnan(plain["normals"]).any()


def test_depth_stays_metric_and_nan_does_not_bleed():
    values = scene()
    source_values = set(np.unique(values["depth"][np.isfinite(values["depth"])]).tolist())
    for row in make_crop_settings(H, W, 5, seed=9, key="depth"):
        depth = apply_crop({"depth": values["depth"]}, row, 33)["depth"]
        assert depth.dtype == np.float32 and depth.shape == (33, 33)
        assert set(np.unique(depth[np.isfinite(depth)]).tolist()) <= source_values


def _pose(points):
    return {
        "skeleton": "coco17",
        "humans": [
            {
                "keypoints_2d": [[x, y, 2] for x, y in points],
                "keypoints_3d": [[float(i), 0.0, 2.0] for i in range(len(points))],
            }
        ],
    }


def test_keypoints_land_on_the_same_pixel_as_the_image():
    """A keypoint at a pixel centre must land at the centre of where the cropped map shows that pixel."""
    values = scene()
    rng = np.random.default_rng(0)
    src = np.stack([rng.integers(0, W, 17), rng.integers(0, H, 17)], axis=1)
    ids = values["sam_instances"][src[:, 1], src[:, 0]]
    for row in make_crop_settings(H, W, 12, seed=5, key="kp", hflip_p=0.5):
        out = apply_crop(
            {"sam_instances": values["sam_instances"], "pose": _pose(src.astype(float).tolist())},
            row,
            (2 * row[2], 2 * row[3]),
        )
        kps = out["pose"]["humans"][0]["keypoints_2d"]
        order = list(range(17))
        if row[4]:  # left/right joints are swapped on flip
            for a, b in COCO17_FLIP_PAIRS:
                order[a], order[b] = order[b], order[a]
        for j, (x, y, v) in enumerate(kps):
            i = order[j]
            inside = row[1] <= src[i, 0] < row[1] + row[3] and row[0] <= src[i, 1] < row[0] + row[2]
            assert v == (2 if inside else 0)
            if inside:  # the pixel became a 2 x 2 block; the keypoint sits exactly at its centre
                rows, cols = np.nonzero(out["sam_instances"] == ids[i])
                assert len(rows) == 4 and (cols.mean(), rows.mean()) == pytest.approx((x, y), abs=1e-9)
            else:
                assert (x, y) == (0.0, 0.0)
        if row[4]:
            assert out["pose"]["humans"][0]["keypoints_3d"][1][0] == -2.0  # joint 2's 3D point, mirrored


def test_boxes_move_with_the_crop_and_camera_matches_keypoints():
    values = scene()
    sem = values["semseg"]
    boxes = {
        "boxes": [[45.0, 10.0, 60.0, 20.0], [0.0, 50.0, 15.0, 60.0]],
        "classes": [int(sem[10, 45]), int(sem[50, 0])],
        "width": W,
        "height": H,
    }
    cam = {"fx": 80.0, "fy": 80.0, "cx": 44.5, "cy": 29.5, "width": W, "height": H, "cam_to_world": np.eye(4).tolist()}
    point = np.array([0.3, -0.2, 2.0])
    u, v = cam["fx"] * point[0] / point[2] + cam["cx"], cam["fy"] * point[1] / point[2] + cam["cy"]
    for row in ([0, 30, 40, 50, 1], [10, 40, 30, 30, 0]):  # both hold box 0 and the point, not box 1
        out = apply_crop({"semseg": sem, "boxes": boxes, "camera": cam, "pose": _pose([(u, v)] * 17)}, row, (60, 60))
        b = out["boxes"]
        assert b["width"] == 60 and b["height"] == 60 and len(b["boxes"]) == 1 == len(b["classes"])
        x0, y0, x1, y1 = np.round(b["boxes"][0]).astype(int)
        assert x1 > x0 and y1 > y0
        assert (out["semseg"][y0:y1, x0:x1] == b["classes"][0]).mean() > 0.9
        c = out["camera"]
        p = np.linalg.inv(np.asarray(c["cam_to_world"])) @ np.append(point, 1.0)  # world point in the new camera
        projected = (c["fx"] * p[0] / p[2] + c["cx"], c["fy"] * p[1] / p[2] + c["cy"])
        keypoint = out["pose"]["humans"][0]["keypoints_2d"][0]
        assert keypoint[2] == 2
        np.testing.assert_allclose(projected, keypoint[:2], atol=1e-9)


def test_unchanged_and_unknown_modalities_and_bad_crop():
    values = {"palette": {"colors": [[1, 2, 3]]}, "audio": np.zeros(10, np.float32)}
    assert apply_crop(values, [0, 0, 1, 1, 1], 4)["palette"] is values["palette"]
    with pytest.raises(ConfigError):
        apply_crop({"smell": 1}, [0, 0, 1, 1, 0], 4)
    with pytest.raises(ShapeError):
        apply_crop({"rgb": np.zeros((10, 10, 3), np.uint8)}, [5, 5, 10, 10, 0], 4)


def test_read_only_arrays_crop_without_a_torch_warning():
    """Tokenizing photos printed torch's 'NumPy array is not writable' warning from the crops (issue 31)."""
    import warnings

    chw = np.arange(3 * 20 * 30, dtype=np.uint8).reshape(3, 20, 30)
    chw.flags.writeable = False  # as a decoded buffer or shared memory hands it over
    rgb = chw.transpose(1, 2, 0)  # (H, W, 3) whose (C, H, W) form is already contiguous: no copy on the way
    row = np.array([2, 3, 16, 24, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = apply_crop({"rgb": rgb}, row, (8, 12))["rgb"]
    assert out.shape == (8, 12, 3) and not chw.flags.writeable
