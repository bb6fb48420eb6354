"""Pose dicts under crops (boxes, intrinsics, SMPL mirroring on hflip) and the pose file format's SMPL fields."""

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tokzoo.crops import (
    MIRROR_SIGNS,
    SMPL_BODY_FLIP_PAIRS,
    SMPL_FLIP_PAIRS,
    SMPL_JOINT_NAMES,
    apply_crop,
    make_crop_settings,
)
from tokzoo.errors import InvalidValueError, ShapeError
from tokzoo.io import read_modality, write_modality

H, W = 60, 90
M = np.diag([-1.0, 1.0, 1.0])
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)  # SMPL's kintree
K = {"fx": 100.0, "fy": 100.0, "cx": 45.0, "cy": 30.0}
ROWS = ([0, 0, H, W, 1], [5, 20, 40, 50, 0], [5, 20, 40, 50, 1], [12, 3, 31, 77, 1])
SIZES = ((H, W), (48, 64), (48, 64), (30, 90))  # the last one non-uniform: fx and fy scale differently


def rest_joints() -> np.ndarray:
    """A left/right symmetric SMPL rest skeleton (metres): right joint = M @ left joint, centre joints at x = 0."""
    rng = np.random.default_rng(1)
    joints = np.zeros((24, 3))
    for j in range(1, 24):
        joints[j] = joints[PARENTS[j]] + rng.normal(0, 0.1, 3)
    for j, name in enumerate(SMPL_JOINT_NAMES):
        if name.startswith("right_"):
            joints[j] = M @ joints[SMPL_JOINT_NAMES.index("left_" + name[6:])]
        elif not name.startswith("left_"):
            joints[j, 0] = 0.0
    return joints


REST = rest_joints()


def posed(human: dict) -> np.ndarray:
    """Forward kinematics of REST with the human's rotations, in the camera frame (24, 3)."""
    world = [np.array(human["global_orient"])]
    points = [REST[0] + np.array(human["translation"])]
    body = np.array(human["body_pose"])
    for j in range(1, 24):
        parent = PARENTS[j]
        world.append(world[parent] @ body[j - 1])
        points.append(points[parent] + world[parent] @ (REST[j] - REST[parent]))
    return np.array(points)


def project(point, k) -> tuple[float, float]:
    x, y, z = point
    return k["fx"] * x / z + k["cx"], k["fy"] * y / z + k["cy"]


def smpl_pose(seed: int = 0, box=(30.0, 10.0, 30.0, 40.0)) -> dict:
    rng = np.random.default_rng(seed)
    human = {
        "box": list(box),
        "global_orient": Rotation.random(random_state=seed).as_matrix().tolist(),
        "body_pose": Rotation.random(23, random_state=seed + 1).as_matrix().tolist(),
        "betas": rng.normal(size=10).tolist(),
        "weak_perspective": [0.9, 0.05, -0.1],
        "translation": [0.25, -0.125, 4.0],
    }
    joints = posed(human)
    human["keypoints_3d"] = joints.tolist()
    uv = np.round(np.array([project(p, K) for p in joints]) * 8) / 8  # multiples of 1/8: flips are exact
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < W - 1) & (uv[:, 1] >= 0) & (uv[:, 1] < H - 1)
    human["keypoints_2d"] = [[u, v, 2] if ok else [0.0, 0.0, 0] for (u, v), ok in zip(uv.tolist(), inside)]
    return {"skeleton": "smpl", "width": W, "height": H, "intrinsics": dict(K), "humans": [human]}


def by_hand(box, row, size) -> list[float]:
    """The box's corners through crop, resize, flip and clamp, computed from scratch."""
    top, left, h, w, flip = row
    (oh, ow) = size
    xs = [(box[0] - left) * ow / w, (box[0] + box[2] - left) * ow / w]
    ys = [(box[1] - top) * oh / h, (box[1] + box[3] - top) * oh / h]
    if flip:
        xs = [ow - x for x in xs]
    x0, x1 = np.clip(sorted(xs), 0, ow)
    y0, y1 = np.clip(ys, 0, oh)
    return [x0, y0, x1 - x0, y1 - y0]


def test_smpl_pairs_follow_smpls_joint_names():
    left = [j for j, n in enumerate(SMPL_JOINT_NAMES) if n.startswith("left_")]
    assert len(SMPL_JOINT_NAMES) == 24 and len(left) == 9
    assert sorted(SMPL_FLIP_PAIRS) == [(j, SMPL_JOINT_NAMES.index("right_" + SMPL_JOINT_NAMES[j][5:])) for j in left]
    assert SMPL_BODY_FLIP_PAIRS == tuple((a - 1, b - 1) for a, b in SMPL_FLIP_PAIRS)
    assert (SMPL_JOINT_NAMES[18], SMPL_JOINT_NAMES[19]) == ("left_elbow", "right_elbow")


