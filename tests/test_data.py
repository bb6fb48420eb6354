"""tokzoo.tokens over small token dataset folders written here in the documented layout."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tokzoo.errors import CorruptFileError, DtypeError, InputError
from tokzoo.tokens import TokenDataset, make_loader, open_shard
from tokzoo.tokens.plan import epoch_pieces

N_CROPS = 3
SHAPES = {"rgb": ((4,), np.uint16), "depth": ((2, 2), np.uint8)}


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def write_shard(path, members: dict[str, bytes], stats: bool = True) -> None:
    """A tar like the pipeline's: ``<key>.npy`` members in order, mtime/uid/gid 0, then the stats marker."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    if stats:
        path.with_suffix(".stats.json").write_text(json.dumps({"count": len(members)}))


def tokens(modality: str, sample: int) -> np.ndarray:
    """(N_CROPS, *shape): every id encodes (modality, sample, crop), so a batch row can be traced back."""
    shape, dtype = SHAPES[modality]
    crop_values = (sample % 40) * N_CROPS + np.arange(N_CROPS) + (1000 if modality == "rgb" else 0)
    return np.broadcast_to(crop_values.reshape(-1, *[1] * len(shape)), (N_CROPS, *shape)).astype(dtype)


def decode(value: int) -> tuple[int, int]:
    """An id from :func:`tokens` -> (sample, crop)."""
    return (value % 1000) // N_CROPS, (value % 1000) % N_CROPS


def make_out(root, shard_sizes=(5, 7, 4), modalities=("rgb", "depth")):
    """OUT folder with the given samples per shard; keys ``s<sample>`` over a global sample counter."""
    sample = 0
    for s, size in enumerate(shard_sizes):
        keys = range(sample, sample + size)
        for modality in modalities:
            write_shard(
                root / modality / f"shard-{s:06d}.tar", {f"s{i:04d}.npy": npy_bytes(tokens(modality, i)) for i in keys}
            )
        write_shard(
            root / "crops" / f"shard-{s:06d}.tar",
            {f"s{i:04d}.npy": npy_bytes(np.zeros((N_CROPS, 5), np.int32)) for i in keys},
        )
        sample += size
    return root


def all_batches(dataset_or_loader):
    return list(iter(dataset_or_loader))


def check_batch(batch):
    """Rows of every modality come from the sample named by the key, at the crop named by ``__crop__``."""
    assert batch["rgb"].dtype == torch.int64 and batch["depth"].dtype == torch.int64
    assert batch["rgb"].shape[1:] == (4,) and batch["depth"].shape[1:] == (2, 2)
    for row, key in enumerate(batch["__key__"]):
        crop = int(batch["__crop__"][row])
        for modality in ("rgb", "depth"):
            assert decode(int(batch[modality][row].flatten()[0])) == (int(key[1:]) % 40, crop), (modality, key)
        assert int(batch["rgb"][row][0]) >= 1000 > int(batch["depth"][row].max())


def test_zips_by_key_with_one_crop_per_sample(tmp_path):
    root = make_out(tmp_path)
    dataset = TokenDataset(root, ["rgb", "depth"], batch_size=4, shuffle=False)
    batches = all_batches(dataset)
    assert [len(b["__key__"]) for b in batches] == [4, 4, 4, 4]  # 16 samples, batches span shard boundaries
    assert [k for b in batches for k in b["__key__"]] == [f"s{i:04d}" for i in range(16)]
    for batch in batches:
        check_batch(batch)
    crops = torch.cat([b["__crop__"] for b in batches])
    assert len(set(crops.tolist())) > 1  # random crops actually vary across samples


def test_fast_path_gives_one_view_per_shard(tmp_path):
    root = make_out(tmp_path)
    shard = open_shard(root / "depth" / "shard-000001.tar")
    assert isinstance(shard.tokens, np.ndarray) and shard.tokens.shape == (7, N_CROPS, 2, 2)
    assert shard.tokens.dtype == np.uint8 and not shard.tokens.flags.owndata


def test_pipeline_writer_shards_take_the_fast_path(tmp_path):
    from tokzoo.tokens.tars import npy_bytes as pipeline_npy
    from tokzoo.tokens.tars import tar_bytes

    arrays = [tokens("rgb", i) for i in range(5)]
    path = tmp_path / "shard-000000.tar"
    path.write_bytes(tar_bytes([(f"scene_{i:06d}", pipeline_npy(a)) for i, a in enumerate(arrays)]))
    shard = open_shard(path)
    assert isinstance(shard.tokens, np.ndarray) and not shard.tokens.flags.owndata  # a view, not a per-member copy
    np.testing.assert_array_equal(shard.tokens, np.stack(arrays))
    assert shard.names.tolist() == [f"scene_{i:06d}.npy".encode() for i in range(5)]


