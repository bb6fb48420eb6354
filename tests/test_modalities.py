"""Every zoo tokenizer encodes and decodes a real or generated sample within its modality's contract.

Image modalities use procedural scenes at 64 px (encode takes any size divisible by the downsampling);
learned tokenizers are untrained, so the checks are about shapes, dtypes, ranges and decode contracts,
plus exact codec round trips (``from_model(to_model(x))``), which need no weights.
"""

import json

import numpy as np
import pytest
import torch

import tokzoo
from tokzoo.datasets.scenes import generate_scene
from tokzoo.errors import CheckpointError, ConfigError, DtypeError, InvalidValueError, ShapeError
from tokzoo.modalities import MODALITIES, get_modality
from tokzoo.modalities.audio import mel_to_audio
from tokzoo.modalities.sam_instances import MASK_SIZE, crop_instances, paste_instances
from tokzoo.tokenizers.zoo import zoo_entries

SIZE = 64
SCENE = generate_scene(0, size=SIZE)  # one human, five instances
RNG = np.random.default_rng(0)


def rotations(n):
    q = np.linalg.qr(RNG.standard_normal((n, 23, 3, 3)))[0]
    return q * np.sign(np.linalg.det(q))[..., None, None]  # det +1


def pose_sample():
    return {**SCENE["pose"], "width": SIZE, "height": SIZE}


# zoo name -> raw sample (what encode takes)
SAMPLES = {
    "rgb": lambda: SCENE["rgb"],
    "rgb_128": lambda: SCENE["rgb"],
    "rgb_f4": lambda: SCENE["rgb"],
    "rgb_f4_more_photos": lambda: SCENE["rgb"],
    "depth": lambda: SCENE["depth"],
    "normals": lambda: SCENE["normals"],
    "semseg": lambda: np.where(np.arange(SIZE)[:, None] < 4, 255, SCENE["semseg"]).astype(np.uint8),
    "canny_edges": lambda: SCENE["edges"],
    "sam_edges": lambda: SCENE["edges"],
    "sam_instances": lambda: SCENE["sam_instances"],
    "dinov2_b14": lambda: RNG.standard_normal((4, 4, 768)).astype(np.float32),
    "clip_b16": lambda: RNG.standard_normal((2, 4, 6, 512)).astype(np.float32),
    "imagebind_h14": lambda: RNG.standard_normal((4, 4, 1280)).astype(np.float32),
    "scene_vit_dense": lambda: RNG.standard_normal((8, 8, 128)).astype(np.float32),
    "dinov2_global": lambda: RNG.standard_normal((2, 768)).astype(np.float32),
    "clip_global": lambda: RNG.standard_normal(512).astype(np.float32),
    "imagebind_global": lambda: RNG.standard_normal(1024).astype(np.float32),
    "scene_vit_global": lambda: RNG.standard_normal(128).astype(np.float32),
    "human_pose": pose_sample,
    "human_pose_smpl": lambda: rotations(3),
    "audio": lambda: (0.5 * np.sin(2 * np.pi * 440 * np.arange(20_000) / 16_000)).astype(np.float32),
    "captions": lambda: ["A red sphere on the floor.", "two people waving, ünïcödé 🙂", ""],
    "palette": lambda: {"colors": [[255, 0, 0], [10, 200, 30]]},
    "metadata": lambda: {"brightness": 120.0, "num_humans": 1},
    "boxes": lambda: {"boxes": [[1, 2, 30, 40]], "classes": [3], "width": SIZE, "height": SIZE},
}

# spatial size of samples not at the configured input_size (the token grid follows it)
GRIDS = {
    **dict.fromkeys(
        ["rgb", "rgb_128", "rgb_f4", "rgb_f4_more_photos", "depth", "normals", "semseg", "canny_edges", "sam_edges"],
        (SIZE, SIZE),
    ),
    "dinov2_b14": (4, 4),
    "clip_b16": (4, 6),
    "imagebind_h14": (4, 4),
}
# number of encoded rows: the batch axis is images, or instances / humans for those modalities
ROWS = {"sam_instances": 5, "human_pose": 1, "human_pose_smpl": 3, "clip_b16": 2, "dinov2_global": 2, "captions": 3}


