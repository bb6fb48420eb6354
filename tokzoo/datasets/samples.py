"""Real images (and depth) that ship inside pip packages: usable offline, no download.

Install the optional extra ``tokzoo[samples]`` (scikit-image, scikit-learn, matplotlib); each
package is imported only when one of its samples is loaded.

| name | package | modalities | license / attribution |
|---|---|---|---|
| astronaut | scikit-image | rgb | NASA photo of Eileen Collins; public domain |
| coffee | scikit-image | rgb | Rachel Michetti, courtesy of Pikolo Espresso Bar; CC0 |
| chelsea | scikit-image | rgb | Stefan van der Walt; CC0 |
| rocket | scikit-image | rgb | SpaceX, DSCOVR launch on Falcon 9; public domain |
| hubble_deep_field | scikit-image | rgb | NASA / HubbleSite, Hubble eXtreme Deep Field; public domain |
| immunohistochemistry | scikit-image | rgb | Center for Microscopy And Molecular Imaging (CMMI); no known copyright restrictions |
| retina | scikit-image | rgb | Mikael Häggström, Wikimedia Commons; CC0 |
| camera | scikit-image | rgb (gray) | Lav Varshney; CC0 |
| coins | scikit-image | rgb (gray) | Greek coins from Pompeii, Brooklyn Museum; no known copyright restrictions |
| motorcycle | scikit-image | rgb, depth, camera | Middlebury 2014 stereo (Scharstein et al., GCPR 2014), left view, 4x down-sampled |
| motorcycle_right | scikit-image | rgb, camera | the same pair's right view |
| china | scikit-learn | rgb | danielbuechele on Flickr; CC BY 2.0 |
| flower | scikit-learn | rgb | vultilion on Flickr; CC BY 2.0 |
| grace_hopper | matplotlib | rgb | portrait of Grace Hopper shipped as matplotlib sample data (matplotlib license for the bundle) |
| jacksboro_fault | matplotlib | depth | digital elevation model shipped as matplotlib sample data (matplotlib license for the bundle) |
| topobathy | matplotlib | depth | topography / bathymetry grid shipped as matplotlib sample data (matplotlib license for the bundle) |

scikit-image samples that need a pooch download (brain, cells3d, eagle, lily, skin, ...) are left
out. Gray images are repeated to three channels.

**motorcycle depth** is metric, from the ground-truth disparity ``d`` with the calibration that
scikit-image documents for these down-sampled images: focal length f = 994.978 px, baseline
B = 0.193001 m, principal-point offset doffs = 31.086 px; ``depth = f * B / (d + doffs)`` metres
(about 2 to 5 m); pixels without ground truth (infinite disparity) are NaN. The camera is the
left camera at the origin (fx = fy = f, cx = 311.193, cy = 254.877); the right camera sits B to
its right (+x) with cx + doffs.

**DEM samples** are depth-*like*, not pinhole depth: ``depth = (max elevation + 100 m) - elevation``,
i.e. metres below a virtual horizontal plane 100 m above the highest point, sampled on the DEM's
geographic grid (orthographic, no camera).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from tokzoo.errors import ConfigError
from tokzoo.io import values as V

MOTORCYCLE_FOCAL_PX = 994.978
MOTORCYCLE_BASELINE_M = 0.193001
MOTORCYCLE_DOFFS_PX = 31.086
MOTORCYCLE_CX, MOTORCYCLE_CY = 311.193, 254.877
DEM_MARGIN_M = 100.0


@dataclass(frozen=True)
class SampleInfo:
    package: str  # pip package (import name in ``module``)
    module: str
    modalities: tuple[str, ...]
    load: Callable[[object], dict]


def _need(module: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"bundled samples need the package {package!r} (import {module} failed); "
            f"install tokzoo[samples] or pip install {package}"
        ) from None


def _rgb_image(name: str) -> Callable[[object], dict]:
    return lambda data: {"rgb": V.rgb(getattr(data, name)(), f"skimage.data.{name}")}


def _motorcycle_camera(right: bool) -> dict:
    shift = MOTORCYCLE_BASELINE_M if right else 0.0
    cam_to_world = [[1.0, 0.0, 0.0, shift], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    return {
        "fx": MOTORCYCLE_FOCAL_PX,
        "fy": MOTORCYCLE_FOCAL_PX,
        "cx": MOTORCYCLE_CX + (MOTORCYCLE_DOFFS_PX if right else 0.0),
        "cy": MOTORCYCLE_CY,
        "width": 741,
        "height": 500,
        "cam_to_world": cam_to_world,
    }


def _motorcycle(data) -> dict:
    left, _, disparity = data.stereo_motorcycle()
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = MOTORCYCLE_FOCAL_PX * MOTORCYCLE_BASELINE_M / (disparity.astype(np.float64) + MOTORCYCLE_DOFFS_PX)
    source = "skimage.data.stereo_motorcycle"
    return {
        "rgb": V.rgb(left, source),
        "depth": V.depth(depth, source),
        "camera": V.camera(_motorcycle_camera(False), source),
    }


def _motorcycle_right(data) -> dict:
    source = "skimage.data.stereo_motorcycle"
    return {"rgb": V.rgb(data.stereo_motorcycle()[1], source), "camera": V.camera(_motorcycle_camera(True), source)}


def _sklearn(name: str) -> Callable[[object], dict]:
    def load(datasets) -> dict:
        images = datasets.load_sample_images()
        index = [f.rsplit("/", 1)[-1] for f in images.filenames].index(f"{name}.jpg")
        return {"rgb": V.rgb(images.images[index], f"sklearn load_sample_images {name}.jpg")}

    return load


def _grace_hopper(cbook) -> dict:
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return {"rgb": V.rgb(np.asarray(Image.open(f).convert("RGB")), "matplotlib grace_hopper.jpg")}


def _dem(filename: str, field: str) -> Callable[[object], dict]:
    def load(cbook) -> dict:
        elevation = cbook.get_sample_data(filename)[field].astype(np.float64)
        depth = elevation.max() + DEM_MARGIN_M - elevation
        return {"depth": V.depth(depth, f"matplotlib {filename}")}

    return load


_SKIMAGE_RGB = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "camera",
    "coins",
)
SAMPLES: dict[str, SampleInfo] = {
    **{n: SampleInfo("scikit-image", "skimage.data", ("rgb",), _rgb_image(n)) for n in _SKIMAGE_RGB},
    "motorcycle": SampleInfo("scikit-image", "skimage.data", ("rgb", "depth", "camera"), _motorcycle),
    "motorcycle_right": SampleInfo("scikit-image", "skimage.data", ("rgb", "camera"), _motorcycle_right),
    "china": SampleInfo("scikit-learn", "sklearn.datasets", ("rgb",), _sklearn("china")),
    "flower": SampleInfo("scikit-learn", "sklearn.datasets", ("rgb",), _sklearn("flower")),
    "grace_hopper": SampleInfo("matplotlib", "matplotlib.cbook", ("rgb",), _grace_hopper),
    "jacksboro_fault": SampleInfo(
        "matplotlib", "matplotlib.cbook", ("depth",), _dem("jacksboro_fault_dem.npz", "elevation")
    ),
    "topobathy": SampleInfo("matplotlib", "matplotlib.cbook", ("depth",), _dem("topobathy.npz", "topo")),
}
"""name -> where it comes from and which modalities it has; licenses in the module docstring."""


def list_samples() -> list[str]:
    """Names of the bundled samples, sorted."""
    return sorted(SAMPLES)


def load_sample(name: str) -> dict[str, object]:
    """Modality -> contract value (docs/ARCHITECTURE.md) for one bundled sample.

    Raises ConfigError for an unknown name or when the package that ships it is not installed.
    """
    info = SAMPLES.get(name)
    if info is None:
        raise ConfigError(f"no bundled sample {name!r}; available: {', '.join(list_samples())}")
    return info.load(_need(info.module, info.package))