def test_crops_fixed_for_eval_and_redrawn_per_epoch(tmp_path):
    root = make_out(tmp_path)
    fixed = all_batches(TokenDataset(root, ["rgb", "depth"], batch_size=16, crop=0, shuffle=False))
    assert fixed[0]["__crop__"].tolist() == [0] * 16
    check_batch(fixed[0])
    dataset = TokenDataset(root, ["rgb", "depth"], batch_size=16, seed=3)
    epoch0 = all_batches(dataset)[0]
    assert all_batches(dataset)[0]["__crop__"].tolist() == epoch0["__crop__"].tolist()
    dataset.set_epoch(1)
    epoch1 = all_batches(dataset)[0]
    assert epoch1["__key__"] != epoch0["__key__"] and sorted(epoch1["__key__"]) == sorted(epoch0["__key__"])

    def crop_of(batch):
        return dict(zip(batch["__key__"], batch["__crop__"].tolist()))

    assert crop_of(epoch1) != crop_of(epoch0)


@pytest.mark.parametrize("shard_sizes", [(5, 7, 4), (9,), (1, 1, 1, 1, 1, 1), (3, 0, 8)])
@pytest.mark.parametrize("n_consumers", [1, 2, 4, 5])
def test_epoch_split_reads_each_sample_once(shard_sizes, n_consumers):
    seen = Counter()
    per_consumer = []
    for consumer in range(n_consumers):
        pieces = list(epoch_pieces(list(shard_sizes), consumer, n_consumers, seed=1, epoch=2, shuffle=True))
        per_consumer.append(sum(len(samples) for _, samples in pieces))
        seen.update((shard, int(i)) for shard, samples in pieces for i in samples)
    assert seen == Counter((s, i) for s, n in enumerate(shard_sizes) for i in range(n))
    assert max(per_consumer) - min(per_consumer) <= 1


def test_two_ranks_two_workers_cover_every_sample_once(tmp_path):
    root = make_out(tmp_path, shard_sizes=(5, 7, 4))  # 3 shards < 4 consumers: split at sample level
    keys = Counter()
    for rank in range(2):
        loader = make_loader(root, ["rgb", "depth"], batch_size=3, num_workers=2, rank=rank, world_size=2, seed=5)
        for batch in loader:
            check_batch(batch)
            keys.update(batch["__key__"])
    assert keys == Counter(f"s{i:04d}" for i in range(16))


def test_resampled_stream_is_seeded(tmp_path):
    root = make_out(tmp_path)

    def first(seed, n=6):
        stream = iter(TokenDataset(root, ["rgb", "depth"], batch_size=5, resampled=True, seed=seed))
        return [next(stream) for _ in range(n)]

    a, b, c = first(7), first(7), first(8)
    assert [x["__key__"] for x in a] == [x["__key__"] for x in b]
    assert all(torch.equal(x["rgb"], y["rgb"]) for x, y in zip(a, b))
    assert [x["__key__"] for x in a] != [x["__key__"] for x in c]
    assert sum(len(x["__key__"]) for x in a) == 30  # endless: more than the 16 samples
    for batch in a:
        check_batch(batch)


def test_key_mismatch_names_shard_and_modality(tmp_path):
    root = make_out(tmp_path)
    write_shard(
        root / "depth" / "shard-000001.tar",
        {f"s{i:04d}.npy": npy_bytes(tokens("depth", i)) for i in [5, 6, 8, 7, 9, 10, 11]},
    )
    dataset = TokenDataset(root, ["rgb", "depth"], batch_size=4, shuffle=False)
    with pytest.raises(
        InputError, match=r"depth/shard-000001\.tar: sample 2 is 's0008' in 'depth' but 's0007' in 'rgb'"
    ):
        all_batches(dataset)


def test_missing_completion_marker_is_refused(tmp_path):
    root = make_out(tmp_path)
    (root / "depth" / "shard-000002.stats.json").unlink()
    with pytest.raises(InputError, match=r"depth/shard-000002\.tar: incomplete shard"):
        TokenDataset(root, ["rgb", "depth"], batch_size=4)
    assert TokenDataset(root, ["rgb", "depth"], batch_size=4, require_complete=False).num_samples == 16


def test_crops_folder_needs_no_completion_marker(tmp_path):
    # The pipeline writes no stats.json into OUT/crops (its tar is committed with the modalities' shards);
    # listing "crops" used to fail on every real token dataset with "incomplete shard".
    root = make_out(tmp_path)
    for marker in (root / "crops").glob("*.stats.json"):
        marker.unlink()
    batches = all_batches(TokenDataset(root, ["depth", "crops"], batch_size=4, shuffle=False, crop=0))
    assert sum(len(b["__key__"]) for b in batches) == 16 and batches[0]["crops"].shape == (4, 5)
    (root / "depth" / "shard-000001.stats.json").unlink()
    with pytest.raises(InputError, match=r"depth/shard-000001\.tar: incomplete shard"):
        TokenDataset(root, ["crops", "depth"], batch_size=4)


def corrupt(path, member: str, offset_in_data: int, value: bytes):
    """Overwrite bytes inside a member's data (its npy bytes) in place."""
    with tarfile.open(path) as tar:
        start = tar.getmember(member).offset_data
    with open(path, "r+b") as f:
        f.seek(start + offset_in_data)
        f.write(value)


