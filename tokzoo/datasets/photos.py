"""Real training photographs: Debian's desktop-background packages, fetched into a local cache on first use.

The scikit-image / scikit-learn / matplotlib samples (tokzoo.datasets.samples) are tokzoo's *held-out* real set;
tokenizer recipes train on these wallpapers instead (``data.photos`` in a recipe). Nothing large ships with
tokzoo: :func:`fetch_photos` runs ``apt-get download`` for each package (no root needed), unpacks the images
with ``dpkg-deb``, drops near-duplicates (the same wallpaper at several sizes) and screenshots, and stores each
image downscaled to at most ``max_side`` pixels as PNG under ``cache/<package>/``, beside the package's
``copyright`` file. ``cache/manifest.json`` lists every image with its package, source path and licence.

Offline or without apt: put your own photos (any format PIL reads) in ``cache/<folder>/`` and write no
manifest; :func:`load_photos` then reads every image file it finds.

| package | photos | licence (debian/copyright) |
|---|---|---|
| mate-backgrounds | nature photographs, abstract renders | GPL-2+ |
| ukui-wallpapers | photographs, renders | GPL-2+ / CC-BY-SA (per file) |
| gnome-backgrounds | renders, textures | CC-BY-SA-3.0 |
| plasma-workspace-wallpapers | photographs, renders | LGPL-3 / CC-BY-SA-4.0 (per file) |
| lomiri-wallpapers, lomiri-wallpapers-16.04, lomiri-wallpapers-20.04 | photographs | CC-BY-SA (per file) |
| sway-backgrounds | renders | CC0 |

Every package is in Debian main (free under the DFSG); the per-file terms are in each copied ``copyright``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..io.writes import write_file  # makes the package folders too

PACKAGES = (
    "mate-backgrounds",
    "ukui-wallpapers",
    "gnome-backgrounds",
    "plasma-workspace-wallpapers",
    "lomiri-wallpapers",
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "sway-backgrounds",
)
"""The Debian packages fetched by default."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MIN_SIDE = 400
"""Images whose shorter side is smaller are skipped (icons, placeholders)."""
MAX_SOURCE_BYTES = 64 << 20
"""Members larger than this are skipped unread."""
DUPLICATE_DISTANCE = 6.0
"""Mean absolute difference (0-255) of 16 x 16 grey thumbnails under which two images count as one."""


def default_cache() -> Path:
    """``$TOKZOO_PHOTOS`` or ``~/.cache/tokzoo/photos``."""
    return Path(os.environ.get("TOKZOO_PHOTOS") or Path.home() / ".cache" / "tokzoo" / "photos")


