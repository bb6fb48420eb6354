"""The tokenize pipeline's fast paths give exactly what the plain library calls give."""

import io

import numpy as np
import pytest
import webdataset as wds

from tokzoo.errors import CorruptFileError
from tokzoo.io import FileRef, RawSample
from tokzoo.io.safety import load_npy
from tokzoo.pipeline.modalities import CROP_RECIPE
from tokzoo.pipeline.worker import OrderedPool, Slots, WorkerJob, init_worker, prepare_chunk, take_shared
from tokzoo.tokenizers.learned import LearnedTokenizer
from tokzoo.tokens.tars import npy_bytes, tar_bytes


def saved(array: np.ndarray, version=None) -> bytes:
    buffer = io.BytesIO()
    if version:
        np.lib.format.write_array(buffer, array, version=version)
    else:
        np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def test_tar_bytes_are_what_the_webdataset_writer_writes():
    rng = np.random.default_rng(0)
    stems = ["a", "sample_000001", "x" * 95, "x" * 96, "x" * 130, "nöt_ascii", "dir/key", "日本"]
    for trial in range(20):
        members = [
            (f"{stems[rng.integers(len(stems))]}{i}", rng.bytes(int(rng.choice([0, 1, 511, 512, 513, 3000]))))
            for i in range(int(rng.integers(0, 9)))
        ]
        buffer = io.BytesIO()
        with wds.TarWriter(buffer, encoder=False, mtime=0.0, user="tokzoo", group="tokzoo", mode=0o444) as tar:
            for key, data in members:
                tar.write({"__key__": key, "npy": data})
        assert tar_bytes(members) == buffer.getvalue(), members


def test_table_lines_are_what_json_dumps_writes():
    import json

    from tokzoo.tokens.layout import table_bytes

    records = [
        {"key": f"k{i}", "source": source, "status": "failed" if error else "ok", "error": error, "more": i}
        for i, (source, error) in enumerate(
            [(None, None), ("a/ü.tar:k.depth.npy", None), ('q"uote\\back\nslash', "depth: bad \u2028 value"), ("s", "")]
        )
    ]
    expected = "".join(json.dumps({f: r[f] for f in ("key", "source", "status", "error")}) + "\n" for r in records)
    assert table_bytes(records) == expected.encode()


def test_npy_bytes_are_what_np_save_writes():
    for array in (
        np.zeros((2, 64), np.uint16),
        np.arange(10, dtype=np.int32).reshape(2, 5),
        np.ones((3, 4), ">i4")[:, ::2],
        np.zeros((0, 3), np.uint8),
        np.full((1, 196), 7, np.uint8),
    ):
        assert npy_bytes(array) == npy_bytes(array) == saved(np.ascontiguousarray(array))


def test_load_npy_gives_what_np_load_gives_and_refuses_broken_files():
    arrays = (
        np.float32(3.5),
        np.zeros((0, 4), np.float32),
        np.arange(12, dtype=">f8").reshape(3, 4),
        np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        np.ones((5, 6, 3), np.float16),
        np.ones((2, 3), bool),
    )
    for array in arrays:
        for version in (None, (2, 0), (3, 0)):
            data = saved(array, version)
            expected, got = np.load(io.BytesIO(data)), load_npy(data + b"trailing", "x.npy")
            assert got.dtype == expected.dtype and got.shape == expected.shape and np.array_equal(got, expected)
            assert got.flags.writeable and got.flags.f_contiguous == expected.flags.f_contiguous
    good = saved(np.ones(4))
    for broken in (good[:9], good[:30], good[:-3], good[:6] + b"\x04\x00" + good[8:]):
        with pytest.raises(CorruptFileError, match="x.npy"):
            load_npy(broken, "x.npy")


@pytest.fixture(scope="module")
def depth_codec():
    return LearnedTokenizer.from_defaults("depth", model={"preset": "conv-tiny"}, input_size=[16, 16]).codec


