"""Structured tokenizers (palette, metadata, boxes): round trips, layout, persistence, typed errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tokzoo.errors import CheckpointError, ConfigError, DtypeError, InvalidValueError, ShapeError
from tokzoo.tokenizers.base import ARCHITECTURES, Tokenizer
from tokzoo.tokenizers.structured import DEFAULT_KEYS, PAD, BoxesTokenizer, MetadataTokenizer, PaletteTokenizer
from tokzoo.tokenizers.structured.metadata import INTEGER_UNITS

rng = np.random.default_rng(0)


def random_palette(k: int) -> dict:
    return {"colors": rng.integers(0, 256, size=(k, 3)).tolist()}


def random_metadata(tok: MetadataTokenizer) -> dict:
    specs = [s for s in tok.keys if rng.random() < 0.7]
    return {
        s["name"]: int(rng.integers(s["low"], s["high"] + 1))
        if s["unit"] in INTEGER_UNITS
        else float(rng.uniform(s["low"], s["high"]))
        for s in specs
    }


def random_boxes(n: int, width=640, height=480, num_classes=80) -> dict:
    corners = rng.uniform(0, 1, size=(n, 2, 2)) * [width, height]
    lo, hi = corners.min(axis=1), corners.max(axis=1)
    return {
        "boxes": np.concatenate([lo, hi], axis=1).tolist(),
        "classes": rng.integers(0, num_classes, n).tolist(),
        "width": width,
        "height": height,
    }


SAMPLES = {
    "palette": (PaletteTokenizer, lambda tok: random_palette(int(rng.integers(1, 8)))),
    "metadata": (MetadataTokenizer, random_metadata),
    "boxes": (BoxesTokenizer, lambda tok: random_boxes(int(rng.integers(0, 10)))),
}


# -- common behaviour -----------------------------------------------------------------------------
@pytest.mark.parametrize("modality", SAMPLES)
def test_shape_dtype_padding_and_vocab_bounds(modality):
    cls, make = SAMPLES[modality]
    tok = cls()
    tokens = tok.encode([make(tok) for _ in range(20)])
    assert tokens.dtype == torch.int64 and tokens.shape == (20, *tok.token_shape)
    assert tokens.min() >= 0 and tokens.max() < tok.vocab_size
    for row in tokens.tolist():  # once PAD starts, only PAD follows
        end = row.index(PAD) if PAD in row else len(row)
        assert all(i != PAD for i in row[:end]) and all(i == PAD for i in row[end:])
    assert tok.modality == modality and tok.describe()["vocab_size"] == tok.vocab_size


@pytest.mark.parametrize("modality", SAMPLES)
def test_batch_equals_singles_and_is_deterministic(modality):
    cls, make = SAMPLES[modality]
    tok = cls()
    samples = [make(tok) for _ in range(5)]
    batch = tok.encode(samples)
    assert torch.equal(batch, torch.cat([tok.encode(s) for s in samples]))
    assert torch.equal(batch, cls().encode(samples))
    assert len(tok.decode(batch)) == 5 and len(tok.decode(batch[0])) == 1
    assert tok.decode(batch.numpy()) == tok.decode(batch)
    assert tok.encode([]).shape == (0, *tok.token_shape)


@pytest.mark.parametrize("modality", SAMPLES)
def test_decoded_values_encode_to_the_same_tokens(modality):
    cls, make = SAMPLES[modality]
    tok = cls()
    tokens = tok.encode([make(tok) for _ in range(20)])
    assert torch.equal(tok.encode(tok.decode(tokens)), tokens)


@pytest.mark.parametrize(
    "tok",
    [
        PaletteTokenizer(bins=16, max_colors=3, name="tiny-palette"),
        MetadataTokenizer(
            keys=[
                "brightness",
                {"name": "depth_mean", "low": 0, "high": 80.5, "unit": "metres", "description": "mean depth"},
            ],
            bins=7,
        ),
        BoxesTokenizer(num_classes=3, max_boxes=2, bins=10),
    ],
)
def test_save_load_gives_identical_tokenizer(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
    loaded = Tokenizer.from_pretrained(tmp_path)
    assert type(loaded) is type(tok) and loaded.config == tok.config
    assert loaded.content_hash() == tok.content_hash() and loaded.tensors() == {}
    sample = {
        "palette": {"colors": [[7, 200, 255]]},
        "metadata": {"depth_mean": 3.3, "brightness": 17},
        "boxes": {"boxes": [[1, 2, 3, 4]], "classes": [2], "width": 5, "height": 6},
    }[tok.modality]
    assert torch.equal(loaded.encode(sample), tok.encode(sample))


def test_architectures_are_registered():
    assert ARCHITECTURES["binned_palette"] is PaletteTokenizer
    assert ARCHITECTURES["binned_metadata"] is MetadataTokenizer
    assert ARCHITECTURES["binned_boxes"] is BoxesTokenizer


@pytest.mark.parametrize(
    "cls, config",
    [
        (PaletteTokenizer, {"bins": 0}),
        (PaletteTokenizer, {"bins": 257}),
        (PaletteTokenizer, {"bins": "256"}),
        (PaletteTokenizer, {"max_colors": 0}),
        (PaletteTokenizer, {"max_colors": True}),
        (PaletteTokenizer, {"name": ""}),
        (PaletteTokenizer, {"modality": "boxes"}),
        (PaletteTokenizer, {"architecture": "binned_boxes"}),
        (MetadataTokenizer, {"bins": 0}),
        (MetadataTokenizer, {"keys": []}),
        (MetadataTokenizer, {"keys": ["nope"]}),
        (MetadataTokenizer, {"keys": ["brightness", "brightness"]}),
        (MetadataTokenizer, {"keys": [{"name": "a", "low": 1, "high": 1, "unit": "", "description": ""}]}),
        (MetadataTokenizer, {"keys": [{"name": "a", "low": 0, "high": math.inf, "unit": "", "description": ""}]}),
        (MetadataTokenizer, {"keys": [{"name": "a", "low": 0, "high": 1}]}),
        (BoxesTokenizer, {"num_classes": 0}),
        (BoxesTokenizer, {"max_boxes": -1}),
        (BoxesTokenizer, {"bins": 2.5}),
    ],
)
def test_bad_config_raises_config_error(cls, config):
    with pytest.raises(ConfigError):
        cls.from_config(config)


def test_bad_config_file_raises_checkpoint_error(tmp_path):
    PaletteTokenizer().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "bins": 1000}))
    with pytest.raises(CheckpointError, match="bins"):
        Tokenizer.from_pretrained(tmp_path)


@pytest.mark.parametrize("modality", SAMPLES)
def test_decode_shape_and_dtype_errors(modality):
    tok = SAMPLES[modality][0]()
    tokens = tok.encode(SAMPLES[modality][1](tok))
    with pytest.raises(ShapeError):
        tok.decode(tokens[:, :-1])
    with pytest.raises(ShapeError):
        tok.decode(tokens[None])
    with pytest.raises(DtypeError):
        tok.decode(tokens.float())
    with pytest.raises(InvalidValueError):
        tok.decode(torch.full_like(tokens, tok.vocab_size))


# -- palette --------------------------------------------------------------------------------------
def test_palette_uint8_is_lossless_and_layout():
    tok = PaletteTokenizer()
    assert tok.vocab_size == 1 + 7 + 256 and tok.token_shape == (22,)
    colors = [[0, 0, 0], [255, 255, 255], [1, 128, 254]]
    tokens = tok.encode({"colors": colors, "weights": [0.5, 0.3, 0.2]})
    assert tokens[0, :4].tolist() == [3, 8, 8, 8] and tokens[0, 4:7].tolist() == [263] * 3
    assert tok.decode(tokens) == [{"colors": colors}]
    full = tok.encode({"colors": [[255] * 3] * 7})
    assert full.max() == tok.vocab_size - 1 and (full != PAD).all()
    for k in range(1, 8):
        sample = random_palette(k)
        assert tok.decode(tok.encode(sample)) == [sample]


@pytest.mark.parametrize("bins", [2, 3, 16, 100, 255])
def test_palette_fewer_bins_within_half_a_bin(bins):
    tok = PaletteTokenizer(bins=bins)
    values = np.arange(256)
    colors = np.stack([values, values[::-1], np.roll(values, 7)], axis=1)
    decoded = np.concatenate(
        [np.array(tok.decode(tok.encode(colors[i : i + 7]))[0]["colors"]) for i in range(0, 256, 7)]
    )
    assert np.abs(decoded - colors[: len(decoded)]).max() <= 128 / bins + 0.5


def test_palette_array_inputs():
    tok = PaletteTokenizer()
    colors = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    batch = tok.encode(colors)
    assert torch.equal(batch, tok.encode([{"colors": c.tolist()} for c in colors]))
    assert torch.equal(tok.encode(torch.from_numpy(colors[1])), batch[1:2])
    assert torch.equal(tok.encode([colors[0], colors[1]]), batch[:2])


@pytest.mark.parametrize(
    "sample, error",
    [
        ({"colors": []}, InvalidValueError),
        ({"colors": [[0, 0, 0]] * 8}, InvalidValueError),
        ({"colors": [[0, -1, 0]]}, InvalidValueError),
        ({"colors": [[0, 256, 0]]}, InvalidValueError),
        ({"colors": [[0.5, 1, 2]]}, DtypeError),
        ({"colors": [[math.nan, 1, 2]]}, DtypeError),
        ({"colors": [[True, False, True]]}, DtypeError),
        ({"colors": [["a", "b", "c"]]}, DtypeError),
        ({"colors": [[1, 2]]}, ShapeError),
        ({"colors": [[1, 2, 3], [1, 2]]}, ShapeError),
        ({"colors": [1, 2, 3]}, ShapeError),
        ({"colours": [[1, 2, 3]]}, InvalidValueError),
        ({"weights": [1.0]}, InvalidValueError),
        (np.zeros((2, 3), dtype=np.float32), DtypeError),
        (np.zeros((2, 4), dtype=np.uint8), ShapeError),
        (np.zeros((2, 2, 2, 3), dtype=np.uint8), ShapeError),
        ("red", DtypeError),
        ([[1, 2, 3]], DtypeError),
    ],
)
def test_palette_bad_input(sample, error):
    with pytest.raises(error) as info:
        PaletteTokenizer().encode(sample)
    assert info.value.source == "palette"


def test_palette_batch_error_names_the_item():
    with pytest.raises(InvalidValueError, match="item 1: colour 0 channel g is 300"):
        PaletteTokenizer().encode([{"colors": [[1, 2, 3]]}, {"colors": [[1, 300, 3]]}])


@pytest.mark.parametrize(
    "row",
    [
        [9, 8, 8, 8],  # a channel bin where the count belongs
        [2, 8, 8, 8],  # count 2 but only one colour
        [1, 8, 8, 3],  # a count where a channel bin belongs
        [1, 8, 8, 8, 8],  # an id after the end
        [0, 8, 8, 8],  # PAD where the count belongs, then ids
    ],
)
def test_palette_decode_invalid_positions(row):
    tok = PaletteTokenizer()
    with pytest.raises(InvalidValueError):
        tok.decode(row + [PAD] * (tok.length - len(row)))


def test_palette_all_pad_row_is_invalid():
    with pytest.raises(InvalidValueError, match="position 0"):
        PaletteTokenizer().decode(torch.zeros(22, dtype=torch.int64))


# -- metadata -------------------------------------------------------------------------------------
def test_metadata_layout_and_round_trip_within_half_a_bin():
    """Within half a bin; counts and pixel sizes come back as the integer in their bin (within half a bin + 0.5)."""
    tok = MetadataTokenizer()
    K = len(DEFAULT_KEYS)
    assert tok.vocab_size == 1 + K + 1000 and tok.token_shape == (2 * K,)
    for _ in range(20):
        sample = random_metadata(tok)
        decoded = tok.decode(tok.encode(sample))[0]
        assert list(decoded) == [s["name"] for s in tok.keys if s["name"] in sample]
        for spec in tok.keys:
            if spec["name"] in sample:
                half_bin = (spec["high"] - spec["low"]) / tok.bins / 2
                rounding = 0.5 if spec["unit"] in INTEGER_UNITS and half_bin > 0.5 else 0.0
                assert abs(decoded[spec["name"]] - sample[spec["name"]]) <= half_bin + rounding + 1e-9


def test_metadata_fixed_key_order_and_ids():
    tok = MetadataTokenizer(keys=["contrast", "brightness"], bins=10)
    tokens = tok.encode({"brightness": 255, "contrast": 0})
    assert tokens.tolist() == [[1, 3, 2, 12]]
    assert torch.equal(tokens, tok.encode({"contrast": 0.0, "brightness": 255.0}))
    assert tok.decode(tokens) == [{"contrast": pytest.approx(6.4), "brightness": pytest.approx(242.25)}]
    assert tok.decode(tok.encode({})) == [{}]


def test_metadata_clips_out_of_range_values():
    tok = MetadataTokenizer(keys=["saturation"], bins=4)
    decoded = tok.decode(tok.encode([{"saturation": 7.0}, {"saturation": -2}]))
    assert decoded == [{"saturation": 0.875}, {"saturation": 0.125}]


@pytest.mark.parametrize(
    "sample, error, match",
    [
        ({"brightnes": 3}, InvalidValueError, "'brightnes'"),
        ({"brightness": math.nan}, InvalidValueError, "brightness"),
        ({"brightness": math.inf}, InvalidValueError, "brightness"),
        ({"brightness": "3"}, DtypeError, "brightness"),
        ({"brightness": True}, DtypeError, "brightness"),
        ({"brightness": [3]}, DtypeError, "brightness"),
        ([("brightness", 3)], DtypeError, "dict"),
        (3.0, DtypeError, "dict"),
    ],
)
def test_metadata_bad_input(sample, error, match):
    with pytest.raises(error, match=match) as info:
        MetadataTokenizer().encode(sample)
    assert info.value.source == "metadata"


@pytest.mark.parametrize(
    "row",
    [
        [3, 4],  # a value bin where a key belongs
        [1, 2],  # a key where a value bin belongs
        [2, 4, 1, 4],  # keys out of the configured order
        [1, 4, 1, 4],  # a key repeated
        [1, 4, 0, 4],  # an id after PAD
        [1, 0],  # a key without its value
    ],
)
def test_metadata_decode_invalid_positions(row):
    tok = MetadataTokenizer(keys=["brightness", "contrast"], bins=10)
    with pytest.raises(InvalidValueError):
        tok.decode(row + [PAD] * (tok.length - len(row)))


# -- boxes ----------------------------------------------------------------------------------------
def test_boxes_layout_and_round_trip_within_half_a_bin():
    tok = BoxesTokenizer()
    assert tok.vocab_size == 1 + 80 + 1000 and tok.token_shape == (320,)
    sample = {"boxes": [[0, 0, 640, 480], [10.5, 20, 30, 40]], "classes": [3, 79], "width": 640, "height": 480}
    tokens = tok.encode(sample)
    assert tokens[0, :10].tolist() == [4, 81, 81, 1080, 1080, 80, 81 + 16, 81 + 41, 81 + 46, 81 + 83]
    for _ in range(10):
        width, height = rng.integers(1, 4000, size=2).tolist()
        sample = random_boxes(int(rng.integers(1, 65)), width=width, height=height)
        decoded = tok.decode(tok.encode(sample), sizes=(sample["width"], sample["height"]))[0]
        assert decoded["classes"] == sample["classes"]
        assert (decoded["width"], decoded["height"]) == (sample["width"], sample["height"])
        half_bin = np.array([sample["width"], sample["height"]] * 2) / tok.bins / 2
        assert (np.abs(np.array(decoded["boxes"]) - sample["boxes"]) <= half_bin + 1e-9).all()


def test_boxes_decode_sizes():
    tok = BoxesTokenizer(num_classes=2, max_boxes=1, bins=4)
    samples = [
        {"boxes": [[0, 0, 10, 10]], "classes": [1], "width": 10, "height": 20},
        {"boxes": [], "classes": [], "width": 3, "height": 3},
    ]
    tokens = tok.encode(samples)
    assert tokens.tolist() == [[2, 3, 3, 6, 5], [0] * 5]
    unit = tok.decode(tokens)
    assert unit[0] == {"boxes": [[0.125, 0.125, 0.875, 0.625]], "classes": [1], "width": 1.0, "height": 1.0}
    assert unit[1] == {"boxes": [], "classes": [], "width": 1.0, "height": 1.0}
    assert tok.decode(tokens, sizes=[(8, 8), (3, 3)])[0]["boxes"] == [[1.0, 1.0, 7.0, 5.0]]
    assert tok.decode(tokens, sizes=(8, 16))[0]["boxes"] == [[1.0, 2.0, 7.0, 10.0]]
    with pytest.raises(ShapeError):
        tok.decode(tokens, sizes=[(8, 8)])
    with pytest.raises(InvalidValueError):
        tok.decode(tokens, sizes=(0, 8))


def test_boxes_numpy_inputs_and_max_boxes():
    tok = BoxesTokenizer(num_classes=5, max_boxes=3)
    sample = {
        "boxes": np.array([[1, 1, 2, 2]] * 3, dtype=np.float32),
        "classes": np.array([0, 4, 2]),
        "width": 4,
        "height": 4.0,
    }
    assert torch.equal(tok.encode(sample), tok.encode({**sample, "boxes": sample["boxes"].tolist()}))
    with pytest.raises(InvalidValueError, match="max_boxes = 3"):
        tok.encode({**sample, "boxes": [[1, 1, 2, 2]] * 4, "classes": [0] * 4})


GOOD = {"boxes": [[1, 2, 3, 4]], "classes": [0], "width": 10, "height": 10}


@pytest.mark.parametrize(
    "change, error",
    [
        ({"boxes": [[3, 2, 1, 4]]}, InvalidValueError),  # x1 < x0
        ({"boxes": [[1, 4, 3, 2]]}, InvalidValueError),  # y1 < y0
        ({"boxes": [[-1, 2, 3, 4]]}, InvalidValueError),  # left of the image
        ({"boxes": [[1, 2, 11, 4]]}, InvalidValueError),  # right of the image
        ({"boxes": [[1, -2, 3, 4]]}, InvalidValueError),  # above the image
        ({"boxes": [[1, 2, 3, 11]]}, InvalidValueError),  # below the image
        ({"boxes": [[1, 2, 3, math.nan]]}, InvalidValueError),
        ({"classes": [80]}, InvalidValueError),
        ({"classes": [-1]}, InvalidValueError),
        ({"classes": [0.0]}, DtypeError),
        ({"classes": [0, 1]}, ShapeError),
        ({"boxes": [[1, 2, 3]]}, ShapeError),
        ({"boxes": [["1", "2", "3", "4"]]}, DtypeError),
        ({"width": 0}, InvalidValueError),
        ({"height": math.nan}, InvalidValueError),
        ({"width": "10"}, DtypeError),
        ({"scores": [0.9]}, InvalidValueError),
    ],
)
def test_boxes_bad_input(change, error):
    with pytest.raises(error) as info:
        BoxesTokenizer().encode({**GOOD, **change})
    assert info.value.source == "boxes"


def test_boxes_missing_field():
    with pytest.raises(InvalidValueError, match="width"):
        BoxesTokenizer().encode({"boxes": [], "classes": [], "height": 3})


@pytest.mark.parametrize(
    "row",
    [
        [90, 1, 1, 2, 2],  # a coordinate bin where the class belongs
        [1, 90, 90, 1, 90],  # a class where a coordinate belongs
        [1, 95, 90, 91, 92],  # x1 < x0
        [1, 90, 90, 91],  # a box cut short by PAD
    ],
)
def test_boxes_decode_invalid_positions(row):
    tok = BoxesTokenizer(num_classes=3, max_boxes=2, bins=100)
    with pytest.raises(InvalidValueError):
        tok.decode(row + [PAD] * (tok.length - len(row)))


def test_metadata_round_trip_keeps_counts_and_sizes_integers():
    """Decoding turned `num_instances: 37` into 37.12 (issue 31): counts and pixel sizes come back as ints."""
    tok = MetadataTokenizer()
    sample = {"original_width": 640, "num_instances": 37, "num_humans": 2, "brightness": 100.5}
    (back,) = tok.decode(tok.encode([sample]))
    assert back["num_instances"] == 37 and back["num_humans"] == 2
    assert all(type(back[k]) is int for k in ("original_width", "num_instances", "num_humans"))
    assert abs(back["original_width"] - 640) <= 8192 / 1000 / 2 + 0.5
    assert type(back["brightness"]) is float and abs(back["brightness"] - 100.5) <= 255 / 1000 / 2
