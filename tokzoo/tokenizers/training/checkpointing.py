"""Training checkpoints of the tokenizer trainer, in the trainers' run-folder format (:mod:`tokzoo.runs.run_folder`).

``OUT/checkpoints/step-000500/`` holds ``model.safetensors``, ``ema.safetensors`` (when EMA is on),
``optimizer.safetensors`` (AdamW state by parameter name) and, written last, ``trainer_state.json`` (step, loss
history, codebook usage, validation losses, torch RNG states, recipe). A checkpoint folder is written under a
temporary name and renamed, so it is complete or absent; every one is kept, so a run can resume from an earlier one.
A checkpoint of an older tokzoo (``state.json``, optimizer state by parameter index) is refused in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ...errors import CheckpointError
from ...io.tensors import read_checked
from ...io.writes import make_folder, remove_inside, rename_inside
from ...runs.run_folder import OPTIMIZER, STATE, WEIGHTS, load_optimizer, optimizer_tensors, write_state, write_tensors

EMA_WEIGHTS = "ema.safetensors"
OLD_STATE = "state.json"
"""The state file of tokzoo's checkpoints before the run-folder format (refused: :func:`find_checkpoint`)."""


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def save_checkpoint(out_dir: Path, step: int, model, optimizer, ema, state: dict) -> Path:
    """Write the checkpoint of ``step`` under ``out_dir/checkpoints``; returns its directory."""
    root = Path(out_dir)
    final = root / "checkpoints" / f"step-{step:06d}"
    tmp = final.with_name(final.name + ".tmp")
    remove_inside(root, tmp)
    make_folder(root, tmp)
    write_tensors(root, tmp / WEIGHTS, model.state_dict())
    if ema is not None:
        write_tensors(root, tmp / EMA_WEIGHTS, ema.tensors)
    write_tensors(root, tmp / OPTIMIZER, optimizer_tensors(model, optimizer))
    write_state(root, tmp, {**state, "step": step, "rng": rng_state()})
    remove_inside(root, final)
    rename_inside(root, tmp, final)
    return final


def find_checkpoint(path: str | Path) -> Path:
    """``path`` itself when it is a checkpoint, else the latest ``step-*`` under ``path/checkpoints``; a checkpoint
    of an older tokzoo is refused in one line that says what to do."""
    path = Path(path)
    if (path / STATE).is_file():
        return path
    steps = sorted(p for p in (path / "checkpoints").glob("step-*") if (p / STATE).is_file())
    old = [p for p in [path, *sorted((path / "checkpoints").glob("step-*"))] if (p / OLD_STATE).is_file()]
    if old and (not steps or old[-1].name > steps[-1].name):
        raise CheckpointError(
            f"{old[-1]}: a checkpoint of an older tokzoo ({OLD_STATE}, optimizer state by index), "
            f"which this trainer cannot resume; train again without --resume (into a new --out), or "
            f"finish it with the tokzoo version that wrote it"
        )
    if not steps:
        raise CheckpointError(f"{path}: no training checkpoint (expected {STATE} or checkpoints/step-*/)")
    return steps[-1]


def read_state(path: Path) -> dict:
    """The ``trainer_state.json`` of checkpoint ``path``."""
    from ...errors import InputError
    from ...io.safety import MAX_JSON_BYTES, read_file

    try:
        state = json.loads(read_file(path / STATE, MAX_JSON_BYTES).decode("utf-8"))
    except InputError as error:  # a FIFO, a device, over 16 MiB
        raise CheckpointError(f"{path / STATE}: unreadable ({error.reason})") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise CheckpointError(
            f"{path / STATE}: unreadable, not JSON ({str(error)[:120]}); resume from an "
            "earlier checkpoints/step-* folder, or start over"
        ) from None
    fields = {"recipe": dict, "losses": list, "usage": list, "validation": list, "rng": dict}
    wrong = [k for k, kind in fields.items() if not isinstance(state, dict) or not isinstance(state.get(k), kind)]
    if wrong:
        raise CheckpointError(
            f"{path / STATE}: damaged (field {wrong[0]!r} missing or of the wrong type); "
            "resume from an earlier checkpoints/step-* folder, or start over"
        )
    return state


def load_checkpoint(path: Path, model, optimizer, ema) -> dict:
    """Restore model, optimizer, EMA and RNG from checkpoint ``path``; returns its trainer_state.json."""
    state = read_state(path)
    model.load_state_dict(read_checked(path / WEIGHTS, model.state_dict()))
    load_optimizer(path, model, optimizer, every_parameter=False)  # parameters never given a gradient have no state
    if ema is not None:
        if not (path / EMA_WEIGHTS).is_file():
            raise CheckpointError(f"{path}: the recipe uses EMA but the checkpoint has no {EMA_WEIGHTS}")
        ema.load(read_checked(path / EMA_WEIGHTS, ema.tensors))
    try:
        set_rng_state(state["rng"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"{path / STATE}: damaged ({type(error).__name__}: {str(error)[:100]}); resume from "
            "an earlier checkpoints/step-* folder, or start over"
        ) from None
    return state