def check_depth(tok, x, y):
    assert y.dtype == np.float32 and y.shape == (1, SIZE, SIZE)
    finite = y[np.isfinite(y)]
    assert ((finite >= 0.1 * 0.999) & (finite <= 100 * 1.001)).all()  # metres within the configured range


def check_normals(tok, x, y):
    assert y.dtype == np.float32 and y.shape == (1, SIZE, SIZE, 3)
    finite = np.isfinite(y).all(axis=-1)
    assert (np.isnan(y[~finite])).all()  # invalid pixels are NaN in all three channels
    np.testing.assert_allclose(np.linalg.norm(y[finite], axis=-1), 1, atol=1e-5)


def check_semseg(tok, x, y):
    assert y.dtype == np.uint8 and y.shape == (1, SIZE, SIZE)
    assert int(y.max()) < tok.codec.num_classes  # never 255


def check_edges(tok, x, y):
    assert y.dtype == np.uint8 and y.shape == (1, SIZE, SIZE) and set(np.unique(y)) <= {0, 1}


def check_instances(tok, x, y):
    assert y.dtype == bool and y.shape == (ROWS["sam_instances"], MASK_SIZE, MASK_SIZE)


def check_dense(tok, x, y):
    x = np.asarray(x)
    assert y.dtype == np.float32 and y.shape == (x.shape if x.ndim == 4 else (1, *x.shape))


def check_global(tok, x, y):
    assert y.dtype == np.float32 and y.shape == (ROWS.get(tok.name, 1), tok.codec.in_channels)


def check_pose(tok, x, y):
    height, width = tok.codec.normalization["image_size"]  # 224 by default; the shipped recipe's scenes are 96 px
    assert y["skeleton"] == "coco17" and (y["width"], y["height"]) == (width, height) and len(y["humans"]) == 1
    keypoints = np.array(y["humans"][0]["keypoints_2d"])
    assert keypoints.shape == (17, 3) and set(keypoints[:, 2]) <= {0, 1, 2}
    assert (keypoints[keypoints[:, 2] == 0] == 0).all()


def check_smpl(tok, x, y):
    matrices = np.array([h["body_pose"] for h in y["humans"]])
    assert matrices.shape == (3, 23, 3, 3)
    np.testing.assert_allclose(
        matrices @ matrices.swapaxes(-1, -2), np.broadcast_to(np.eye(3), matrices.shape), atol=1e-6
    )
    np.testing.assert_allclose(np.linalg.det(matrices), 1, atol=1e-6)


def check_audio(tok, x, y):
    norm = tok.config["normalization"]
    assert y.dtype == np.float32 and y.shape == (1, norm["n_mels"], 256)
    assert y.min() >= norm["db_min"] and y.max() <= norm["db_max"]


def check_captions(tok, x, y):
    assert y == x  # byte-level BPE: exact


def check_structured(tok, x, y):
    assert isinstance(y, list) and len(y) == 1


def check_rgb(tok, x, y):
    assert y.dtype == np.uint8 and y.shape == (1, SIZE, SIZE, 3)


CHECKS = {
    "rgb": check_rgb,
    "rgb_128": check_rgb,
    "rgb_f4": check_rgb,
    "rgb_f4_more_photos": check_rgb,
    "depth": check_depth,
    "normals": check_normals,
    "semseg": check_semseg,
    "canny_edges": check_edges,
    "sam_edges": check_edges,
    "sam_instances": check_instances,
    "dinov2_b14": check_dense,
    "clip_b16": check_dense,
    "imagebind_h14": check_dense,
    "scene_vit_dense": check_dense,
    "dinov2_global": check_global,
    "clip_global": check_global,
    "imagebind_global": check_global,
    "scene_vit_global": check_global,
    "human_pose": check_pose,
    "human_pose_smpl": check_smpl,
    "audio": check_audio,
    "captions": check_captions,
    "palette": check_structured,
    "metadata": check_structured,
    "boxes": check_structured,
}


