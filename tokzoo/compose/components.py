"""Components: pretrained models seen as a stack of layers over a stream of tokens, frozen by default.

A :class:`Component` runs its model one layer at a time so that glue can read (and, for GATS, write) the
hidden states between layers:

    stream = component.begin(inputs)          # hidden state after the input embedding (layer 0)
    component.step(stream, i)                 # apply layer i (1 .. n_layers); stream.h is updated
    component.tokens(stream)                  # float (B, N, width(i)) view of the hidden state as tokens
    component.class_token(stream)             # (B, 1, width(i)): the class token, or the tokens' mean
    component.add(stream, delta)              # residual write of float (B, N, width(i)) into the stream
    component.finish(stream)                  # the model's output (an LM: logits (B, T, vocab))

``freeze()`` turns off ``requires_grad`` and puts the model in eval mode (and keeps it there through
``train()``); a frozen component's parameters are never handed to an optimizer. ``content_hash()`` is a
sha256 of its tensors, recorded in glue checkpoints and checked on load.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..io.safety import read_json_file
from ..limits import check_field


@dataclass
class Stream:
    """One component's running state: ``h`` its hidden state, ``layer`` the last layer applied (0 = embedding),
    ``extra`` what the adapter keeps between layers (attention mask, positions, prefix length ...)."""

    h: torch.Tensor
    layer: int = 0
    extra: dict = field(default_factory=dict)


CONFIG_SIZES = {  # transformers config.json names -> tokzoo.limits.FIELD_LIMITS key
    "n_layer": "component.layers", "num_hidden_layers": "component.layers", "num_layers": "component.layers",
    "n_embd": "component.width", "hidden_size": "component.width", "d_model": "component.width",
    "intermediate_size": "component.intermediate_size", "n_inner": "component.intermediate_size",
    "n_head": "component.heads", "num_attention_heads": "component.heads", "num_key_value_heads": "component.heads",
    "vocab_size": "component.vocab_size", "n_positions": "component.positions", "n_ctx": "component.positions",
    "max_position_embeddings": "component.positions", "image_size": "component.image_size",
    "patch_size": "component.patch_size", "num_channels": "component.channels",
}  # fmt: skip
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


@dataclass
class Frames:
    """Several images of one sample, each given at a time of the text: ``images`` (B, F, ...) as the encoder takes
    one image (B, ...), ``times`` int64 (B, F) the text position after which each frame is seen (not decreasing)."""

    images: torch.Tensor
    times: torch.Tensor


def model_folder(path) -> Path:
    """``path`` as a ``transformers`` model folder with safetensors weights, else a one-line CheckpointError.

    Checked before transformers reads anything: ``config.json`` a regular JSON file of at most 16 MiB whose sizes
    (layers, widths, vocabulary, positions, image and patch size, also in a nested ``vision_config`` /
    ``text_config``) are within tokzoo.limits.FIELD_LIMITS; ``model.safetensors`` a header that parses, holds
    tensors, and gives every ``*.weight`` a floating-point dtype. A folder of pickled weights only is refused."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path}: not a transformers model folder (no config.json)")
    if not (path / "model.safetensors").is_file():
        pickled = [p.name for p in sorted(path.glob("*.bin")) + sorted(path.glob("*.pt*"))][:2]
        found = f" ({', '.join(pickled)} is pickled: never loaded)" if pickled else ""
        raise CheckpointError(f"{path}: no model.safetensors (pickled weights are not loaded){found}")
    config = read_json_file(path / "config.json", CheckpointError)
    if not isinstance(config, dict):
        raise CheckpointError(f"{path / 'config.json'}: not a JSON object")
    try:
        check_config_sizes(config, path / "config.json")
    except ConfigError as error:
        raise CheckpointError(str(error)) from None
    check_weights_header(path / "model.safetensors")
    return path


def check_config_sizes(config: dict, where: Path, prefix: str = "") -> None:
    """The size fields of a transformers config (and of its nested sub-model configs) within the limits."""
    for key, value in config.items():
        if key in CONFIG_SIZES and value is not None:
            check_field(value, where, prefix + key, CONFIG_SIZES[key])
        elif key.endswith("_config") and isinstance(value, dict) and not prefix:
            check_config_sizes(value, where, f"{key}.")


def check_weights_header(path: Path) -> None:
    """A safetensors header that parses and whose offsets fit the file (the library checks both), holding at least
    one tensor, with a floating-point dtype for every ``*.weight`` (an F32 weight relabelled I32 would load as
    integers). Reads the header only."""
    try:
        with safe_open(str(path), framework="pt") as file:
            names = list(file.keys())
            dtypes = {name: file.get_slice(name).get_dtype() for name in names}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({str(error).strip()[:200]})") from None
    if not names:
        raise CheckpointError(f"{path}: holds no tensors (the model would run with random weights); refused")
    for name, dtype in dtypes.items():
        if name.endswith(".weight") and dtype not in FLOAT_DTYPES:
            raise CheckpointError(f"{path}: tensor {name!r} has dtype {dtype}, expected a floating-point dtype")


