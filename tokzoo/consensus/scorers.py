"""Scorers of a proposed depth map, each with its own expertise, scoring per token region.

A proposal's depth (H, W) is cut into the target's token grid (gh, gw): region (i, j) is the pixel block
under token (i, j). Each scorer returns an error per region, float64 (gh, gw), lower = better, NaN where it
has no opinion (no pixels it can judge there):

- ``normals``: mean angle (degrees) between the normals implied by the proposed depth (finite differences,
  a pinhole camera of ``hfov_degrees``) and the normals the fm predicts from rgb;
- ``planarity``: where the fm's rgb -> semseg says floor, the relative distance of the proposal's 3-D points
  to one floor plane fitted to all its floor points (trimmed refit); where it says wall, the relative distance
  to a plane fitted to the region's wall points. Needs no normals, only the layout's classes;
- ``depth_net``: mean |log d - log d_net| against a small depth network trained on another scene stream;
  several networks are several scorers, ``depth_net`` and ``depth_net.<label>`` (e.g. ``depth_net.coarse``),
  each with its own network and weight.

:class:`Evidence` holds what the scorers compare against, per scene, computed once before any proposal.
Errors of different scorers have different units; :func:`ensemble_errors` puts them on one scale (each
divided by its median over the candidates' regions of that scene) and takes their weighted mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tokzoo.errors import ConfigError
from tokzoo.labelers.normals_from_depth import intrinsics, normals_from_depth, unproject

SCORERS = ("normals", "planarity", "depth_net")
"""Scorer kinds. A scorer's name is its kind, or ``depth_net.<label>`` for another depth network."""
FLOOR, WALL = 0, 1  # ids in tokzoo.datasets.SCENE_CLASSES


@dataclass
class Evidence:
    """Per-scene references, each (N, H, W[, 3]) or None when that scorer is not used."""

    normals: np.ndarray | None = None  # float32 unit normals from the fm (rgb -> normals), NaN invalid
    semseg: np.ndarray | None = None  # uint8 class ids from the fm (rgb -> semseg)
    depth_nets: dict[str, np.ndarray] = field(default_factory=dict)  # scorer name -> float32 metres, each network's

    def scene(self, i: int) -> "Evidence":
        pick = lambda a: None if a is None else a[i]  # noqa: E731
        return Evidence(pick(self.normals), pick(self.semseg), {k: v[i] for k, v in self.depth_nets.items()})


def scorer_kind(name: str) -> str:
    """``depth_net.coarse`` -> ``depth_net``; a kind names itself."""
    return name.split(".", 1)[0]