def test_every_zoo_name_and_modality_has_a_sample():
    assert set(SAMPLES) == set(CHECKS) == set(zoo_entries())
    assert {entry.modality for entry in zoo_entries().values() if entry.learned} == set(MODALITIES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_zoo_tokenizer_round_trip(name):
    tok = tokzoo.load_tokenizer(name, untrained_ok=True)
    x = SAMPLES[name]()
    tokens = tok.encode(x)
    assert tokens.dtype == torch.int64
    assert 0 <= int(tokens.min()) and int(tokens.max()) < tok.vocab_size
    rows = ROWS.get(name, 1)
    size = GRIDS.get(name)
    assert tuple(tokens.shape) == (rows, *(tok.token_shape if size is None else tok.token_shape_for(size)))
    y = tok.decode(tokens) if size is None else tok.decode(tokens, input_size=size)
    CHECKS[name](tok, x, y)
    if zoo_entries()[name].learned:
        picture = tok.codec.visualize(x if name not in ("clip_b16", "dinov2_global") else np.asarray(x)[0])
        assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3


def test_token_shapes_and_vocabularies_at_the_configured_size():
    expected = {
        "normals": ((196,), 4375),
        "semseg": ((196,), 4375),
        "canny_edges": ((196,), 1000),
        "sam_edges": ((196,), 1000),
        "sam_instances": ((16,), 1000),
        "dinov2_b14": ((256,), 15360),
        "clip_b16": ((196,), 15360),
        "imagebind_h14": ((256,), 15360),
        "scene_vit_global": ((8,), 15360),
        "human_pose": ((8,), 1000),
        "human_pose_smpl": ((8,), 1000),
        "audio": ((64,), 4375),
        "captions": ((64,), 8192),
    }
    for name, (shape, vocab) in expected.items():
        if zoo_entries()[name].weights_dir is not None:
            continue  # shipped weights carry their own (CPU-sized) config: recipes/<name>.yaml
        tok = tokzoo.load_tokenizer(name, untrained_ok=True)
        assert (tok.token_shape, tok.vocab_size) == (shape, vocab), name


# -- codecs: exact normalisation round trips, no weights involved -------------------------------------
def codec(name, **normalization):
    modality = zoo_entries()[name].modality
    defaults = get_modality(modality).default_tokenizer(name).get("normalization", {})
    return get_modality(modality)(**{**defaults, **normalization})


def test_normals_codec_round_trip_and_validity():
    c = codec("normals")
    x = SCENE["normals"]
    model = c.to_model(x)
    assert model.shape == (1, 4, SIZE, SIZE) and float(model[:, :3].abs().max()) <= 1
    np.testing.assert_array_equal(model[0, 3].numpy() > 0, np.isfinite(x).all(-1))
    np.testing.assert_allclose(c.from_model(model)[0], x, atol=1e-6)  # NaN positions must match too


def test_semseg_codec_one_hot_and_ignore():
    c = codec("semseg", num_classes=7)
    x = SAMPLES["semseg"]()
    model = c.to_model(x)
    assert model.shape == (1, 8, SIZE, SIZE) and torch.equal(model.sum(1), torch.ones(1, SIZE, SIZE))
    np.testing.assert_array_equal(model[0, 7].numpy() == 1, x == 255)
    decoded = c.from_model(model[:, :7])
    np.testing.assert_array_equal(decoded[0][x != 255], x[x != 255])
    logits = model[:, :7] * 20 - 10
    assert float(c.loss(logits, model)) < 1e-3 < float(c.loss(torch.zeros_like(logits), model))


def test_edges_and_dense_and_audio_codecs_invert():
    e = codec("canny_edges")
    np.testing.assert_array_equal(e.from_model(e.to_model(SCENE["edges"]))[0], SCENE["edges"])
    assert torch.equal(e.to_model(SCENE["edges"].astype(bool)), e.to_model(SCENE["edges"]))
    d = codec("dinov2_b14")
    x = SAMPLES["dinov2_b14"]()
    np.testing.assert_array_equal(d.from_model(d.to_model(x))[0], x)
    a = codec("audio")
    wave = SAMPLES["audio"]()
    model = a.to_model(wave)
    assert model.shape == (1, 1, 64, 256) and float(model.min()) >= -1 and float(model.max()) <= 1
    log_mel = a.from_model(model)
    assert log_mel[0, :, -50:].max() == -80.0  # 20,000 samples = 1.25 s; the rest of 2.56 s is padded silence
    assert log_mel[0, :, :100].max() > 0  # a 440 Hz tone at half scale is loud
    assert float(a.to_model(np.zeros(100, np.float32)).max()) == -1
    back = mel_to_audio(log_mel[:, :, :16], n_iter=2, **a.normalization)
    assert back.dtype == np.float32 and back.shape == (1, 15 * 160)


def test_pose_codec_maps_image_edges_to_unit_range():
    c = codec("human_pose")
    keypoints = np.zeros((17, 3))
    keypoints[0] = [-0.5, SIZE - 0.5, 2]  # left edge, bottom edge
    keypoints[1] = [SIZE / 2 - 0.5, 10, 1]
    pose = {"skeleton": "coco17", "width": SIZE, "height": SIZE, "humans": [{"keypoints_2d": keypoints.tolist()}]}
    model = c.to_model(pose).reshape(17, 3)
    np.testing.assert_allclose(model[:2].numpy(), [[-1, 1, 1], [0, (10.5 / SIZE) * 2 - 1, 0]], atol=1e-6)
    assert (model[2:].numpy() == [0, 0, -1]).all()
    decoded = c.from_model(model.reshape(1, -1))["humans"][0]["keypoints_2d"]
    scale = 224 / SIZE  # decode reports pixels of normalization.image_size
    np.testing.assert_allclose(decoded[0], [-0.5, 223.5, 2], atol=1e-4)
    np.testing.assert_allclose(decoded[1], [(SIZE / 2) * scale - 0.5, 10.5 * scale - 0.5, 1], atol=1e-4)
    assert decoded[2] == [0, 0, 0]
    s = codec("human_pose_smpl")
    x = rotations(2)
    decoded = s.from_model(s.to_model(x))
    np.testing.assert_allclose(np.array([h["body_pose"] for h in decoded["humans"]]), x, atol=1e-6)
    torch.testing.assert_close(s.to_model(decoded), s.to_model(x))  # the dict form encodes like the array


def test_instances_crop_paste_round_trip_and_small_ones_dropped():
    instances = SCENE["sam_instances"]
    masks, boxes, ids = crop_instances(instances)
    assert masks.shape == (5, MASK_SIZE, MASK_SIZE) and boxes.shape == (5, 4) and list(ids) == [1, 2, 3, 4, 5]
    x0, y0, x1, y1 = boxes[0]
    rows, cols = np.nonzero(instances == ids[0])
    assert (x0, y0, x1, y1) == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    assert (paste_instances(masks, boxes, SIZE, SIZE, ids) == instances).mean() > 0.99
    with pytest.raises(ShapeError):
        paste_instances(masks, boxes, SIZE, SIZE, ids[:2])
    tiny = np.zeros((100, 100), np.uint16)
    tiny[0, 0], tiny[10:20, 10:20] = 7, 9  # 1 pixel is 0.01% of the image: dropped
    assert list(crop_instances(tiny)[2]) == [9]
    from_masks = crop_instances([instances == i for i in ids])
    np.testing.assert_array_equal(from_masks[0], masks)
    tok = tokzoo.load_tokenizer("sam_instances", untrained_ok=True)
    assert tok.encode(np.zeros((8, 8), np.uint16)).shape == (0, 16)
    assert tok.decode(torch.zeros((0, 16), dtype=torch.int64)).shape == (0, MASK_SIZE, MASK_SIZE)


@pytest.mark.parametrize("name", ["normals", "canny_edges", "dinov2_b14", "audio", "human_pose", "sam_instances"])
def test_loss_prefers_the_target(name):
    c = codec(name)
    target = c.to_model(SAMPLES[name]())
    logit_channels = {"normals": slice(3, 4), "canny_edges": slice(0, 1), "sam_instances": slice(0, 1)}
    ideal = target.clone()
    if name in logit_channels:
        ideal[:, logit_channels[name]] *= 10
    noise = torch.randn_like(target)
    assert float(c.loss(ideal, target)) < float(c.loss(noise, target))


# -- captions -----------------------------------------------------------------------------------------
def test_captions_fixed_length_eos_pad_truncation_and_save_load(tmp_path):
    tok = tokzoo.load_tokenizer("captions")
    tokens = tok.encode("a red sphere")
    n = int((tokens[0] != 0).sum())
    assert tokens.shape == (1, 64) and tokens[0, n - 1] == 1 and (tokens[0, n:] == 0).all()
    long = tok.encode("word " * 200)
    assert long[0, -1] == 1 and len(tok.decode(long)[0]) < len("word " * 200)
    assert tok.encode([]).shape == (0, 64)
    tok.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "vocab.json"]
    loaded = tokzoo.load_tokenizer(tmp_path)
    assert torch.equal(loaded.encode(SAMPLES["captions"]()), tok.encode(SAMPLES["captions"]()))
    assert loaded.content_hash() == tok.content_hash()
    vocab = json.loads((tmp_path / "vocab.json").read_text())
    vocab["model"]["vocab"]["zzzz"] = 99999
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(CheckpointError, match="vocab_sha256"):
        tokzoo.load_tokenizer(tmp_path)


