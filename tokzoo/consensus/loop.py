"""The closed consensus loop and the open-loop baselines it is compared with, at equal generator calls.

Closed loop (:func:`consensus_loop`), per scene, ``rounds`` x ``proposals`` generator calls:

1. the generator proposes ``proposals`` target maps given the sources and the tokens kept so far (one
   forward pass, independent draws for every unkept token);
2. every proposal is decoded and scored per token region by each scorer; the candidates are the new
   proposals plus the current map (from round 2 on, no extra call);
3. each unkept region takes the token of the candidate the weighted ensemble judges best there (kept
   regions are the same in every candidate), giving the current map, which is decoded and scored again;
4. of the unkept regions, those the ensemble agrees on most (lowest ensemble error) are kept, so that
   ``floor(L cos(pi/2 r/R))`` regions stay unkept after round r of R (MaskGIT's cosine schedule); kept
   tokens are conditioning for every later proposal. After the last round every region is kept.

The scorers' feedback thus changes what the generator proposes next (step 4 -> step 1). Baselines with the
same generator and scorers: :func:`greedy` (the argmax in one step: 1 call), :func:`best_of_n` (n calls in one
pass, the whole map ranked by one scorer or the ensemble, nothing fed back). ``consensus_loop`` with one
round of n proposals is region-wise reranking without feedback (an ablation between the two).

Depth maps are float32 (B, H, W) metres; tokens int64 (B, L) over the target's token grid.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from tokzoo.errors import ConfigError
from tokzoo.fm.generate import DecodeSettings, decode_tokens, generate
from tokzoo.fm.masking import MaskedBatch
from tokzoo.fm.model import FourM

from .generator import CallCount, row_generators, sample_proposals, target_distribution
from .recipe import ConsensusRecipe
from .scorers import Evidence, ensemble_errors, region_errors, scorer_kind

Decoder = Callable[[torch.Tensor], np.ndarray]
"""Target tokens int64 (N, L) -> decoded depth float32 (N, H, W)."""


@dataclass
class LoopResult:
    tokens: torch.Tensor  # int64 (B, L)
    depth: np.ndarray  # float32 (B, H, W) the decoded final map
    calls: CallCount  # generator calls (proposals) and forward passes per scene
    seconds: float = 0.0  # wall time of the whole call
    history: list[dict] = field(default_factory=list)  # per round: kept regions, mean ensemble error of the map


def _spec(model: FourM, target: str):
    spec = next((s for s in model.specs if s.name == target), None)
    if spec is None or spec.kind != "image":
        raise ConfigError(f"modality {target!r} is not an image-like modality of this model")
    return spec


def check_model(model: FourM, recipe: ConsensusRecipe) -> None:
    """One-line ConfigError when the model lacks what the recipe needs (target, sources, fm scorers' modalities)."""
    names = [s.name for s in model.specs]
    needs = [recipe.target, *recipe.sources]
    needs += ["normals"] if "normals" in recipe.names else []
    needs += ["semseg"] if "planarity" in recipe.names else []
    for name in needs:
        if name not in names:
            raise ConfigError(f"{recipe.where}: the model has no {name!r} modality ({', '.join(names)})")
    _spec(model, recipe.target)


def decode_depth(model: FourM, tokens: torch.Tensor, target: str = "depth") -> np.ndarray:
    """Target tokens (N, L) -> decoded maps float32 (N, H, W)."""
    return np.stack(decode_tokens(_spec(model, target), tokens)).astype(np.float32)


def gather_evidence(
    model: FourM,
    batch: MaskedBatch,
    recipe: ConsensusRecipe,
    rgb: np.ndarray | None = None,
    depth_nets: dict | None = None,
) -> Evidence:
    """The scorers' references for the batch: the fm's greedy rgb -> normals / semseg (one parallel step) for the
    scorers that use them, each depth-network scorer's prediction from ``rgb`` uint8 (B, H, W, 3); ``depth_nets``
    maps those scorers' names to their networks (DepthNet)."""
    wanted = [m for scorer, m in (("normals", "normals"), ("planarity", "semseg")) if scorer in recipe.names]
    evidence = Evidence()
    if wanted:
        made = generate(model, batch, list(recipe.sources), wanted, DecodeSettings(steps=1, temperature=0.0))
        by_name = {s.name: s for s in model.specs}
        for m in wanted:
            setattr(evidence, m, np.stack(decode_tokens(by_name[m], made[m])))
    for name in recipe.names:
        if scorer_kind(name) == "depth_net":
            if name not in (depth_nets or {}) or rgb is None:
                raise ConfigError(f"{recipe.where}: the {name} scorer needs its network and the scenes' rgb")
            evidence.depth_nets[name] = depth_nets[name].predict(rgb)
    return evidence


def _decoder(model: FourM, recipe: ConsensusRecipe, decode: Decoder | None) -> Decoder:
    return decode if decode is not None else (lambda tokens: decode_depth(model, tokens, recipe.target))


def _scores(
    decode: Decoder, recipe, candidates: torch.Tensor, evidence: Evidence, grid
) -> tuple[np.ndarray, np.ndarray]:
    """Candidates (B, C, L) -> decoded depth (B, C, H, W) and region errors (B, C, S, gh, gw)."""
    b, c, length = candidates.shape
    depth = decode(candidates.reshape(b * c, length))
    depth = depth.reshape(b, c, *depth.shape[1:])
    errors = np.stack(
        [
            np.stack(
                [
                    region_errors(depth[i, j], evidence.scene(i), recipe.names, grid, recipe.hfov_degrees)
                    for j in range(c)
                ]
            )
            for i in range(b)
        ]
    )
    return depth, errors


def consensus_loop(
    model: FourM,
    batch: MaskedBatch,
    evidence: Evidence,
    recipe: ConsensusRecipe,
    row_seeds=None,
    decode: Decoder | None = None,
) -> LoopResult:
    """The closed loop of the module docstring over a batch (tokens / valid from ``flatten_batch``).
    ``row_seeds``: one integer per scene (default its row), so a scene's draws do not depend on its batch;
    ``decode``: target tokens (N, L) -> depth (N, H, W) (default: the target's tokenizer)."""
    start = time.perf_counter()
    check_model(model, recipe)
    decode = _decoder(model, recipe, decode)
    spec = _spec(model, recipe.target)
    grid, length = tuple(spec.grid), spec.length
    b = batch.batch_size
    generators = row_generators(recipe.seed, range(b) if row_seeds is None else row_seeds)
    kept = torch.zeros(b, length, dtype=torch.bool)
    current = torch.zeros(b, length, dtype=torch.long)
    current_errors = None  # (B, S, gh, gw) of the current map
    calls, history = CallCount.zeros(b), []
    weights = recipe.weights
    for r in range(recipe.rounds):
        logits, rows, positions = target_distribution(model, batch, list(recipe.sources), recipe.target, current, kept)
        proposals = sample_proposals(
            logits, rows, positions, current, recipe.proposals, generators, recipe.temperature, recipe.top_p
        )
        calls.proposals += recipe.proposals
        calls.forwards += 1
        _, errors = _scores(decode, recipe, proposals, evidence, grid)
        candidates = proposals
        if current_errors is not None:  # the current map competes too
            candidates = torch.cat([current[:, None], proposals], 1)
            errors = np.concatenate([current_errors[:, None], errors], 1)
        ensemble = np.stack([ensemble_errors(errors[i], weights) for i in range(b)]).reshape(b, errors.shape[1], length)
        best = torch.from_numpy(ensemble.argmin(1))  # (B, L) candidate per region
        current = torch.gather(candidates, 1, best[:, None]).squeeze(1)
        _, current_errors = _scores(decode, recipe, current[:, None], evidence, grid)
        current_errors = current_errors[:, 0]
        # the current map's regions on the scale of this round's candidates
        region = np.stack(
            [ensemble_errors(np.concatenate([current_errors[i][None], errors[i]]), weights)[0] for i in range(b)]
        ).reshape(b, length)
        still = math.floor(length * math.cos(math.pi / 2 * (r + 1) / recipe.rounds)) if r < recipe.rounds - 1 else 0
        for i in range(b):
            open_slots = torch.nonzero(~kept[i]).flatten()
            take = len(open_slots) - still
            if take > 0:
                order = np.argsort(region[i][open_slots.numpy()], kind="stable")[:take]
                kept[i, open_slots[torch.from_numpy(order)]] = True
        history.append({"round": r + 1, "kept": int(kept.sum()) // b, "ensemble": float(np.nanmean(region))})
    return LoopResult(current, decode(current), calls, time.perf_counter() - start, history)


def greedy(model: FourM, batch: MaskedBatch, recipe: ConsensusRecipe, decode: Decoder | None = None) -> LoopResult:
    """The argmax of every target token in one parallel step: 1 generator call."""
    start = time.perf_counter()
    check_model(model, recipe)
    decode = _decoder(model, recipe, decode)
    b, length = batch.batch_size, _spec(model, recipe.target).length
    nothing = torch.zeros(b, length, dtype=torch.long)
    logits, rows, positions = target_distribution(
        model, batch, list(recipe.sources), recipe.target, nothing, torch.zeros(b, length, dtype=torch.bool)
    )
    tokens = sample_proposals(logits, rows, positions, nothing, 1, [None] * b, temperature=0.0)[:, 0]
    calls = CallCount(np.ones(b, np.int64), np.ones(b, np.int64))
    return LoopResult(tokens, decode(tokens), calls, time.perf_counter() - start)


def open_loop_proposals(
    model: FourM, batch: MaskedBatch, recipe: ConsensusRecipe, n: int, row_seeds=None, decode: Decoder | None = None
) -> tuple[torch.Tensor, np.ndarray]:
    """``n`` proposals per scene from one pass (n generator calls): tokens (B, n, L) and decoded depth (B, n, H, W)."""
    check_model(model, recipe)
    decode = _decoder(model, recipe, decode)
    spec = _spec(model, recipe.target)
    b = batch.batch_size
    generators = row_generators(recipe.seed, range(b) if row_seeds is None else row_seeds)
    nothing = torch.zeros(b, spec.length, dtype=torch.long)
    logits, rows, positions = target_distribution(
        model, batch, list(recipe.sources), recipe.target, nothing, torch.zeros(b, spec.length, dtype=torch.bool)
    )
    proposals = sample_proposals(logits, rows, positions, nothing, n, generators, recipe.temperature, recipe.top_p)
    depth = decode(proposals.reshape(b * n, spec.length))
    return proposals, depth.reshape(b, n, *depth.shape[1:])


def rerank(errors: np.ndarray, weights) -> int:
    """One scene's proposals' region errors (n, S, gh, gw) -> the index of the lowest mean ensemble error."""
    return int(ensemble_errors(errors, weights).reshape(len(errors), -1).mean(1).argmin())


def best_of_n(
    model: FourM,
    batch: MaskedBatch,
    evidence: Evidence,
    recipe: ConsensusRecipe,
    n: int,
    row_seeds=None,
    decode: Decoder | None = None,
) -> LoopResult:
    """``n`` proposals from one pass (n generator calls); each scene keeps the one whose mean ensemble error
    over regions (``recipe``'s scorers and weights) is lowest. Nothing is fed back to the generator."""
    start = time.perf_counter()
    proposals, depth = open_loop_proposals(model, batch, recipe, n, row_seeds, decode)
    grid = tuple(_spec(model, recipe.target).grid)
    choice = [
        rerank(
            np.stack([region_errors(d, evidence.scene(i), recipe.names, grid, recipe.hfov_degrees) for d in depth[i]]),
            recipe.weights,
        )
        for i in range(len(depth))
    ]
    b = len(choice)
    tokens = proposals[torch.arange(b), torch.tensor(choice)]
    calls = CallCount(np.full(b, n, np.int64), np.ones(b, np.int64))
    return LoopResult(tokens, depth[np.arange(b), choice], calls, time.perf_counter() - start)
