"""Modality file formats: round trips, tricky-but-valid images, and every bad input's typed error."""

import io
import json
import pickle
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tokzoo.errors import (
    CorruptFileError,
    DtypeError,
    EmptyFileError,
    ImageTooLargeError,
    InputError,
    InvalidValueError,
    ShapeError,
    UnsupportedFormatError,
)
from tokzoo.io import read_modality, write_modality
from tokzoo.io.formats import from_value

RNG = np.random.default_rng(0)


def png(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def npy(arr, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A valid-looking PNG declaring width x height 8-bit gray with only a few bytes of pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")


# --- round trips -------------------------------------------------------------------------------


def test_depth_png_is_millimetres_by_default_and_scale_is_configurable():
    depth = np.array([[1.0, 2.5], [np.nan, 65.535]], np.float32)
    data = write_modality("depth", depth, ".png")
    stored = np.asarray(Image.open(io.BytesIO(data)))
    assert stored.tolist() == [[1000, 2500], [0, 65535]]
    back = read_modality("depth", "d.png", data)
    assert back.dtype == np.float32 and np.isnan(back[1, 0])
    np.testing.assert_allclose(back[~np.isnan(back)], [1.0, 2.5, 65.535], rtol=1e-6)
    np.testing.assert_allclose(read_modality("depth", "d.png", data, scale=100.0)[0], [10.0, 25.0])


def test_depth_npy_turns_zero_negative_and_inf_into_nan():
    raw = np.array([[0.0, -1.0, np.inf, -np.inf], [np.nan, 2.0, 3.5, 1e-3]], np.float64)
    out = read_modality("depth", "d.npy", npy(raw))
    assert out.dtype == np.float32 and out.shape == (2, 4)
    assert np.isnan(out[0]).all() and np.isnan(out[1, 0])
    np.testing.assert_allclose(out[1, 1:], [2.0, 3.5, 1e-3])


def test_normals_png_decodes_renormalises_and_marks_grey_invalid():
    n = RNG.normal(size=(6, 5, 3)).astype(np.float32)
    n /= np.linalg.norm(n, axis=2, keepdims=True)
    n[2, 3] = np.nan
    back = read_modality("normals", "n.png", write_modality("normals", n, ".png"))
    assert np.isnan(back[2, 3]).all()
    valid = ~np.isnan(n).any(axis=2)
    np.testing.assert_allclose(np.linalg.norm(back[valid], axis=1), 1.0, atol=1e-5)
    assert np.abs(back[valid] - n[valid]).max() < 0.01
    zero = np.zeros((2, 2, 3), np.float32)
    zero[0, 0] = [0, 0, -2]  # one valid, unnormalised vector
    out = read_modality("normals", "n.npy", npy(zero))
    np.testing.assert_allclose(out[0, 0], [0, 0, -1])
    assert np.isnan(out[1]).all()


@pytest.mark.parametrize(
    "modality,value",
    [
        ("semseg", np.array([[0, 7], [255, 254]], np.uint8)),
        ("sam_instances", np.array([[0, 300], [65535, 1]], np.uint16)),
        ("edges", np.array([[0, 1], [1, 0]], np.uint8)),
    ],
)
@pytest.mark.parametrize("ext", [".png", ".npy"])
def test_label_maps_round_trip(modality, value, ext):
    out = read_modality(modality, f"x{ext}", write_modality(modality, value, ext))
    assert out.dtype == value.dtype and np.array_equal(out, value)


def test_semseg_maps_the_files_ignore_index_to_255():
    stored = np.array([[0, 3], [65535, 200]], np.uint16)
    out = read_modality("semseg", "s.png", png(Image.fromarray(stored)), ignore_index=65535)
    assert out.tolist() == [[0, 3], [255, 200]] and out.dtype == np.uint8


def test_edges_png_0_255_becomes_0_1():
    out = read_modality("edges", "e.png", png(Image.fromarray(np.array([[0, 255], [200, 30]], np.uint8))))
    assert out.tolist() == [[0, 1], [1, 0]]


def test_json_modalities_and_write_to_path(tmp_path):
    pose = {
        "skeleton": "coco17",
        "humans": [{"keypoints_2d": [[1.5, 2.0, 2]] * 17, "keypoints_3d": [[0.1, 0.2, 3.0]] * 17}],
    }
    path = tmp_path / "p.pose.json"
    data = write_modality("pose", pose, path)
    assert path.read_bytes() == data
    assert read_modality("pose", path) == pose
    cam = {
        "fx": 500.0,
        "fy": 500.0,
        "cx": 32.0,
        "cy": 24.0,
        "width": 64,
        "height": 48,
        "cam_to_world": np.eye(4).tolist(),
    }
    assert read_modality("camera", "c.json", write_modality("camera", cam, ".json")) == cam


def test_captions_are_utf8_text_files(tmp_path):
    """A caption round-trips through ``.captions.txt`` (one trailing newline written, surrounding whitespace
    dropped on reading); a str from a dataset column is checked the same way."""
    path = tmp_path / "k.captions.txt"
    data = write_modality("captions", "  a red box and a person — près du mur.", path)
    assert path.read_bytes() == data == "a red box and a person — près du mur.\n".encode()
    assert read_modality("captions", path) == "a red box and a person — près du mur."
    assert from_value("captions", "a sphere\r\n", "column") == "a sphere"
    assert from_value("captions", b"a sphere", "column") == "a sphere"  # bytes without a name: sniffed as text
    with pytest.raises(DtypeError):
        from_value("captions", ["a", "b"], "column")
    with pytest.raises(InvalidValueError, match="over the limit"):
        from_value("captions", "a" * 70_000, "column")


def test_audio_wav_flac_mp3_resampled_to_mono_float32():
    import soundfile

    t = np.arange(22050) / 22050
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 440 * t)], axis=1).astype(np.float32)
    for fmt, ext in (("WAV", ".wav"), ("FLAC", ".flac"), ("MP3", ".mp3")):
        buf = io.BytesIO()
        soundfile.write(buf, stereo, 22050, format=fmt)
        out = read_modality("audio", f"a{ext}", buf.getvalue(), sample_rate=8000)
        assert out.dtype == np.float32 and out.ndim == 1 and abs(len(out) - 8000) < 1200, ext
        assert 0.4 < np.abs(out).max() <= 0.55, ext
    wav = write_modality("audio", stereo[:, 0], ".wav", sample_rate=8000)
    assert len(read_modality("audio", "a.wav", wav, sample_rate=8000)) == 22050


