"""SAM labelers on the official segment-anything package: a tiny randomly initialised ``Sam`` saved as a plain
state dict (``torch.save``) and as safetensors, loaded back through ``create_labeler("name:FILE")``."""

from __future__ import annotations

import inspect
from functools import partial

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tokzoo.errors import CheckpointError, ConfigError, InvalidValueError
from tokzoo.io.formats import from_value
from tokzoo.labelers import create_labeler
from tokzoo.labelers.sam import boundaries
from tokzoo.labelers.segment_anything import SamArchitecture, build_sam, infer_architecture, instances_from_records

sa = pytest.importorskip("segment_anything")  # the labelers extra
pytestmark = pytest.mark.usefixtures("one_thread")

rng = np.random.default_rng(0)
IMAGES = [rng.integers(0, 256, (40, 60, 3), dtype=np.uint8) for _ in range(3)] + [
    rng.integers(0, 256, (50, 30, 3), dtype=np.uint8)
]
TINY = SamArchitecture(
    img_size=64,
    patch_size=8,
    embed_dim=32,
    depth=3,
    num_heads=2,
    mlp_ratio=2.0,
    qkv_bias=True,
    window_size=3,
    global_attn_indexes=(1,),
    prompt_embed_dim=32,
    mask_in_chans=8,
    decoder_depth=2,
    decoder_mlp_dim=48,
    decoder_heads=8,
    attention_downsample_rate=2,
    num_multimask_outputs=3,
    iou_head_depth=3,
    iou_head_hidden_dim=24,
)
# A random model's IoU / stability guesses are meaningless: keep every mask, 16 prompts for speed.
LOW = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)


def tiny_sam():
    """The TINY architecture written out with segment_anything.modeling directly (not through tokzoo)."""
    m = sa.modeling
    torch.manual_seed(0)
    return m.Sam(
        m.ImageEncoderViT(
            img_size=64,
            patch_size=8,
            embed_dim=32,
            depth=3,
            num_heads=2,
            mlp_ratio=2.0,
            out_chans=32,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            rel_pos_zero_init=False,
            window_size=3,
            global_attn_indexes=(1,),
        ),
        m.PromptEncoder(embed_dim=32, image_embedding_size=(8, 8), input_image_size=(64, 64), mask_in_chans=8),
        m.MaskDecoder(
            num_multimask_outputs=3,
            transformer=m.TwoWayTransformer(depth=2, embedding_dim=32, mlp_dim=48, num_heads=8),
            transformer_dim=32,
            iou_head_depth=3,
            iou_head_hidden_dim=24,
        ),
    ).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sam")
    state = tiny_sam().state_dict()
    torch.save(state, tmp / "tiny.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / "tiny.safetensors"))
    return {"pth": tmp / "tiny.pth", "safetensors": tmp / "tiny.safetensors", "state": state, "dir": tmp}


@pytest.mark.parametrize("builder", ["vit_h", "vit_l", "vit_b"])
def test_official_architectures_are_inferred_from_their_shapes(builder):
    with torch.device("meta"):  # shapes only: no memory, no weights
        official = sa.sam_model_registry[builder]()
    shapes = {k: tuple(v.shape) for k, v in official.state_dict().items()}
    arch = infer_architecture(shapes)
    encoder = official.image_encoder
    assert arch.label == builder
    assert (arch.img_size, arch.patch_size, arch.embed_dim, arch.depth) == (
        1024,
        16,
        encoder.pos_embed.shape[-1],
        len(encoder.blocks),
    )
    assert arch.num_heads == encoder.blocks[0].attn.num_heads  # 16 heads of 80 for vit_h, 64-wide heads otherwise
    assert arch.global_attn_indexes == tuple(i for i, b in enumerate(encoder.blocks) if b.window_size == 0)
    assert arch.window_size == 14 and arch.mlp_ratio == 4.0 and arch.prompt_embed_dim == 256
    with torch.device("meta"):
        rebuilt = build_sam(arch)
    assert {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} == shapes
    assert str(rebuilt) == str(official)  # same modules, heads, windows and norms all the way down


@pytest.mark.parametrize("kind", ["pth", "safetensors"])
def test_a_tiny_sam_loads_with_its_hyperparameters_and_weights(files, kind):
    labeler = create_labeler(f"segment_anything_instances:{files[kind]}", **LOW)
    assert labeler.architecture == TINY
    loaded = labeler.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in files["state"].items())
    assert torch.equal(labeler.model.pixel_mean.flatten(), torch.tensor([123.675, 116.28, 103.53]))
    assert "vit-32x3@64" in labeler.describe()


