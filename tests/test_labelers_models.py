"""Model-backed labelers on tiny randomly initialised models of the real architectures, saved to disk and
loaded back through ``create_labeler("name:DIR")``: shapes, dtypes, batching, output contracts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as tf  # noqa: E402  (dev extra: tokzoo[labelers])

from tokzoo.errors import CheckpointError
from tokzoo.io.formats import from_value
from tokzoo.labelers import create_labeler

rng = np.random.default_rng(0)
IMAGES = [rng.integers(0, 256, (40, 60, 3), dtype=np.uint8) for _ in range(3)] + [
    rng.integers(0, 256, (50, 30, 3), dtype=np.uint8)
]


def tiny_dinov2(**extra):
    return tf.Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=28,
        patch_size=14,
        **extra,
    )


def save(tmp_path, name, model, processor):
    torch.manual_seed(0)
    path = tmp_path / name
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def same(a: list, b: list) -> bool:
    return all(np.allclose(x, y, rtol=1e-3, atol=1e-4, equal_nan=True) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("models")
    depth_anything = tf.DepthAnythingForDepthEstimation(
        tf.DepthAnythingConfig(
            backbone_config=tiny_dinov2(out_features=["stage1", "stage2"], reshape_hidden_states=False),
            reassemble_hidden_size=32,
            neck_hidden_sizes=[8, 16],
            reassemble_factors=[2, 1],
            fusion_hidden_size=16,
            head_hidden_size=8,
        )
    )
    torch.nn.init.constant_(depth_anything.head.conv3.bias, 1.0)  # random weights, but a non-zero ReLU output
    dpt = tf.DPTForDepthEstimation(
        tf.DPTConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=32,
            patch_size=8,
            neck_hidden_sizes=[8, 16],
            reassemble_factors=[2, 1],
            backbone_out_indices=[0, 1],
            fusion_hidden_size=16,
            head_hidden_size=8,
        )
    )
    clip = tf.CLIPVisionModelWithProjection(
        tf.CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
            projection_dim=24,
        )
    )
    keep = tf.DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14)
    return {
        "depth_anything": save(tmp, "da", depth_anything, keep),
        "dpt": save(tmp, "dpt", dpt, tf.DPTImageProcessor(size={"height": 32, "width": 32})),
        "dinov2": save(
            tmp,
            "dinov2",
            tf.Dinov2Model(tiny_dinov2()),
            tf.BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 28, "width": 28}),
        ),
        "clip": save(
            tmp, "clip", clip, tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
        ),
    }


@pytest.mark.parametrize("model", ["depth_anything", "dpt"])
def test_depth_labelers_give_contract_depth_at_input_size(models, model):
    labeler = create_labeler(f"hf_depth:{models[model]}", batch_size=2)
    assert labeler.output == "relative"  # neither tiny config says metric
    out = labeler.label({"rgb": IMAGES})
    assert [d.shape for d in out] == [(40, 60)] * 3 + [(50, 30)]
    for d in out:
        assert d.dtype == np.float32 and np.nanmin(d) > 0
        assert np.nanmedian(d) == pytest.approx(1.0, rel=1e-3)  # relative depth: median 1 by definition
        from_value("depth", d, "test")
    assert same(out, create_labeler(f"hf_depth:{models[model]}", batch_size=4).label({"rgb": IMAGES}))


def test_feature_labelers_dense_grids_and_global_vectors(models):
    dense = create_labeler(f"dinov2_dense:{models['dinov2']}", batch_size=3).label({"rgb": IMAGES})
    assert all(x.shape == (2, 2, 32) and x.dtype == np.float32 for x in dense)  # 28 px crop / patch 14
    glob = create_labeler(f"dinov2_global:{models['dinov2']}").label({"rgb": IMAGES})
    assert all(x.shape == (32,) and np.isfinite(x).all() for x in glob)
    clip_dense = create_labeler(f"clip_dense:{models['clip']}").label({"rgb": IMAGES[:2]})
    assert all(x.shape == (4, 4, 24) for x in clip_dense)
    clip_global = create_labeler(f"clip_global:{models['clip']}", batch_size=1).label({"rgb": IMAGES[:2]})
    assert all(x.shape == (24,) for x in clip_global)
    assert not np.allclose(clip_global[0], clip_global[1])  # different images, different embeddings
    assert same(clip_global, create_labeler(f"clip_global:{models['clip']}", batch_size=2).label({"rgb": IMAGES[:2]}))


def test_loading_errors_are_one_line(tmp_path, models):
    with pytest.raises(CheckpointError, match="cannot load a Dinov2Model") as info:
        create_labeler(f"dinov2_dense:{tmp_path}")
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="cannot load"):
        create_labeler(f"dinov2_dense:{models['clip']}")


def test_pseudo_label_chains_a_depth_model_into_normals(tmp_path, models):
    import tarfile

    from click.testing import CliRunner
    from PIL import Image

    from tokzoo_cli.main import cli

    (tmp_path / "photos").mkdir()
    for i, image in enumerate(IMAGES):
        Image.fromarray(image).save(tmp_path / "photos" / f"p{i}.png")
    result = CliRunner().invoke(
        cli,
        [
            "pseudo-label",
            "-m",
            "normals,metadata",
            "-i",
            str(tmp_path / "photos"),
            "-o",
            str(tmp_path / "out"),
            "--labeler",
            f"depth=hf_depth:{models['depth_anything']}",
            "--no-progress",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0 and "ok 4 / failed 0 / total 4" in result.output, result.output
    assert "depth: hf_depth -> depth" in result.output  # ran first: normals and metadata use it
    names = tarfile.open(tmp_path / "out" / "shard-000000.tar").getnames()
    assert {"p0.depth.npy", "p0.normals.npy", "p0.metadata.json", "p0.rgb.png"} <= set(names)


def test_sam_painting_and_boundaries_are_exact():
    from tokzoo.labelers.sam import boundaries, paint

    masks = np.zeros((3, 6, 6), bool)
    masks[0, :3] = True  # score 0.9: painted first, id 1
    masks[1, :4] = True  # score 0.95 covers mask 0's rows too: painted first (id 1), mask 0 then dropped
    masks[2, 5, 5] = True  # too small
    out = paint(masks, np.array([0.9, 0.95, 0.99]), min_score=0.5, min_area=2 / 36)
    assert out.dtype == np.uint16 and (out[:4] == 1).all() and (out[4:] == 0).all()
    edges = boundaries(out)
    assert edges.dtype == np.uint8 and edges[3:5].all() and edges.sum() == 12


def test_sam_instances_and_edges_from_a_tiny_model(tmp_path):
    torch.manual_seed(0)
    model = tf.SamModel(
        tf.SamConfig(
            vision_config=tf.SamVisionConfig(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                mlp_dim=64,
                output_channels=16,
                image_size=64,
                patch_size=16,
                global_attn_indexes=[1],
                window_size=2,
                num_pos_feats=8,
            ),
            prompt_encoder_config=tf.SamPromptEncoderConfig(
                hidden_size=16, image_size=64, patch_size=16, mask_input_channels=4
            ),
            mask_decoder_config=tf.SamMaskDecoderConfig(
                hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_dim=32, iou_head_hidden_dim=16
            ),
        )
    )
    processor = tf.SamProcessor(
        image_processor=tf.SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64})
    )
    path = save(tmp_path, "sam", model, processor)
    labeler = create_labeler(f"sam_instances:{path}", batch_size=2)
    labeler.min_score = -np.inf  # a random model's IoU guesses are meaningless; keep every mask
    instances = labeler.label({"rgb": IMAGES})
    assert [x.shape for x in instances] == [(40, 60)] * 3 + [(50, 30)]
    assert all(x.dtype == np.uint16 and x.max() >= 1 for x in instances)
    from_value("sam_instances", instances[0], "test")
    edges_labeler = create_labeler(f"sam_edges:{path}", batch_size=4)
    edges_labeler.min_score = -np.inf
    from tokzoo.labelers.sam import boundaries

    assert all(np.array_equal(e, boundaries(i)) for e, i in zip(edges_labeler.label({"rgb": IMAGES}), instances))


def test_pseudo_label_writes_dinov2_features_that_read_back(tmp_path, models):
    from click.testing import CliRunner
    from PIL import Image

    from tokzoo.io import open_reader
    from tokzoo_cli.main import cli

    (tmp_path / "photos").mkdir()
    for i, image in enumerate(IMAGES):
        Image.fromarray(image).save(tmp_path / "photos" / f"p{i}.png")
    result = CliRunner().invoke(
        cli,
        [
            "pseudo-label",
            "-m",
            "dense_features,global_feature",
            "-i",
            str(tmp_path / "photos"),
            "-o",
            str(tmp_path / "out"),
            "--labeler",
            f"dense_features=dinov2_dense:{models['dinov2']}",
            "--labeler",
            f"global_feature=dinov2_global:{models['dinov2']}",
            "--no-progress",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0 and "ok 4 / failed 0 / total 4" in result.output, result.output
    samples = list(open_reader(str(tmp_path / "out" / "shard-000000.tar"), ["dense_features", "global_feature"]))
    direct = create_labeler(f"dinov2_dense:{models['dinov2']}").label({"rgb": IMAGES})
    assert [s.key for s in samples] == ["p0", "p1", "p2", "p3"]
    for sample, expected in zip(samples, direct):
        assert sample.values["dense_features"].shape == (2, 2, 32) and sample.values["global_feature"].shape == (32,)
        assert np.allclose(sample.values["dense_features"], expected, atol=1e-5)


def test_a_missing_local_path_is_named_as_such(tmp_path):
    """A path (not a hub id) that does not exist or is a file: no transformers hub-id jargon."""
    with pytest.raises(CheckpointError, match="no such folder; hf_depth loads a save_pretrained folder or a hub id"):
        create_labeler(f"hf_depth:{tmp_path / 'depth-anything'}")
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="model.bin: is a file"):
        create_labeler(f"hf_depth:{tmp_path / 'model.bin'}")


def test_vit_features_are_the_final_norm_tokens_of_a_vit_folder(tmp_path):
    """``vit_dense`` / ``vit_global`` on a ViTModel folder without a pooler (as the scene ViT is saved): the patch
    tokens and the class token after the final LayerNorm at the model's image size, the same values the
    composition component reads at its last layer."""
    from tokzoo.compose.vision import VisionTransformer

    torch.manual_seed(0)
    config = tf.ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8
    )
    tf.ViTModel(config, add_pooling_layer=False).save_pretrained(tmp_path / "vit")
    tf.ViTImageProcessor(image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(tmp_path / "vit")  # size 224
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    dense = create_labeler(f"vit_dense:{tmp_path / 'vit'}", batch_size=2).label({"rgb": images})
    glob = create_labeler(f"vit_global:{tmp_path / 'vit'}").label({"rgb": images})
    assert all(x.shape == (4, 4, 32) and x.dtype == np.float32 for x in dense)  # resized to 32 px, not 224
    assert all(x.shape == (32,) for x in glob) and not np.allclose(glob[0], glob[1])
    component = VisionTransformer.from_pretrained(tmp_path / "vit").eval()
    with torch.no_grad():
        stream = component.begin(np.stack(images))
        for layer in range(1, component.n_layers + 1):
            stream = component.step(stream, layer)
        tokens = component.tokens(stream).numpy()
    assert np.allclose(np.stack(dense), tokens[:, 1:].reshape(3, 4, 4, 32), atol=1e-4)
    assert np.allclose(np.stack(glob), tokens[:, 0], atol=1e-4)


def test_the_shipped_scene_vit_and_its_feature_tokenizer_work_together_without_a_path():
    """``scene_vit_dense`` needs no folder (the scene ViT ships); the zoo's ``scene_vit_dense`` tokenizer, trained on
    its features, reconstructs them on scenes of its held-out stream (cosine 0.946 over 256 of them, config.json)."""
    import tokzoo
    from tokzoo.datasets.scenes import generate_scene

    images = [generate_scene(i, seed=1_000_003, size=64)["rgb"] for i in range(4)]
    dense = np.stack(create_labeler("scene_vit_dense").label({"rgb": images}))
    glob = np.stack(create_labeler("scene_vit_global").label({"rgb": images}))
    assert dense.shape == (4, 8, 8, 128) and glob.shape == (4, 128)
    tok = tokzoo.load_tokenizer("scene_vit_dense")
    back = tok.decode(tok.encode(dense))
    cos = (back * dense).sum(-1) / (np.linalg.norm(back, axis=-1) * np.linalg.norm(dense, axis=-1))
    assert cos.mean() > 0.9
    other = tok.decode(tok.encode(dense[::-1].copy()))  # another scene's reconstruction is far from these features
    assert ((other * dense).sum(-1) / (np.linalg.norm(other, axis=-1) * np.linalg.norm(dense, axis=-1))).mean() < 0.85
