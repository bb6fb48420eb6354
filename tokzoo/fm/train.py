"""The training loop: AdamW, warm-up + cosine, clipping, accumulation, bf16 on CUDA, DDP, exact resume.

One optimizer step consumes one *global batch* of ``train.batch_size`` samples from one dataset or a
weighted mixture (:mod:`.stream`). Each process reads only its own contiguous share of the rows and masks
each row with a generator seeded by (seed, step, row), so its rows are masked as one process would mask
them; it cuts its share into micro-batches. Loss normalisation uses the whole global batch's target counts
(all-reduced), so 1 process, N processes and any accumulation give the same gradient.
Loss = mean over the modalities with targets of (sum of that modality's token cross-entropies / its
token count). DDP averages gradients over processes, so each process scales its loss by the world size.

Run with ``torchrun --nproc_per_node N`` for DDP (gloo on CPU, nccl on CUDA).
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from tokzoo.errors import ConfigError
from tokzoo.io.writes import make_folder
from tokzoo.limits import MAX_FM_PARAMETERS, count_parameters
from tokzoo.runs.run_folder import append_log, load_optimizer, truncate_log
from tokzoo.runs.schedule import warmup_cosine
from tokzoo.tokens.spec import ModalitySpec, check_same_vocabularies, dataset_parts, specs_from_manifest

from .checkpoint import initialise_from, load_model, read_run_config, read_state, run_model_config, save_checkpoint
from .masking import MaskedBatch, Masker, flatten_batch
from .model import FourM
from .recipe import Recipe, TrainConfig
from .stream import DatasetStream, MixtureStream, mixture_specs


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine from ``lr`` to 0 at ``steps``."""
    return warmup_cosine(step, cfg.lr, cfg.warmup_steps, cfg.steps)


def make_optimizer(model: FourM, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices (linear weights, embeddings), none on vectors (norms, special tokens)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def train_step(
    model,
    optimizer,
    batch: MaskedBatch,
    cfg: TrainConfig,
    step: int,
    *,
    world: int = 1,
    device: torch.device = torch.device("cpu"),
) -> dict:
    """One optimizer step on this process's masked share of a global batch (all of it when ``world`` is 1).
    Returns ``{"loss", "losses": {modality: mean CE}, "tokens"}`` over the whole global batch, all processes."""
    names = list(batch.tokens)
    local = torch.tensor(
        [int(batch.target[m].sum()) for m in names] + [sum(int(batch.input[m].sum()) for m in names)],
        dtype=torch.int64,
        device=device,
    )
    if world > 1:
        dist.all_reduce(local)  # every process normalises by the global batch's target counts
    counts = dict(zip(names, local[:-1].tolist()))
    present = [m for m in names if counts[m]]
    share = batch.batch_size
    micro = cfg.micro_batch_size or share
    if share % micro:
        raise ConfigError(f"train: each process's {share} samples are not a multiple of micro_batch_size {micro}")
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, cfg)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    sums = torch.zeros(len(names), dtype=torch.float64, device=device)
    starts = range(0, share, micro)
    for k, start in enumerate(starts):
        part = batch.rows(start, start + micro).to(device)
        sync = k == len(starts) - 1 or not isinstance(model, DistributedDataParallel)
        with nullcontext() if sync else model.no_sync(), autocast:
            out = model(part)
            loss = sum(out[m][0] / counts[m] for m in present) * (world / max(1, len(present)))
            if not present:
                loss = sum(out[m][0] for m in names) * 0.0
        loss.backward()
        sums += torch.stack([out[m][0].detach().double() for m in names])
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if world > 1:
        dist.all_reduce(sums)
    losses = {m: float(sums[i]) / counts[m] for i, m in enumerate(names) if counts[m]}
    tokens = int(local[-1]) + sum(counts.values())
    return {
        "loss": float(np.mean(list(losses.values()))) if losses else float("nan"),
        "losses": losses,
        "tokens": tokens,
    }


