"""The ``marigold_normals`` labeler on a tiny randomly initialised ``MarigoldNormalsPipeline`` (same architecture:
UNet2DConditionModel with 8 input / 4 output channels, AutoencoderKL, DDIM, CLIP text encoder and tokenizer), saved
with ``save_pretrained`` and loaded back through ``create_labeler("marigold_normals:DIR")``. No network."""

from __future__ import annotations

import json
import shutil

import diffusers  # noqa: E402  (dev extra: tokzoo[labelers])
import numpy as np
import pytest
import torch
import transformers as tf  # noqa: E402

from tokzoo.errors import CheckpointError, ConfigError, DtypeError
from tokzoo.io.formats import from_value
from tokzoo.labelers import create_labeler
from tokzoo.labelers.marigold import MarigoldNormals, marigold_to_opencv

rng = np.random.default_rng(0)
IMAGES = [rng.integers(0, 256, (20, 28, 3), dtype=np.uint8) for _ in range(3)] + [
    rng.integers(0, 256, (24, 14, 3), dtype=np.uint8)
]


def tiny_pipeline(tmp) -> diffusers.MarigoldNormalsPipeline:
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8,
        in_channels=8,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=4,
    )
    vae = diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=4,
    )
    scheduler = diffusers.DDIMScheduler(
        beta_schedule="scaled_linear",
        prediction_type="v_prediction",
        timestep_spacing="trailing",
        set_alpha_to_one=False,
        clip_sample=False,
    )
    text = tf.CLIPTextModel(
        tf.CLIPTextConfig(
            vocab_size=6,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=8,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "b</w>": 3, "a": 4, "b": 5}
    (tmp / "vocab.json").write_text(json.dumps(vocab))
    (tmp / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = tf.CLIPTokenizer(str(tmp / "vocab.json"), str(tmp / "merges.txt"), model_max_length=8)
    return diffusers.MarigoldNormalsPipeline(
        unet=unet,
        vae=vae,
        scheduler=scheduler,
        text_encoder=text,
        tokenizer=tokenizer,
        prediction_type="normals",
        use_full_z_range=True,
        default_denoising_steps=2,
        default_processing_resolution=16,
    )


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny convolutions run fastest on one thread, and the shared test machine has two cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("marigold")
    tiny_pipeline(tmp).save_pretrained(tmp / "pipe")
    return tmp / "pipe"


@pytest.fixture(scope="module")
def labelled(checkpoint):
    """The four images labelled with batch_size 4 (two same-size groups) and batch_size 1."""
    batched = create_labeler(f"marigold_normals:{checkpoint}", batch_size=4)
    return (
        batched,
        batched.label({"rgb": IMAGES}),
        create_labeler(f"marigold_normals:{checkpoint}", batch_size=1).label({"rgb": IMAGES}),
    )


def test_axis_conversion_is_a_rotation_taking_marigold_frame_to_opencv():
    facing, up, right = np.eye(3)[2], np.eye(3)[1], np.eye(3)[0]  # in Marigold's frame: z to the viewer, y up
    assert np.array_equal(marigold_to_opencv(facing), [0, 0, -1])  # OpenCV: a surface seen head-on has z < 0
    assert np.array_equal(marigold_to_opencv(up), [0, -1, 0])  # up is -y when y points down
    assert np.array_equal(marigold_to_opencv(right), [1, 0, 0])
    a, b = rng.normal(size=(2, 5, 3))
    assert marigold_to_opencv(a).dtype == np.float32
    np.testing.assert_allclose(
        np.cross(marigold_to_opencv(a), marigold_to_opencv(b)), marigold_to_opencv(np.cross(a, b)), rtol=1e-5, atol=1e-5
    )  # no mirror: handedness kept


def test_labels_are_unit_normals_at_input_size_whatever_the_batch(labelled):
    labeler, batched, single = labelled
    assert (labeler.steps, labeler.processing_resolution, labeler.ensemble_size) == (2, 16, 1)  # checkpoint defaults
    assert [n.shape for n in batched] == [(20, 28, 3)] * 3 + [(24, 14, 3)]
    for normals in batched:
        assert normals.dtype == np.float32 and np.isfinite(normals).all()
        np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=1e-5)
        from_value("normals", normals, "test")  # the modality's contract accepts it
    assert not np.allclose(batched[0], batched[1], atol=1e-3)  # different images, different normals
    for a, b in zip(batched, single):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_same_seed_same_bytes_other_seed_other_noise(checkpoint, labelled):
    _, batched, _ = labelled
    again = create_labeler(f"marigold_normals:{checkpoint}", batch_size=4).label({"rgb": IMAGES})
    assert all(np.array_equal(a, b) for a, b in zip(batched, again))
    other = create_labeler(f"marigold_normals:{checkpoint}", batch_size=4, seed=1).label({"rgb": IMAGES[:1]})
    assert np.abs(other[0] - batched[0]).max() > 1e-3


def test_outputs_are_marigold_vectors_turned_into_opencv_axes(labelled, monkeypatch):
    labeler = labelled[0]
    marigold = torch.tensor([0.48, 0.6, 0.64])  # unit: right, up, towards the viewer

    def decode(latent):  # the VAE decoder replaced by a constant normal map in Marigold's frame
        b, _, h, w = latent.shape
        return marigold.view(1, 3, 1, 1).expand(b, 3, h * 2, w * 2).clone()

    monkeypatch.setattr(labeler.pipeline, "decode_prediction", decode)
    out = labeler.label({"rgb": IMAGES})
    assert all(np.allclose(n, [0.48, -0.6, -0.64], atol=1e-6) for n in out)


def test_ensembles_and_native_resolution_keep_the_contract(checkpoint):
    spec = f"marigold_normals:{checkpoint}"
    options = {"ensemble_size": 3, "processing_resolution": 0, "reduction": "mean"}
    pair = create_labeler(spec, batch_size=2, **options).label({"rgb": IMAGES[:2]})
    alone = create_labeler(spec, batch_size=1, **options).label({"rgb": IMAGES[:2]})
    for a, b in zip(pair, alone):
        assert a.shape == (20, 28, 3) and np.isfinite(a).all()
        np.testing.assert_allclose(np.linalg.norm(a, axis=-1), 1.0, atol=1e-5)
        np.testing.assert_allclose(a, b, atol=1e-4)  # member e of each image has its own noise, whatever the batch


def test_bad_options_and_checkpoints_are_one_line_errors(tmp_path, checkpoint, labelled):
    pipeline = labelled[0].pipeline
    for options, match in [
        ({"steps": 0}, "steps must be >= 1"),
        ({"ensemble_size": 0}, "ensemble_size"),
        ({"processing_resolution": 15}, "multiple of 2"),
        ({"reduction": "median"}, "reduction"),
    ]:
        with pytest.raises(ConfigError, match=match):
            MarigoldNormals(pipeline, **options)
    with pytest.raises(ConfigError, match="dtype"):
        create_labeler(f"marigold_normals:{checkpoint}", dtype="float8")
    with pytest.raises(CheckpointError, match="no such folder") as info:
        create_labeler(f"marigold_normals:{tmp_path / 'missing'}")
    assert str(tmp_path / "missing") in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="model_index.json"):
        create_labeler(f"marigold_normals:{tmp_path}")
    depth = tmp_path / "depth"  # a Marigold depth checkpoint (same layout) is refused
    shutil.copytree(checkpoint, depth)
    index = json.loads((depth / "model_index.json").read_text())
    (depth / "model_index.json").write_text(json.dumps({**index, "prediction_type": "depth"}))
    with pytest.raises(CheckpointError, match="holds a 'depth' model"):
        create_labeler(f"marigold_normals:{depth}")
    pickled = tmp_path / "pickled"  # a .bin (pickle) weight file is refused, never unpickled
    pipeline.save_pretrained(pickled, safe_serialization=False)
    with pytest.raises(CheckpointError, match="safetensors") as info:
        create_labeler(f"marigold_normals:{pickled}")
    assert "\n" not in str(info.value)
    with pytest.raises(DtypeError, match="uint8"):
        labelled[0].label({"rgb": [IMAGES[0].astype(np.float32)]})


def test_consensus_takes_marigold_as_a_normals_candidate(checkpoint, labelled):
    spec = f"marigold_normals:{checkpoint}"
    consensus = create_labeler(f"consensus:{spec},{spec}")  # two identical candidates: their consensus is either
    assert consensus.modality == "normals" and consensus.needs == ("rgb",)
    (out,) = consensus.label({"rgb": IMAGES[:1]})
    np.testing.assert_allclose(out, labelled[1][0], atol=1e-5)
