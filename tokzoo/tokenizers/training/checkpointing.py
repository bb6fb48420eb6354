"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

``OUT/checkpoints/step-000500/`` holds ``model.safetensors``, ``ema.safetensors`` (when EMA is on),
``optimizer.safetensors`` (per-parameter state tensors, keyed ``<param index>.<name>``) and
``state.json`` (step, loss history, optimizer param groups, torch RNG states, recipe).
A checkpoint directory is written under a temporary name and renamed, so it is complete or absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from ...errors import CheckpointError
from ...io.writes import make_folder, remove_inside, rename_inside, write_file

STATE_NAME = "state.json"


def _save(tensors: dict[str, torch.Tensor], root: Path, path: Path) -> None:
    write_file(root, path, safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))


def _load(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: corrupt or missing ({error})") from None


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state dict into (tensors for safetensors, JSON-able rest)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], rest: dict) -> None:
    state: dict[int, dict] = {}
    for key, value in [*tensors.items(), *rest["scalars"].items()]:
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": rest["param_groups"]})


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
    _save(model.state_dict(), root, tmp / "model.safetensors")
    if ema is not None:
        _save(ema.tensors, root, tmp / "ema.safetensors")
    tensors, rest = optimizer_tensors(optimizer)
    _save(tensors, root, tmp / "optimizer.safetensors")
    document = {**state, "step": step, "optimizer": rest, "rng": rng_state()}
    write_file(root, tmp / STATE_NAME, json.dumps(document, indent=1))
    remove_inside(root, final)
    rename_inside(root, tmp, final)
    return final


def find_checkpoint(path: str | Path) -> Path:
    """``path`` itself when it is a checkpoint, else the latest ``step-*`` under ``path/checkpoints``."""
    path = Path(path)
    if (path / STATE_NAME).is_file():
        return path
    steps = sorted(p for p in (path / "checkpoints").glob("step-*") if (p / STATE_NAME).is_file())
    if not steps:
        raise CheckpointError(f"{path}: no training checkpoint (expected {STATE_NAME} or checkpoints/step-*/)")
    return steps[-1]


def read_state(path: Path) -> dict:
    """The ``state.json`` of checkpoint ``path``."""
    from ...errors import InputError
    from ...io.safety import MAX_JSON_BYTES, read_file

    try:
        state = json.loads(read_file(path / STATE_NAME, MAX_JSON_BYTES).decode("utf-8"))
    except InputError as error:  # a FIFO, a device, over 16 MiB
        raise CheckpointError(f"{path / STATE_NAME}: unreadable ({error.reason})") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise CheckpointError(f"{path / STATE_NAME}: unreadable, not JSON ({str(error)[:120]}); resume from an "
                              "earlier checkpoints/step-* folder, or start over") from None
    fields = {"recipe": dict, "losses": list, "usage": list, "validation": list, "rng": dict}
    wrong = [k for k, kind in fields.items() if not isinstance(state, dict) or not isinstance(state.get(k), kind)]
    if wrong:
        raise CheckpointError(f"{path / STATE_NAME}: damaged (field {wrong[0]!r} missing or of the wrong type); "
                              "resume from an earlier checkpoints/step-* folder, or start over")
    return state


def load_checkpoint(path: Path, model, optimizer, ema) -> dict:
    """Restore model, optimizer, EMA and RNG from checkpoint ``path``; returns its state.json."""
    state = read_state(path)
    try:
        model.load_state_dict(_load(path / "model.safetensors"))
        load_optimizer(optimizer, _load(path / "optimizer.safetensors"), state["optimizer"])
    except (RuntimeError, KeyError, ValueError) as error:
        raise CheckpointError(f"{path}: does not match this recipe's model ({type(error).__name__})") from None
    if ema is not None:
        if not (path / "ema.safetensors").is_file():
            raise CheckpointError(f"{path}: the recipe uses EMA but the checkpoint has no ema.safetensors")
        ema.load(_load(path / "ema.safetensors"))
    try:
        set_rng_state(state["rng"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path / STATE_NAME}: damaged ({type(error).__name__}: {str(error)[:100]}); resume from "
                              "an earlier checkpoints/step-* folder, or start over") from None
    return state