@torch.no_grad()
def evaluation_losses(model: FourM, batch: MaskedBatch, micro: int, device: torch.device) -> dict:
    """Mean target cross-entropy per modality (and their mean) of a masked held-out batch, no gradients."""
    model.eval()
    names = list(batch.tokens)
    sums, counts = np.zeros(len(names)), np.zeros(len(names))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    for start in range(0, batch.batch_size, micro):
        with autocast:
            out = model(batch.rows(start, start + micro).to(device))
        sums += [float(out[m][0]) for m in names]
        counts += [int(out[m][1]) for m in names]
    model.train()
    losses = {m: sums[i] / counts[i] for i, m in enumerate(names) if counts[i]}
    return {"loss": float(np.mean(list(losses.values()))) if losses else float("nan"), "losses": losses}


def held_out_batch(root: str | Path, specs: list[ModalitySpec], masker: Masker, samples: int, seed: int) -> MaskedBatch:
    """The first ``samples`` samples of ``root`` at crop 0, masked once by a fixed seed: the same every time."""
    from tokzoo.tokens.spec import dataset_manifest

    names = [s.name for s in specs if s.name in dataset_manifest(root)["modalities"]]
    check_same_vocabularies(specs, specs_from_manifest(root, names), root)
    stream = DatasetStream(root, names, seed, shuffle=False, crop=0)
    raw = flatten_batch(stream.read(np.arange(min(samples, stream.size))), specs)
    return masker(raw, [np.random.default_rng([seed, row]) for row in range(raw.batch_size)])


def distributed_context() -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def train(
    recipe: Recipe,
    data: str | Path | list[str | Path],
    out: str | Path,
    *,
    steps: int | None = None,
    progress: bool = True,
    device: str | None = None,
    eval_data: str | Path | None = None,
) -> dict:
    """Train (or resume) ``recipe`` on the token dataset ``data`` (or a mixture: a list of datasets, weighted
    by the recipe's ``data.weights``) into the run folder ``out``.

    ``steps`` stops early after that many steps in total (the schedule still follows ``train.steps``);
    a later call resumes exactly. ``eval_data``: a held-out token dataset scored every ``train.eval_every``
    steps (per-modality loss in the log). Returns the last step's log record.
    """
    from tqdm.auto import tqdm

    out, cfg = Path(out), recipe.train
    roots = [Path(d) for d in data] if isinstance(data, (list, tuple)) else [Path(data)]
    weights = list(recipe.weights) if recipe.weights else [1.0] * len(roots)
    if len(weights) != len(roots):
        raise ConfigError(f"data.weights has {len(weights)} entries for {len(roots)} datasets (one --data each)")
    rank, world, dev = distributed_context()
    dev = torch.device(device) if device else dev
    specs = mixture_specs(roots, list(recipe.modalities), recipe.max_items)
    count_parameters(lambda: [FourM(specs, recipe.model)], f"{out}: recipe model over {roots}", MAX_FM_PARAMETERS)
    state = read_state(out)
    if state is not None:
        _check_resumable(out, recipe, specs)
    torch.manual_seed(cfg.seed)
    model = (load_model(out) if state is not None else FourM(specs, recipe.model)).to(dev)
    if state is None and cfg.init:  # a resumed run has its own weights; the run's config keeps the recipe's init
        copied, _ = initialise_from(model, load_model(cfg.init, dev))
        if not any(name != "modality_embedding" and not name.startswith("embeddings.") for name in copied):
            raise ConfigError(
                f"train.init: {cfg.init} shares no trunk weight with this recipe's model (another width, depth "
                "or head count?); use a run of the same model settings"
            )
    optimizer = make_optimizer(model, cfg)
    if state is not None:
        load_optimizer(out, model, optimizer)
    wrapped = DistributedDataParallel(model) if world > 1 else model
    masker = Masker(specs, recipe.masking)
    stream = MixtureStream(
        list(zip(roots, weights)),
        specs,
        cfg.batch_size,
        cfg.seed,
        rank=rank,
        world=world,
        consumed=state["position"]["consumed"] if state else None,
    )
    held_out = (
        held_out_batch(eval_data, specs, masker, cfg.eval_samples, cfg.seed)
        if eval_data is not None and cfg.eval_every and rank == 0
        else None
    )
    start = state["step"] if state else 0
    stop = min(cfg.steps, steps if steps is not None else cfg.steps)
    if rank == 0:
        make_folder(out)
        truncate_log(out, start)
    bar = tqdm(
        total=cfg.steps,
        initial=start,
        disable=not progress or rank != 0,
        desc=f"fm train {out.name}",
        unit="step",
        dynamic_ncols=True,
    )
    record, t0 = {}, time.perf_counter()
    plans = {}  # step -> (positions to read, global rows, samples consumed from each dataset after it)

    def plan(step: int) -> None:
        positions, rows = stream.plan(step)
        plans[step] = (positions, rows, list(stream.consumed))

    with ThreadPoolExecutor(1) as reader:  # train.num_workers > 0: read the next step's rows while this one trains
        pending = None
        for step in range(start, stop):
            if step not in plans:
                plan(step)
            positions, rows, consumed = plans.pop(step)
            raw = pending.result() if pending is not None else stream.read(positions)
            pending, data_bytes = None, stream.bytes_read  # this process's token bytes read so far
            if cfg.num_workers and step + 1 < stop:
                plan(step + 1)
                pending = reader.submit(stream.read, plans[step + 1][0])
            batch = masker(raw, [np.random.default_rng([cfg.seed, step, int(r)]) for r in rows])
            result = train_step(wrapped, optimizer, batch, cfg, step, world=world, device=dev)
            saving = bool(cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0) or step + 1 == stop
            _check_finite(out, model if saving else None, result, step, cfg)
            now = time.perf_counter()
            record = {
                "step": step + 1,
                "lr": lr_at(step, cfg),
                "loss": result["loss"],
                "losses": result["losses"],
                "tokens": result["tokens"],
                "tokens_per_s": result["tokens"] / max(now - t0, 1e-9),
                "data_bytes": data_bytes,
            }
            if held_out is not None and ((step + 1) % cfg.eval_every == 0 or step + 1 == stop):
                record["eval"] = evaluation_losses(model, held_out, cfg.micro_batch_size or cfg.batch_size, dev)
            t0 = time.perf_counter()
            if rank == 0:
                append_log(out, record)
            bar.set_postfix_str(f"loss {record['loss']:.3f}, {record['tokens_per_s']:.0f} tok/s")
            bar.update(1)
            if saving:
                _checkpoint(out, model, optimizer, recipe, step + 1, consumed, rank, world, roots)
    bar.close()
    return record


