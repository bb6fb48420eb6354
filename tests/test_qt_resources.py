"""Reading files out of a compiled Qt resource bundle (tokzoo.datasets.qt_resources)."""

import struct
import zlib

import pytest

from tokzoo.datasets.qt_resources import COMPRESSED, DIRECTORY, ResourceError, resource_files


def bundle(files: dict[str, tuple[bytes, bool]], version: int = 2) -> bytes:
    """A bundle with one folder ``dir`` holding ``files`` (name -> (bytes, compressed)), laid out as rcc writes it."""
    node_size = 14 if version == 1 else 22
    names, name_offsets = b"", {}
    for name in ["dir", *files]:
        name_offsets[name] = len(names)
        names += struct.pack(">HI", len(name), 0) + name.encode("utf-16-be")
    data, nodes = b"", []
    tail = b"" if version == 1 else b"\0" * 8
    nodes.append(struct.pack(">IHII", 0, DIRECTORY, 1, 1) + tail)  # root
    nodes.append(struct.pack(">IHII", name_offsets["dir"], DIRECTORY, len(files), 2) + tail)
    for name, (content, compressed) in files.items():
        block = struct.pack(">I", len(content)) + zlib.compress(content) if compressed else content
        nodes.append(struct.pack(">IHHHI", name_offsets[name], COMPRESSED if compressed else 0, 0, 0, len(data)) + tail)
        data += struct.pack(">I", len(block)) + block
    tree = b"".join(nodes)
    assert all(len(n) == node_size for n in nodes)
    header = b"qres" + struct.pack(">4I", version, 20, 20 + len(tree), 20 + len(tree) + len(data))
    return header + tree + data + names


@pytest.mark.parametrize("version", [1, 2, 3])
def test_plain_and_compressed_files_come_out_with_their_paths(version):
    files = {"a.webp": (b"plain bytes", False), "b.png": (b"squeezed " * 50, True)}
    assert dict(resource_files(bundle(files, version))) == {
        "dir/a.webp": b"plain bytes",
        "dir/b.png": b"squeezed " * 50,
    }


def test_bytes_that_are_not_a_bundle_are_refused():
    good = bundle({"a.png": (b"x" * 40, False)})
    with pytest.raises(ResourceError, match="no qres header"):
        list(resource_files(b"PK\x03\x04" + good[4:]))
    with pytest.raises(ResourceError, match="version"):
        list(resource_files(good[:4] + struct.pack(">I", 9) + good[8:]))
    with pytest.raises(ResourceError, match="outside"):
        list(resource_files(good[:30]))  # truncated: the tree runs past the end
    corrupt = bundle({"a.png": (b"x" * 40, True)})
    data_offset = struct.unpack(">I", corrupt[12:16])[0]
    broken = corrupt[: data_offset + 8] + b"\xff" * 8 + corrupt[data_offset + 16 :]  # zlib stream damaged
    with pytest.raises(ResourceError, match="dir/a.png"):
        list(resource_files(broken))


def _with_root(blob: bytes, count: int, first: int) -> bytes:
    """``blob`` with the root folder's child count and first child replaced."""
    tree = struct.unpack(">I", blob[8:12])[0]
    return blob[: tree + 6] + struct.pack(">II", count, first) + blob[tree + 14 :]


def test_hostile_bundles_fail_fast_instead_of_hanging_or_filling_memory():
    good = bundle({"a.png": (b"x" * 40, False)})
    with pytest.raises(ResourceError, match="children outside"):
        list(resource_files(_with_root(good, 2**32 - 1, 1)))  # a folder claiming 4 billion children
    with pytest.raises(ResourceError, match="twice"):
        list(resource_files(_with_root(good, 1, 0)))  # the root lists itself: a cycle
    bomb = bundle({"a.png": (b"\0" * 200_000, True)})
    with pytest.raises(ResourceError, match="over the 1000-byte limit"):
        list(resource_files(bomb, max_file_bytes=1000))
    liar = bundle({"a.png": (b"\0" * 5000, True)})
    data = struct.unpack(">I", liar[12:16])[0]
    lying = liar[: data + 4] + struct.pack(">I", 10) + liar[data + 8 :]  # declares 10 bytes, inflates to 5000
    with pytest.raises(ResourceError, match="another size"):
        list(resource_files(lying))
    data = struct.unpack(">I", good[12:16])[0]
    overlong = good[:data] + struct.pack(">I", 1 << 30) + good[data + 4 :]  # a block declaring 1 GiB
    with pytest.raises(ResourceError, match="data outside"):
        list(resource_files(overlong))
