"""Readers: the same data in every layout gives the same samples; bad files become error entries."""

import io
import os
import pickle
import tarfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pytest
from PIL import Image

from tokzoo.errors import ConfigError
from tokzoo.io import (
    FolderReader,
    HFReader,
    ModalityFoldersReader,
    TarReader,
    decode_sample,
    open_reader,
    write_modality,
)
from tokzoo.io.samples import SAMPLE_ERROR

KEYS = ["scene_000", "scene_001", "scene_002", "scene_003"]
EXT = {"rgb": ".png", "depth": ".npy", "semseg": ".png", "pose": ".json"}


def make_values(i: int) -> dict:
    rng = np.random.default_rng(i)
    depth = rng.uniform(0.5, 9.0, (12, 16)).astype(np.float32)
    depth[0, :3] = np.nan
    return {
        "rgb": rng.integers(0, 256, (12, 16, 3), dtype=np.uint8),
        "depth": depth,
        "semseg": rng.integers(0, 5, (12, 16), dtype=np.uint8),
        "pose": {"skeleton": "coco17", "humans": [{"keypoints_2d": [[float(i), 2.0, 2]] * 17}]},
    }


DATA = {key: make_values(i) for i, key in enumerate(KEYS)}


def assert_same(samples: dict, expected: dict = DATA, modalities=tuple(EXT)):
    assert sorted(samples) == sorted(expected)
    for key, sample in samples.items():
        assert sample.ok, sample.errors
        for m in modalities:
            got, want = sample.values[m], expected[key][m]
            if isinstance(want, np.ndarray):
                assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True), (key, m)
            else:
                assert got == want, (key, m)


def by_key(reader) -> dict:
    return {s.key: s for s in reader}


@pytest.fixture()
def layouts(tmp_path):
    folders = tmp_path / "folders"
    for key, values in DATA.items():
        for m, value in values.items():
            (folders / m).mkdir(parents=True, exist_ok=True)
            write_modality(m, value, folders / m / f"{key}{EXT[m]}")
    shards = tmp_path / "shards"
    shards.mkdir()
    for s, chunk in enumerate((KEYS[:2], KEYS[2:])):
        with tarfile.open(shards / f"scene-{s:06d}.tar", "w") as tar:
            for key in chunk:
                for m, value in DATA[key].items():
                    add_member(tar, f"{key}.{m}{EXT[m]}", write_modality(m, value, EXT[m]))
    return folders, shards


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def hf_dataset():
    import datasets

    features = datasets.Features(
        {
            "key": datasets.Value("string"),
            "rgb": datasets.Image(),
            "depth": datasets.Array2D((12, 16), "float32"),
            "labels": datasets.Image(),
            "pose": datasets.Value("string"),
        }
    )
    rows = {
        "key": KEYS,
        "rgb": [Image.fromarray(DATA[k]["rgb"]) for k in KEYS],
        "depth": [DATA[k]["depth"] for k in KEYS],
        "labels": [Image.fromarray(DATA[k]["semseg"]) for k in KEYS],
        "pose": [write_modality("pose", DATA[k]["pose"], ".json").decode() for k in KEYS],
    }
    return datasets.Dataset.from_dict(rows, features=features)


COLUMNS = {"rgb": "rgb", "depth": "depth", "semseg": "labels", "pose": "pose"}