def transformers_config(path: Path):
    """``AutoConfig`` of a folder that passed :func:`model_folder`; one-line CheckpointError when transformers does
    not accept its config.json. Foreign code parsing a hostile file: its failures take many forms (IndexError on a
    NaN dtype, strict-dataclass type errors ...), all of them this file's fault, so all are reported as such."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path))
    except Exception as error:  # noqa: BLE001 - see the docstring
        raise CheckpointError(
            f"{path / 'config.json'}: not accepted by transformers ({load_reason(path, error)})"
        ) from None


def config_errors() -> tuple[type[Exception], ...]:
    """What transformers raises for a config.json whose values have the wrong types (besides ValueError / TypeError):
    huggingface_hub's strict-dataclass validation errors, where that version has them."""
    try:
        from huggingface_hub.errors import StrictDataclassError
    except ImportError:
        return ()
    return (StrictDataclassError,)


def load_reason(path: Path, error: Exception) -> str:
    """One line saying why transformers could not load the folder at ``path``."""
    text = str(error)
    if "mismatched" in text or "size mismatch" in text:
        return f"{path / 'model.safetensors'}: tensor shapes differ from config.json"
    return text.splitlines()[0][:200] if text else type(error).__name__


def check_loaded(path: Path, model: nn.Module, info: dict) -> nn.Module:
    """After ``from_pretrained(..., output_loading_info=True)``: every parameter came from the file (none left at
    its random initialisation), shapes matched, and every weight is finite."""
    missing = sorted(info.get("missing_keys") or [])
    mismatched = list(info.get("mismatched_keys") or [])
    if missing:
        raise CheckpointError(
            f"{path / 'model.safetensors'}: missing tensor(s) {missing[:3]}"
            f"{' ...' if len(missing) > 3 else ''} (they would stay random); refused"
        )
    if mismatched:
        raise CheckpointError(
            f"{path / 'model.safetensors'}: tensor(s) of the wrong shape {[m[0] for m in mismatched[:3]]}"
        )
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{path / 'model.safetensors'}: tensor {name!r} holds NaN or infinite values; refused"
            )
    return model


def tensor_hash(module: nn.Module) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes, bytes), in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class Component(nn.Module):
    """Base of the adapters. Subclasses set ``kind`` ("lm" or "encoder") and implement the stepping API."""

    kind = "encoder"

    def __init__(self, name: str, model: nn.Module, source: str):
        super().__init__()
        self.name, self.model, self.source = name, model, source
        self.frozen = False

    # -- freezing ----------------------------------------------------------------------------------
    def freeze(self) -> "Component":
        """requires_grad off for every parameter, eval mode now and after any later ``train()`` call."""
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.frozen = True
        self.model.eval()
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def content_hash(self) -> str:
        return tensor_hash(self.model)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    # -- stepping ------------------------------------------------------------------------------------
    n_layers: int

    def width(self, layer: int) -> int:
        """Channels of the tokens after ``layer`` (0 = embedding)."""
        raise NotImplementedError

    def begin(self, inputs) -> Stream:
        raise NotImplementedError

    def step(self, stream: Stream, index: int) -> Stream:
        raise NotImplementedError

    def tokens(self, stream: Stream) -> torch.Tensor:
        raise NotImplementedError

    def class_token(self, stream: Stream) -> torch.Tensor:
        """(B, 1, width) summary of the current tokens: a model's class token, else (here) their mean."""
        return self.tokens(stream).mean(dim=1, keepdim=True)

    def grid_tokens(self, stream: Stream) -> torch.Tensor:
        """The tokens on ``stream.extra["grid"]`` (row-major), without class / register tokens."""
        return self.tokens(stream)

    def add(self, stream: Stream, delta: torch.Tensor) -> Stream:
        raise NotImplementedError

    def finish(self, stream: Stream):
        raise NotImplementedError

    def run(self, stream: Stream, until: int) -> Stream:
        """Apply layers ``stream.layer + 1 .. until``."""
        for index in range(stream.layer + 1, until + 1):
            self.step(stream, index)
        return stream

    def hidden_states(self, inputs) -> list[torch.Tensor]:
        """Tokens after every layer: ``n_layers + 1`` float tensors (B, N_i, width(i)), embedding first."""
        stream = self.begin(inputs)
        states = [self.tokens(stream)]
        for index in range(1, self.n_layers + 1):
            states.append(self.tokens(self.step(stream, index)))
        return states

    def describe(self) -> dict:
        """Name, source, class, parameter count and content hash, as stored in glue checkpoints."""
        return {
            "name": self.name,
            "source": self.source,
            "adapter": type(self).__name__,
            "parameters": self.n_parameters(),
            "sha256": self.content_hash(),
        }