def test_human_boxes_follow_crop_resize_and_flip_like_the_boxes_modality():
    boxes = [[30.0, 10.0, 30.0, 40.0], [60.5, 30.25, 19.5, 15.75], [0.0, 0.0, 4.0, 3.0]]
    pose = {"skeleton": "coco17", "humans": [{"box": b, "keypoints_2d": [[b[0] + 1, b[1] + 1, 2]] * 17} for b in boxes]}
    xyxy = {"boxes": [[x, y, x + w, y + h] for x, y, w, h in boxes], "classes": [0, 1, 2], "width": W, "height": H}
    for row, size in zip(ROWS, SIZES):
        out = apply_crop({"pose": pose, "boxes": xyxy}, row, size)
        kept = [
            b
            for b in boxes
            if b[0] + b[2] >= row[1] and b[0] <= row[1] + row[3] and b[1] + b[3] >= row[0] and b[1] <= row[0] + row[2]
        ]
        got = [h["box"] for h in out["pose"]["humans"]]
        assert len(got) == len(kept) == len(out["boxes"]["boxes"])
        for box, source, (x0, y0, x1, y1) in zip(got, kept, out["boxes"]["boxes"]):
            np.testing.assert_allclose(box, by_hand(source, row, size), atol=1e-9)
            np.testing.assert_allclose(box, [x0, y0, x1 - x0, y1 - y0], atol=1e-4)  # boxes modality: float32
        assert (out["pose"]["width"], out["pose"]["height"]) == (size[1], size[0])
    out = apply_crop({"pose": pose}, [5, 20, 40, 50, 1], (48, 64))["pose"]
    assert len(out["humans"]) == 2  # the box in the top-left corner does not touch the crop: dropped


def test_smpl_flip_twice_gives_back_the_original_exactly():
    pose = read_modality("pose", "p.json", write_modality("pose", smpl_pose(), ".json"))
    once = apply_crop({"pose": pose}, [0, 0, H, W, 1], (H, W))["pose"]
    assert once["humans"][0]["global_orient"] != pose["humans"][0]["global_orient"]
    assert once["humans"][0]["translation"] == [-0.25, -0.125, 4.0]
    assert once["humans"][0]["weak_perspective"] == [0.9, -0.05, -0.1]
    assert once["intrinsics"]["cx"] == W - 1 - K["cx"]  # pixel-centre coordinates: x -> W - 1 - x
    twice = apply_crop({"pose": once}, [0, 0, H, W, 1], (H, W))["pose"]
    assert twice == pose


def test_flipped_rotations_are_proper_and_a_turn_about_the_vertical_axis_reverses():
    out = apply_crop({"pose": smpl_pose(3)}, [5, 20, 40, 50, 1], (48, 64))["pose"]["humans"][0]
    rotations = np.array([out["global_orient"], *out["body_pose"]])
    np.testing.assert_allclose(
        rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rotations.shape), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-12)
    theta = 0.6  # a person turning by theta about the vertical (camera y) axis turns by -theta in the mirror
    turn = Rotation.from_rotvec([0, theta, 0]).as_matrix()
    np.testing.assert_allclose(turn * MIRROR_SIGNS, Rotation.from_rotvec([0, -theta, 0]).as_matrix(), atol=1e-15)
    facing = turn @ [0, 0, -1.0]  # facing the camera, then turned: looks towards -x
    assert facing[0] < -0.5 and ((turn * MIRROR_SIGNS) @ [0, 0, -1.0])[0] > 0.5  # its mirror image looks towards +x
    v = np.array([0.3, -0.7, 1.1])
    np.testing.assert_allclose(
        Rotation.from_rotvec(v).as_matrix() * MIRROR_SIGNS,
        Rotation.from_rotvec(v * [1, -1, -1]).as_matrix(),
        atol=1e-15,
    )
    np.testing.assert_array_equal(M @ turn @ M, turn * MIRROR_SIGNS)


def test_left_elbow_rotation_moves_to_the_right_elbow_mirrored():
    pose = smpl_pose()
    human = pose["humans"][0]
    human["body_pose"] = np.broadcast_to(np.eye(3), (23, 3, 3)).tolist()
    bend = Rotation.from_rotvec([0.2, 0.5, 0.9]).as_matrix()
    human["body_pose"][SMPL_JOINT_NAMES.index("left_elbow") - 1] = bend.tolist()
    out = np.array(apply_crop({"pose": pose}, [0, 0, H, W, 1], (H, W))["pose"]["humans"][0]["body_pose"])
    right = SMPL_JOINT_NAMES.index("right_elbow") - 1
    np.testing.assert_allclose(out[right], Rotation.from_rotvec([0.2, -0.5, -0.9]).as_matrix(), atol=1e-12)
    others = np.delete(out, right, axis=0)
    np.testing.assert_array_equal(others, np.broadcast_to(np.eye(3), others.shape))