def region_means(values: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """NaN-aware block means: (H, W) -> (gh, gw); NaN where a block has no finite value."""
    h, w = values.shape
    gh, gw = grid
    if h % gh or w % gw:
        raise ConfigError(f"a {h}x{w} map does not split into the {gh}x{gw} token grid's regions")
    blocks = values.reshape(gh, h // gh, gw, w // gw).astype(np.float64)
    finite = np.isfinite(blocks)
    count = finite.sum((1, 3))
    total = np.where(finite, blocks, 0.0).sum((1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def normals_errors(depth: np.ndarray, evidence: Evidence, grid, hfov_degrees: float) -> np.ndarray:
    implied = normals_from_depth(depth, None, hfov_degrees)
    cos = np.clip((implied * evidence.normals).sum(-1), -1.0, 1.0)  # NaN where either is invalid
    return region_means(np.degrees(np.arccos(cos)), grid)


def _plane(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares plane of (n, 3) points: unit normal and offset (n . p = offset)."""
    centre = points.mean(0)
    normal = np.linalg.svd(points - centre, full_matrices=False)[2][-1]
    return normal, float(normal @ centre)


def _block_plane_residuals(points: np.ndarray, mask: np.ndarray, grid) -> np.ndarray:
    """Per pixel, |distance| / depth to the least-squares plane of the masked points of its block (H, W); NaN
    outside the mask and in blocks with fewer than 6 masked points. All blocks at once (batched 3 x 3 eigh)."""
    h, w = mask.shape
    gh, gw = grid
    bh, bw = h // gh, w // gw
    blocks = lambda a: a.reshape(gh, bh, gw, bw, *a.shape[2:]).swapaxes(1, 2).reshape(gh * gw, bh * bw, *a.shape[2:])  # noqa: E731
    p, m = blocks(np.where(mask[..., None], points, 0.0)), blocks(mask).astype(np.float64)
    count = m.sum(1)
    centre = p.sum(1) / np.maximum(count, 1)[:, None]
    centred = (p - centre[:, None]) * m[..., None]
    normal = np.linalg.eigh(np.einsum("kni,knj->kij", centred, centred))[1][:, :, 0]  # smallest eigenvalue's vector
    with np.errstate(invalid="ignore", divide="ignore"):
        distance = np.abs(np.einsum("kni,ki->kn", p - centre[:, None], normal)) / p[..., 2]
    distance[(m == 0) | (count[:, None] < 6)] = np.nan
    return distance.reshape(gh, gw, bh, bw).swapaxes(1, 2).reshape(h, w)


def planarity_errors(depth: np.ndarray, evidence: Evidence, grid, hfov_degrees: float) -> np.ndarray:
    h, w = depth.shape
    points = unproject(depth, *intrinsics(h, w, None, hfov_degrees)).astype(np.float64)
    finite = np.isfinite(depth) & (depth > 0)
    residual = np.full((h, w), np.nan)
    floor = finite & (evidence.semseg == FLOOR)
    if floor.sum() >= 12:
        p = points[floor]
        normal, offset = _plane(p)
        distance = np.abs(p @ normal - offset)
        inliers = distance <= np.quantile(distance, 0.8)  # one trimmed refit: occluders mislabelled as floor
        if inliers.sum() >= 3:
            normal, offset = _plane(p[inliers])
        residual[floor] = np.abs(p @ normal - offset) / p[:, 2]
    wall = finite & (evidence.semseg == WALL)
    residual = np.where(wall, _block_plane_residuals(points, wall, grid), residual)
    return region_means(residual, grid)


def depth_net_errors(depth: np.ndarray, reference: np.ndarray, grid) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.abs(np.log(np.where(depth > 0, depth, np.nan)) - np.log(reference))
    return region_means(gap, grid)


_SHAPE_ERRORS = {"normals": normals_errors, "planarity": planarity_errors}


def region_errors(depth: np.ndarray, evidence: Evidence, scorers, grid, hfov_degrees: float = 60.0) -> np.ndarray:
    """(S, gh, gw) errors of one proposal (H, W) under each scorer name in ``scorers`` (one scene's evidence)."""
    return np.stack(
        [
            depth_net_errors(depth, evidence.depth_nets[name], grid)
            if scorer_kind(name) == "depth_net"
            else _SHAPE_ERRORS[name](depth, evidence, grid, hfov_degrees)
            for name in scorers
        ]
    )


def ensemble_errors(errors: np.ndarray, weights) -> np.ndarray:
    """Candidates' region errors of one scene (C, S, gh, gw) -> one weighted error per region (C, gh, gw).

    Each scorer's errors are divided by their median over all candidates and regions of the scene (1 = a
    typical region for that scorer), then averaged with ``weights`` (S,) over the scorers with an opinion;
    a region no scorer judges gets 1.
    """
    weights = np.asarray(weights, np.float64)
    flat = errors.transpose(1, 0, 2, 3).reshape(errors.shape[1], -1)
    scale = np.array([np.median(f[np.isfinite(f)]) if np.isfinite(f).any() else 1.0 for f in flat])
    scale = np.where(scale > 0, scale, 1.0)
    normalised = errors / scale[None, :, None, None]
    have = np.isfinite(normalised)
    w = np.where(have, weights[None, :, None, None], 0.0)
    total = w.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (np.where(have, normalised, 0.0) * w).sum(1) / total, 1.0)
