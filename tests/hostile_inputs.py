"""Hostile and broken inputs for tests/test_hostile_*.py, and running the CLI under a memory limit and a timeout.

Every builder writes small files (kilobytes on disk, sparse files aside) that *declare* gigabytes or loop.
"""

from __future__ import annotations

import gzip
import io
import os
import resource
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

GIB = 1 << 30
MEMORY_LIMIT = 6 * GIB
"""Address-space limit of a CLI run: importing torch maps ~3.5 GB of virtual memory; a hostile case that reads
what it declares (8 GiB and more) would exceed the rest."""


def run_cli(*args: str, timeout: float = 180, memory: int = MEMORY_LIMIT, file_size: int | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``tokzoo ARGS`` in a subprocess with RLIMIT_AS = ``memory`` (and RLIMIT_FSIZE = ``file_size``: writes past it
    fail with EFBIG, a real OS write error) and a timeout; raises TimeoutExpired when it hangs."""

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        if file_size is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # stays ignored across exec: write() returns EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.run([sys.executable, "-c", "from tokzoo_cli.main import main; main()", *args],
                          capture_output=True, text=True, timeout=timeout, preexec_fn=limit, env=env, cwd=cwd)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 2, no traceback, and an ``error: ...`` line holding every fragment; returns that line."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def png_bytes(seed: int = 0, size: int = 32) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def tar_of(members: list[tuple[str, bytes]], fmt=tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def header(name: str, size: int, kind: bytes = b"0", size_field: bytes | None = None) -> bytes:
    """One ustar header block with a valid checksum; ``size_field`` (12 bytes) overrides the octal size."""
    block = bytearray(512)
    block[:len(name)] = name.encode()
    block[100:108], block[108:116], block[116:124] = b"0000644\0", b"0000000\0", b"0000000\0"
    block[124:136] = size_field if size_field is not None else b"%011o\0" % size
    block[136:148] = b"00000000000\0"
    block[156:157] = kind
    block[257:265] = b"ustar\x0000"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def pax_block(records: bytes) -> bytes:
    return header("././@PaxHeader", len(records), b"x") + padded(records)


def pax_record(keyword: str, value: str) -> bytes:
    body = f" {keyword}={value}\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return f"{length}{body}".encode()


END = bytes(1024)


def hostile_tars(folder: Path) -> dict[str, Path]:
    """Tars of ``<key>.rgb.png`` members, one problem each; the first holds a good sample (key ``good``) and so do
    most others before their damage. Returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    good = png_bytes()

    def good_part(n: str) -> bytes:
        return header(f"ok_{n}.rgb.png", len(good)) + padded(good)

    tars = {
        "good": tar_of([("good.rgb.png", good)]),
        # declares 8 GiB, holds 1 kB: past the end of the file
        "huge_plain": good_part("a") + header("huge.rgb.png", 8 * GIB) + padded(b"x" * 1000) + END,
        # pax size 8 GiB
        "huge_pax": good_part("b") + pax_block(pax_record("size", str(8 * GIB))) + header("hugepax.rgb.png", 0)
        + padded(b"y" * 100) + END,
        # GNU base-256 size field (2**40)
        "huge_base256": good_part("c") + header("b256.rgb.png", 0, size_field=b"\x80" + (1 << 40).to_bytes(11, "big"))
        + END,
        # negative base-256 size
        "negative_base256": good_part("d") + header("neg.rgb.png", 0, size_field=b"\xff" * 12) + END,
        # pax size negative: tarfile of Python 3.11.7 loops forever on this one
        "negative_pax_size": good_part("e") + pax_block(pax_record("size", "-1024")) + header("loop.rgb.png", 0)
        + padded(b"z" * 600) + END,
        # pax record with a negative / zero / overlong length
        "pax_negative_length": good_part("f") + pax_block(b"-5 path=x\n") + header("p.rgb.png", 3) + padded(b"abc") + END,
        "pax_zero_length": good_part("g") + pax_block(b"0 path=x\n") + header("q.rgb.png", 3) + padded(b"abc") + END,
        "pax_overlong_length": good_part("h") + pax_block(b"999 path=x\n") + header("r.rgb.png", 3) + padded(b"abc")
        + END,
        # pax header that declares 2 GiB for itself
        "huge_pax_header": good_part("i") + header("././@PaxHeader", 2 * GIB, b"x") + padded(b"12 path=abc\n") + END,
        # GNU sparse member
        "gnu_sparse": good_part("j") + header("sparse.rgb.png", 512, b"S") + padded(b"\0" * 512) + END,
        # truncated in the middle of a member, and on a member boundary (no end-of-archive block)
        "truncated_member": (good_part("k") + header("cut.rgb.png", 5000) + b"w" * 700),
        "truncated_boundary": good_part("l"),
        # a tar inside a tar, named like an image
        "nested": tar_of([("ok_m.rgb.png", good), ("inner.rgb.png", tar_of([("x.rgb.png", good)]))]),
        # garbage and zero bytes
        "garbage": b"this is not a tar archive at all" * 40,
        "empty": b"",
    }
    paths = {}
    for name, data in tars.items():
        paths[name] = folder / f"{name}.tar"
        paths[name].write_bytes(data)
    # compressed member expanding without bound: declares 8 GiB, gzip of 4 MB of zeros
    paths["gzip_bomb"] = folder / "gzip_bomb.tar"
    paths["gzip_bomb"].write_bytes(gzip.compress(good_part("n") + header("bomb.rgb.png", 8 * GIB) + bytes(4 << 20)))
    # sparse file on disk: the member's 8 GiB exist (as holes), so only the size limit stops the read
    paths["sparse_file"] = folder / "sparse_file.tar"
    with open(paths["sparse_file"], "wb") as f:
        f.write(good_part("o") + header("holes.rgb.png", 8 * GIB))
        f.truncate(f.tell() + 8 * GIB + 1024)
    return paths
