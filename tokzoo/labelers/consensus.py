"""Iterative consensus of several labelers of one modality (generator / scorer loop, after "Composing
Ensembles of Pre-trained Models via Iterative Consensus", Li et al. 2022).

Python API: :func:`depth_consensus` and :func:`normals_consensus` return a :class:`ConsensusResult`
(proposal, per-sample ``confidence`` in [0, 1], per-pixel confidence, final weights, history).
Labeler: ``create_labeler("consensus:hf_depth:A,hf_depth:B,min_confidence=0.6")`` (``tokzoo pseudo-label
--labeler depth=consensus:...``) runs the listed labelers and outputs their consensus; a sample whose
confidence is below ``min_confidence`` fails (the job lists it as failed with its confidence), which is
how the pipeline filters by confidence.

Loop, per sample (candidate k, pixel x):

1. generator: the proposal is the per-pixel weighted mean of the candidates (log depth after a per-candidate
   scale alignment, or unit normals renormalised), weights ``w_k(x)``, initially 1 where k is valid;
2. scorers: ``e_k(x)``, the candidate's disagreement with the proposal, in units of a tolerance: for depth
   ``|log(s_k d_k / p)| / depth_tol`` (scale-invariant: ``s_k`` is the median ratio to the proposal) plus,
   cross-modal, ``angle(normals(d_k), n_ref) / angle_tol`` where ``n_ref`` is the consensus of the given
   normals candidates, else the normals of the proposal itself; for normals ``angle(n_k, p) / angle_tol``;
3. weights: per labeler and region, ``w_k = 1 / (1 + G * e_k^2)`` with ``G *`` a NaN-aware Gaussian mean of
   radius ``sigma`` px (inverse-error weighting: a candidate within tolerance of the proposal around x counts
   fully, one 10 tolerances off counts 1 %);
4. repeat until the proposal moves less than ``tol`` (mean |log change| for depth, mean degrees for
   normals) or after ``iterations`` rounds.

Confidence: ``c(x) = sum_k w_k a_k / sum_k w_k`` with agreement ``a_k = exp(-e_k^2 / 2)`` of the final
round (depth: the depth term only), 0 where opposite normals cancel; the sample's confidence is its mean over
pixels where any candidate is valid. Identical
candidates give the candidate itself and confidence 1. Depth output scale: the candidates' scales are
aligned to one another, so the proposal's scale is the weight-averaged geometric mean of theirs (metric only
when the candidates are).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from tokzoo.errors import ConfigError, InvalidValueError

from .base import Labeler, create_labeler, register_labeler
from .normals_from_depth import normals_from_depth


@dataclass
class ConsensusResult:
    proposal: np.ndarray  # depth float32 (H, W) metres or normals float32 (H, W, 3); NaN where no candidate
    confidence: float  # mean of confidence_map, in [0, 1]
    confidence_map: np.ndarray  # float32 (H, W) in [0, 1]; 0 where candidates cancel, NaN where none is valid
    weights: np.ndarray  # float32 (K, H, W) final per-candidate weights
    history: list[dict] = field(default_factory=list)  # per round: change, mean weight per candidate, score


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """NaN-aware Gaussian mean over (H, W) of each leading slice; NaN where no valid value is near."""
    valid = np.isfinite(x)
    axes = (0,) * (x.ndim - 2) + (sigma, sigma)
    num = ndimage.gaussian_filter(np.where(valid, x, 0.0), axes, mode="nearest")
    den = ndimage.gaussian_filter(valid.astype(np.float64), axes, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-6, num / den, np.nan)


def _weights(err2: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """(K, H, W) squared errors in tolerance units -> inverse-error weights, 0 where a candidate is invalid."""
    local = np.nan_to_num(_smooth(err2, sigma), nan=0.0)
    return np.where(valid, 1.0 / (1.0 + local), 0.0)


def _angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Degrees between unit vectors (..., 3); NaN where either is invalid."""
    return np.degrees(np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0)))