def raw_depths(n: int, bad: set[int]) -> list[tuple[RawSample, None, None]]:
    """``n`` 20 x 20 depth samples; those in ``bad`` are valid only in row 2, which the nearest-exact resize
    20 -> 16 of crop 0 skips: they decode, but normalisation refuses their crop 0 (no valid depth)."""
    items = []
    for i in range(n):
        depth = np.random.default_rng(i).uniform(0.5, 9.0, (20, 20)).astype(np.float32)
        if i in bad:
            depth[np.arange(20) != 2] = np.nan
        items.append(
            (RawSample(f"s{i:03d}", {"depth": FileRef(f"s{i:03d}.npy", ".npy", data=saved(depth))}), None, None)
        )
    return items


def test_normalising_a_chunk_at_once_fails_only_its_bad_samples(depth_codec):
    job = WorkerJob(
        sizes={"depth": (16, 16)}, n_crops=2, seed=0, crop_recipe=CROP_RECIPE, codecs={"depth": depth_codec}
    )
    init_worker(job, threads=None)
    items = raw_depths(8, bad={3})
    prepared, shared = prepare_chunk(items)
    assert shared == {} and [p.error is None for p in prepared] == [i != 3 for i in range(8)]
    assert prepared[3].error.startswith("depth: s003.npy: ") and prepared[3].values == {}
    for p, (raw, _, _) in zip(prepared, items):
        if p.error is None:  # the same rows as normalising the sample alone
            alone, _ = prepare_chunk([(raw, None, None)])
            assert p.values["depth"].shape == (2, 2, 16, 16) and np.array_equal(
                p.values["depth"], alone[0].values["depth"]
            )

    slots = Slots(2, {"depth": 8 * 2 * 2 * 16 * 16 * 4})
    init_worker(job, threads=None, slots=slots)
    in_slot, shared = prepare_chunk(items, slot=1)
    assert set(shared) == {"depth"} and all("depth" not in p.values for p in in_slot)
    take_shared(in_slot, shared, slots, 1)
    for p, q in zip(prepared, in_slot):
        assert p.error == q.error and p.values.keys() == q.values.keys()
        assert all(np.array_equal(p.values[m], q.values[m]) for m in p.values)


def test_workers_through_shared_memory_give_what_inline_gives(depth_codec):
    job = WorkerJob(
        sizes={"depth": (16, 16)}, n_crops=2, seed=0, crop_recipe=CROP_RECIPE, codecs={"depth": depth_codec}
    )
    items = raw_depths(60, bad={5, 41})
    chunks = [(i, items[i : i + 4]) for i in range(0, 60, 4)]  # 15 chunks through 3 slots: each slot reused 5 times
    with OrderedPool(job, 0) as pool:
        inline = list(pool.map(chunks))
    with OrderedPool(job, 2, ahead=3, shared={"depth": 4 * 2 * 2 * 16 * 16 * 4}) as pool:
        assert pool.slots is not None
        forked = list(pool.map(chunks))
    assert [tag for tag, _ in forked] == [tag for tag, _ in inline]
    for (_, a), (_, b) in zip(inline, forked):
        for p, q in zip(a, b):
            assert (p.key, p.error) == (q.key, q.error) and np.array_equal(p.crops, q.crops)
            assert p.values.keys() == q.values.keys() and all(
                np.array_equal(p.values[m], q.values[m]) for m in p.values
            )
    assert sum(p.error is not None for _, chunk in forked for p in chunk) == 2


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.uint16])
def test_nearest_crops_pick_the_pixels_torchvision_picks(dtype):
    import torch
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    from tokzoo.crops import _Crop

    rng = np.random.default_rng(1)
    for trial in range(150):
        height, width = (int(v) for v in rng.integers(1, 200, 2))
        h, w = int(rng.integers(1, height + 1)), int(rng.integers(1, width + 1))
        row = [int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w, trial % 2]
        out = (h, w) if trial % 4 == 0 else tuple(int(v) for v in rng.integers(1, 200, 2))
        image = rng.integers(0, 250, (height, width)).astype(dtype)
        if dtype == np.float32:
            image[rng.random((height, width)) < 0.2] = np.nan
        crop = _Crop(row, out)
        expected = F.resized_crop(
            tv_tensors.Image(torch.from_numpy(image)[None]),
            row[0],
            row[1],
            h,
            w,
            list(out),
            interpolation=InterpolationMode.NEAREST_EXACT,
            antialias=False,
        )
        expected = (F.horizontal_flip(expected) if row[4] else expected).as_subclass(torch.Tensor)[0].numpy()
        got = crop.image(image, InterpolationMode.NEAREST_EXACT, False)
        assert got.dtype == expected.dtype and np.array_equal(got, expected, equal_nan=True), (row, out)