def fetch_photos(
    cache: str | Path | None = None, packages=PACKAGES, max_side: int = 768, progress: bool = True
) -> Path:
    """Download and unpack ``packages`` into ``cache`` (default :func:`default_cache`) unless already there.

    Returns the cache folder. ConfigError (one line, with the way out) when apt-get or dpkg-deb is missing or a
    download fails. Idempotent: a package with an entry in the manifest is not fetched again.
    """
    from PIL import Image
    from tqdm import tqdm

    cache = Path(cache) if cache is not None else default_cache()
    manifest_path = cache / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"images": [], "packages": []}
    todo = [p for p in packages if p not in manifest["packages"]]
    if not todo:
        return cache
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise ConfigError(
                f"fetching training photos needs {tool} (Debian/Ubuntu); or put your own photos in "
                f"{cache}/<folder>/ and delete {manifest_path}"
            )
    cache.mkdir(parents=True, exist_ok=True)
    thumbs = [np.asarray(t, dtype=np.float32) for t in manifest.get("thumbs", [])]
    with tempfile.TemporaryDirectory() as tmp:
        for package in tqdm(todo, desc="fetching photos", unit="package", disable=not progress, dynamic_ncols=True):
            deb = _download(package, Path(tmp))
            for member, data in _image_members(deb):
                try:
                    with Image.open(io.BytesIO(data)) as image:
                        if min(image.size) < MIN_SIDE:
                            continue
                        image.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale
                        image = image.convert("RGB")
                except Exception:  # noqa: BLE001 - a member PIL cannot read is skipped, not fatal
                    continue
                image.thumbnail((max_side, max_side), Image.LANCZOS)
                thumb = np.asarray(image.convert("L").resize((16, 16), Image.BILINEAR), dtype=np.float32)
                if any(np.abs(thumb - t).mean() < DUPLICATE_DISTANCE for t in thumbs):
                    continue
                thumbs.append(thumb)
                name = _file_name(member)
                target = cache / package / name
                png = io.BytesIO()
                image.save(png, format="PNG")
                write_file(cache, target, png.getvalue())
                manifest["images"].append(
                    {
                        "file": f"{package}/{name}",
                        "package": package,
                        "source": member,
                        "width": image.size[0],
                        "height": image.size[1],
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
                )
            write_file(cache, cache / package / "copyright", _copyright(deb))
            manifest["packages"].append(package)
            manifest["thumbs"] = [t.astype(int).tolist() for t in thumbs]
            write_file(cache, manifest_path, json.dumps(manifest, indent=1).encode())
    return cache


def load_photos(
    cache: str | Path | None = None, every: int = 1, offset: int = 0, hold_out_every: int = 0
) -> list[np.ndarray]:
    """The cached photos as uint8 (H, W, 3) arrays, sorted by file name; ``every``/``offset`` pick a subset
    (photo i is kept when ``i % every == offset``); ``hold_out_every`` = k > 0 leaves out every photo with
    ``i % k == 0`` (the validation photos that ``every=k, offset=0`` returns). ConfigError when the cache holds
    no image."""
    from PIL import Image

    cache = Path(cache) if cache is not None else default_cache()
    files = sorted(p for p in cache.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ConfigError(
            f"{cache}: no training photos; run `tokzoo photos` (Debian's wallpaper packages) or put "
            "images in <cache>/<folder>/"
        )
    photos = []
    for index, path in enumerate(files):
        if index % every == offset and not (hold_out_every and index % hold_out_every == 0):
            with Image.open(path) as image:
                photos.append(np.asarray(image.convert("RGB")))
    return photos


def _download(package: str, folder: Path) -> Path:
    done = subprocess.run(["apt-get", "download", package], cwd=folder, capture_output=True, text=True)
    debs = sorted(folder.glob(f"{package}_*.deb"))
    if done.returncode != 0 or not debs:
        reason = (done.stderr.strip().splitlines() or ["no .deb written"])[-1]
        raise ConfigError(
            f"apt-get download {package} failed ({reason}); run `apt-get update` first, or put your "
            "own photos in the cache"
        )
    return debs[-1]


def _image_members(deb: Path):
    """(path inside the package, bytes) of each wallpaper image, screenshots and oversized members skipped."""
    stream = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    try:
        with tarfile.open(fileobj=stream.stdout, mode="r|") as archive:
            for member in archive:
                name = member.name.lstrip("./")
                if (
                    not member.isfile()
                    or member.size > MAX_SOURCE_BYTES
                    or "/usr/share/doc/" in f"/{name}"
                    or Path(name).suffix.lower() not in IMAGE_SUFFIXES
                    or "screenshot" in name.lower()
                ):
                    continue
                data = archive.extractfile(member).read()
                yield name, data
    finally:
        stream.stdout.close()
        stream.wait()


def _copyright(deb: Path) -> bytes:
    """The package's debian/copyright text (empty when it has none)."""
    listing = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(listing)) as archive:
        for member in archive:
            if member.isfile() and member.name.endswith("/copyright"):
                return archive.extractfile(member).read()
    return b""


def _file_name(member: str) -> str:
    """A flat, safe PNG name for a package member (plasma's ``Name/contents/images/WxH.png`` -> ``Name-WxH.png``)."""
    parts = [
        p
        for p in Path(member).with_suffix("").parts
        if p not in ("usr", "share", "backgrounds", "wallpapers", "contents", "images")
    ]
    stem = "-".join(parts[-2:]) if len(parts) >= 2 else (parts[-1] if parts else "image")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) + ".png"