# --- tricky but valid images --------------------------------------------------------------------


def test_cmyk_jpeg_is_converted_to_rgb():
    img = Image.new("CMYK", (8, 6), (255, 0, 0, 0))  # pure cyan
    out = read_modality("rgb", "c.jpg", png(img, "JPEG", quality=95))
    assert out.shape == (6, 8, 3) and out.dtype == np.uint8
    r, g, b = out[3, 4].astype(int)
    assert r < 40 and g > 215 and b > 215


def test_16bit_gray_png_scales_to_8_bits():
    stored = np.array([[0, 257 * 100], [65535, 257 * 7]], np.uint16)
    out = read_modality("rgb", "g16.png", png(Image.fromarray(stored)))
    assert out.shape == (2, 2, 3) and out[..., 0].tolist() == [[0, 100], [255, 7]]
    assert (out[..., 0] == out[..., 2]).all()


def test_palette_png_with_and_without_transparency():
    img = Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8), mode="P")
    img.putpalette([10, 20, 30, 200, 100, 50, 0, 255, 0] + [0] * 759)
    out = read_modality("rgb", "p.png", png(img))
    assert (
        out[0, 0].tolist() == [10, 20, 30]
        and out[0, 1].tolist() == [200, 100, 50]
        and out[1, 0].tolist() == [0, 255, 0]
    )
    img.info["transparency"] = 1  # index 1 fully transparent -> black
    out = read_modality("rgb", "p.png", png(img, transparency=1))
    assert out[0, 1].tolist() == [0, 0, 0] and out[0, 0].tolist() == [10, 20, 30]


def test_alpha_is_composited_on_black():
    rgba = Image.new("RGBA", (3, 2), (200, 100, 50, 128))
    assert read_modality("rgb", "a.png", png(rgba))[0, 0].tolist() == [100, 50, 25]
    la = Image.fromarray(np.array([[[200, 255], [200, 0]]], np.uint8), mode="LA")
    assert read_modality("rgb", "la.png", png(la))[0].tolist() == [[200, 200, 200], [0, 0, 0]]