# -- bad inputs give typed errors ---------------------------------------------------------------------
BAD_INPUTS = [
    ("normals", SCENE["rgb"], DtypeError),
    ("normals", np.zeros((SIZE, SIZE, 4), np.float32), ShapeError),
    ("normals", np.nan_to_num((SCENE["normals"] + 1) / 2), InvalidValueError),  # PNG-style [0, 1] encoding
    ("normals", np.full((SIZE, SIZE, 3), np.nan, np.float32), InvalidValueError),
    ("semseg", np.full((SIZE, SIZE), 200, np.uint8), InvalidValueError),
    ("semseg", SCENE["semseg"].astype(np.float32), DtypeError),
    ("canny_edges", SCENE["edges"] * np.uint8(255), InvalidValueError),
    ("canny_edges", SCENE["edges"].astype(np.float32), DtypeError),
    ("sam_instances", SCENE["sam_instances"].astype(np.float32), DtypeError),
    ("sam_instances", np.stack([SCENE["sam_instances"]] * 2), ShapeError),
    ("sam_instances", SCENE["sam_instances"].astype(np.int32) - 1, InvalidValueError),
    ("sam_instances", [np.zeros((4, 4), bool), np.zeros((5, 5), bool)], ShapeError),
    ("dinov2_b14", np.zeros((4, 4, 512), np.float32), ShapeError),
    ("dinov2_b14", np.full((4, 4, 768), np.nan, np.float32), InvalidValueError),
    ("human_pose", {"skeleton": "coco17", "humans": [{"keypoints_2d": [[0, 0, 3]] * 17}]}, InvalidValueError),
    ("human_pose", {"skeleton": "coco17", "humans": [{"keypoints_2d": [[0, 0, 2]] * 16}]}, ShapeError),
    ("human_pose", {"skeleton": "smpl", "humans": []}, InvalidValueError),
    ("human_pose", [SCENE["pose"], SCENE["pose"]], DtypeError),  # one image per call
    ("human_pose", {"skeleton": "coco17", "width": 0, "height": 64, "humans": []}, InvalidValueError),
    ("human_pose_smpl", np.full((23, 3, 3), 0.5), InvalidValueError),
    ("human_pose_smpl", np.zeros((23, 3)), ShapeError),
    ("audio", np.zeros(100, np.int16), DtypeError),
    ("audio", np.full(100, 2.0, np.float32), InvalidValueError),
    ("audio", np.array([0, np.nan], np.float32), InvalidValueError),
    ("audio", np.zeros(0, np.float32), ShapeError),
    ("captions", 42, DtypeError),
    ("captions", ["ok", None], DtypeError),
]


@pytest.mark.parametrize("name, value, error", BAD_INPUTS, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD_INPUTS)])
def test_bad_inputs_give_typed_errors(name, value, error):
    tok = tokzoo.load_tokenizer(name, untrained_ok=True)
    with pytest.raises(error):
        tok.encode(value)


def test_bad_normalization_gives_config_errors():
    with pytest.raises(ConfigError):
        get_modality("semseg")(num_classes=256)
    with pytest.raises(ConfigError):
        get_modality("human_pose")(skeleton="h36m")
    with pytest.raises(ConfigError):
        get_modality("audio")(db_min=0.0, db_max=-10.0)
