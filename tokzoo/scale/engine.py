"""The Ray engine as the jobs see it (:class:`tokzoo.pipeline.engine.Engine`): chosen by the caller (the CLI's
``--engine ray``) and handed to :func:`tokzoo.pipeline.tokenize` or
:func:`tokzoo.pipeline.pseudo_label.pseudo_label`."""

from __future__ import annotations

from dataclasses import dataclass

from . import require_ray
from .cluster import check_reachable
from .label import run_ray as label_on_ray
from .tokenize import run_ray as tokenize_on_ray


@dataclass
class RayEngine:
    """A Ray cluster: ``address`` (None: RAY_ADDRESS, else a Ray started here), ``gpus`` model actors with one GPU
    each, ``actors`` model actors (default: ``gpus``, else 1). Made before OUT is touched: it refuses a missing Ray
    or an address nothing answers at in one line."""

    address: str | None = None
    gpus: int = 0
    actors: int | None = None
    remote = True

    def __post_init__(self):
        check_reachable(self.address)  # ray.init retries a missing cluster for minutes
        require_ray()

    def tokenize(self, work) -> tuple[int, list[str]]:
        return tokenize_on_ray(work, self)

    def pseudo_label(self, work) -> tuple[int, list[str]]:
        return label_on_ray(work, self)