def write_tars(folder) -> list:
    """Tars of every kind a tokenize input may be: tarfile's three formats (long, non-ASCII, ./ and directory
    names, V7 directories, links, empty members) and webdataset's, plus a truncated and a gzipped copy."""
    import gzip
    import random
    import tarfile

    rng, paths = random.Random(0), []
    stems = ["a", "./b", "dir/c", "x" * 90, "y" * 140, "nöt ascii", "日本/k", "p" * 80 + "/" + "q" * 60]
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        for trial in range(6):
            paths.append(folder / f"f{fmt}-{trial}.tar")
            with tarfile.open(paths[-1], "w", format=fmt) as tar:
                for i in range(rng.randint(1, 6)):
                    info = tarfile.TarInfo(f"{rng.choice(stems)}{i}.{rng.choice(['depth.npy', 'rgb.png'])}")
                    data = rng.randbytes(rng.choice([0, 1, 511, 512, 513, 2000]))
                    info.size, info.mtime = len(data), rng.choice([0, 1.5, 123456789])
                    try:
                        tar.addfile(info, io.BytesIO(data))
                    except ValueError:  # a name ustar cannot hold
                        continue
                    extra = tarfile.TarInfo(f"d{i}" + "/" * (trial % 2))
                    extra.type = rng.choice(
                        [
                            tarfile.DIRTYPE,
                            tarfile.AREGTYPE if trial % 2 else tarfile.DIRTYPE,
                            tarfile.SYMTYPE if trial == 5 else tarfile.DIRTYPE,
                        ]
                    )
                    extra.linkname = info.name if extra.type == tarfile.SYMTYPE else ""
                    tar.addfile(extra)
    paths.append(folder / "wds.tar")
    with wds.TarWriter(str(paths[-1])) as writer:
        for i in range(5):
            writer.write({"__key__": f"s{i}", "depth.npy": rng.randbytes(700), "rgb.png": rng.randbytes(30)})
    data = paths[-1].read_bytes()
    for cut in (700, 1500, 3000, len(data) - 1):
        paths.append(folder / f"cut-{cut}.tar")
        paths[-1].write_bytes(data[:cut])
    paths.append(folder / "zipped.tar.gz")
    paths[-1].write_bytes(gzip.compress(data))
    return paths


def test_tar_walker_reads_what_tarfile_reads(tmp_path):
    """The one tar reader (tokzoo.io.tarwalk) lists every format tarfile writes as tarfile does; tars cut short
    are damage (tarfile would stop silently at some cuts), reported after the samples before the cut."""
    import tarfile

    from tokzoo.io import TarReader
    from tokzoo.io.tar import split_member

    paths = write_tars(tmp_path)

    def reference(path):
        with tarfile.open(path) as tar:
            return [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]

    for path in paths:
        raws = list(TarReader(str(path), ["depth", "rgb"]).raw())
        got = [(f.source.split(":", 1)[1], f.data) for r in raws for f in r.files.values()]
        if path.name in ("cut-700.tar", "cut-1500.tar", "cut-3000.tar"):  # the last cut keeps the end blocks
            assert "sample" in raws[-1].errors and "truncated" in raws[-1].errors["sample"], path.name
            continue
        wanted = [
            (name, data)
            for name, data in reference(path)
            if (parts := split_member(name)) and parts[1] in ("depth", "rgb")
        ]
        assert sorted(got) == sorted(wanted), path.name
