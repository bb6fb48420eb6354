"""Tokenizer checkpoints: ``config.json`` plus ``model.safetensors``. Nothing is ever unpickled.

The config says everything needed to rebuild the model (architecture, hyperparameters, quantizer,
normalisation); the weights file holds tensors only. Every problem is a :class:`CheckpointError`
whose message names the file and the reason.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from .. import __version__
from ..errors import CheckpointError
from ..io.tensors import check_tensors
from ..io.writes import make_folder, remove_inside, write_file

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "tokzoo-tokenizer"
FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")


def write_checkpoint(directory: str | Path, config: dict, tensors: dict[str, torch.Tensor]) -> Path:
    """Write ``config`` (stamped with format and tokzoo version) and, if any, ``tensors`` to ``directory``."""
    directory = make_folder(Path(directory))
    config = {**config, "format": FORMAT, "format_version": FORMAT_VERSION, "tokzoo_version": __version__}
    weights = directory / WEIGHTS_NAME
    if tensors:
        write_file(
            directory, weights, safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
        )
    else:
        remove_inside(directory, weights)
    write_file(directory, directory / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return directory


def read_config(directory: str | Path) -> dict:
    """Read and check ``directory/config.json``; raise CheckpointError naming the problem."""
    directory = Path(directory)
    if directory.is_file() and directory.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{directory}: pickled checkpoints are not loaded (unpickling can run code); "
            "read its tensors with tokzoo.tokenizers.checkpoint.read_foreign_state_dict and save_pretrained a tokzoo tokenizer"
        )
    path = directory / CONFIG_NAME
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a tokenizer directory (expected {CONFIG_NAME} and {WEIGHTS_NAME})")
    if not path.exists():
        raise CheckpointError(f"{path}: missing")
    from ..errors import InputError
    from ..io.safety import MAX_JSON_BYTES, read_file

    try:
        config = json.loads(read_file(path, MAX_JSON_BYTES).decode("utf-8"))  # a regular file of <= 16 MiB
    except InputError as error:
        raise CheckpointError(f"{path}: {error.reason}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as error:  # JSONDecodeError, int digit limit, nesting
        raise CheckpointError(f"{path}: not valid JSON ({str(error)[:200]})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f'{path}: not a tokzoo tokenizer config (no "format": "{FORMAT}")')
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise CheckpointError(
            f"{path}: format_version {version!r} (written by tokzoo {config.get('tokzoo_version', '?')}) "
            f"is not one this tokzoo {__version__} reads (1..{FORMAT_VERSION}); upgrade tokzoo"
        )
    for field in ("architecture", "modality"):
        if not isinstance(config.get(field), str):
            raise CheckpointError(f"{path}: field {field!r} missing or not a string")
    return config


def read_tensors(directory: str | Path, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Read ``model.safetensors`` and check it holds exactly the tensors and shapes of ``expected``."""
    path = Path(directory) / WEIGHTS_NAME
    if not expected:
        return {}
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        with safe_open(str(path), framework="pt") as file:  # names and shapes from the header, before any data
            shapes = {name: _Shape(file.get_slice(name).get_shape()) for name in file.keys()}
            check_tensors(expected, shapes, path)
            tensors = {name: file.get_tensor(name) for name in shapes}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: corrupt or truncated ({str(error).strip()[:200]})") from None
    return tensors


class _Shape:
    """A tensor's shape as read from a safetensors header, for :func:`check_tensors`."""

    def __init__(self, shape):
        self.shape = tuple(shape)


def content_hash(config: dict, tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the model-defining config (no provenance/version stamps) and the tensor bytes."""
    digest = hashlib.sha256()
    ignored = {"provenance", "tokzoo_version", "format", "format_version", "name", "evaluation"}
    digest.update(json.dumps({k: v for k, v in config.items() if k not in ignored}, sort_keys=True).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def read_state_dict(path: str | Path, hint: str = "") -> dict[str, torch.Tensor]:
    """A foreign state dict: a safetensors file (by suffix or header), else through :func:`read_foreign_state_dict`.

    CheckpointError (one line) when unreadable; ``hint`` follows the reason when there is no such file.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: {'is a folder' if path.is_dir() else 'no such file'}{hint}")
    with open(path, "rb") as f:
        head = f.read(9)
    if path.suffix.lower() != ".safetensors" and head[8:9] != b"{":  # safetensors: 8-byte header length, then JSON
        return read_foreign_state_dict(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: not a readable safetensors file ({reason})") from None


def read_foreign_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a foreign ``.pt``/``.bin`` file, through ``torch.load(weights_only=True)`` only."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError ... for unsafe or broken files
        raise CheckpointError(
            f"{path}: refused or unreadable with weights_only=True ({type(error).__name__})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: does not hold a flat dict of tensors")
    return state
