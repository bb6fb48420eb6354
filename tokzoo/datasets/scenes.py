"""Procedural multimodal scenes with exact, pixel-aligned ground truth.

``kind="indoor"`` (default): a room (floor, some walls, sky above and where walls are missing) with spheres,
boxes, cylinders and articulated capsule humans, procedural textures, one or two point lights with Lambertian
shading and cast shadows, seen by a pinhole camera. ``kind="outdoor"``: terrain, buildings, trees, objects and
a few humans under the sun at 0.1-100 m (scene_outdoor.py). ``kind="mix"``: each index is indoor or outdoor
with probability 1/2 (the indoor ones are the indoor stream's scenes of that index). ``kind="cluttered"``: rooms
densely filled with small and thin objects, curved tubes and wires at 0.6-6 m (scene_clutter.py). Every sample
is a pure function of ``(seed, index, kind)``.

>>> sample = generate_scene(42, seed=0, size=128)
>>> sample["rgb"].shape, sample["depth"].dtype
((128, 128, 3), dtype('float32'))
"""

from __future__ import annotations

import io
import json
import signal
import tarfile
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..errors import ConfigError
from ..io.formats import write_modality
from ..io.images import save_png
from ..io.output_lock import OutputLock
from ..io.writes import make_folder, write_file
from ..limits import check_field
from ..modalities.human_pose import COCO17_LIMBS
from ..viz import colorize, label_colors
from .scene_clutter import sample_cluttered_layout
from .scene_layout import SCENE_CLASSES, sample_layout
from .scene_outdoor import sample_outdoor_layout
from .scene_render import render

__all__ = [
    "SCENE_CLASSES",
    "SCENE_CLASS_COLORS",
    "SCENE_KINDS",
    "Scenes",
    "encode_scene",
    "generate_scene",
    "is_outdoor",
    "save_scene_preview",
    "scene_preview",
    "write_scene_shards",
]

SCENE_KINDS = ("indoor", "outdoor", "mix", "cluttered")
_OUTDOOR_STREAM, _MIX_STREAM, _CLUTTER_STREAM = 1, 2, 3  # extra seed words: outdoor, the mix's coins, cluttered

# One display colour per class of SCENE_CLASSES.
SCENE_CLASS_COLORS = np.array(
    [
        [150, 110, 70],
        [170, 170, 160],
        [120, 180, 240],
        [230, 80, 80],
        [80, 200, 90],
        [80, 110, 230],
        [250, 200, 40],
        [110, 150, 60],
        [190, 120, 160],
        [30, 110, 40],
    ],
    np.uint8,
)


def _size(size) -> tuple[int, int]:
    """``size`` int or ``(height, width)`` -> ``(height, width)``."""
    h, w = (size, size) if np.ndim(size) == 0 else size
    return int(h), int(w)


def is_outdoor(index: int, seed: int = 0, kind: str = "indoor") -> bool:
    """Whether scene ``index`` of stream ``(seed, kind)`` is an outdoor scene; ConfigError for an unknown kind."""
    if kind not in SCENE_KINDS:
        raise ConfigError(f"scene kind must be one of {', '.join(SCENE_KINDS)}, got {kind!r}")
    if kind == "mix":
        return bool(np.random.default_rng([seed, index, _MIX_STREAM]).uniform() < 0.5)
    return kind == "outdoor"


def generate_scene(index: int, seed: int = 0, size: int | tuple[int, int] = 256, kind: str = "indoor") -> dict:
    """Render scene ``index`` (>= 0) of the stream ``seed`` (>= 0); ``size`` is an int or ``(height, width)``;
    ``kind`` one of :data:`SCENE_KINDS` (see the module docstring).

    Returns a dict of pixel-aligned arrays (H, W = size) following ARCHITECTURE.md:
    ``rgb`` uint8 (H, W, 3); ``depth`` float32 (H, W) z-depth in metres, NaN for sky; ``normals``
    float32 (H, W, 3) camera-frame unit normals (x right, y down, z forward, facing the camera), NaN
    for sky; ``semseg`` uint8 (H, W) ids into :data:`SCENE_CLASSES`; ``sam_instances`` uint16 (H, W), one id
    per object and human, 0 for floor/wall/sky; ``edges`` uint8 (H, W) in {0, 1}; ``pose`` (COCO-17
    keypoints of each human, with its ``instance_id``, and the image's ``width`` / ``height``) and
    ``camera`` (intrinsics in pixels, with pixel centres at integer coordinates, and ``cam_to_world``)
    as JSON-able dicts.
    The same ``(seed, index, size, kind)`` gives byte-identical arrays in any process.
    """
    h, w = _size(size)
    if kind == "cluttered":
        return render(sample_cluttered_layout(np.random.default_rng([seed, index, _CLUTTER_STREAM]), w, h))
    if is_outdoor(index, seed, kind):
        return render(sample_outdoor_layout(np.random.default_rng([seed, index, _OUTDOOR_STREAM]), w, h))
    return render(sample_layout(np.random.default_rng([seed, index]), w, h))


def _key(index: int) -> str:
    return f"scene_{index:06d}"


class Scenes:
    """Iterable of ``(key, sample)`` for indices ``0 .. n-1``, keys ``scene_000042``."""

    def __init__(self, n: int, seed: int = 0, size: int | tuple[int, int] = 256, kind: str = "indoor"):
        is_outdoor(0, seed, kind)  # checks kind
        self.n, self.seed, self.size, self.kind = n, seed, size, kind

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        for i in range(self.n):
            yield _key(i), generate_scene(i, self.seed, self.size, self.kind)


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _json(value) -> bytes:
    return json.dumps(value, sort_keys=True).encode()


