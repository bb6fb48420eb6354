"""Real training photographs: Debian's desktop-background packages, fetched into a local cache on first use.

The scikit-image / scikit-learn / matplotlib samples (tokzoo.datasets.samples) are tokzoo's *held-out* real set;
tokenizer recipes train on these wallpapers instead (``data.photos`` in a recipe). Nothing large ships with
tokzoo: :func:`fetch_photos` runs ``apt-get download`` for each package (no root needed), unpacks the images
with ``dpkg-deb``, drops near-duplicates (the same wallpaper at several sizes), screenshots and copies of a
held-out photo, and stores each image downscaled to at most ``max_side`` pixels as PNG under
``cache/<package>/``, beside the package's ``copyright`` file. ``cache/manifest.json`` lists every image with its
package, source path and licence. A package's images move into place only once all are written.

Offline or without apt: put your own photos (any format PIL reads) in ``cache/<folder>/``; :func:`load_photos`
reads such a folder by default, and a recipe names it in ``data.photos.packages``.

| package | photos | licence (debian/copyright) |
|---|---|---|
| mate-backgrounds | nature photographs, abstract renders | GPL-2+ |
| ukui-wallpapers | photographs, renders | GPL-2+ / CC-BY-SA (per file) |
| gnome-backgrounds | renders, textures | CC-BY-SA-3.0 |
| plasma-workspace-wallpapers | photographs, renders | LGPL-3 / CC-BY-SA-4.0 (per file) |
| lomiri-wallpapers, lomiri-wallpapers-16.04, lomiri-wallpapers-20.04 | photographs | CC-BY-SA (per file) |
| sway-backgrounds | renders | CC0 |

:data:`MORE_PACKAGES` (``tokzoo photos --more``; read only by recipes that name them), the members
:data:`PHOTO_MEMBERS` names:

| package | photos | licence (debian/copyright) |
|---|---|---|
| gcompris-qt-data | ~115 animals, monuments, musicians, objects (inside Qt resource bundles) | CC-BY-SA / CC-BY / CC0 / GPL-3+ (per file) |
| tuxpaint-data | 19 nature and texture photographs | GPL-2+ |
| lxqt-themes | 11 nature photographs | CC-BY-SA-3.0 (wallpapers/License) |
| palapeli-data, renpy-demo, hugin-data, digikam-data, sddm-theme-maldives | 1-6 photographs each | GPL-2+ / Expat / CC-BY-3.0 |
| lomiri-ui-toolkit-examples, qtdeclarative5-examples, qtmultimedia5-examples, python-kivy-examples | 1-4 each | LGPL-3 / GPL-3 / MIT / CC0 |

Fetched only when a recipe or ``tokzoo photos --package`` names it:

| package | photos | licence (debian/copyright) |
|---|---|---|
| endless-sky-high-dpi | 273 landscapes, coasts, cities, industry (the game's landing photos, 1440 x 720) | public domain / CC-BY-SA-3.0 / CC-BY-SA-4.0 (per file) |

Every package is in Debian main (free under the DFSG); the per-file terms are in each copied ``copyright``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..io.writes import make_folder, remove_inside, rename_inside, write_file  # make the package folders too

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

MORE_PACKAGES = (
    "gcompris-qt-data",
    "tuxpaint-data",
    "lxqt-themes",
    "palapeli-data",
    "renpy-demo",
    "sddm-theme-maldives",
    "lomiri-ui-toolkit-examples",
    "qtdeclarative5-examples",
    "qtmultimedia5-examples",
    "python-kivy-examples",
    "hugin-data",
    "digikam-data",
)
"""More real photographs (172, Debian main): education software, games, themes and examples. Fetched by
``tokzoo photos --more`` or a recipe naming them; only the members that :data:`PHOTO_MEMBERS` names are kept."""

_GCOMPRIS = "usr/share/gcompris-qt/rcc/*.rcc/gcompris/src/activities"
PHOTO_MEMBERS = {
    "gcompris-qt-data": tuple(
        f"{_GCOMPRIS}/{activity}/resource/*"
        for activity in (
            "erase",
            "explore_farm_animals",
            "explore_monuments",
            "explore_world_animals",
            "explore_world_music",
        )
    ),
    "tuxpaint-data": ("usr/share/tuxpaint/templates/*.jpg",),
    "lxqt-themes": tuple(
        f"usr/share/lxqt/wallpapers/{name}"
        for name in (
            "Butterfly-Kenneth-Wimer.jpg",
            "Valendas.png",
            "after-the-rain.jpg",
            "appleflower.png",
            "beam.png",
            "butterfly.png",
            "cloud.png",
            "drop.png",
            "flowers.png",
            "fog.jpg",
            "this-is-not-windows.jpg",
        )
    ),
    "palapeli-data": ("usr/share/palapeli/collection/*.jpg",),
    "renpy-demo": tuple(
        f"usr/share/games/renpy/demo/game/{name}"
        for name in (
            "gui/main_menu.jpg",
            "images/bg cave.*",
            "images/bg panorama.*",
            "images/bg washington.*",
            "images/bg whitehouse.*",
        )
    ),
    # maldives.jpg is the login screen drawn over background.jpg; both are kept so that the 172-photo set (and the
    # split of recipes/rgb_f4_more_photos.yaml) stays as trained: validation sets leave it out (DERIVED)
    "sddm-theme-maldives": ("usr/share/sddm/themes/maldives/*.jpg",),
    "lomiri-ui-toolkit-examples": ("*/lomiri-ui-toolkit-gallery/demo_image*",),
    "qtdeclarative5-examples": (
        "*/quick/customitems/scrollbar/pics/niagara_falls.jpg",
        "*/quick/particles/images/backgroundLeaves.jpg",
        "*/quick/touchinteraction/flickable/content/cork.jpg",
    ),
    "qtmultimedia5-examples": ("*/qmlvideo/images/leaves.jpg",),
    "python-kivy-examples": (
        "usr/share/kivy-examples/demo/pictures/images/Bubbles.jpg",
        "usr/share/kivy-examples/demo/pictures/images/Wall.jpg",
        "usr/share/kivy-examples/demo/pictures/images/faust_github.jpg",
        "usr/share/kivy-examples/widgets/cityCC0.png",
    ),
    "hugin-data": tuple(f"usr/share/hugin/xrc/data/help_en_EN/{name}" for name in ("CA_*.jpg", "Medinet_habu_*")),
    "digikam-data": ("usr/share/digikam/about/images/body-background.jpg",),
    # Endless Sky's planet-landing photographs (landscapes, coasts, cities, industry; public domain, CC-BY-SA 3.0 and
    # 4.0, per file in its copyright); this package holds them at 1440 x 720 (endless-sky-data's are 720 x 360)
    "endless-sky-high-dpi": ("usr/share/games/endless-sky/plugins/endless-sky-high-dpi/images/land/*@2x.jpg",),
}
"""Package -> glob patterns (fnmatch) of the members that are photographs, for packages whose other images are
drawings, icons or screenshots; a pattern may reach inside a Qt resource bundle (``BUNDLE.rcc/inner/path``).
Chosen by looking at every image of at least 400 px; the GCompris paintings, cartoons and planets, a cube map and
a game's pong field are left out."""

