"""Hostile and broken inputs for tests/test_hostile_*.py, and running the CLI under a memory limit and a timeout.

Every builder writes small files (kilobytes on disk, sparse files aside) that *declare* gigabytes or loop.
"""

from __future__ import annotations

import gzip
import io
import json
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


def run_cli(
    *args: str, timeout: float = 180, memory: int = MEMORY_LIMIT, file_size: int | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """``tokzoo ARGS`` in a subprocess with RLIMIT_AS = ``memory`` (and RLIMIT_FSIZE = ``file_size``: writes past it
    fail with EFBIG, a real OS write error) and a timeout; raises TimeoutExpired when it hangs."""

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        if file_size is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # stays ignored across exec: write() returns EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

    paths = [str(Path(__file__).parents[1]), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(paths)}  # a worktree's cli too
    return subprocess.run(
        [sys.executable, "-c", "from tokzoo_cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
        env=env,
        cwd=cwd,
    )


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
    block[: len(name)] = name.encode()
    block[100:108], block[108:116], block[116:124] = b"0000644\0", b"0000000\0", b"0000000\0"
    block[124:136] = size_field if size_field is not None else size_bytes(size)
    block[136:148] = b"00000000000\0"
    block[156:157] = kind
    block[257:265] = b"ustar\x0000"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def size_bytes(size: int) -> bytes:
    """A 12-byte tar size field: octal with a NUL, 12 octal digits, or GNU base-256 beyond that."""
    if size < 8**11:
        return b"%011o\0" % size
    return b"%012o" % size if size < 8**12 else b"\x80" + size.to_bytes(11, "big")


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
        "huge_pax": good_part("b")
        + pax_block(pax_record("size", str(8 * GIB)))
        + header("hugepax.rgb.png", 0)
        + padded(b"y" * 100)
        + END,
        # GNU base-256 size field (2**40)
        "huge_base256": good_part("c")
        + header("b256.rgb.png", 0, size_field=b"\x80" + (1 << 40).to_bytes(11, "big"))
        + END,
        # negative base-256 size
        "negative_base256": good_part("d") + header("neg.rgb.png", 0, size_field=b"\xff" * 12) + END,
        # pax size negative: tarfile of Python 3.11.7 loops forever on this one
        "negative_pax_size": good_part("e")
        + pax_block(pax_record("size", "-1024"))
        + header("loop.rgb.png", 0)
        + padded(b"z" * 600)
        + END,
        # pax record with a negative / zero / overlong length
        "pax_negative_length": good_part("f")
        + pax_block(b"-5 path=x\n")
        + header("p.rgb.png", 3)
        + padded(b"abc")
        + END,
        "pax_zero_length": good_part("g") + pax_block(b"0 path=x\n") + header("q.rgb.png", 3) + padded(b"abc") + END,
        "pax_overlong_length": good_part("h")
        + pax_block(b"999 path=x\n")
        + header("r.rgb.png", 3)
        + padded(b"abc")
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


def _npy_with_header(text: str) -> bytes:
    """A v1 .npy file whose header dict is ``text`` (padded to 16 bytes), with 16 KiB of data."""
    body = (text + " " * (-(len(text) + 11) % 16) + "\n").encode()
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body + bytes(16384)


def bad_depth_files(folder: Path) -> dict[str, str]:
    """A folder of depth .npy files, two good; returns key -> what its error says (None: ok)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = np.full((48, 48), 2.0, np.float32)
    files = {
        "good": (npy_bytes(good), None),
        "good_f16": (npy_bytes(good.astype(np.float16)), None),
        "all_nan": (npy_bytes(np.full((8, 8), np.nan, np.float32)), "no valid value"),
        "ints": (npy_bytes(np.ones((8, 8), np.int64)), "must have dtype float"),
        "three_d": (npy_bytes(np.ones((2, 8, 8), np.float32)), "must be (H, W)"),
        "overflow": (
            _npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }"),
            "header declares",
        ),
        "negative": (
            _npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 64), }"),
            "negative size",
        ),
        "zero_items": (
            _npy_with_header("{'descr': '|V0', 'fortran_order': False, 'shape': (64, 64), }"),
            "zero-byte items",
        ),
        "cut_header": (
            _npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (64, ")[:40],
            "bad .npy header",
        ),
        "pickle": (b"\x80\x04K\x01.", "pickles are never loaded"),
        "complex": (npy_bytes(np.zeros((8, 8), np.complex64)), "must have dtype float"),
        "empty": (b"", "empty"),
    }
    for key, (data, _) in files.items():
        (folder / f"{key}.npy").write_bytes(data)
    return {key: reason for key, (_, reason) in files.items()}


def bad_pose_files(folder: Path) -> dict[str, str]:
    """A folder of coco17 pose .json files, one good; key -> what its error says (None: ok)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = {
        "skeleton": "coco17",
        "width": 64,
        "height": 64,
        "humans": [{"keypoints_2d": [[10, 12, 2]] * 17, "box": [5, 5, 30, 30]}],
    }
    human = good["humans"][0]
    files = {
        "good": (json.dumps(good), None),
        "deep": ("[" * 100000 + "]" * 100000, "nests too deeply"),
        "big_int": ('{"skeleton": "coco17", "width": ' + "9" * 5000 + ', "humans": []}', "integer of 5000 digits"),
        "nan": ('{"skeleton": "coco17", "humans": [{"keypoints_2d": [[NaN, 1, 2]]}]}', "finite"),
        "inf_width": ('{"skeleton": "coco17", "width": 1e999, "height": 64, "humans": []}', "finite"),
        "zero_size": (json.dumps({**good, "width": 0}), "pose width must be in"),
        "box_text": (json.dumps({**good, "humans": [{**human, "box": "x"}]}), "box must be 4 numbers"),
        "few_points": (json.dumps({**good, "humans": [{**human, "keypoints_2d": [[1, 1, 2]] * 5}]}), "(17, 3)"),
        "a_list": ("[1, 2, 3]", "expected a JSON object"),
        "utf16": (json.dumps(good).encode("utf-16"), "not valid UTF-8 JSON"),
    }
    for key, (data, _) in files.items():
        (folder / f"{key}.json").write_bytes(data if isinstance(data, bytes) else data.encode())
    return {key: reason for key, (_, reason) in files.items()}


def bad_metadata_files(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "good": ('{"original_width": 64, "original_height": 48, "brightness": 0.5}', None),
        "big_int": ('{"original_width": ' + "9" * 400 + "}", "integer of 400 digits"),
        "deep": ('{"a":' * 50000 + "1" + "}" * 50000, "nests too deeply"),
        "nan": ('{"original_width": NaN}', "must be finite"),
        "text": ('{"original_width": "wide"}', "must be a number"),
        "unknown_key": ('{"colour": 1}', "unknown key"),
        "not_json": ("{'single': 'quotes'}", "not valid UTF-8 JSON"),
    }
    for key, (data, _) in files.items():
        (folder / f"{key}.json").write_text(data)
    return {key: reason for key, (_, reason) in files.items()}


def special_files(folder: Path, outside: Path) -> dict[str, str]:
    """FIFO, device symlinks, symlinks leaving ``folder``, a dangling symlink, a sparse 8 GiB file, a socket, next to
    the files already in ``folder``; key -> what its error says. ``outside`` is a folder beside it."""
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.npy").write_bytes(npy_bytes(np.ones((8, 8), np.float32)))
    os.mkfifo(folder / "fifo.npy")
    (folder / "zero.npy").symlink_to("/dev/zero")
    (folder / "urandom.npy").symlink_to("/dev/urandom")
    (folder / "escape.npy").symlink_to(outside / "secret.npy")
    (folder / "dotdot.npy").symlink_to(Path("..") / outside.name / "secret.npy")
    (folder / "dangling.npy").symlink_to(folder / "nowhere.npy")
    (folder / "inside.npy").symlink_to(folder / "good.npy")  # stays inside: read normally
    with open(folder / "sparse.npy", "wb") as f:
        f.truncate(8 * GIB)
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock.npy"))
    sock.close()
    return {
        "fifo": "not a regular file (FIFO)",
        "zero": "symlink to /dev/zero, outside the input folder",
        "urandom": "symlink to /dev/urandom, outside the input folder",
        "escape": "outside the input folder",
        "dotdot": "outside the input folder",
        "dangling": "dangling symlink",
        "inside": None,
        "sparse": "over the limit of 268435456",
        "sock": "not a regular file (socket)",
    }


def _members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return tar.getmembers()


def tamper_dataset(out: Path, how: str) -> str:
    """Damage the token dataset ``out`` (modalities rgb and depth, one shard, made by ``tokzoo tokenize``) in one way;
    returns the file damaged (relative to ``out``). See :data:`TAMPERINGS`."""
    rgb, crops = out / "rgb" / "shard-000000.tar", out / "crops" / "shard-000000.tar"
    first = _members(rgb)[0]
    if how == "sparse_member":  # first member declares 8 GiB, the file grows to hold them as holes
        with open(rgb, "r+b") as f:
            f.seek(first.offset_data - 512)
            block = bytearray(f.read(512))
            block[124:136], block[148:156] = size_bytes(8 * GIB), b" " * 8
            block[148:156] = b"%06o\0 " % sum(block)
            f.seek(first.offset_data - 512)
            f.write(block)
            f.truncate(8 * GIB + 64 * 1024)
        return "rgb/shard-000000.tar"
    if how == "truncated_tar":
        rgb.write_bytes(rgb.read_bytes()[: first.offset_data + 40])
        return "rgb/shard-000000.tar"
    if how == "ids_out_of_range":  # every id of the first member set to 255 (vocabulary 240)
        data = bytearray(rgb.read_bytes())
        header_len = 10 + int.from_bytes(data[first.offset_data + 8 : first.offset_data + 10], "little")
        data[first.offset_data + header_len : first.offset_data + first.size] = b"\xff" * (first.size - header_len)
        rgb.write_bytes(bytes(data))
        return "rgb/shard-000000.tar"
    if how == "duplicate_key":  # the second member renamed to the first's name (checksum fixed)
        data = bytearray(rgb.read_bytes())
        second = _members(rgb)[1]
        start = second.offset_data - 512
        block = bytearray(data[start : start + 512])
        block[:100] = bytes(data[first.offset_data - 512 : first.offset_data - 412])
        block[148:156] = b" " * 8
        block[148:156] = b"%06o\0 " % sum(block)
        data[start : start + 512] = block
        rgb.write_bytes(bytes(data))
        return "rgb/shard-000000.tar"
    if how == "manifest_not_json":
        (out / "manifest.json").write_text('{"format": "tokzoo-tokens/1", "modalities": {')
        return "manifest.json"
    if how == "manifest_wrong_types":
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["modalities"]["rgb"] = ["not", "a", "mapping"]
        manifest["crops"] = 7
        (out / "manifest.json").write_text(json.dumps(manifest))
        return "manifest.json"
    if how == "stats_not_json":
        (out / "rgb" / "shard-000000.stats.json").write_text("{ truncated")
        return "rgb/shard-000000.stats.json"
    if how == "stats_wrong_counts":
        stats = json.loads((out / "rgb" / "shard-000000.stats.json").read_text())
        (out / "rgb" / "shard-000000.stats.json").write_text(json.dumps({**stats, "ok": "many", "count": -1}))
        return "rgb/shard-000000.stats.json"
    if how == "table_truncated":
        table = out / "rgb" / "shard-000000.samples.jsonl"
        table.write_bytes(table.read_bytes()[:-30])
        return "rgb/shard-000000.samples.jsonl"
    if how == "crops_truncated":
        crops.write_bytes(crops.read_bytes()[:700])
        return "crops/shard-000000.tar"
    if how == "crops_outside":  # the crops folder is a symlink to a folder outside OUT
        import shutil

        outside = out.parent / f"{out.name}-elsewhere"
        shutil.move(str(out / "crops"), outside)
        (out / "crops").symlink_to(outside)
        return "crops"
    if how == "journal_outside":  # a commit journal that would move files from outside OUT into place
        (out.parent / "victim.txt.tmp").write_text("attacker's bytes")
        (out / "_commit").mkdir(exist_ok=True)
        (out / "_commit" / "shard-000000.json").write_text(json.dumps(["../victim.txt", "/etc/passwd"]))
        return "_commit/shard-000000.json"
    if how == "journal_not_json":
        (out / "_commit").mkdir(exist_ok=True)
        (out / "_commit" / "shard-000000.json").write_text('["rgb/shard-000000.tar", ')
        return "_commit/shard-000000.json"
    raise ValueError(how)


TAMPERINGS = (
    "sparse_member",
    "truncated_tar",
    "ids_out_of_range",
    "duplicate_key",
    "manifest_not_json",
    "manifest_wrong_types",
    "stats_not_json",
    "stats_wrong_counts",
    "table_truncated",
    "crops_truncated",
    "crops_outside",
    "journal_outside",
    "journal_not_json",
)


HOSTILE_TEXTS = {
    "img": "<img src=x onerror=pwned=1>",
    "svg": "<svg onload=pwned=2>",
    "script": "<script>pwned=3</script>",
    "javascript": "javascript:pwned=4",
}
"""Payloads that set ``window.pwned`` if a page ever ran them (no dots: they also serve as tar member keys)."""


def hostile_raw_dataset(folder: Path) -> Path:
    """A raw tar shard whose name, member keys, metadata (a caption, a link) and one failure reason (an empty
    depth file: its reason repeats the member's name) hold :data:`HOSTILE_TEXTS`; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    img, svg, script, javascript = (HOSTILE_TEXTS[k] for k in ("img", "svg", "script", "javascript"))
    meta = json.dumps({"caption": script, "link": javascript, "title": svg, "alt": img}).encode()
    (folder / f"{svg}.tar").write_bytes(
        tar_of(
            [
                (f"{img}.rgb.png", png_bytes()),
                (f"{img}.depth.npy", b""),
                (f"{img}.metadata.json", meta),
                (f"{javascript}.rgb.png", png_bytes(1)),
                (f"{javascript}.metadata.json", meta),
                (f"{script}.rgb.png", png_bytes(2)),
            ]
        )
    )
    return folder


VICTIM = b"a file outside the output that no tokzoo write may touch\n"


def plant_outside(folder: Path) -> Path:
    """``folder/outside/victim.txt``: what planted links point at; see :func:`assert_untouched`."""
    outside = folder / "outside"
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "victim.txt").write_bytes(VICTIM)
    return outside


def assert_untouched(outside: Path) -> None:
    """No write escaped: the victim file holds its bytes and nothing else appeared beside it."""
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"], sorted(outside.iterdir())
    assert (outside / "victim.txt").read_bytes() == VICTIM


def assert_one_line(error: BaseException, *fragments: str) -> str:
    """A typed refusal: one line holding every fragment."""
    from tokzoo.errors import TokzooError

    assert isinstance(error, TokzooError), repr(error)
    text = str(error)
    assert "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    return text
