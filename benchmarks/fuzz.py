"""Seeded mutation fuzzer over every public reader: only tokzoo's typed errors may escape.

Valid PNG (8-bit colour, 16-bit depth), JPEG, NPY (depth, token ids, crops), JSON (pose, metadata, camera),
tar (a webdataset sample, gzipped too), token shard, safetensors, tokenizer config.json and WAV bytes are mutated
(bit flips, random / boundary bytes and integers, inserts, deletions, duplicated ranges, truncation, splices)
and handed to the readers that take them (tokzoo.io.read_modality, load_npy, TarReader, walk_tar,
tokzoo.data.open_shard, the pipeline's read_npy_tar, checkpoint.read_state_dict, load_tokenizer). A case passes
when it returns or raises a TokzooError; anything else (MemoryError included) is recorded with its traceback.
Each case runs under a SIGALRM timeout; the whole run under RLIMIT_AS when ``--memory-gb`` is given.

    python benchmarks/fuzz.py --cases 10000 --seed 0 --memory-gb 6 [--write-results]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import resource
import signal
import sys
import tarfile
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CASE_TIMEOUT_S = 20


class CaseTimeout(Exception):
    pass


def seeds() -> dict[str, bytes]:
    """Valid inputs, one per format (small, so a mutation is likely to hit a header)."""
    import torch
    from PIL import Image
    from safetensors.torch import save

    from tokzoo.pipeline.writer import npy_bytes, tar_bytes

    rng = np.random.default_rng(0)

    def image(array, fmt, **options):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, fmt, **options)
        return buffer.getvalue()

    rgb = rng.integers(0, 255, (16, 16, 3), np.uint8)
    pose = {"skeleton": "coco17", "width": 16, "height": 16,
            "humans": [{"keypoints_2d": [[3.0, 4.0, 2]] * 17, "box": [1, 1, 10, 10]}]}
    sample = io.BytesIO()
    with tarfile.open(fileobj=sample, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("s0.rgb.png", image(rgb, "PNG")), ("s0.depth.npy", npy_bytes(np.ones((8, 8), np.float32))),
                           ("s1.rgb.png", image(rgb[::-1].copy(), "PNG"))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    config = json.loads((ROOT / "tokzoo" / "weights" / "depth" / "config.json").read_text())
    return {
        "png": image(rgb, "PNG"), "png16": image(rng.integers(1, 60000, (16, 16)).astype(np.uint16), "PNG"),
        "jpeg": image(rgb, "JPEG", quality=90),
        "npy_depth": npy_bytes(np.full((8, 8), 2.0, np.float32)), "npy_ids": npy_bytes(np.arange(16, dtype=np.uint8).reshape(2, 8)),
        "npy_crops": npy_bytes(np.array([[0, 0, 8, 8, 0]], np.int32)),
        "json_pose": json.dumps(pose).encode(), "json_metadata": b'{"original_width": 64, "brightness": 0.5}',
        "json_camera": json.dumps({"fx": 10, "fy": 10, "cx": 8, "cy": 8, "width": 16, "height": 16,
                                   "cam_to_world": np.eye(4).tolist()}).encode(),
        "tar": sample.getvalue(), "tar_gz": gzip.compress(sample.getvalue(), mtime=0),
        "token_shard": tar_bytes([(f"k{i}", npy_bytes(np.full((2, 4), i, np.uint8))) for i in range(3)]),
        "safetensors": save({"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.zeros(2)}),
        "config": json.dumps(config).encode(),
        "wav": _wav(rng.uniform(-0.5, 0.5, 800).astype(np.float32)),
    }


def _wav(wave: np.ndarray) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, wave, 8000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def mutate(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """One to four random mutations of ``data``."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(9)
        at = rng.randrange(len(out)) if out else 0
        if kind == 0 and out:  # bit flip
            out[at] ^= 1 << rng.randrange(8)
        elif kind == 1 and out:  # random or boundary byte
            out[at] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        elif kind == 2:  # boundary integer, 4 or 8 bytes, either endianness
            width = rng.choice([4, 8])
            value = rng.choice([0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1, 2**64 - 1, rng.getrandbits(width * 8)])
            out[at:at + width] = (value % 2 ** (width * 8)).to_bytes(width, rng.choice(["little", "big"]))
        elif kind == 3:  # ASCII digits (octal tar fields, JSON numbers, npy shapes)
            out[at:at + rng.randint(1, 12)] = str(rng.choice([0, -1, 7, 10**rng.randint(1, 30)])).encode()
        elif kind == 4:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        elif kind == 5 and out:
            del out[at:at + rng.randint(1, 256)]
        elif kind == 6 and out:  # duplicate a range
            end = min(len(out), at + rng.randint(1, 1024))
            out[at:at] = out[at:end]
        elif kind == 7:
            del out[rng.randrange(len(out) + 1):]
        elif kind == 8:  # splice with another seed
            other = rng.choice(others)
            cut = rng.randrange(len(other) + 1)
            out[at:] = other[cut:]
    return bytes(out)