def encode_scene(sample: dict) -> dict[str, bytes]:
    """File extension (``rgb.png``, ``depth.npy``, ...) -> bytes, per the raw-sample file layout. The caption
    (``captions.txt``) is :func:`~tokzoo.datasets.scene_text.scene_text`'s, read off the rendered pixels."""
    from .scene_text import scene_text  # scene_text imports this module

    return {
        "captions.txt": write_modality("captions", scene_text(sample)["caption"], ".txt"),
        "rgb.png": _png(sample["rgb"]),
        "depth.npy": _npy(sample["depth"]),
        "normals.npy": _npy(sample["normals"]),
        "semseg.png": _png(sample["semseg"]),
        "sam_instances.png": _png(sample["sam_instances"]),
        "edges.png": _png(sample["edges"] * np.uint8(255)),
        "pose.json": _json(sample["pose"]),
        "camera.json": _json(sample["camera"]),
    }


def _write_shard(job) -> tuple[str, int]:
    """One webdataset tar: members ``<key>.<ext>`` in sorted order, mtime 0, read-only (tarfile, not webdataset's
    writer: that one imports torch, a 2 s start for ``tokzoo scenes``)."""
    path, indices, seed, size, kind = job

    def write(f) -> None:  # tarfile, not webdataset's writer: that import pulls in torch
        with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for i in indices:
                files = encode_scene(generate_scene(i, seed, size, kind))
                for ext in sorted(files):
                    info = tarfile.TarInfo(f"{_key(i)}.{ext}")
                    info.size, info.mode, info.mtime, info.uname, info.gname = (
                        len(files[ext]),
                        0o444,
                        0,
                        "tokzoo",
                        "tokzoo",
                    )
                    tar.addfile(info, io.BytesIO(files[ext]))

    write_file(Path(path).parent, path, write)  # temporary name, renamed when complete: no truncated shard-*.tar
    return path, len(indices)


def write_scene_shards(
    out_dir,
    n: int,
    seed: int = 0,
    size: int | tuple[int, int] = 256,
    samples_per_shard: int = 1000,
    workers: int = 0,
    progress=None,
    kind: str = "indoor",
) -> list[Path]:
    """Write scenes ``0 .. n-1`` of ``kind`` as webdataset tars ``out_dir/shard-000000.tar``, ... and return their
    paths. Bytes depend only on the arguments (fixed member order and mtimes), also with ``workers``
    > 0, which renders shards in a process pool. ``progress(k)`` is called after each shard of k samples.
    """
    is_outdoor(0, seed, kind)  # checks kind before anything is written
    check_field(n, "scenes", "n", "scenes.count")
    out = make_folder(Path(out_dir))
    with OutputLock(out):  # one run at a time: the clean-up below would delete another run's staged shards
        return _write_locked(out, n, seed, size, samples_per_shard, workers, progress, kind)


def _write_locked(out: Path, n, seed, size, samples_per_shard, workers, progress, kind) -> list[Path]:
    jobs = [
        (str(out / f"shard-{s:06d}.tar"), range(start, min(start + samples_per_shard, n)), seed, size, kind)
        for s, start in enumerate(range(0, n, samples_per_shard))
    ]
    for leftover in [*out.glob("shard-*.tar.partial"), *out.glob(".shard-*.tar.*.tmp")]:  # from a killed run
        leftover.unlink()
    others = sorted(
        {p.name for p in out.iterdir() if not p.name.startswith(".")} - {Path(path).name for path, *_ in jobs}
    )
    if others:  # stale shards would make one mixed dataset, other files a folder no longer read as shards
        raise ConfigError(
            f"{out}: holds {others[0]}, which this run would not rewrite ({len(others)} such entries); "
            "choose an empty folder"
        )
    if workers > 0:
        with Pool(workers, initializer=_ignore_sigint) as pool:
            done = pool.imap(_write_shard, jobs)
            results = [_report(r, progress) for r in done]
    else:
        results = [_report(_write_shard(job), progress) for job in jobs]
    return [Path(p) for p, _ in results]


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the main process (which stops the pool) instead of each printing a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _report(result, progress):
    if progress is not None:
        progress(result[1])
    return result


def scene_preview(sample: dict) -> np.ndarray:
    """uint8 (H, 7 W, 3): rgb | depth | normals | semseg | instances | edges | keypoints on rgb."""
    normals = np.nan_to_num((sample["normals"] * np.array([1, -1, -1]) + 1) * 127.5).astype(np.uint8)
    edges = np.repeat(sample["edges"][..., None] * np.uint8(255), 3, axis=2)
    tiles = [
        sample["rgb"],
        colorize(sample["depth"]),
        normals,
        SCENE_CLASS_COLORS[sample["semseg"]],
        label_colors(sample["sam_instances"], ignore=None) * (sample["sam_instances"] > 0)[..., None],
        edges,
        _draw_pose(sample["rgb"], sample["pose"]),
    ]
    return np.concatenate(tiles, axis=1)


def _draw_pose(rgb: np.ndarray, pose: dict) -> np.ndarray:
    """Skeletons over a copy of ``rgb``: visible keypoints green, occluded orange, limbs white."""
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    for human in pose["humans"]:
        kp = human["keypoints_2d"]
        for a, b in COCO17_LIMBS:
            if kp[a][2] and kp[b][2]:
                draw.line([tuple(kp[a][:2]), tuple(kp[b][:2])], fill=(255, 255, 255), width=1)
        for x, y, v in kp:
            if v:
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(40, 230, 40) if v == 2 else (255, 140, 0))
    return np.asarray(img)


def save_scene_preview(sample: dict, path) -> Path:
    """Save :func:`scene_preview` of ``sample`` as a PNG at ``path``; returns the path."""
    return save_png(scene_preview(sample), path)