@pytest.mark.parametrize("row,size", list(zip(ROWS, SIZES)))
def test_flipped_smpl_poses_the_mirror_image_and_stays_consistent_with_its_camera(row, size):
    """Forward kinematics of the output parameters (a symmetric skeleton) give the output keypoints_3d, which
    project with the output intrinsics onto the output keypoints_2d; the translation's projection is the
    crop-transformed projection of the input translation."""
    pose = smpl_pose(7)
    source = pose["humans"][0]
    out = apply_crop({"pose": pose}, row, size)["pose"]
    human, k = out["humans"][0], out["intrinsics"]
    np.testing.assert_allclose(posed(human), human["keypoints_3d"], atol=1e-12)
    if row[4]:
        swapped = list(range(24))
        for a, b in SMPL_FLIP_PAIRS:
            swapped[a], swapped[b] = b, a
        np.testing.assert_allclose(human["keypoints_3d"], (np.array(source["keypoints_3d"]) @ M)[swapped], atol=1e-15)
    visible = 0
    for (u, v, vis), point in zip(human["keypoints_2d"], human["keypoints_3d"]):
        if vis:
            visible += 1
            np.testing.assert_allclose((u, v), project(point, k), atol=0.1)  # keypoints_2d were rounded to 1/8 px
    assert visible >= 3
    u, v = project(source["translation"], K)
    top, left, h, w, flip = row
    expected = ((u + 0.5 - left) * size[1] / w, (v + 0.5 - top) * size[0] / h)
    expected = (size[1] - expected[0] if flip else expected[0]) - 0.5, expected[1] - 0.5
    np.testing.assert_allclose(project(human["translation"], k), expected, atol=1e-9)


def test_random_crops_keep_coco17_keypoints_inside_their_human_box():
    rng = np.random.default_rng(2)
    box = [20.0, 8.0, 40.0, 44.0]
    points = [[box[0] + rng.uniform(0.5, 39.5), box[1] + rng.uniform(0.5, 43.5), 2] for _ in range(17)]
    pose = {"skeleton": "coco17", "humans": [{"box": box, "keypoints_2d": points}]}
    for row in make_crop_settings(H, W, 16, seed=4, key="pose"):
        out = apply_crop({"pose": pose}, row, (32, 48))["pose"]
        for human in out["humans"]:
            x, y, w, h = human["box"]
            for px, py, vis in human["keypoints_2d"]:
                assert not vis or (x - 0.5 <= px <= x + w + 0.5 and y - 0.5 <= py <= y + h + 0.5)


def hmr2_dict() -> dict:
    pose = smpl_pose()
    for key in ("keypoints_2d", "keypoints_3d"):
        del pose["humans"][0][key]
    return pose


def test_file_format_takes_an_hmr2_dict_without_keypoints():
    pose = hmr2_dict()
    assert read_modality("pose", "p.json", write_modality("pose", pose, ".json")) == pose
    pose["humans"][0]["keypoints_2d"] = []  # what hmr2_smpl writes without an SMPL body model
    assert read_modality("pose", "p.json", write_modality("pose", pose, ".json")) == pose
    with pytest.raises(ShapeError):  # coco17 keeps requiring its keypoints
        read_modality("pose", "p.json", json.dumps({"skeleton": "coco17", "humans": [{"box": [0, 0, 1, 1]}]}).encode())


MALFORMED = [
    ("body_pose", np.zeros((22, 3, 3)).tolist(), ShapeError, "23 x 3 x 3"),
    ("global_orient", [[1, 0], [0, 1], [0, 0]], ShapeError, "global_orient"),
    ("global_orient", [[1, 0, 0], [0, 1], [0, 0, 1]], ShapeError, "ragged"),
    ("betas", [0.0] * 9 + [float("nan")], InvalidValueError, "finite"),
    ("betas", ["a"] * 10, ShapeError, "non-numeric"),
    ("translation", [0.0, 1.0], ShapeError, "translation"),
    ("box", [0.0, 0.0, 10.0], ShapeError, "box"),
    ("box", [0.0, 0.0, -1.0, 5.0], InvalidValueError, "w, h >= 0"),
    ("intrinsics", {"fx": 0.0, "fy": 1.0, "cx": 0.0, "cy": 0.0}, InvalidValueError, "fx, fy"),
]


@pytest.mark.parametrize("key,value,error,words", MALFORMED, ids=[f"{m[0]}-{m[3]}" for m in MALFORMED])
def test_file_format_refuses_malformed_smpl_fields_in_one_line(key, value, error, words):
    pose = hmr2_dict()
    if key == "intrinsics":
        pose["intrinsics"] = value
    else:
        pose["humans"][0][key] = value
    with pytest.raises(error) as info:
        read_modality("pose", "bad.pose.json", json.dumps(pose).encode())
    message = str(info.value)
    assert message.startswith("bad.pose.json: ") and words in message and "\n" not in message