def test_one_bit_1x1_and_very_wide_images():
    bits = Image.fromarray(np.array([[True, False]]))
    assert read_modality("rgb", "b.png", png(bits))[0].tolist() == [[255] * 3, [0] * 3]
    assert read_modality("rgb", "one.png", png(Image.new("RGB", (1, 1), (1, 2, 3)))).tolist() == [[[1, 2, 3]]]
    wide = RNG.integers(0, 256, (2, 4000, 3), dtype=np.uint8)
    assert np.array_equal(read_modality("rgb", "wide.webp", write_modality("rgb", wide, ".webp")), wide)


def test_exif_orientation_is_applied():
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red, right half blue as stored
    arr[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    out = read_modality("rgb", "rot.jpg", png(Image.fromarray(arr), "JPEG", exif=exif.tobytes(), quality=95))
    assert out.shape == (40, 20, 3)
    assert out[5, 10, 0] > 200 and out[5, 10, 2] < 50  # the stored left half is now on top
    assert out[35, 10, 2] > 200 and out[35, 10, 0] < 50


# --- bad inputs ---------------------------------------------------------------------------------


def _jpeg() -> bytes:
    return png(Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "JPEG")


def _png() -> bytes:
    return png(Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)))


BAD = [
    ("rgb", "empty.png", b"", EmptyFileError),
    ("depth", "empty.npy", b"", EmptyFileError),
    ("pose", "empty.json", b"", EmptyFileError),
    ("audio", "empty.wav", b"", EmptyFileError),
    ("rgb", "truncated.png", _png()[:300], CorruptFileError),
    ("rgb", "truncated.jpg", _jpeg()[:400], CorruptFileError),
    ("rgb", "random.png", RNG.integers(0, 256, 500, dtype=np.uint8).tobytes(), CorruptFileError),
    ("semseg", "text.png", b"this is not an image\n", CorruptFileError),
    ("audio", "noise.wav", RNG.integers(0, 256, 500, dtype=np.uint8).tobytes(), CorruptFileError),
    ("rgb", "bomb.png", png_header(100_000, 100_000), ImageTooLargeError),
    ("depth", "bomb_depth.png", png_header(20_000, 5_000), ImageTooLargeError),
    ("rgb", "photo.gif", _png(), UnsupportedFormatError),
    ("depth", "depth.jpg", _jpeg(), UnsupportedFormatError),
    ("pose", "pose.yaml", b"a: 1", UnsupportedFormatError),
    ("depth", "nan.npy", npy(np.full((4, 4), np.nan, np.float32)), InvalidValueError),
    ("depth", "zeros.png", png(Image.fromarray(np.zeros((4, 4), np.uint16))), InvalidValueError),
    ("semseg", "ids.png", png(Image.fromarray(np.array([[1, 300]], np.uint16))), InvalidValueError),
    (
        "camera",
        "cam.json",
        b'{"fx": NaN, "fy": 1, "cx": 0, "cy": 0, "width": 2, "height": 2, "cam_to_world": []}',
        InvalidValueError,
    ),
    ("depth", "rgbdepth.npy", npy(np.ones((4, 4, 3), np.float32)), ShapeError),
    ("normals", "flat.npy", npy(np.ones((4, 4), np.float32)), ShapeError),
    ("crops", "crops.npy", npy(np.ones((3, 4), np.int32)), ShapeError),
    ("depth", "empty_array.npy", npy(np.ones((0, 4), np.float32)), ShapeError),
    ("semseg", "rgb_semseg.png", _png(), ShapeError),
    ("pose", "pose.json", b'{"skeleton": "coco17"}', ShapeError),
    ("depth", "object.npy", npy(np.array([{"a": 1}, None], dtype=object), allow_pickle=True), DtypeError),
    ("depth", "ints.npy", npy(np.ones((4, 4), np.int32)), DtypeError),
    ("depth", "depth8.png", png(Image.fromarray(np.ones((4, 4), np.uint8))), DtypeError),
    ("depth", "pickled.npy", pickle.dumps(np.ones((4, 4), np.float32)), CorruptFileError),
    ("depth", "liar.npy", npy(np.ones((4, 4), np.float32))[:-8], CorruptFileError),
    ("metadata", "broken.json", b'{"a": ', CorruptFileError),
    ("metadata", "latin1.json", '{"a": "é"}'.encode("latin-1"), CorruptFileError),
    ("captions", "empty.txt", b"", EmptyFileError),
    ("captions", "blank.txt", b" \n\t\n", InvalidValueError),
    ("captions", "nul.txt", b"a box\x00", InvalidValueError),
    ("captions", "latin1.txt", "un caf\u00e9".encode("latin-1"), CorruptFileError),
    ("captions", "caption.json", b'"a box"', UnsupportedFormatError),
]