def test_corrupt_npy_header_names_shard_and_member(tmp_path):
    root = make_out(tmp_path)
    path = root / "rgb" / "shard-000000.tar"
    corrupt(path, "s0003.npy", 1, b"X")  # breaks the \x93NUMPY magic
    with pytest.raises(CorruptFileError, match=r"rgb/shard-000000\.tar: member b?'s0003\.npy': bad \.npy header"):
        open_shard(path)
    with pytest.raises(CorruptFileError, match="s0003"):
        all_batches(TokenDataset(root, ["rgb", "depth"], batch_size=4, shuffle=False))


def test_corrupt_tar_header_is_an_error_not_a_short_shard(tmp_path):
    root = make_out(tmp_path)
    path = root / "rgb" / "shard-000001.tar"
    with tarfile.open(path) as tar:
        header = tar.getmember("s0008.npy").offset
    with open(path, "r+b") as f:
        f.seek(header + 10)
        f.write(b"Z")  # inside the name: the checksum no longer matches
    with pytest.raises(CorruptFileError, match=r"shard-000001\.tar: bad tar header checksum at byte \d+"):
        open_shard(path)


def test_truncated_shard_is_refused(tmp_path):
    root = make_out(tmp_path)
    path = root / "rgb" / "shard-000002.tar"
    data = path.read_bytes()
    with tarfile.open(path) as tar:
        last = tar.getmember("s0015.npy")
    path.write_bytes(data[: last.offset_data + 20])  # inside the last member
    with pytest.raises(CorruptFileError, match=r"shard-000002\.tar: member 's0015\.npy' .* past the end of the file"):
        open_shard(path)
    path.write_bytes(data[: last.offset])  # on a member boundary: would look like a shorter, valid shard
    with pytest.raises(CorruptFileError, match=r"shard-000002\.tar: truncated tar \(no end-of-archive block\)"):
        open_shard(path)


def test_object_and_float_members_are_refused(tmp_path):
    path = tmp_path / "m" / "shard-000000.tar"
    write_shard(path, {"a.npy": npy_bytes(np.array([[None, 1]], dtype=object))})
    with pytest.raises(
        DtypeError, match=r"shard-000000\.tar: member b?'a\.npy': token ids must be a plain integer dtype, got object"
    ):
        open_shard(path)
    write_shard(path, {"a.npy": npy_bytes(np.zeros((1, 4), np.float16))})
    with pytest.raises(DtypeError, match="float16"):
        open_shard(path)


def test_truncated_member_is_refused(tmp_path):
    path = tmp_path / "m" / "shard-000000.tar"
    data = npy_bytes(np.zeros((1, 8), np.uint16))
    write_shard(path, {"a.npy": data, "b.npy": data[:-4]})
    with pytest.raises(CorruptFileError, match=r"member b?'b\.npy': \d+ bytes, its \.npy header implies \d+"):
        open_shard(path)


def test_irregular_shards_take_the_per_member_path(tmp_path):
    long_key = "k" * 120  # a pax extended header breaks the stride
    path = tmp_path / "depth" / "shard-000000.tar"
    arrays = {f"{long_key}{i}.npy": tokens("depth", i) for i in range(3)}
    arrays["short.npy"] = np.asfortranarray(tokens("depth", 4).transpose(0, 2, 1))
    write_shard(path, {name: npy_bytes(a) for name, a in arrays.items()})
    shard = open_shard(path)
    assert isinstance(shard.tokens, np.ndarray) and shard.tokens.shape == (4, N_CROPS, 2, 2)
    np.testing.assert_array_equal(shard.tokens, np.stack(list(arrays.values())))
    ragged = tmp_path / "rgb" / "shard-000000.tar"
    write_shard(ragged, {"a.npy": npy_bytes(tokens("rgb", 0)), "b.npy": npy_bytes(tokens("rgb", 1)[:1])})
    shard = open_shard(ragged)
    assert shard.n_crops.tolist() == [N_CROPS, 1]
    np.testing.assert_array_equal(
        shard.gather(np.array([1, 0]), np.array([0, 2])), np.stack([tokens("rgb", 1)[0], tokens("rgb", 0)[2]])
    )


def test_dataloader_workers_and_int64(tmp_path):
    root = make_out(tmp_path, shard_sizes=(6, 6, 6, 6))
    dataset = TokenDataset(root, ["rgb", "depth", "crops"], batch_size=4, shuffle=False, crop=1)
    batches = list(DataLoader(dataset, batch_size=None, num_workers=2))
    assert sorted(k for b in batches for k in b["__key__"]) == [f"s{i:04d}" for i in range(24)]
    assert all(b[m].dtype == torch.int64 for b in batches for m in ("rgb", "depth", "crops"))
    assert batches[0]["crops"].shape == (4, 5)


def test_hugging_face_reads_a_modality_folder(tmp_path):
    import datasets

    root = make_out(tmp_path / "out")
    ds = datasets.load_dataset(
        "webdataset", data_files={"train": str(root / "depth" / "*.tar")}, cache_dir=str(tmp_path / "hf")
    )["train"]
    assert len(ds) == 16 and ds[0]["__key__"] == "s0000"
    np.testing.assert_array_equal(ds.with_format("numpy")[7]["npy"], tokens("depth", 7))