def test_every_layout_yields_the_same_samples(layouts, tmp_path):
    folders, shards = layouts
    assert_same(by_key(ModalityFoldersReader(folders)))
    tars = TarReader(str(shards / "scene-{000000..000001}.tar"))
    assert_same(by_key(tars))
    assert len(tars) == len(list(tars.raw())) == len(ModalityFoldersReader(folders))
    assert_same(by_key(TarReader([str(shards / "scene-000000.tar"), str(shards / "scene-000001.tar")], list(EXT))))
    assert_same(by_key(FolderReader(folders / "rgb", "rgb")), modalities=("rgb",))
    ds = hf_dataset()
    assert_same(by_key(HFReader(ds, columns=COLUMNS, key_column="key")))
    ds.save_to_disk(str(tmp_path / "saved"))
    assert_same(by_key(HFReader(str(tmp_path / "saved"), columns=COLUMNS, key_column="key")))
    ds.to_parquet(str(tmp_path / "parquet" / "train.parquet"))
    assert_same(by_key(HFReader(f"hf:{tmp_path / 'parquet'}", columns=COLUMNS, key_column="key", streaming=True)))


def test_open_reader_picks_the_kind(layouts, tmp_path):
    folders, shards = layouts
    assert isinstance(open_reader(folders), ModalityFoldersReader)
    assert isinstance(open_reader(str(shards / "scene-{000000..000001}.tar")), TarReader)
    assert isinstance(open_reader(shards / "scene-000000.tar"), TarReader)
    assert isinstance(open_reader(shards), TarReader)
    assert isinstance(open_reader(folders / "rgb", ["rgb"]), FolderReader)
    hf_dataset().save_to_disk(str(tmp_path / "saved"))
    reader = open_reader(tmp_path / "saved", columns=COLUMNS, key_column="key")
    assert isinstance(reader, HFReader)
    assert_same(by_key(reader))
    with pytest.raises(ConfigError):
        open_reader(folders / "rgb")  # a plain folder needs its modality named


def test_index_keys_and_sources_of_hf_rows():
    reader = HFReader(hf_dataset(), columns={"rgb": "rgb"})
    samples = list(reader)
    assert [s.key for s in samples] == [f"train_{i:09d}" for i in range(4)]
    assert reader.source_of("train_000000002").endswith("[train][2]")
    assert samples[1].sources["rgb"].endswith("[train][1].rgb")


def test_raw_samples_decode_in_worker_processes(layouts):
    folders, shards = layouts
    raws = list(TarReader(str(shards / "scene-{000000..000001}.tar")).raw()) + list(
        ModalityFoldersReader(folders).raw()
    )
    assert all(pickle.loads(pickle.dumps(r)).files.keys() == r.files.keys() for r in raws)
    with ProcessPoolExecutor(2, mp_context=get_context("fork")) as pool:
        decoded = list(pool.map(decode_sample, raws))
    assert_same({s.key: s for s in decoded[:4]})
    assert_same({s.key: s for s in decoded[4:]})


TRICKY_NAMES = [
    "a/x.png",
    "a_x.png",
    "img.v2.png",
    "img_v2.png",
    "my photo.png",
    "café.png",
    "b/x.png",
    "dup.png",
    "dup.jpg",
    "c/d/deep.name.webp",
    "plain.png",
]


def test_tricky_file_names_get_unique_stable_dot_free_keys(tmp_path):
    root = tmp_path / "imgs"
    colours = {}
    for i, name in enumerate(TRICKY_NAMES):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        colours[name] = (i * 20, 255 - i * 20, 7)
        fmt = {".png": "PNG", ".jpg": "JPEG", ".webp": "WEBP"}[os.path.splitext(name)[1]]
        Image.new("RGB", (4, 3), colours[name]).save(
            root / name, format=fmt, **({"lossless": True} if fmt == "WEBP" else {})
        )
    (root / ".hidden.png").write_bytes(b"skipped")
    reader = FolderReader(root, "rgb")
    samples = list(reader)
    keys = [s.key for s in samples]
    assert len(set(keys)) == len(TRICKY_NAMES) == len(keys)
    assert keys == sorted(keys) and keys == [s.key for s in FolderReader(root, "rgb")]
    assert all("." not in k and " " not in k and k.isascii() and "/" not in k for k in keys)
    assert "plain" in keys  # clean names stay as they are
    for sample in samples:
        name = os.path.relpath(reader.source_of(sample.key), root)
        assert sample.sources["rgb"] == str(root / name)
        assert np.abs(sample.values["rgb"][1, 1].astype(int) - colours[name]).max() <= 3, name