def test_instances_follow_the_contract_and_match_the_generator(files):
    labeler = create_labeler(f"segment_anything_instances:{files['pth']}", batch_size=3, **LOW)
    out = labeler.label({"rgb": IMAGES})
    assert [x.shape for x in out] == [(40, 60)] * 3 + [(50, 30)]
    assert all(x.dtype == np.uint16 and x.max() >= 1 for x in out)
    for x in out:
        from_value("sam_instances", x, "test")
        assert np.array_equal(np.unique(x[x > 0]), np.arange(1, x.max() + 1))  # ids 1..n, no gaps
    records = labeler.generator.generate(IMAGES[3])  # the same masks, straight from SamAutomaticMaskGenerator
    assert len(records) >= out[3].max()
    assert np.array_equal(out[3], instances_from_records(records, (50, 30), min_area=0.0005))
    # deterministic, and independent of how the batch is chunked
    again = create_labeler(f"segment_anything_instances:{files['safetensors']}", batch_size=1, **LOW)
    assert all(np.array_equal(a, b) for a, b in zip(out, again.label({"rgb": IMAGES})))


def test_edges_are_binary_instance_boundaries(files):
    instances = create_labeler(f"segment_anything_instances:{files['pth']}", **LOW).label({"rgb": IMAGES[2:]})
    edges_labeler = create_labeler(f"segment_anything_edges:{files['pth']}", batch_size=2, **LOW)
    assert edges_labeler.modality == "edges" and edges_labeler.zoo_tokenizer == "sam_edges"
    edges = edges_labeler.label({"rgb": IMAGES[2:]})
    for e, ids in zip(edges, instances):
        assert e.dtype == np.uint8 and set(np.unique(e)) == {0, 1} and e.shape == ids.shape
        assert np.array_equal(e, boundaries(ids))
        ys, xs = np.nonzero(e)  # each edge pixel has a 4-neighbour with another id
        padded = np.pad(ids.astype(np.int64), 1, constant_values=-1)
        neighbours = [padded[ys + 1 + dy, xs + 1 + dx] for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
        assert all(any(n[i] not in (-1, ids[y, x]) for n in neighbours) for i, (y, x) in enumerate(zip(ys, xs)))
        from_value("edges", e, "test")


def test_painting_generator_records():
    masks = np.zeros((4, 10, 10), bool)
    masks[0, :5] = True  # iou 0.9
    masks[1, :, :5] = True  # iou 0.95: painted first (id 1); mask 0 keeps its right half (id 2)
    masks[2, 8:, 8:] = True  # iou 0.99 but 4 px < min_area 5% of 100 px: dropped
    masks[3, :4, :4] = True  # iou 0.5: all of it already taken, dropped
    records = [{"segmentation": m, "predicted_iou": s} for m, s in zip(masks, [0.9, 0.95, 0.99, 0.5])]
    out = instances_from_records(records, (10, 10), min_area=0.05)
    expected = np.zeros((10, 10), np.uint16)
    expected[:, :5], expected[:5, 5:] = 1, 2
    assert out.dtype == np.uint16 and np.array_equal(out, expected)
    empty = instances_from_records([], (7, 3), min_area=0.05)
    assert empty.shape == (7, 3) and empty.dtype == np.uint16 and not empty.any()


def test_options_default_to_sams_and_reach_the_generator(files):
    defaults = create_labeler(f"segment_anything_instances:{files['pth']}")
    reference = inspect.signature(sa.SamAutomaticMaskGenerator).parameters
    for option in (
        "points_per_batch",
        "pred_iou_thresh",
        "stability_score_thresh",
        "stability_score_offset",
        "box_nms_thresh",
        "crop_n_layers",
        "min_mask_region_area",
    ):
        assert getattr(defaults.generator, option) == reference[option].default, option
    assert defaults.generator.point_grids[0].shape == (32 * 32, 2) and defaults.min_area == 0.0005
    assert create_labeler(f"segment_anything_instances:{files['pth']}", points_per_side=5).generator.point_grids[
        0
    ].shape == (25, 2)
    for bad in (0, 2.5, "8"):
        with pytest.raises(ConfigError, match="points_per_side must be an integer >= 1"):
            create_labeler(f"segment_anything_instances:{files['pth']}", points_per_side=bad)
    with pytest.raises(InvalidValueError, match=r"rgb must be uint8 \(H, W, 3\)"):
        create_labeler(f"segment_anything_instances:{files['pth']}", **LOW).label({"rgb": [IMAGES[0] / 255.0]})


class Payload:
    """Unpickling this would create a marker file: weights_only=True must refuse it before that."""

    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def one_line_error(spec, match):
    with pytest.raises(CheckpointError, match=match) as info:
        create_labeler(spec)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_refusals_are_one_line(files, tmp_path):
    name = "segment_anything_instances"
    with pytest.raises(ConfigError, match="needs a checkpoint file"):
        create_labeler(name)
    one_line_error(f"{name}:{tmp_path / 'absent.pth'}", "absent.pth: no such file")
    one_line_error(f"{name}:{tmp_path}", "is a folder")

    payload = Payload()
    Payload.marker = tmp_path / "unpickled"
    torch.save({"w": torch.zeros(2), "x": payload}, tmp_path / "evil.pth")
    one_line_error(f"{name}:{tmp_path / 'evil.pth'}", "evil.pth: refused or unreadable with weights_only=True")
    assert not Payload.marker.exists()
    torch.save({"w": torch.zeros(2), "n": 3}, tmp_path / "mixed.pth")
    one_line_error(f"{name}:{tmp_path / 'mixed.pth'}", "does not hold a flat dict of tensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    one_line_error(f"{name}:{tmp_path / 'junk.safetensors'}", "junk.safetensors: not a readable safetensors file")
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "linear.pth")
    one_line_error(f"{name}:{tmp_path / 'linear.pth'}", "not a segment-anything SAM state dict .*patch_embed")

    def variant(file, edit):
        state = dict(files["state"])
        edit(state)
        torch.save(state, tmp_path / file)
        return f"{name}:{tmp_path / file}"

    key = "mask_decoder.iou_token.weight"
    message = one_line_error(variant("missing.pth", lambda s: s.pop(key)), f"missing '{key}'")
    assert "vit-32x3@64" in message
    one_line_error(variant("extra.pth", lambda s: s.update(extra=torch.zeros(1))), "unexpected 'extra'")
    one_line_error(
        variant("shape.pth", lambda s: s.update({key: torch.zeros(1, 31)})),
        rf"tensor '{key}' has shape \(1, 31\), vit-32x3@64 needs \(1, 32\)",
    )

    def drop_block_1(state):
        for k in [k for k in state if k.startswith("image_encoder.blocks.1.")]:
            del state[k]

    one_line_error(variant("block.pth", drop_block_1), r"image_encoder\.blocks\.1\.\* missing")
    rel = "image_encoder.blocks.0.attn.rel_pos_h"
    one_line_error(variant("rel.pth", lambda s: s.update({rel: torch.zeros(7, 16)})), "block 0: relative-position")
    narrow = {rel: torch.zeros(5, 8), rel[:-1] + "w": torch.zeros(5, 8)}  # block 0 with 8-wide heads, the rest 16
    one_line_error(variant("heads.pth", lambda s: s.update(narrow)), "encoder blocks disagree: head dims")