def readers(kind: str, data: bytes, scratch: Path):
    """The public readers ``kind`` goes through; each call returns or raises."""
    from tokzoo.checkpoint import read_state_dict
    from tokzoo.data import open_shard
    from tokzoo.io import TarReader, read_modality
    from tokzoo.io.safety import load_json, load_npy
    from tokzoo.io.tarwalk import walk_tar
    from tokzoo.pipeline.layout import read_npy_tar
    from tokzoo.zoo import load_tokenizer

    def as_file(name: str) -> Path:
        path = scratch / name
        path.write_bytes(data)
        return path

    if kind in ("png", "png16", "jpeg"):
        ext = ".jpg" if kind == "jpeg" else ".png"
        yield "read_modality(rgb)", lambda: read_modality("rgb", f"x{ext}", data)
        yield "read_modality(depth)", lambda: read_modality("depth", "x.png", data) if ext == ".png" else None
        yield "read_modality(semseg)", lambda: read_modality("semseg", "x.png", data) if ext == ".png" else None
        yield "read_modality(normals)", lambda: read_modality("normals", "x.png", data) if ext == ".png" else None
    elif kind.startswith("npy"):
        yield "load_npy", lambda: load_npy(data, "x.npy")
        yield "read_modality(depth)", lambda: read_modality("depth", "x.npy", data)
        yield "read_modality(crops)", lambda: read_modality("crops", "x.npy", data)
        yield "read_modality(edges)", lambda: read_modality("edges", "x.npy", data)
    elif kind.startswith("json"):
        yield "load_json", lambda: load_json(data, "x.json")
        for modality in ("pose", "metadata", "camera", "palette", "boxes"):
            yield f"read_modality({modality})", lambda m=modality: read_modality(m, "x.json", data)
    elif kind in ("tar", "tar_gz"):
        path = as_file("x.tar")
        yield "TarReader", lambda: (len(TarReader(str(path))), [s.errors for s in TarReader(str(path), ["rgb", "depth"])])
        yield "walk_tar", lambda: [read() for member, read in walk_tar(path, 1 << 20) if member.size < 1 << 20]
    elif kind == "token_shard":
        path = as_file("shard-000000.tar")
        yield "open_shard", lambda: _gather_all(open_shard(path))
        yield "read_npy_tar", lambda: list(read_npy_tar(path))
    elif kind == "wav":
        yield "read_modality(audio)", lambda: read_modality("audio", "x.wav", data)
    elif kind == "safetensors":
        path = as_file("w.safetensors")
        yield "read_state_dict", lambda: read_state_dict(path)
    elif kind == "config":
        folder = scratch / "tok"
        folder.mkdir(exist_ok=True)
        (folder / "config.json").write_bytes(data)
        weights = ROOT / "tokzoo" / "weights" / "depth" / "model.safetensors"
        if not (folder / "model.safetensors").exists():
            (folder / "model.safetensors").symlink_to(weights)
        yield "load_tokenizer", lambda: load_tokenizer(folder)


def _gather_all(shard) -> None:
    if len(shard):
        index = np.arange(len(shard))
        shard.gather(index, np.zeros(len(shard), np.int64))