def test_bad_files_become_error_entries_and_reading_goes_on(tmp_path, layouts):
    folders, _ = layouts
    (folders / "rgb" / "broken.png").write_bytes(b"")
    (folders / "depth" / "scene_001.npy").write_bytes(np.ones(3).tobytes())  # overwrite: not .npy
    (folders / "semseg" / "scene_002.png").unlink()
    samples = by_key(ModalityFoldersReader(folders))
    assert len(samples) == 5
    assert "empty" in samples["broken"].errors["rgb"] and "missing" in samples["broken"].errors["depth"]
    assert "scene_001.npy" in samples["scene_001"].errors["depth"] and "rgb" in samples["scene_001"].values
    assert "missing" in samples["scene_002"].errors["semseg"]
    assert samples["scene_000"].ok and samples["scene_003"].ok


def test_tar_damage_duplicates_and_missing_members(tmp_path, layouts):
    _, shards = layouts
    good = (shards / "scene-000000.tar").read_bytes()
    (shards / "scene-000009.tar").write_bytes(good[: len(good) * 2 // 3])  # truncated copy
    with tarfile.open(shards / "scene-000010.tar", "w") as tar:
        add_member(tar, "solo.rgb.png", write_modality("rgb", DATA["scene_000"]["rgb"], ".png"))
        add_member(tar, "solo.semseg.png", b"not a png")
        add_member(tar, "solo.txt", b"ignored: no modality")
    reader = TarReader([str(shards / f"scene-{i:06d}.tar") for i in (0, 9, 10)], ["rgb", "semseg"])
    samples = list(reader)
    assert [s.ok for s in samples[:2]] == [True, True]
    damaged = [s for s in samples if SAMPLE_ERROR in s.errors]
    assert damaged and all("scene-000009.tar" in s.errors[SAMPLE_ERROR] for s in damaged)
    assert any("duplicate key" in s.errors[SAMPLE_ERROR] or "unreadable" in s.errors[SAMPLE_ERROR] for s in damaged)
    solo = samples[-1]
    assert solo.key == "solo" and "rgb" in solo.values and "scene-000010.tar:solo.semseg.png" in solo.errors["semseg"]
    assert reader.source_of("solo") == f"{shards / 'scene-000010.tar'}:solo"
    missing = list(TarReader(str(shards / "scene-000010.tar"), ["rgb", "depth"]))[0]
    assert "missing" in missing.errors["depth"]


def test_procedural_scene_shards_read_back_exactly(tmp_path):
    from tokzoo.datasets.scene_text import scene_text
    from tokzoo.datasets.scenes import generate_scene, write_scene_shards

    write_scene_shards(tmp_path, 3, seed=1, size=32, samples_per_shard=2)
    samples = list(open_reader(tmp_path))
    assert len(samples) == 3 and all(s.ok for s in samples)
    for index, sample in enumerate(samples):
        expected = generate_scene(index, seed=1, size=32)
        expected["captions"] = scene_text(expected)["caption"]
        assert isinstance(sample.values["captions"], str)
        for m, value in sample.values.items():
            if isinstance(value, np.ndarray):
                assert np.array_equal(value, expected[m], equal_nan=True), m
            else:
                assert value == expected[m], m


def test_keys_ignore_unicode_normalisation_and_tar_dot_slash(tmp_path):
    from tokzoo.io.keys import key_from_stem
    from tokzoo.io.tar import split_member

    assert key_from_stem("cafe\u0301") == key_from_stem("caf\u00e9")  # macOS (NFD) vs Linux (NFC) names
    assert split_member("./a/scene_1.depth.npy") == ("a/scene_1", "depth", ".npy")
    assert split_member("notes.txt") is None and split_member("README") is None