KNOWN_PACKAGES = frozenset(PACKAGES) | frozenset(MORE_PACKAGES) | frozenset(PHOTO_MEMBERS)
"""The packages tokzoo fetches itself: a cache folder of another name is one of your own."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MIN_SIDE = 400
"""Images whose shorter side is smaller are skipped (icons, placeholders)."""
MAX_SOURCE_BYTES = 64 << 20
"""Members larger than this are skipped unread."""
DUPLICATE_DISTANCE = 6.0
"""Mean absolute difference (0-255) of 16 x 16 grey thumbnails under which two images count as one."""
HELD_OUT_CORRELATION = 0.9
"""Thumbnail correlation from which a fetched image counts as a copy of a held-out photo and is dropped. Each
held-out photo is compared whole, centre-cropped by 5% and 10% a side, and mirrored (HELD_OUT_THUMBS_FILE); the
largest correlation of any image of the packages here with any of these is 0.854. Copies cropped off-centre by
more than ~5% or edited are not caught: the guard is for verbatim and lightly cropped copies."""
DERIVED = {"sddm-theme-maldives/maldives-maldives.png": "sddm-theme-maldives/maldives-background.png"}
"""Cache file -> the cache file it was made from (a login screen drawn over a photo): validation sets leave such
a file out, since its source may be in training."""
HELD_OUT_THUMBS_FILE = Path(__file__).with_name("held_out_thumbs.json")
"""The held-out photos' thumbnails (:func:`held_out_thumbnails`), shipped so that fetching needs no sample extra."""
PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
"""A Debian package name (Debian policy 5.6.1)."""
MANIFEST = "manifest.json"
STAGING = ".fetching"
"""Prefix of the cache folder (one per process) a package's images are written to before the whole package moves
into place."""


