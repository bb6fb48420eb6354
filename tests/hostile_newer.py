"""Hostile inputs of the newer entry points (tokzoo fm, composition components, ml-4m folders) for
tests/test_hostile_{fm,compose,fourm}.py: small files that declare gigabytes, lie in their headers or hold NaN.

Every builder damages a copy in one way; the tests assert a typed one-line error naming the file or field.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def rewrite_header(path: Path, change) -> None:
    """Apply ``change(header: dict)`` to a safetensors file's JSON header, keeping the data bytes as they are."""
    data = path.read_bytes()
    length = struct.unpack("<Q", data[:8])[0]
    header, body = json.loads(data[8 : 8 + length]), data[8 + length :]
    change(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)


def first_tensor(path: Path, dtype: str = "F32", min_dims: int = 1) -> str:
    """The name of the first tensor (in name order) of ``dtype`` with at least ``min_dims`` dimensions."""
    data = path.read_bytes()
    header = json.loads(data[8 : 8 + struct.unpack("<Q", data[:8])[0]])
    return sorted(
        k for k, v in header.items() if k != "__metadata__" and v["dtype"] == dtype and len(v["shape"]) >= min_dims
    )[0]


def relabel(path: Path, dtype: str = "I32", name: str | None = None) -> str:
    """Relabel one F32 tensor's dtype in the header (same byte size: the file stays valid); returns its name."""
    name = name or first_tensor(path)
    rewrite_header(path, lambda h: h[name].update(dtype=dtype))
    return name


def lie_about_offsets(path: Path) -> None:
    """The first tensor's data_offsets run past the end of the file."""
    name = first_tensor(path)
    rewrite_header(path, lambda h: h[name].update(data_offsets=[h[name]["data_offsets"][0], 1 << 40]))


def lie_about_shape(path: Path) -> None:
    """The first 2-D tensor's shape reversed (same element count: the file stays valid)."""
    name = first_tensor(path, min_dims=2)

    def change(header):
        shape = header[name]["shape"]
        header[name]["shape"] = shape[::-1] if shape[0] != shape[-1] else [shape[0] * shape[-1]]

    rewrite_header(path, change)


def edit_tensors(path: Path, change) -> None:
    """Load, ``change(tensors: dict)`` in place, save again (metadata kept)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata=metadata)


def poison(tensors: dict, value: float = float("nan"), every: bool = False) -> None:
    """NaN (or ``value``) into the first float tensor, or into every one."""
    for name in sorted(tensors):
        if tensors[name].is_floating_point():
            tensors[name] = torch.full_like(tensors[name], value)
            if not every:
                return


def edit_json(path: Path, change) -> None:
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


def deep_json(depth: int = 100_000) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def big_int_json(key: str, digits: int = 5000) -> str:
    return '{"%s": %s}' % (key, "9" * digits)


def fifo_in_place_of(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


PICKLE_PAYLOAD = "pwned.txt"


def pickle_with_payload(path: Path, marker: Path) -> None:
    """A pickle that would create ``marker`` when unpickled (it must never be)."""
    import pickle

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path.write_bytes(pickle.dumps({"model": Payload()}))


def copy_folder(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target
