"""The training loop: AdamW with warmup + cosine, optional EMA and gradient clipping, bf16 autocast on CUDA,
codebook usage tracking, checkpoints and exact resume, ``OUT/log.jsonl`` (one line per ``log_every`` steps: loss,
lr, codebook usage and perplexity), and a ``save_pretrained`` directory at the end.

On CPU a run is a pure function of the recipe: weights start from ``torch.manual_seed(seed)``, batches
from ``(seed, step)`` (training/data.py), and checkpoints carry the RNG state for VQ restarts.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ...errors import CheckpointError, ConfigError
from ...io.writes import make_folder
from ...runs.run_folder import append_log, truncate_log
from ...runs.schedule import warmup_cosine
from .checkpointing import find_checkpoint, load_checkpoint, read_state, save_checkpoint
from .codebook import CodebookUsage
from .data import TrainingData
from .ema import EMA
from .recipe import build_tokenizer

# Recipe fields a resumed run may change; anything else must match the checkpoint's recipe.
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "log_every")
# Config fields an ``init`` tokenizer must share with the recipe's (the input size may differ).
INIT_MUST_MATCH = ("modality", "model", "latent_dim", "quantizer")


@dataclass
class TrainResult:
    tokenizer: object
    directory: Path
    losses: list = field(default_factory=list)
    validation_loss: float | None = None
    codebook: dict = field(default_factory=dict)


def learning_rate(recipe: dict, step: int) -> float:
    """Linear warmup over ``warmup_steps``, then cosine decay to ``min_lr_ratio * lr`` at ``steps``."""
    schedule = recipe["schedule"]
    return warmup_cosine(
        step, recipe["optimizer"]["lr"], schedule["warmup_steps"], recipe["steps"], schedule["min_lr_ratio"]
    )


def _loss(tokenizer, batch: torch.Tensor, device: torch.device):
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        reconstruction, indices, quantizer_losses = tokenizer(batch)
    loss = tokenizer.codec.loss(reconstruction.float(), batch)
    for value in quantizer_losses.values():
        loss = loss + value.float()
    return loss, indices


@torch.no_grad()
def validation_loss(tokenizer, data: TrainingData, device: torch.device) -> float | None:
    """Mean loss over the validation split in eval mode (None without one)."""
    was_training = tokenizer.training
    tokenizer.eval()
    losses = [(float(_loss(tokenizer, batch.to(device), device)[0]), len(batch)) for batch in data.validation_batches()]
    tokenizer.train(was_training)
    return sum(loss * n for loss, n in losses) / sum(n for _, n in losses) if losses else None


def initial_weights(tokenizer, where: str) -> str:
    """Copy the weights of the tokenizer ``where`` (a zoo name or folder) into ``tokenizer`` and return their
    content hash; ConfigError naming the first config field that differs (INIT_MUST_MATCH). A recipe whose conv
    model differs only by its ``decoder_blocks_per_level`` grows the source's decoder (models.conv.grown_state_dict):
    it starts out computing what the source computes."""
    from ..models.conv import grown_state_dict
    from ..zoo import load_tokenizer

    source = load_tokenizer(where)
    grows = _grows_decoder(source.config["model"], tokenizer.config["model"])
    for key in INIT_MUST_MATCH:
        if source.config.get(key) != tokenizer.config.get(key) and not (key == "model" and grows):
            raise ConfigError(
                f"init: {where}: its {key} {source.config.get(key)!r} differs from the recipe's "
                f"{tokenizer.config.get(key)!r}"
            )
    state = source.state_dict()
    if grows:
        decoder = grown_state_dict(tokenizer.decoder, source.decoder)
        state = {k: v for k, v in state.items() if not k.startswith("decoder.")}
        state |= {f"decoder.{k}": v for k, v in decoder.items()}
    tokenizer.load_state_dict(state)
    return source.content_hash()


def _grows_decoder(source_model: dict, recipe_model: dict) -> bool:
    """Whether two conv model configs differ only by ``decoder_blocks_per_level``."""
    key = "decoder_blocks_per_level"
    strip = lambda model: {k: v for k, v in model.items() if k != key}  # noqa: E731
    return (
        recipe_model.get("family") == "conv"
        and source_model.get(key) != recipe_model.get(key)
        and strip(source_model) == strip(recipe_model)
    )


def _check_resume(recipe: dict, saved: dict, path: Path) -> None:
    differing = sorted(
        k for k in set(recipe) | set(saved) if k not in RESUMABLE_CHANGES and recipe.get(k) != saved.get(k)
    )
    if differing:
        raise CheckpointError(f"{path}: written by a different recipe (fields {differing} differ)")


def train(
    recipe: dict, out_dir: str | Path, device: str = "cpu", resume: str | Path | None = None, progress: bool = True
) -> TrainResult:
    """Train the recipe's tokenizer into ``out_dir`` (checkpoints/ and tokenizer/); see the module docstring."""
    out_dir, device = Path(out_dir), torch.device(device)
    torch.manual_seed(recipe["seed"])
    tokenizer = build_tokenizer(recipe, recipe["name"]).to(device).train()
    init = None
    if recipe["init"] is not None:
        init = {"from": recipe["init"], "content_hash": initial_weights(tokenizer, recipe["init"])}
    data = TrainingData(recipe, tokenizer.codec)
    optimizer = torch.optim.AdamW(
        tokenizer.parameters(),
        lr=recipe["optimizer"]["lr"],
        betas=tuple(recipe["optimizer"]["betas"]),
        weight_decay=recipe["optimizer"]["weight_decay"],
    )
    ema = EMA(tokenizer, recipe["ema"]["decay"]) if recipe["ema"] else None
    state = {"recipe": recipe, "losses": [], "usage": [], "validation": []}
    if resume is not None:
        path = find_checkpoint(resume)
        _check_resume(recipe, read_state(path)["recipe"], path)
        saved = load_checkpoint(path, tokenizer, optimizer, ema)
        state.update(losses=saved["losses"], usage=saved["usage"], validation=saved["validation"])
    start, steps = len(state["losses"]), recipe["steps"]
    usage = CodebookUsage(tokenizer.vocab_size)
    make_folder(out_dir)
    truncate_log(out_dir, start)
    bar = tqdm(total=steps, initial=start, disable=not progress, desc=recipe["name"], dynamic_ncols=True)
    for step in range(start, steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(recipe, step)
        loss, indices = _loss(tokenizer, data.batch(step).to(device), device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if recipe["grad_clip"] is not None:
            torch.nn.utils.clip_grad_norm_(tokenizer.parameters(), recipe["grad_clip"])
        optimizer.step()
        if ema is not None:
            ema.update(tokenizer)
        usage.update(indices)
        state["losses"].append(float(loss.detach()))
        done = step + 1
        if done % recipe["log_every"] == 0 or done == steps:
            state["usage"].append([done, usage.usage, usage.perplexity])
            window = state["losses"][-recipe["log_every"] :]
            append_log(
                out_dir,
                {
                    "step": done,
                    "loss": sum(window) / len(window),
                    "lr": learning_rate(recipe, step),
                    "codebook_usage": usage.usage,
                    "perplexity": usage.perplexity,
                },
            )
            bar.set_postfix(loss=f"{state['losses'][-1]:.4f}", usage=f"{usage.usage:.0%}", refresh=False)
            usage.reset()
        bar.update(1)
        if recipe["checkpoint_every"] and done % recipe["checkpoint_every"] == 0:
            state["validation"].append([done, validation_loss(tokenizer, data, device)])
            save_checkpoint(out_dir, done, tokenizer, optimizer, ema, state)
    bar.close()
    if ema is not None:
        ema.copy_to(tokenizer)
    tokenizer.eval()
    result = TrainResult(tokenizer, out_dir / "tokenizer", state["losses"], validation_loss(tokenizer, data, device))
    result.codebook = _validation_codebook(tokenizer, data, device)
    tail = state["losses"][-recipe["log_every"] :]
    tokenizer.config.update(
        untrained=False,
        provenance={
            "recipe": recipe,
            "seed": recipe["seed"],
            "steps": len(state["losses"]),
            "init": init,
            "final_loss": sum(tail) / len(tail) if tail else None,
            "validation_loss": result.validation_loss,
            "validation_codebook": result.codebook,
            "device": device.type,
            "torch_version": torch.__version__,
            "cpu_threads": torch.get_num_threads(),
            "machine": platform.machine(),
        },
    )
    tokenizer.save_pretrained(result.directory)
    return result


@torch.no_grad()
def _validation_codebook(tokenizer, data: TrainingData, device: torch.device) -> dict:
    usage = CodebookUsage(tokenizer.vocab_size)
    for batch in data.validation_batches():
        usage.update(tokenizer(batch.to(device))[1])
    return usage.summary()