def photo_sources(data: dict) -> list[dict]:
    """The recipe's ``data.photos`` as a list of sources (a single mapping is one source)."""
    photos = data.get("photos")
    return [] if photos is None else photos if isinstance(photos, list) else [photos]


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
    manifest = _read_manifest(cache)
    # a folder no fetch wrote is one of your own (read, never fetched over), unless it bears a known package's
    # name: then an interrupted fetch left it, and it is fetched again
    todo = [
        p for p in packages if p not in manifest["packages"] and (p in KNOWN_PACKAGES or not (cache / str(p)).is_dir())
    ]
    if not todo:
        return cache
    if any(p not in PACKAGES for p in todo):  # wallpapers first, so that others are de-duplicated against them
        todo = [p for p in PACKAGES if p not in manifest["packages"] and p not in todo] + todo
    for package in todo:
        if not isinstance(package, str) or not PACKAGE_NAME.fullmatch(package):
            raise ConfigError(f"photos: {package!r} is neither a folder in {cache} nor a Debian package name")
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise ConfigError(
                f"fetching training photos needs {tool} (Debian/Ubuntu); or put your own photos in "
                f"{cache}/<folder>/ and name the folder in data.photos.packages"
            )
    make_folder(cache)
    thumbs = [
        (image["package"], np.asarray(t, dtype=np.float32))
        for image, t in zip(manifest["images"], manifest.get("thumbs", []))
    ]
    held_out = _held_out_thumbs()
    staging = f"{STAGING}-{os.getpid()}"  # one per process: two fetching at once do not share it
    with tempfile.TemporaryDirectory() as tmp:
        for package in tqdm(todo, desc="fetching photos", unit="package", disable=not progress, dynamic_ncols=True):
            deb = _download(package, Path(tmp))
            # a wallpaper package is compared with wallpapers only, so the default set does not depend on the
            # order packages were fetched in
            peers = [t for p, t in thumbs if p in PACKAGES] if package in PACKAGES else [t for _, t in thumbs]
            names, images = set(), []
            for member, data in _image_members(deb, PHOTO_MEMBERS.get(package)):
                try:
                    with Image.open(io.BytesIO(data)) as image:
                        if min(image.size) < MIN_SIDE:
                            continue
                        image.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale
                        image = image.convert("RGB")
                except Exception:  # noqa: BLE001 - a member PIL cannot read is skipped, not fatal
                    continue
                image.thumbnail((max_side, max_side), Image.LANCZOS)
                thumb = _thumb(image)
                if any(np.abs(thumb - t).mean() < DUPLICATE_DISTANCE for t in peers):
                    continue  # a near-duplicate of a cached photo
                if any(_correlation(thumb, t) >= HELD_OUT_CORRELATION for t in held_out):
                    continue  # looks like a photo of tokzoo's held-out real set
                peers.append(thumb)
                name = _file_name(member)
                if name in names:  # two members flattened to one name
                    name = f"{Path(name).stem}-{hashlib.sha256(member.encode()).hexdigest()[:8]}.png"
                names.add(name)
                png = io.BytesIO()
                image.save(png, format="PNG")
                write_file(cache, cache / staging / package / name, png.getvalue())
                images.append((thumb, _manifest_entry(package, name, member, image, data)))
            write_file(cache, cache / staging / package / "copyright", _copyright(deb))
            remove_inside(cache, cache / package)  # what an interrupted fetch of it left
            rename_inside(cache, cache / staging / package, cache / package)
            for thumb, entry in images:
                thumbs.append((package, thumb))
                manifest["images"].append(entry)
            manifest["packages"].append(package)
            manifest["thumbs"] = [t.astype(int).tolist() for _, t in thumbs]
            write_file(cache, cache / MANIFEST, json.dumps(manifest, indent=1).encode())
    remove_inside(cache, cache / staging)
    return cache