def _check_finite(out: Path, model: FourM | None, result: dict, step: int, cfg: TrainConfig) -> None:
    """ConfigError (one line) once the loss, or a weight of ``model`` (given before a checkpoint), is NaN or infinite:
    training diverged, and an all-NaN model is never saved (the run folder keeps its last finite checkpoint)."""
    losses = list(result["losses"].values())
    finite = all(math.isfinite(v) for v in losses) and (
        model is None or bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all())
    )  # one sync
    if not finite:
        raise ConfigError(
            f"{out}: training diverged at step {step + 1} (loss {result['loss']}, or a weight is NaN or "
            f"infinite) with train.lr {cfg.lr}; nothing saved from this step on: lower train.lr"
        )


def _checkpoint(out, model, optimizer, recipe, step, consumed, rank, world, roots) -> None:
    if rank == 0:
        save_checkpoint(
            out,
            model,
            recipe.raw,
            optimizer,
            {"step": step, "position": {"consumed": consumed}},
            dataset_parts(roots[0])[0],
        )  # the first (image) folder of the first dataset: `fm eval`'s prior
    if world > 1:
        dist.barrier()


def _check_resumable(out: Path, recipe: Recipe, specs: list[ModalitySpec]) -> None:
    run_model_config(out)  # sizes within the limits, before anything is compared or built
    config = read_run_config(out)
    if config.get("recipe") != recipe.raw:
        raise ConfigError(f"{out}: holds a run of another recipe; pass another --out or the recipe it was trained with")
    check_same_vocabularies([ModalitySpec.from_dict(d) for d in config["modalities"]], specs, out)