@pytest.mark.parametrize("modality,name,data,error", BAD, ids=[b[1] for b in BAD])
def test_bad_input_gets_its_typed_error_naming_the_file(modality, name, data, error, tmp_path):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(error) as info:
        read_modality(modality, path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message and len(message) > len(str(path)) + 5
    with pytest.raises(error):  # the same from bytes
        read_modality(modality, f"shard.tar:{name}", data)


def test_npy_header_declaring_huge_array_is_refused_without_allocating():
    header = npy(np.ones((2, 2), np.float32))
    big = header.replace(b"(2, 2)", b"(900000, 900000)")  # header claims 3 TB, data is 16 bytes
    with pytest.raises(CorruptFileError, match="declares"):
        read_modality("depth", "big.npy", big)


def test_real_image_over_the_pixel_limit_is_refused_and_limit_is_configurable():
    data = png(Image.new("L", (2000, 1000)))  # 2 megapixels, a few kB compressed
    with pytest.raises(ImageTooLargeError, match="2000x1000"):
        read_modality("rgb", "big.png", data, max_pixels=1_000_000)
    assert read_modality("rgb", "big.png", data, max_pixels=2_000_000).shape == (1000, 2000, 3)


def test_json_size_limit():
    with pytest.raises(CorruptFileError, match="limit"):
        read_modality("metadata", "m.json", json.dumps({"x": "a" * 1000}).encode(), max_json_bytes=100)


def test_unknown_modality_and_unwritable_format():
    with pytest.raises(UnsupportedFormatError, match="unknown modality"):
        read_modality("smell", "x.png", b"abc")
    with pytest.raises(UnsupportedFormatError):
        write_modality("depth", np.ones((2, 2), np.float32), ".jpg")
    with pytest.raises(InputError):
        read_modality("rgb", "/nonexistent/file.png")


def test_feature_files_round_trip_and_are_checked(tmp_path):
    dense = np.random.default_rng(0).standard_normal((16, 16, 768)).astype(np.float32)
    data = write_modality("dense_features", dense, tmp_path / "a.dense_features.npy")
    assert np.array_equal(read_modality("dense_features", tmp_path / "a.dense_features.npy"), dense)
    assert np.array_equal(read_modality("dense_features", "x.npy", data), dense)
    vector = np.ones(512, np.float64)
    assert (
        read_modality("global_feature", "g.npy", write_modality("global_feature", vector, ".npy")).dtype == np.float32
    )
    with pytest.raises(ShapeError, match=r"\(h, w, C\)"):
        from_value("dense_features", vector, "v.npy")
    with pytest.raises(InvalidValueError, match="NaN"):
        from_value("global_feature", np.full(4, np.nan, np.float32), "n.npy")
    with pytest.raises(DtypeError):
        from_value("global_feature", np.ones(4, np.int64), "i.npy")


def test_each_stored_value_declares_how_it_is_written():
    """What pseudo-label writes a value computed in memory as: exact float maps in .npy, label maps in .png, JSON
    values as .json (each declared with the value in tokzoo/modalities)."""
    from tokzoo.io.formats import EXTENSIONS, written_extension

    written = {name: written_extension(name) for name in EXTENSIONS}
    assert written["depth"] == written["normals"] == written["dense_features"] == ".npy"
    assert written["rgb"] == written["semseg"] == written["sam_instances"] == written["edges"] == ".png"
    assert {written[name] for name in ("pose", "camera", "palette", "metadata", "boxes")} == {".json"}
    assert written["captions"] == ".txt"
    assert all(ext in EXTENSIONS[name] for name, ext in written.items())