def run(cases: int, seed: int) -> dict:
    """Fuzz ``cases`` cases; returns counts by outcome, the untyped failures, the slowest case and peak RSS."""
    from tokzoo.errors import TokzooError

    valid = seeds()
    kinds, others = sorted(valid), list(valid.values())
    rng = random.Random(seed)
    outcomes, failures, slowest = Counter(), [], (0.0, "")
    signal.signal(signal.SIGALRM, _alarm)
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm"
        warm.mkdir()
        for kind in kinds:  # unmutated seeds: some reader takes each (and imports are paid here, not in a case)
            accepted = 0
            for name, call in readers(kind, valid[kind], warm):
                try:
                    call()
                    accepted += 1
                except TokzooError:  # e.g. metadata JSON read as a pose
                    pass
            assert accepted, f"no reader takes the unmutated {kind} seed"
        for case in range(cases):
            kind = kinds[case % len(kinds)]
            data = mutate(valid[kind], rng, others)
            scratch = Path(tmp) / f"c{case % 4}"
            scratch.mkdir(exist_ok=True)
            for name, call in readers(kind, data, scratch):
                start = time.perf_counter()
                signal.alarm(CASE_TIMEOUT_S)
                try:
                    call()
                    outcomes["ok"] += 1
                except TokzooError as error:
                    outcomes[type(error).__name__] += 1
                except BaseException as error:  # noqa: BLE001 - the point: record what escapes
                    if isinstance(error, KeyboardInterrupt):
                        raise
                    outcomes[f"UNTYPED {type(error).__name__}"] += 1
                    failures.append({"case": case, "kind": kind, "reader": name, "error": type(error).__name__,
                                     "message": str(error)[:300], "traceback": traceback.format_exc()[-2000:],
                                     "data_hex": data[:4096].hex()})
                finally:
                    signal.alarm(0)
                elapsed = time.perf_counter() - start
                if elapsed > slowest[0]:
                    slowest = (elapsed, f"case {case} ({kind} -> {name})")
    return {"cases": cases, "seed": seed, "calls": sum(outcomes.values()), "outcomes": dict(outcomes.most_common()),
            "untyped": len(failures), "failures": failures, "slowest_s": round(slowest[0], 3), "slowest": slowest[1],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _alarm(signum, frame):
    raise CaseTimeout(f"case ran over {CASE_TIMEOUT_S} s")


def _markdown(result: dict, seconds: float, command: str) -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    rows = "\n".join(f"| {name} | {count} |" for name, count in result["outcomes"].items())
    return (f"\n### {time.strftime('%Y-%m-%d')}: {result['cases']} cases, seed {result['seed']}\n\n"
            f"Machine: {os.cpu_count()} CPUs shared with other jobs, load average {load}; CPU only (no GPU involved). "
            f"Command: `{command}`. {seconds:.0f} s.\n\n"
            f"| outcome of a reader call | count |\n|---|---|\n{rows}\n\n"
            f"Reader calls: {result['calls']}; untyped exceptions: **{result['untyped']}**; slowest call "
            f"{result['slowest_s']} s ({result['slowest']}); peak RSS {result['peak_rss_mb']} MB.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-gb", type=float, default=None, help="RLIMIT_AS for this process")
    parser.add_argument("--json", type=Path, help="write the full result (failures with tracebacks) here")
    parser.add_argument("--write-results", action="store_true", help="append a dated entry to benchmarks/RESULTS.md")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    if args.memory_gb:
        limit = int(args.memory_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    start = time.perf_counter()
    result = run(args.cases, args.seed)
    seconds = time.perf_counter() - start
    summary = {k: v for k, v in result.items() if k != "failures"}
    print(json.dumps(summary, indent=2))
    for failure in result["failures"][:10]:
        print(f"UNTYPED case {failure['case']} {failure['kind']} -> {failure['reader']}: {failure['error']}: "
              f"{failure['message']}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.write_results:
        command = "python benchmarks/fuzz.py " + " ".join(sys.argv[1:])
        results = ROOT / "benchmarks" / "RESULTS.md"
        text = results.read_text()
        entry = _markdown(result, seconds, command)
        header = "## Fuzzing the readers (issue 10)"
        if header not in text:
            text += f"\n{header}\n\nbenchmarks/fuzz.py: seeded mutations of valid PNG, JPEG, NPY, JSON, tar, token " \
                    "shard, safetensors and tokenizer-config bytes through every public reader; goal: zero untyped.\n"
        results.write_text(text + entry)  # entries follow the section's header, newest last
    sys.exit(1 if result["untyped"] else 0)


if __name__ == "__main__":
    main()
