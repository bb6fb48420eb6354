"""The training loop: AdamW, warm-up + cosine, clipping, accumulation, bf16 on CUDA, DDP, exact resume.

One optimizer step consumes one *global batch* of ``train.batch_size`` samples. Every process reads the
same global batch (in the loader's seeded order) and draws the same masks (seeded by (seed, step)), then
keeps its own contiguous share of rows and cuts it into micro-batches. Loss normalisation uses the whole
global batch's target counts, so 1 process, N processes and any accumulation give the same gradient.
Loss = mean over the modalities with targets of (sum of that modality's token cross-entropies / its
token count). DDP averages gradients over processes, so each process scales its loss by the world size.

Run with ``torchrun --nproc_per_node N`` for DDP (gloo on CPU, nccl on CUDA).
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from tokzoo.data import make_loader
from tokzoo.errors import CheckpointError, ConfigError
from tokzoo.limits import MAX_FM_PARAMETERS, count_parameters

from .checkpoint import LOG, load_model, load_optimizer, read_run_config, read_state, run_model_config, save_checkpoint
from .masking import MaskedBatch, Masker, flatten_batch
from .model import FourM
from .recipe import Recipe, TrainConfig
from .spec import ModalitySpec, check_same_vocabularies, specs_from_manifest


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine from ``lr`` to 0 at ``steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: FourM, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices (linear weights, embeddings), none on vectors (norms, special tokens)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


@dataclass
class Position:
    """Where the data stream stands: the epoch and how many of its global batches were consumed."""

    epoch: int = 0
    batch: int = 0


def global_batches(loader, position: Position) -> Iterator[dict]:
    """Endless global batches from ``position`` on (exact epochs, reshuffled each epoch); ``position`` advances."""
    while True:
        loader.dataset.set_epoch(position.epoch)
        produced = 0
        for i, batch in enumerate(loader):
            produced += 1
            if i < position.batch:
                continue
            position.batch = i + 1
            yield batch
        if not produced:
            raise ConfigError(f"{loader.dataset.root}: an epoch has fewer samples than one global batch "
                              f"({loader.dataset.batch_size}); lower train.batch_size")
        position.epoch, position.batch = position.epoch + 1, 0


def train_step(model, optimizer, batch: MaskedBatch, cfg: TrainConfig, step: int, *, rank: int = 0, world: int = 1,
               device: torch.device = torch.device("cpu")) -> dict:
    """One optimizer step on a masked global batch. Returns ``{"loss", "losses": {modality: mean CE}, "tokens"}``
    (losses over the whole global batch, all processes)."""
    names = list(batch.tokens)
    counts = {m: int(batch.target[m].sum()) for m in names}
    present = [m for m in names if counts[m]]
    size = batch.batch_size
    if size % world:
        raise ConfigError(f"train.batch_size {size} is not divisible by the {world} processes")
    share = size // world
    micro = cfg.micro_batch_size or share
    if share % micro:
        raise ConfigError(f"train: each process's {share} samples are not a multiple of micro_batch_size {micro}")
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, cfg)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    sums = torch.zeros(len(names), dtype=torch.float64, device=device)
    starts = range(rank * share, (rank + 1) * share, micro)
    for k, start in enumerate(starts):
        part = batch.rows(start, start + micro).to(device)
        sync = k == len(starts) - 1 or not isinstance(model, DistributedDataParallel)
        with (nullcontext() if sync else model.no_sync()), autocast:
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
    tokens = sum(int(batch.input[m].sum()) + counts[m] for m in names)
    return {"loss": float(np.mean(list(losses.values()))) if losses else float("nan"), "losses": losses, "tokens": tokens}


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


def train(recipe: Recipe, data: str | Path, out: str | Path, *, steps: int | None = None, progress: bool = True,
          device: str | None = None) -> dict:
    """Train (or resume) ``recipe`` on the token dataset ``data`` into the run folder ``out``.

    ``steps`` stops early after that many steps in total (the schedule still follows ``train.steps``);
    a later call resumes exactly. Returns the last step's log record.
    """
    from tqdm.auto import tqdm

    out, cfg = Path(out), recipe.train
    rank, world, dev = distributed_context()
    dev = torch.device(device) if device else dev
    specs = specs_from_manifest(data, list(recipe.modalities), recipe.max_items)
    count_parameters(lambda: [FourM(specs, recipe.model)], f"{out}: recipe model over {data}", MAX_FM_PARAMETERS)
    state = read_state(out)
    if state is not None:
        _check_resumable(out, recipe, specs)
    torch.manual_seed(cfg.seed)
    model = (load_model(out) if state is not None else FourM(specs, recipe.model)).to(dev)
    optimizer = make_optimizer(model, cfg)
    if state is not None:
        load_optimizer(out, model, optimizer)
    wrapped = DistributedDataParallel(model) if world > 1 else model
    masker = Masker(specs, recipe.masking)
    loader = make_loader(data, list(recipe.modalities), cfg.batch_size, num_workers=cfg.num_workers, shuffle=True,
                         crop="random", seed=cfg.seed, rank=0, world_size=1, drop_last=True)
    position = Position(**state["position"]) if state else Position()
    start = state["step"] if state else 0
    stop = min(cfg.steps, steps if steps is not None else cfg.steps)
    log_path = out / LOG
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        _truncate_log(log_path, start)
    stream = global_batches(loader, position)
    bar = tqdm(total=cfg.steps, initial=start, disable=not progress or rank != 0, desc=f"fm train {out.name}",
               unit="step", dynamic_ncols=True)
    record, t0 = {}, time.perf_counter()
    for step in range(start, stop):
        batch = masker(flatten_batch(next(stream), specs), np.random.default_rng([cfg.seed, step]))
        result = train_step(wrapped, optimizer, batch, cfg, step, rank=rank, world=world, device=dev)
        saving = bool(cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0) or step + 1 == stop
        _check_finite(out, model if saving else None, result, step, cfg)
        now = time.perf_counter()
        record = {"step": step + 1, "lr": lr_at(step, cfg), "loss": result["loss"], "losses": result["losses"],
                  "tokens": result["tokens"], "tokens_per_s": result["tokens"] / max(now - t0, 1e-9)}
        t0 = now
        if rank == 0:
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        bar.set_postfix_str(f"loss {record['loss']:.3f}, {record['tokens_per_s']:.0f} tok/s")
        bar.update(1)
        if saving:
            _checkpoint(out, model, optimizer, recipe, step + 1, position, rank, world, data)
    bar.close()
    return record


def _check_finite(out: Path, model: FourM | None, result: dict, step: int, cfg: TrainConfig) -> None:
    """ConfigError (one line) once the loss, or a weight of ``model`` (given before a checkpoint), is NaN or infinite:
    training diverged, and an all-NaN model is never saved (the run folder keeps its last finite checkpoint)."""
    losses = list(result["losses"].values())
    finite = all(math.isfinite(v) for v in losses) and (
        model is None or bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all()))  # one sync
    if not finite:
        raise ConfigError(f"{out}: training diverged at step {step + 1} (loss {result['loss']}, or a weight is NaN or "
                          f"infinite) with train.lr {cfg.lr}; nothing saved from this step on: lower train.lr")


def _checkpoint(out, model, optimizer, recipe, step, position, rank, world, data) -> None:
    if rank == 0:
        save_checkpoint(out, model, recipe.raw, optimizer,
                        {"step": step, "position": {"epoch": position.epoch, "batch": position.batch}}, data)
    if world > 1:
        dist.barrier()


def _check_resumable(out: Path, recipe: Recipe, specs: list[ModalitySpec]) -> None:
    run_model_config(out)  # sizes within the limits, before anything is compared or built
    config = read_run_config(out)
    if config.get("recipe") != recipe.raw:
        raise ConfigError(f"{out}: holds a run of another recipe; pass another --out or the recipe it was trained with")
    check_same_vocabularies([ModalitySpec.from_dict(d) for d in config["modalities"]], specs, out)


def _truncate_log(path: Path, step: int) -> None:
    """Keep the log lines up to ``step`` (a resumed run rewrites what followed its checkpoint)."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip() and _logged_step(path, line) <= step]
    path.write_text("".join(line + "\n" for line in lines))


def _logged_step(path: Path, line: str) -> int:
    """The step of one log line; CheckpointError (one line) for a damaged log."""
    try:
        step = json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        step = None
    if isinstance(step, bool) or not isinstance(step, int):
        raise CheckpointError(f"{path}: a line is not a log record ({line[:40]!r}); delete the log to resume")
    return step
