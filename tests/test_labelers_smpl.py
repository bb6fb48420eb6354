"""The ``hmr2_smpl`` labeler (HMR 2.0 architecture) on a tiny randomly initialised model of the same layout,
saved as safetensors and as a weights_only-readable .pt and loaded back through ``create_labeler``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import tokzoo
from tokzoo.datasets import generate_scene
from tokzoo.errors import CheckpointError
from tokzoo.io.formats import from_value, write_modality
from tokzoo.labelers import create_labeler
from tokzoo.labelers.hmr2 import crop_person
from tokzoo.labelers.hmr2_network import HMR2, MEAN_TOKEN_DIM, RELEASED, HMR2Config, rot6d_to_matrix
from tokzoo.labelers.vitpose import person_boxes

TINY = HMR2Config(
    image_size=(64, 48),
    embed_dim=32,
    depth=2,
    heads=2,
    mlp_dim=64,
    decoder_dim=24,
    decoder_depth=2,
    decoder_heads=2,
    decoder_dim_head=16,
    decoder_mlp_dim=40,
)
HEADS = {"heads": 2, "decoder_heads": 2}  # head counts are not in the tensor shapes
rng = np.random.default_rng(0)
IMAGES = [rng.integers(0, 256, (40, 60, 3), dtype=np.uint8) for _ in range(3)] + [
    rng.integers(0, 256, (50, 30, 3), dtype=np.uint8)
]


def tiny_state(config: HMR2Config = TINY) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = HMR2(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
        model.smpl_head.deccam.weight.mul_(0.1)
        model.smpl_head.init_body_pose.normal_()
        model.smpl_head.init_betas.normal_()
        model.smpl_head.init_cam.copy_(torch.tensor([[0.9, 0.05, -0.1]]))
    return {k: v.contiguous() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("hmr2")
    state = tiny_state()
    save_file(state, str(root / "hmr2.safetensors"))
    extra = {"smpl.shapedirs": torch.zeros(5, 3, 10), "discriminator.D_conv1.weight": torch.zeros(2)}  # ignored
    torch.save({"state_dict": {**state, **extra}}, root / "hmr2.pt")  # Lightning-style nesting, tensors only
    return root


def rotations_ok(r: np.ndarray) -> bool:
    eye = np.broadcast_to(np.eye(3), r.shape)
    return np.allclose(r @ np.swapaxes(r, -1, -2), eye, atol=1e-5) and np.allclose(np.linalg.det(r), 1, atol=1e-5)


def test_module_keys_are_the_official_checkpoint_names():
    """Keys and shapes read off the public 4D-Humans code (hmr2/models/backbones/vit.py: ViT(img_size=(256, 192),
    patch_size=16, embed_dim=1280, depth=32, num_heads=16, mlp_ratio=4, qkv_bias=True), PatchEmbed.proj,
    Block.norm1/attn.qkv/attn.proj/norm2/mlp.fc1/fc2, last_norm; heads/smpl_head.py: transformer, decpose,
    decshape, deccam and the init_* buffers; components/pose_transformer.py: TransformerDecoder.to_token_embedding
    / pos_embedding / transformer.layers[i] = [PreNorm(Attention), PreNorm(CrossAttention), PreNorm(FeedForward)],
    Attention.to_qkv, CrossAttention.to_kv / to_q, to_out = Sequential(Linear, Dropout), FeedForward.net =
    Sequential(Linear, GELU, Dropout, Linear, Dropout); config hmr_vit_transformer.yaml: depth 6, heads 8,
    dim_head 64, mlp_dim 1024, context_dim 1280, head dim 1024)."""
    with torch.device("meta"):
        state = HMR2(RELEASED).state_dict()
    official = {
        "backbone.pos_embed": (1, 16 * 12 + 1, 1280),
        "backbone.patch_embed.proj.weight": (1280, 3, 16, 16),
        "backbone.blocks.0.norm1.weight": (1280,),
        "backbone.blocks.31.attn.qkv.weight": (3840, 1280),
        "backbone.blocks.31.attn.qkv.bias": (3840,),
        "backbone.blocks.7.attn.proj.weight": (1280, 1280),
        "backbone.blocks.0.mlp.fc1.weight": (5120, 1280),
        "backbone.blocks.0.mlp.fc2.bias": (1280,),
        "backbone.last_norm.bias": (1280,),
        "smpl_head.transformer.to_token_embedding.weight": (1024, 1),
        "smpl_head.transformer.pos_embedding": (1, 1, 1024),
        "smpl_head.transformer.transformer.layers.0.0.norm.weight": (1024,),
        "smpl_head.transformer.transformer.layers.0.0.fn.to_qkv.weight": (1536, 1024),
        "smpl_head.transformer.transformer.layers.0.0.fn.to_out.0.weight": (1024, 512),
        "smpl_head.transformer.transformer.layers.5.1.fn.to_kv.weight": (1024, 1280),
        "smpl_head.transformer.transformer.layers.5.1.fn.to_q.weight": (512, 1024),
        "smpl_head.transformer.transformer.layers.3.2.fn.net.0.weight": (1024, 1024),
        "smpl_head.transformer.transformer.layers.3.2.fn.net.3.bias": (1024,),
        "smpl_head.decpose.weight": (144, 1024),
        "smpl_head.decshape.weight": (10, 1024),
        "smpl_head.deccam.bias": (3,),
        "smpl_head.init_body_pose": (1, 144),
        "smpl_head.init_betas": (1, 10),
        "smpl_head.init_cam": (1, 3),
    }
    assert {k: tuple(state[k].shape) for k in official if k in state} == official
    # 3 + 32 blocks x 12 + 2 backbone tensors; 3 + 6 layers x 17 + 6 + 3 head tensors
    assert (
        sum(k.startswith("backbone.") for k in state) == 389 and sum(k.startswith("smpl_head.") for k in state) == 114
    )


def test_forward_matches_a_transcription_of_the_4d_humans_modules():
    """Values computed (once, outside this repo) by modules transcribed from 4D-Humans' vit.py, pose_transformer.py
    and smpl_head.py (explicit softmax attention, einops layouts, rot6d_to_rotmat), loaded strictly with the same
    tiny state dict: they pin the positional-embedding sum, the q/k/v layouts, the residual order and the 6D order."""
    model = HMR2(TINY)
    model.load_state_dict(tiny_state(), strict=True)
    x = torch.sin(torch.arange(2 * 3 * 64 * 48, dtype=torch.float32) * 0.37).reshape(2, 3, 64, 48)
    with torch.no_grad():
        out = model.eval()(x)
    expected = {
        "cam": [[1.020358, -0.214268, 0.125751], [1.026506, -0.208216, 0.134198]],
        "betas": [[0.408392, 0.471737, 1.024651], [0.438331, 0.648577, 1.138014]],
        "orient": [[0.237323, 0.337810, 0.910803], [0.266507, 0.368595, 0.890568]],
        "body": [[-0.633590, -0.217906, -0.742348], [-0.745895, -0.376017, -0.549775]],
    }
    got = {
        "cam": out["cam"],
        "betas": out["betas"][:, :3],
        "orient": out["global_orient"][:, 0],
        "body": out["body_pose"][:, 22, 2],
    }
    for key, value in expected.items():
        np.testing.assert_allclose(got[key].numpy(), value, atol=2e-5, err_msg=key)


@pytest.mark.parametrize("name", ["hmr2.safetensors", "hmr2.pt"])
def test_hyperparameters_inferred_from_the_tensor_shapes(weights, name):
    labeler = create_labeler(f"hmr2_smpl:{weights / name}", **HEADS)
    assert labeler.model.config == TINY
    assert "ViT 32-d x 2 (2 heads) at 64x48, head 24-d x 2 (2 heads)" in labeler.describe()
    released = create_labeler(f"hmr2_smpl:{weights / name}", heads=4)  # other head counts change nothing else
    assert released.model.config.heads == 4 and released.model.config.decoder_dim == 24


def test_mean_parameter_query_token_variant_loads_and_runs(tmp_path):
    config = HMR2Config(**{**TINY.__dict__, "token_dim": MEAN_TOKEN_DIM})  # TRANSFORMER_INPUT: mean_shape
    save_file(tiny_state(config), str(tmp_path / "mean.safetensors"))
    labeler = create_labeler(f"hmr2_smpl:{tmp_path / 'mean.safetensors'}", **HEADS)
    assert labeler.model.config == config
    assert rotations_ok(np.array(labeler.label({"rgb": IMAGES[:1]})[0]["humans"][0]["body_pose"]))


def test_6d_rotations_follow_hmr2s_column_convention():
    """HMR2's 6D vector is the first two columns of the matrix (x.reshape(2, 3) transposed), Gram-Schmidt'ed."""
    q = np.linalg.qr(rng.standard_normal((5, 3, 3)))[0]
    r = torch.from_numpy(q * np.sign(np.linalg.det(q))[:, None, None]).float()
    six = torch.cat([r[:, :, 0], r[:, :, 1]], -1)
    torch.testing.assert_close(rot6d_to_matrix(six), r, atol=1e-5, rtol=0)
    skew = torch.cat([3 * r[:, :, 0], r[:, :, 1] + 0.5 * r[:, :, 0]], -1)  # scaled, not orthogonal: same rotation
    torch.testing.assert_close(rot6d_to_matrix(skew), r, atol=1e-5, rtol=0)


def test_pose_dicts_hold_proper_rotations_and_encode_with_human_pose_smpl(weights):
    labeler = create_labeler(f"hmr2_smpl:{weights / 'hmr2.safetensors'}", batch_size=3, **HEADS)
    poses = labeler.label({"rgb": IMAGES})
    tokenizer = tokzoo.load_tokenizer("human_pose_smpl", untrained_ok=True)
    for pose, image in zip(poses, IMAGES):
        h, w = image.shape[:2]
        assert pose["skeleton"] == "smpl" and (pose["width"], pose["height"]) == (w, h)
        (human,) = pose["humans"]  # no semseg: the whole image is one person box
        assert human["box"] == [0.0, 0.0, w, h]
        body, root = np.array(human["body_pose"]), np.array(human["global_orient"])
        assert body.shape == (23, 3, 3) and root.shape == (3, 3) and rotations_ok(body) and rotations_ok(root)
        assert len(human["betas"]) == 10 and np.isfinite(human["betas"]).all()
        s, tx, ty = human["weak_perspective"]
        side = max(h, w * 64 / 48)  # the box grown to the 48:64 crop aspect
        f = 5000 / 64 * max(w, h)
        assert pose["intrinsics"] == {"fx": f, "fy": f, "cx": w / 2, "cy": h / 2}
        np.testing.assert_allclose(human["translation"], [tx, ty, 2 * f / (side * s)], rtol=1e-6)  # box centred
        assert human["keypoints_2d"] == []  # no SMPL body model given
        assert from_value("pose", pose, "test")["humans"][0]["body_pose"] == human["body_pose"]
        assert write_modality("pose", pose, ".json")  # the pose file format takes it
        tokens = tokenizer.encode(pose)
        assert tuple(tokens.shape) == (1, 8) and tokens.dtype == torch.int64
        assert rotations_ok(np.array(tokenizer.decode(tokens)["humans"][0]["body_pose"]))
    assert len({str(p["humans"][0]["body_pose"]) for p in poses}) == 4  # different images, different poses


def test_batching_and_repeat_runs_give_the_same_poses(weights):
    one = create_labeler(f"hmr2_smpl:{weights / 'hmr2.pt'}", batch_size=1, **HEADS).label({"rgb": IMAGES})
    labeler = create_labeler(f"hmr2_smpl:{weights / 'hmr2.safetensors'}", batch_size=4, **HEADS)
    four, again = labeler.label({"rgb": IMAGES}), labeler.label({"rgb": IMAGES})
    assert four == again
    for a, b in zip(one, four):
        for key in ("global_orient", "body_pose", "betas", "weak_perspective", "translation"):
            np.testing.assert_allclose(a["humans"][0][key], b["humans"][0][key], atol=1e-5)


def test_one_human_per_person_region_of_a_scene(weights):
    scenes = [generate_scene(i, seed=0, size=64) for i in range(6)]
    labeler = create_labeler(f"hmr2_smpl:{weights / 'hmr2.safetensors'}", person_class=6, batch_size=4, **HEADS)
    poses = labeler.label({"rgb": [s["rgb"] for s in scenes], "semseg": [s["semseg"] for s in scenes]})
    expected = [person_boxes((64, 64), s["semseg"], None, 6) for s in scenes]
    assert [[h["box"] for h in p["humans"]] for p in poses] == expected
    for pose in poses:  # off-centre boxes: HMR2's cam_crop_to_full, f = 5000 / 64 * 64 px, centre (32, 32)
        for human in pose["humans"]:
            (s, tx, ty), (x, y, w, h) = human["weak_perspective"], human["box"]
            bs = max(h, w * 64 / 48) * s
            expected_t = [tx + 2 * (x + w / 2 - 32) / bs, ty + 2 * (y + h / 2 - 32) / bs, 2 * 5000 / bs]
            np.testing.assert_allclose(human["translation"], expected_t, rtol=1e-5)
    assert sum(map(len, expected)) > len(scenes) // 2 and any(len(b) > 1 for b in expected)
    empty = labeler.label({"rgb": [scenes[0]["rgb"]], "semseg": [np.zeros((64, 64), np.uint8)]})
    assert empty[0]["humans"] == [] and empty[0]["skeleton"] == "smpl"


def test_crop_geometry_follows_hmr2():
    """A linear ramp is reproduced exactly by bilinear sampling, so the crop shows where HMR2 samples:
    centre (x + w/2, y + h/2), square side max(h, w * 4/3), the middle 3/4 of its columns."""
    yy, xx = np.mgrid[0:200, 0:300]
    image = np.stack([xx * 0.5, yy * 0.5, np.full_like(xx, 100)], -1).astype(np.uint8)  # even x, y: exact halves
    crop, (cx, cy), side = crop_person(image, [100, 40, 60, 60], (64, 48))  # wide box: side = 60 * 4/3 = 80
    assert (cx, cy, side) == (130.0, 70.0, 80.0)
    red = crop[0] * 0.229 * 255 + 0.485 * 255
    xs = cx + (np.arange(48) - 24) * side / 64
    inner = np.abs(xs - np.round(xs / 2) * 2) < 1e-9  # integer uint8 ramp: exact at even source columns
    np.testing.assert_allclose(red[10][inner], np.floor(xs[inner] * 0.5), atol=1e-3)
    off = crop_person(image, [290, 190, 10, 10], (64, 48))[0]  # mostly outside the image: black there
    np.testing.assert_allclose(off[:, -1, -1], (0 - np.array([0.485, 0.456, 0.406])) / [0.229, 0.224, 0.225], atol=1e-5)


def tiny_smpl(path, vertices=30):
    r = np.random.default_rng(1)
    regressor = r.random((24, vertices))
    parents = np.array([2**32 - 1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21])
    np.savez(
        path,
        v_template=r.normal(0, 0.3, (vertices, 3)),
        shapedirs=r.normal(0, 0.01, (vertices, 3, 10)),
        J_regressor=regressor / regressor.sum(1, keepdims=True),
        kintree_table=np.stack([parents, np.arange(24)]),
        f=np.zeros((1, 3), np.int64),
    )
    return path


def test_smpl_body_model_gives_projected_joints(weights, tmp_path):
    model_file = tiny_smpl(tmp_path / "smpl.npz")
    labeler = create_labeler(f"hmr2_smpl:{weights / 'hmr2.safetensors'}", smpl_model=model_file, **HEADS)
    (pose,) = labeler.label({"rgb": IMAGES[:1]})
    human, k = pose["humans"][0], pose["intrinsics"]
    joints = np.array(human["keypoints_3d"])
    assert joints.shape == (24, 3) and len(human["keypoints_2d"]) == 24
    data = np.load(model_file)
    rest = data["J_regressor"] @ (data["v_template"] + data["shapedirs"] @ np.array(human["betas"]))
    parents = data["kintree_table"][0]
    bones = lambda j: np.linalg.norm(j[1:] - j[parents[1:]], axis=1)  # noqa: E731
    np.testing.assert_allclose(bones(joints), bones(rest), rtol=1e-4)  # posing is rigid per bone
    np.testing.assert_allclose(joints[0], rest[0] + human["translation"], rtol=1e-5)  # the root only moves
    limb = joints[4] - joints[1]  # a child bone turns by the parent's world rotation times its own
    world = np.array(human["global_orient"]) @ np.array(human["body_pose"])[0]
    np.testing.assert_allclose(limb, world @ (rest[4] - rest[1]), atol=1e-5)
    for (u, v, vis), (x, y, z) in zip(human["keypoints_2d"], joints):
        if vis:
            np.testing.assert_allclose([u, v], [k["fx"] * x / z + k["cx"], k["fy"] * y / z + k["cy"]], rtol=1e-6)
            assert 0 <= u < pose["width"] and 0 <= v < pose["height"]
    assert from_value("pose", pose, "test")["humans"][0]["keypoints_3d"] == human["keypoints_3d"]


class NotTensors:  # a pickled object weights_only=True refuses
    pass


def one_line_error(spec, **kwargs) -> str:
    with pytest.raises(CheckpointError) as info:
        create_labeler(spec, **{**HEADS, **kwargs})
    message = str(info.value)
    assert "\n" not in message
    return message


def test_refusals_are_one_line_checkpoint_errors(weights, tmp_path):
    torch.save({"state_dict": NotTensors()}, tmp_path / "lightning.ckpt")
    message = one_line_error(f"hmr2_smpl:{tmp_path / 'lightning.ckpt'}")
    assert "weights_only=True" in message and "st.save_file" in message and "weights_only=False" in message
    state = tiny_state()
    save_file({k: v for k, v in state.items() if k != "smpl_head.deccam.bias"}, str(tmp_path / "missing.safetensors"))
    assert "missing ['smpl_head.deccam.bias']" in one_line_error(f"hmr2_smpl:{tmp_path / 'missing.safetensors'}")
    save_file({**state, "smpl_head.decshape.weight": torch.zeros(12, 24)}, str(tmp_path / "shape.safetensors"))
    assert "'smpl_head.decshape.weight' has shape (12, 24)" in one_line_error(
        f"hmr2_smpl:{tmp_path / 'shape.safetensors'}"
    )
    save_file({**state, "backbone.blocks.1.mlp.fc1.weight": torch.zeros(80, 32)}, str(tmp_path / "mlp.safetensors"))
    assert "(80, 32)" in one_line_error(f"hmr2_smpl:{tmp_path / 'mlp.safetensors'}")
    save_file({**state, "backbone.cls_token": torch.zeros(1, 1, 32)}, str(tmp_path / "extra.safetensors"))
    assert "unexpected ['backbone.cls_token']" in one_line_error(f"hmr2_smpl:{tmp_path / 'extra.safetensors'}")
    save_file({**state, "backbone.blocks.2.norm1.weight": torch.zeros(32)}, str(tmp_path / "deeper.safetensors"))
    assert "ViT 32-d x 3" in one_line_error(f"hmr2_smpl:{tmp_path / 'deeper.safetensors'}")  # a 3rd block, incomplete
    save_file({**state, "backbone.pos_embed": torch.zeros(1, 10, 32)}, str(tmp_path / "grid.safetensors"))
    assert "4:3 grid" in one_line_error(f"hmr2_smpl:{tmp_path / 'grid.safetensors'}")
    assert "split into 5 heads" in one_line_error(f"hmr2_smpl:{weights / 'hmr2.safetensors'}", heads=5)
    torch.save({"backbone.patch_embed.proj.weight": [1, 2]}, tmp_path / "list.pt")
    assert "dict of tensors" in one_line_error(f"hmr2_smpl:{tmp_path / 'list.pt'}")
    torch.save({"model.weight": torch.zeros(2)}, tmp_path / "other.pt")
    assert "not an HMR 2.0 state dict" in one_line_error(f"hmr2_smpl:{tmp_path / 'other.pt'}")
    assert "no such file" in one_line_error(f"hmr2_smpl:{tmp_path / 'absent.safetensors'}")


def test_smpl_model_files_that_do_not_fit_are_refused(weights, tmp_path):
    np.savez(tmp_path / "pickled.npz", v_template=np.array([object()], dtype=object))
    assert "without pickled objects" in one_line_error(
        f"hmr2_smpl:{weights / 'hmr2.safetensors'}", smpl_model=tmp_path / "pickled.npz"
    )
    np.savez(tmp_path / "partial.npz", v_template=np.zeros((5, 3)))
    assert "no shapedirs, J_regressor, kintree_table" in one_line_error(
        f"hmr2_smpl:{weights / 'hmr2.safetensors'}", smpl_model=tmp_path / "partial.npz"
    )
    data = dict(np.load(tiny_smpl(tmp_path / "smpl.npz")))
    np.savez(tmp_path / "short.npz", **{**data, "J_regressor": data["J_regressor"][:, :10]})
    assert "J_regressor is float64 (24, 10), expected numbers of shape (24, 30)" in one_line_error(
        f"hmr2_smpl:{weights / 'hmr2.safetensors'}", smpl_model=tmp_path / "short.npz"
    )
