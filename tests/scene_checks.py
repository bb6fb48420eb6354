"""Geometry helpers shared by the scene tests (rooms, outdoor, cluttered)."""

import numpy as np


def camera_rays(camera: dict) -> np.ndarray:
    """Camera-frame rays (H, W, 3) with z = 1 through each pixel centre."""
    rows, cols = np.mgrid[0 : camera["height"], 0 : camera["width"]]
    return np.stack(
        [(cols - camera["cx"]) / camera["fx"], (rows - camera["cy"]) / camera["fy"], np.ones(rows.shape)], -1
    )


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """``mask`` (H, W) bool grown by ``r`` pixels in every direction (wrapping at the borders)."""
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out |= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out


SCENE_ARRAYS = {  # name -> (trailing shape after (H, W), dtype)
    "rgb": ((3,), "|u1"),
    "depth": ((), "<f4"),
    "normals": ((3,), "<f4"),
    "semseg": ((), "|u1"),
    "sam_instances": ((), "<u2"),
    "edges": ((), "|u1"),
}


def assert_scene_contract(scene: dict, size: tuple[int, int], sky_class: int, facing_tolerance: float) -> None:
    """Shapes and dtypes of every array; NaN depth and normals exactly on the sky; positive depth elsewhere; unit
    normals facing the camera (dot with the view ray below ``facing_tolerance``)."""
    assert {k: (scene[k].shape, scene[k].dtype.str) for k in SCENE_ARRAYS} == {
        k: ((*size, *trailing), dtype) for k, (trailing, dtype) in SCENE_ARRAYS.items()
    }
    depth, normals = scene["depth"], scene["normals"]
    sky = scene["semseg"] == sky_class
    assert np.array_equal(np.isnan(depth), sky)
    assert np.array_equal(np.isnan(normals), np.repeat(sky[..., None], 3, axis=2))  # all three channels
    assert (depth[~sky] > 0).all()
    assert np.allclose(np.linalg.norm(normals[~sky], axis=1), 1, atol=1e-4)
    assert ((normals * camera_rays(scene["camera"])).sum(-1)[~sky] < facing_tolerance).all()
