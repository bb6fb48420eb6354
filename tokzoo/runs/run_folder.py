"""The checkpoint format of tokzoo's trainers: a folder of safetensors + JSON, nothing pickled.

```
FOLDER/model.safetensors      model weights
FOLDER/optimizer.safetensors  AdamW state by parameter name: "<param>.exp_avg", "<param>.exp_avg_sq", "<param>.step"
                              (step a float64 scalar)
FOLDER/trainer_state.json     step and whatever else the trainer needs to resume; written last, so a folder
                              without it holds no complete checkpoint
RUN/log.jsonl                 one JSON line per logged step ({"step": N, ...}); a resumed run drops the lines
                              after its checkpoint
```
Each trainer adds its own files (fm: ``config.json``; the tokenizer trainer: ``ema.safetensors``). Files are
written to temporary names and renamed (:func:`tokzoo.io.writes.write_file`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from tokzoo.errors import CheckpointError
from tokzoo.io.safety import read_file, read_json_file
from tokzoo.io.tensors import read_checked
from tokzoo.io.writes import append_file, check_own_file, write_file

WEIGHTS, OPTIMIZER, STATE, LOG = "model.safetensors", "optimizer.safetensors", "trainer_state.json", "log.jsonl"
ADAMW_STATE = ("exp_avg", "exp_avg_sq", "step")


def write_tensors(root: str | Path, path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    """``tensors`` (moved to the CPU, made contiguous) as the safetensors file ``path`` inside ``root``."""
    write_file(root, path, safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))


def write_state(root: str | Path, folder: str | Path, state: dict) -> None:
    """``FOLDER/trainer_state.json``: call it after every other file of the checkpoint."""
    write_file(root, Path(folder) / STATE, json.dumps(state, indent=2, sort_keys=True) + "\n")


def read_state_file(folder: str | Path) -> object | None:
    """The JSON of ``FOLDER/trainer_state.json`` (None when absent), for the trainer to check; CheckpointError
    (one line) when it is not JSON."""
    path = Path(folder) / STATE
    return read_json_file(path, CheckpointError) if path.is_file() else None


def optimizer_tensors(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """AdamW state of ``model``'s parameters as named tensors (``step`` as a float64 scalar tensor); parameters
    without state (no gradient yet) have none."""
    tensors = {}
    for name, p in model.named_parameters():
        for key, value in optimizer.state.get(p, {}).items():
            value = torch.as_tensor(value, dtype=torch.float64 if key == "step" else None)
            tensors[f"{name}.{key}"] = value.detach().cpu().contiguous()
    return tensors


def load_optimizer(
    folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, every_parameter: bool = True
) -> None:
    """Restore ``FOLDER/optimizer.safetensors`` (:func:`optimizer_tensors`) into ``optimizer`` (built over ``model``).
    ``every_parameter``: each parameter must have its state; else the parameters the file names must be whole.
    Tensors are checked by name, shape, dtype kind, finiteness and range before any is used."""
    path = Path(folder) / OPTIMIZER
    named = dict(model.named_parameters())
    present = set() if every_parameter else _names(path)
    owners = list(named) if every_parameter else [n for n in named if f"{n}.step" in present]
    expected = {f"{n}.{k}": (named[n] if k != "step" else torch.zeros(())) for n in owners for k in ADAMW_STATE}
    tensors = read_checked(path, expected)
    for name in expected:
        if (name.endswith(".exp_avg_sq") and bool((tensors[name] < 0).any())) or (
            name.endswith(".step") and not 0 <= float(tensors[name]) <= 1e7
        ):
            raise CheckpointError(f"{path}: tensor {name!r} is out of range (negative second moment or step); refused")
    for name in owners:
        p = named[name]
        optimizer.state[p] = {
            "step": tensors[f"{name}.step"].to(torch.float32),
            "exp_avg": tensors[f"{name}.exp_avg"].to(p.device, p.dtype),
            "exp_avg_sq": tensors[f"{name}.exp_avg_sq"].to(p.device, p.dtype),
        }


def _names(path: Path) -> set[str]:
    """The tensor names in the header of the safetensors file ``path``."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        with safe_open(str(path), framework="pt") as file:
            return set(file.keys())
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated ({str(e).strip()[:200]})") from None


def append_log(root: str | Path, record: dict) -> None:
    """One line of ``ROOT/log.jsonl``."""
    append_file(root, Path(root) / LOG, json.dumps(record) + "\n")


def truncate_log(root: str | Path, step: int) -> None:
    """Keep the lines of ``ROOT/log.jsonl`` up to ``step`` (a resumed run rewrites what followed its checkpoint);
    lines that are no record of a step (a torn last line) are dropped."""
    path = Path(root) / LOG
    if not check_own_file(root, path):
        return
    text = read_file(path).decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if line.strip() and _logged_step(path, line) <= step]
    write_file(root, path, "".join(line + "\n" for line in lines))


def _logged_step(path: Path, line: str) -> int:
    """The step of one log line; CheckpointError (one line) for a damaged log."""
    try:
        step = json.loads(line)["step"]
    except (ValueError, KeyError, TypeError, RecursionError):
        step = None
    if isinstance(step, bool) or not isinstance(step, int):
        raise CheckpointError(f"{path}: a line is not a log record ({line[:40]!r}); delete the log to resume")
    return step