def _unit_mean(vectors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(K, H, W, 3) and (K, H, W) -> renormalised weighted mean (H, W, 3); NaN where it is (near) zero."""
    total = (np.nan_to_num(vectors) * weights[..., None]).sum(0)
    norm = np.linalg.norm(total, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / norm
    out[norm[..., 0] <= 1e-6 * weights.sum(0)] = np.nan  # no candidate, or opposite ones cancelling
    return out


def _confidence(
    agreement: np.ndarray, weights: np.ndarray, proposal_valid: np.ndarray, valid: np.ndarray
) -> tuple[float, np.ndarray]:
    """Per-pixel weighted agreement; 0 where candidates exist but cancel out (no valid proposal), NaN where
    no candidate is valid. Returns (its mean, the map)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        cmap = (np.nan_to_num(agreement) * weights).sum(0) / weights.sum(0)
    cmap = np.where(proposal_valid, cmap, np.where(valid.any(0), 0.0, np.nan)).astype(np.float32)
    return (float(np.nanmean(cmap)) if valid.any() else 0.0), cmap


def _check(candidates, what: str, ndim: int) -> np.ndarray:
    if len(candidates) == 0:
        raise InvalidValueError("consensus", f"needs at least one {what} candidate")
    shapes = {np.shape(c) for c in candidates}
    if len(shapes) != 1 or len(next(iter(shapes))) != ndim:
        raise InvalidValueError("consensus", f"{what} candidates must share one shape, got {sorted(shapes)}")
    return np.stack([np.asarray(c, np.float64) for c in candidates])


def _quiet(fn):
    """Run ``fn`` without numpy's all-NaN-slice warnings (sky and holes are expected to be NaN)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*args, **kwargs)

    return wrapper


@_quiet
def normals_consensus(
    candidates, iterations: int = 10, tol: float = 0.05, angle_tol: float = 10.0, sigma: float = 4.0
) -> ConsensusResult:
    """Consensus of K unit-normal maps (H, W, 3) (NaN invalid); ``tol`` and ``angle_tol`` in degrees."""
    normals = _check(candidates, "normals", 3)
    valid = np.isfinite(normals).all(-1)
    weights, proposal, history = valid.astype(np.float64), None, []
    for _ in range(iterations):
        new = _unit_mean(normals, weights)
        err2 = (_angles(normals, new[None]) / angle_tol) ** 2
        weights = _weights(err2, valid, sigma)
        change = float(np.nanmean(_angles(new, proposal))) if proposal is not None else np.inf
        proposal = new
        history.append({"change_deg": change, "weights": weights.mean((1, 2)).round(4).tolist()})
        if change < tol:
            break
    confidence, cmap = _confidence(np.exp(-err2 / 2), weights, np.isfinite(proposal).all(-1), valid)
    return ConsensusResult(proposal.astype(np.float32), confidence, cmap, weights.astype(np.float32), history)


@_quiet
def depth_consensus(
    candidates,
    normals=(),
    camera: dict | None = None,
    iterations: int = 10,
    tol: float = 1e-3,
    depth_tol: float = 0.05,
    angle_tol: float = 10.0,
    sigma: float = 4.0,
) -> ConsensusResult:
    """Consensus of K depth maps (H, W) (metres or relative, NaN invalid), scored also by their normals against
    ``normals`` candidates (H, W, 3) when given (else against the proposal's own normals; ``camera`` for the
    intrinsics, else a 60 deg guess). ``depth_tol``: relative depth error counted as agreement; ``tol``: mean
    |log change| of the proposal that stops the loop."""
    depth = _check(candidates, "depth", 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        logd = np.where(depth > 0, np.log(depth), np.nan)
    valid = np.isfinite(logd)
    own_normals = np.stack([normals_from_depth(d, camera) for d in depth.astype(np.float32)])  # scale-invariant
    reference = None
    if len(normals):
        reference = normals_consensus(normals, iterations, angle_tol=angle_tol, sigma=sigma).proposal
    shift = np.nanmedian(np.nanmedian(logd, 0)[None] - logd, axis=(1, 2))  # align scales to the per-pixel median
    weights, proposal, history = valid.astype(np.float64), None, []
    for _ in range(iterations):
        shift -= (shift * weights.mean((1, 2))).sum() / weights.mean((1, 2)).sum()
        aligned = logd + shift[:, None, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            new = np.where(weights.sum(0) > 0, (np.nan_to_num(aligned) * weights).sum(0) / weights.sum(0), np.nan)
        n_ref = reference if reference is not None else normals_from_depth(np.exp(new).astype(np.float32), camera)
        depth_err2 = ((aligned - new) / depth_tol) ** 2
        weights = _weights(depth_err2, valid, sigma) * _weights(
            (_angles(own_normals, n_ref[None]) / angle_tol) ** 2, valid, sigma
        )
        shift += np.nanmedian(new[None] - aligned, axis=(1, 2))
        change = float(np.nanmean(np.abs(new - proposal))) if proposal is not None else np.inf
        proposal = new
        score = (
            float(np.nanmean(_angles(normals_from_depth(np.exp(new).astype(np.float32), camera), reference)))
            if reference is not None
            else None
        )
        history.append({"change_log": change, "weights": weights.mean((1, 2)).round(4).tolist(), "normals_deg": score})
        if change < tol:
            break
    confidence, cmap = _confidence(np.exp(-depth_err2 / 2), weights, np.isfinite(proposal), valid)
    return ConsensusResult(np.exp(proposal).astype(np.float32), confidence, cmap, weights.astype(np.float32), history)


@register_labeler
class Consensus(Labeler):
    """Runs several labelers and outputs their consensus: depth when any of them makes depth (normals-making
    ones then score the depth candidates), else normals. ``needs`` / ``optional`` are the union of theirs."""

    name = "consensus"
    modality = "depth"

    def __init__(self, labelers: list[Labeler], min_confidence: float = 0.0, iterations: int = 10, **kwargs):
        super().__init__(**kwargs)
        made = {lab.modality for lab in labelers}
        if not labelers or not made <= {"depth", "normals"}:
            raise ConfigError(f"consensus: needs depth or normals labelers, got {sorted(made) or 'none'}")
        self.labelers, self.min_confidence, self.iterations = labelers, float(min_confidence), iterations
        self.modality = "depth" if "depth" in made else "normals"
        self.needs = tuple(dict.fromkeys(m for lab in labelers for m in lab.needs))
        self.optional = tuple(
            dict.fromkeys(m for lab in labelers for m in (*lab.optional, "camera") if m not in self.needs)
        )

    @classmethod
    def from_spec(cls, where: str, device: str = "cpu", batch_size: int = 8, **kwargs):
        """``"SPEC,SPEC[,min_confidence=X][,iterations=N]"``: labeler specs as in ``create_labeler``."""
        specs = [s.strip() for s in where.split(",") if s.strip()]
        options = dict(s.split("=", 1) for s in specs if "=" in s and ":" not in s.split("=", 1)[0])
        unknown = set(options) - {"min_confidence", "iterations"}
        if unknown or not specs:
            raise ConfigError(
                f"consensus: expected consensus:SPEC,SPEC[,min_confidence=X][,iterations=N], got {where!r}"
            )
        labelers = [
            create_labeler(s, device=device, batch_size=batch_size) for s in specs if s.split("=")[0] not in options
        ]
        return cls(
            labelers,
            float(options.get("min_confidence", 0.0)),
            int(options.get("iterations", 10)),
            device=device,
            batch_size=batch_size,
            **kwargs,
        )

    def _label(self, chunk):
        outputs = [
            (
                lab.modality,
                lab.label(
                    {
                        m: v
                        for m, v in chunk.items()
                        if m in (*lab.needs, *lab.optional) and (m in lab.needs or any(x is not None for x in v))
                    }
                ),
            )
            for lab in self.labelers
        ]
        cameras = chunk.get("camera", [None] * len(outputs[0][1]))
        out = []
        for i, camera in enumerate(cameras):
            depths = [values[i] for m, values in outputs if m == "depth"]
            normals = [values[i] for m, values in outputs if m == "normals"]
            result = (
                depth_consensus(depths, normals, camera, self.iterations)
                if self.modality == "depth"
                else normals_consensus(normals, self.iterations)
            )
            if result.confidence < self.min_confidence:
                raise InvalidValueError(
                    self.name, f"confidence {result.confidence:.3f} < min_confidence {self.min_confidence}"
                )
            out.append(result.proposal)
        return out

    def describe(self) -> str:
        return f"{super().describe()} [{', '.join(lab.name for lab in self.labelers)}]"
