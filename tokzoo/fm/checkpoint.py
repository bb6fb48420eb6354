"""Run folders of the 4M-style trainer: the trainers' run folder (:mod:`tokzoo.runs.run_folder`) plus the model's
config. Safetensors + JSON only, nothing pickled.

```
RUN/config.json             format, model config, modality specs, the recipe, the training data folder
RUN/model.safetensors       model weights
RUN/optimizer.safetensors   AdamW state: "<param>.exp_avg", "<param>.exp_avg_sq", "<param>.step"
RUN/trainer_state.json      step, data position; written last, so it marks a complete checkpoint
RUN/log.jsonl               one line per logged step (loss per modality, lr, tokens/s)
```
Files are written to ``*.tmp`` and renamed, so an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tokzoo import __version__
from tokzoo.errors import CheckpointError, ConfigError
from tokzoo.io.safety import read_json_file
from tokzoo.io.tensors import read_checked
from tokzoo.io.writes import make_folder, write_file
from tokzoo.limits import MAX_FM_PARAMETERS, check_field, count_parameters
from tokzoo.runs.run_folder import (
    OPTIMIZER,
    STATE,
    WEIGHTS,
    optimizer_tensors,
    read_state_file,
    write_state,
    write_tensors,
)
from tokzoo.tokens.spec import ModalitySpec, check_specs

from .model import FMConfig, FourM, check_config

FORMAT, FORMAT_VERSION = "tokzoo-fm", 1
CONFIG = "config.json"


def save_checkpoint(
    run: str | Path,
    model: FourM,
    recipe_raw: dict,
    optimizer: torch.optim.Optimizer | None = None,
    state: dict | None = None,
    data: str | Path | None = None,
) -> Path:
    """Write the model (and optimizer + trainer state when given) into ``run``; ``data``: the training set's folder."""
    run = make_folder(Path(run))
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tokzoo_version": __version__,
        "model": model.config.to_dict(),
        "modalities": [s.to_dict() for s in model.specs],
        "recipe": recipe_raw,
        "data": str(Path(data).resolve()) if data else None,
    }
    write_file(run, run / CONFIG, json.dumps(config, indent=2, sort_keys=True) + "\n")
    write_tensors(run, run / WEIGHTS, model.state_dict())
    if optimizer is not None:
        write_tensors(run, run / OPTIMIZER, optimizer_tensors(model, optimizer))
    if state is not None:
        write_state(run, run, state)
    return run


def read_run_config(run: str | Path) -> dict:
    run = Path(run)
    path = run / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{run}: not a trained model folder (no {CONFIG}; train one with `tokzoo fm train`)")
    config = read_json_file(path, CheckpointError)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f'{path}: not a tokzoo fm model config (no "format": "{FORMAT}")')
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {config.get('format_version')!r} is not {FORMAT_VERSION}")
    return config


def load_model(run: str | Path, device: str | torch.device = "cpu") -> FourM:
    """The model of a run folder: sizes checked against tokzoo.limits before it is built, weights checked by name,
    shape, dtype kind and finiteness (an all-NaN model is refused, not sampled from)."""
    specs, model_config = run_model_config(run)
    model = FourM(specs, model_config)
    model.load_state_dict(read_checked(Path(run) / WEIGHTS, model.state_dict()))
    return model.to(device)


def run_model_config(run: str | Path) -> tuple[list[ModalitySpec], FMConfig]:
    """The modality specs and model config of a run folder, every size within tokzoo.limits and the parameter
    count at most MAX_FM_PARAMETERS (counted on the meta device); one-line CheckpointError otherwise."""
    config, path = read_run_config(run), Path(run) / CONFIG
    try:
        specs = [ModalitySpec.from_dict(d) for d in config["modalities"]]
        model_config = FMConfig(**config["model"])
        check_config(model_config, f"{path}: model")
        check_specs(specs, path)
        if len({s.name for s in specs}) != len(specs) or not specs:
            raise ConfigError(f"{path}: modalities: empty, or a modality named twice")
        count_parameters(lambda: [FourM(specs, model_config)], str(path), MAX_FM_PARAMETERS)
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{path}: bad model or modalities field ({type(e).__name__}: {str(e)[:120]})") from None
    return specs, model_config


def read_state(run: str | Path) -> dict | None:
    """The trainer state ``{"step", "position": {"consumed": [samples read from each dataset]}}`` of a run, None
    when absent; one-line CheckpointError for anything else (``[]``, text, an older run's position, negative or huge
    numbers)."""
    path, state = Path(run) / STATE, read_state_file(run)
    if state is None:
        return None
    position = state.get("position") if isinstance(state, dict) else None
    if isinstance(position, dict) and set(position) == {"epoch", "batch"}:
        raise CheckpointError(
            f"{path}: its data position was written by an older trainer (epoch and batch, not "
            "samples per dataset); it cannot resume here, start a new --out"
        )
    consumed = position.get("consumed") if isinstance(position, dict) and set(position) == {"consumed"} else None
    if not isinstance(consumed, list) or not consumed:
        raise CheckpointError(
            f'{path}: not a trainer state of this tokzoo ({{"step": N, "position": '
            f'{{"consumed": [S, ...]}}}}); delete the run folder or pass another --out'
        )
    try:
        check_field(state.get("step"), path, "step", "fm.state.step")
        for count in consumed:
            check_field(count, path, "position.consumed", "fm.state.position")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    return state


def initialise_from(model: FourM, source: FourM) -> tuple[list[str], list[str]]:
    """Start ``model`` from ``source``'s weights (fine-tuning a trained model on other modalities, as 4M does):
    every tensor of the same name and shape, except the token embeddings of a modality tokenized differently
    (another tokenizer content hash), and the modality-embedding rows of the modalities both have. In place;
    returns (copied, left as initialised) tensor names."""
    theirs = source.state_dict()
    their_specs = {s.name: (i, s) for i, s in enumerate(source.specs)}
    tokens = lambda s: (s.kind, s.vocab_size, tuple(s.grid), s.content_hash)  # noqa: E731
    same_tokens = {s.name for s in model.specs if s.name in their_specs and tokens(their_specs[s.name][1]) == tokens(s)}
    copied, fresh = [], []
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name == "modality_embedding":
                fits = name in theirs and theirs[name].shape[1:] == tensor.shape[1:]
                rows = [
                    (i, their_specs[s.name][0]) for i, s in enumerate(model.specs) if fits and s.name in same_tokens
                ]
                for mine, their in rows:
                    tensor[mine] = theirs[name][their]
                (copied if rows else fresh).append(name)
                continue
            modality = name.split(".")[1] if name.startswith("embeddings.") else None
            if name in theirs and theirs[name].shape == tensor.shape and modality in (None, *same_tokens):
                tensor.copy_(theirs[name])
                copied.append(name)
            else:
                fresh.append(name)
    return copied, fresh