def _manifest_entry(package: str, name: str, member: str, image, data: bytes) -> dict:
    return {
        "file": f"{package}/{name}",
        "package": package,
        "source": member,
        "width": image.size[0],
        "height": image.size[1],
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def check_photo_sources(sources: list[dict], cache: str | Path | None = None) -> None:
    """ConfigError when a validation photo of one ``data.photos`` source is a training photo of another (two
    sources reading the same package). Compares files, not content: an image made from another lies in DERIVED."""
    held, trained = [], []
    for spec in sources:
        k, packages = spec.get("hold_out_every", 0), spec.get("packages")
        trained.append(set(photo_files(cache, hold_out_every=k, packages=packages)))
        held.append(set(photo_files(cache, every=k, packages=packages)) if k else set())
    for i, validation in enumerate(held):
        for j, training in enumerate(trained):
            shared = sorted(validation & training) if i != j else []
            if shared:
                raise ConfigError(
                    f"data.photos[{i}]: {len(shared)} of its validation photos are training photos of "
                    f"data.photos[{j}] (e.g. {shared[0].parent.name}/{shared[0].name}); give the two sources "
                    "different packages"
                )


def photo_files(
    cache: str | Path | None = None,
    every: int = 1,
    offset: int = 0,
    hold_out_every: int = 0,
    packages: tuple[str, ...] | list[str] | None = None,
) -> list[Path]:
    """The cached photo files, sorted by path; ``every``/``offset`` pick a subset (photo i is kept when
    ``i % every == offset``); ``hold_out_every`` = k > 0 leaves out every photo with ``i % k == 0`` (the
    validation photos that ``every=k, offset=0`` returns). ``packages`` names the cache folders to read; by
    default the :data:`PACKAGES` and any folder of your own (not a package of the manifest, :data:`MORE_PACKAGES`
    or :data:`PHOTO_MEMBERS`), so that fetching more changes nothing for a recipe that does not name them.
    ConfigError when those folders hold no image."""
    cache = Path(cache) if cache is not None else default_cache()
    keep = _folder_filter(cache, packages)
    files = sorted(
        p for p in cache.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and keep(p.parent.name)
    )
    if not files:
        which = f" in {', '.join(packages)}" if packages is not None else ""
        raise ConfigError(
            f"{cache}: no training photos{which}; run `tokzoo photos` (Debian's wallpaper packages; --more or "
            "--package NAME for others) or put images in <cache>/<folder>/"
        )
    return [
        path
        for index, path in enumerate(files)
        if index % every == offset and not (hold_out_every and index % hold_out_every == 0)
    ]


def load_photos(
    cache: str | Path | None = None,
    every: int = 1,
    offset: int = 0,
    hold_out_every: int = 0,
    packages: tuple[str, ...] | list[str] | None = None,
) -> list[np.ndarray]:
    """The photos :func:`photo_files` picks, as uint8 (H, W, 3) arrays."""
    return [read_photo(path) for path in photo_files(cache, every, offset, hold_out_every, packages)]


def read_photo(path: Path) -> np.ndarray:
    """One cached photo as uint8 (H, W, 3)."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two thumbnails (0 when either is flat)."""
    a, b = a - a.mean(), b - b.mean()
    scale = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / scale if scale > 0 else 0.0


def _thumb(image) -> np.ndarray:
    """16 x 16 grey thumbnail (float32, 0-255) compared by the near-duplicate test."""
    from PIL import Image

    return np.asarray(image.convert("L").resize((16, 16), Image.BILINEAR), dtype=np.float32)


def held_out_thumbnails() -> dict[str, list[list[int]]]:
    """Held-out photo name -> the thumbnails of its variants (whole, 5% and 10% centre crops, each also mirrored),
    computed from tokzoo.datasets.samples (needs the ``samples`` extra); HELD_OUT_THUMBS_FILE stores them."""
    from PIL import Image, ImageOps

    from .samples import SAMPLES, load_sample

    out = {}
    for name in sorted(SAMPLES):
        if "rgb" not in SAMPLES[name].modalities:
            continue
        image = Image.fromarray(load_sample(name)["rgb"])
        width, height = image.size
        variants = []
        for share in (0.0, 0.05, 0.1):
            dx, dy = int(width * share), int(height * share)
            crop = image.crop((dx, dy, width - dx, height - dy))
            variants += [_thumb(crop), _thumb(ImageOps.mirror(crop))]
        out[name] = [v.astype(int).ravel().tolist() for v in variants]
    return out


def _held_out_thumbs() -> list[np.ndarray]:
    """Every thumbnail of HELD_OUT_THUMBS_FILE, (16, 16) float32: a fetched image that correlates with one is
    dropped, so no package brings a verbatim or lightly cropped held-out photo into training."""
    stored = json.loads(HELD_OUT_THUMBS_FILE.read_text())
    return [np.asarray(t, dtype=np.float32).reshape(16, 16) for variants in stored.values() for t in variants]


def fetched_counts(cache: str | Path | None = None) -> dict[str, int]:
    """Fetched package -> number of its cached images, in fetch order (empty without a manifest)."""
    manifest = _read_manifest(Path(cache) if cache is not None else default_cache())
    counts = dict.fromkeys(manifest["packages"], 0)
    for image in manifest["images"]:
        counts[image["package"]] = counts.get(image["package"], 0) + 1
    return counts


def _read_manifest(cache: Path) -> dict:
    """The cache's manifest (fetched packages, their images and thumbnails); empty when none was written."""
    path = cache / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {"images": [], "packages": []}


def _folder_filter(cache: Path, packages):
    """Which cache folders :func:`load_photos` reads (see there)."""
    if packages is not None:
        return set(packages).__contains__
    others = KNOWN_PACKAGES | set(_read_manifest(cache)["packages"])
    return lambda folder: folder in PACKAGES or (folder not in others and not folder.startswith(STAGING))


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


def _image_members(deb: Path, patterns: tuple[str, ...] | None = None):
    """(path inside the package, bytes) of each wallpaper image, screenshots and oversized members skipped; with
    ``patterns``, only the members (or files of a Qt resource bundle) that one of them matches."""
    bundles = [p.split(".rcc/")[0] + ".rcc" for p in patterns or () if ".rcc/" in p]
    stream = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    try:
        with tarfile.open(fileobj=stream.stdout, mode="r|") as archive:
            for member in archive:
                name = member.name.lstrip("./")
                if not member.isfile() or member.size > MAX_SOURCE_BYTES or "/usr/share/doc/" in f"/{name}":
                    continue
                if any(fnmatch.fnmatchcase(name, bundle) for bundle in bundles):
                    yield from _bundle_members(name, archive.extractfile(member).read(), patterns)
                    continue
                if "screenshot" in name.lower() or not _is_photo(name, patterns):
                    continue
                data = archive.extractfile(member).read()
                yield name, data
    finally:
        stream.stdout.close()
        stream.wait()


def _is_photo(path: str, patterns: tuple[str, ...] | None) -> bool:
    """Whether a member path is an image that ``patterns`` (None: any image) name."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES and (
        patterns is None or any(fnmatch.fnmatchcase(path, p) for p in patterns)
    )


def _bundle_members(name: str, blob: bytes, patterns: tuple[str, ...]):
    """(``name/inner path``, bytes) of the images in the Qt resource bundle ``blob`` that ``patterns`` match; a
    bundle that cannot be read is skipped."""
    from .qt_resources import ResourceError, resource_files

    try:
        wanted = lambda inner: _is_photo(f"{name}/{inner}", patterns)  # noqa: E731 - others are never inflated
        for inner, data in resource_files(blob, wanted=wanted):
            yield f"{name}/{inner}", data
    except ResourceError as error:
        warnings.warn(f"photos: {name}: {error}; the rest of this bundle is skipped", stacklevel=2)


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
