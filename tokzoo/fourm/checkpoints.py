"""Released 4M tokenizer files: recognise them, read their config and tensors, map tensor names both ways.

Forms (ml-4m at cda590f, README "Tokenizers"):

- hub folder: ``config.json`` (the ``VQVAE`` / ``DiVAE`` constructor arguments) + ``model.safetensors``;
- one ``.safetensors`` whose ``__metadata__`` holds the same arguments as YAML strings (``load_safetensors``);
- legacy ``.pth``: a pickle of ``{'model', 'args': argparse.Namespace}``: refused, never unpickled, with a recipe.

Tensor names are ml-4m's except the codebook, which is kept in vector-quantize-pytorch's layout
(``quantize._codebook.embed`` (K, D) -> ``quantize.inner._codebook.embed`` (1, K, D), ``cluster_size`` (K,) ->
(1, K), ``initted`` (1,) -> (), plus ``embed_avg`` (1, K, D), which ml-4m's cosine codebook lacks).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from tokzoo.errors import CheckpointError, InputError
from tokzoo.io.safety import MAX_JSON_BYTES, read_file
from tokzoo.tokenizers.checkpoint import CONFIG_NAME, WEIGHTS_NAME, read_state_dict

FOURM_CODEBOOK = "quantize._codebook."
OUR_CODEBOOK = "quantize.inner._codebook."
MAX_YAML = 10_000
"""Longest metadata string parsed as YAML (as ml-4m's ``safe_parse_metadata``)."""
MAX_LIST = 64
FEATURE_DOMAINS = ("CLIP", "DINO", "ImageBind")
LEGACY_NAMES = {
    "encoder_type": "enc_type",
    "decoder_type": "dec_type",
    "quantizer_type": "quant_type",
    "input_size_enc": "image_size_enc",
    "input_size_dec": "image_size_dec",
}

CONVERT_PTH = (
    "pickled checkpoint, not loaded (unpickling runs code); a legacy 4M tokenizer .pth you trust converts "
    'once to the safetensors form tokzoo reads: python -c "import sys, torch, safetensors.torch as st; c = torch.load(sys.argv[1], '
    "map_location='cpu', weights_only=False); st.save_file({k: v.contiguous() for k, v in c['model'].items()}, sys.argv[2], metadata={k: str(v) for k, v "
    "in vars(c['args']).items()})\" X.pth X.safetensors"
)


def _read_json(path: Path):
    """A JSON file from a foreign folder: a regular file of at most 16 MiB (tokzoo.io.safety), one-line errors."""
    try:
        return json.loads(read_file(path, MAX_JSON_BYTES).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{path}: not valid UTF-8 JSON ({str(e)[:120]})") from None


def is_fourm_checkpoint(path: Path) -> bool:
    """True for a folder whose config.json is ml-4m's (no tokzoo ``format``), a ``.safetensors`` file, or a ``.pth``."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() in (".safetensors", ".pth")
    config = path / CONFIG_NAME
    if not config.is_file():
        return False
    try:
        value = _read_json(config)
    except (CheckpointError, InputError):
        return False  # tokzoo's own reader reports the file
    return isinstance(value, dict) and "format" not in value and ("enc_type" in value or "encoder_type" in value)


def uses_fourm_architecture(path: Path) -> bool:
    """True for a tokzoo tokenizer folder saved from a 4M tokenizer (``"architecture": "fourm_vqvae"``)."""
    config = Path(path) / CONFIG_NAME
    try:
        value = _read_json(config) if config.is_file() else None
    except (CheckpointError, InputError):
        return False
    return isinstance(value, dict) and value.get("architecture") == "fourm_vqvae"


def read_fourm_checkpoint(path: Path) -> tuple[dict, dict[str, torch.Tensor], str]:
    """(ml-4m config with legacy names resolved, ml-4m-named tensors, where) of any released form."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".pth":
        raise CheckpointError(f"{path}: {CONVERT_PTH}")
    if path.is_dir():
        where = path / WEIGHTS_NAME
        config = _read_json(path / CONFIG_NAME)
        if not isinstance(config, dict):
            raise CheckpointError(f"{path / CONFIG_NAME}: not a JSON object of constructor arguments")
        tensors = read_state_dict(where, f" (a 4M tokenizer folder holds {CONFIG_NAME} and {WEIGHTS_NAME})")
    else:
        where = path
        tensors = read_state_dict(path)
        config = _metadata_config(path)
        if not config:
            raise CheckpointError(
                f"{path}: no config in the safetensors metadata (ml-4m's single-file form keeps the "
                f"constructor arguments there); use the folder form with {CONFIG_NAME}"
            )
    config = dict(config.get("config") or config)  # PyTorchModelHubMixin may nest the arguments
    return resolve_config(config, tensors), tensors, str(where)


def _metadata_config(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    config = {}
    for key, value in metadata.items():
        if isinstance(value, str) and len(value) <= MAX_YAML:
            try:
                parsed = yaml.safe_load(value.replace("None", "null"))
            except (yaml.YAMLError, ValueError, RecursionError):  # ValueError: an integer of over 4,300 digits
                parsed = value
            value = parsed if _plain(parsed) else value  # constructor arguments are scalars or short flat lists
        config[key] = value
    return config


def _plain(value) -> bool:
    """A scalar or a flat list of at most MAX_LIST scalars (YAML aliases cannot nest into a bomb then)."""
    scalar = (type(None), bool, int, float, str)
    return isinstance(value, scalar) or (
        isinstance(value, list) and len(value) <= MAX_LIST and all(isinstance(v, scalar) for v in value)
    )


def resolve_config(config: dict, tensors: dict[str, torch.Tensor]) -> dict:
    """Legacy argument names -> the constructor's, and what ml-4m derives from the tensors (``n_channels``,
    ``n_labels``, ``patch_proj`` for feature maps), as ml-4m's ``get_image_tokenizer`` does."""
    config = {LEGACY_NAMES.get(k, k): v for k, v in config.items()}
    if "image_size" not in config:
        config["image_size"] = config.get("input_size") or config.get("input_size_max") or 224
    domain = str(config.get("domain", ""))
    if "sam" in domain and config.get("mask_size"):  # ml-4m: SAM masks are the tokenizer's whole input
        config["image_size"] = config["mask_size"]
    if any(d in domain for d in FEATURE_DOMAINS):
        config["patch_proj"] = False
    if "cls_emb.weight" in tensors:
        config["n_labels"], config["n_channels"] = (int(n) for n in tensors["cls_emb.weight"].shape)
    elif "encoder.linear_in.weight" in tensors:
        config["n_channels"] = int(tensors["encoder.linear_in.weight"].shape[1])
    elif "encoder.proj.weight" in tensors:
        config["n_channels"] = int(tensors["encoder.proj.weight"].shape[1])
    quant = config.get("quant_type", "lucid")
    if quant not in ("lucid", "memcodes") or (quant == "lucid" and int(config.get("num_codebooks", 1)) != 1):
        raise CheckpointError(
            f"4M quantizer {quant!r} with {config.get('num_codebooks', 1)} codebooks is not ported "
            f"('lucid' cosine VQ with one codebook, 'memcodes')"
        )
    if quant == "lucid" and not config.get("norm_codes", True):
        raise CheckpointError("4M tokenizer with norm_codes=False (Euclidean codebook) is not ported")
    return config


def to_ours(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ml-4m tensor names and shapes -> this port's."""
    out = {k: v for k, v in tensors.items() if not k.startswith(FOURM_CODEBOOK)}
    embed = tensors.get(FOURM_CODEBOOK + "embed")
    if embed is not None:
        out[OUR_CODEBOOK + "embed"] = embed[None].clone()
        out[OUR_CODEBOOK + "embed_avg"] = embed[None].clone()
    if FOURM_CODEBOOK + "cluster_size" in tensors:
        out[OUR_CODEBOOK + "cluster_size"] = tensors[FOURM_CODEBOOK + "cluster_size"][None].clone()
    if FOURM_CODEBOOK + "initted" in tensors:
        out[OUR_CODEBOOK + "initted"] = tensors[FOURM_CODEBOOK + "initted"].reshape(()).bool()
    extra = sorted(
        k
        for k in tensors
        if k.startswith(FOURM_CODEBOOK) and k[len(FOURM_CODEBOOK) :] not in ("embed", "cluster_size", "initted")
    )
    if extra:
        raise CheckpointError(f"unexpected codebook tensor(s) {extra[:3]}")
    return out


def to_fourm(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """This port's tensors -> ml-4m's names and shapes (``embed_avg`` dropped)."""
    out = {k: v for k, v in tensors.items() if not k.startswith(OUR_CODEBOOK)}
    if OUR_CODEBOOK + "embed" not in tensors:  # memcodes: ml-4m's names already
        return out
    out[FOURM_CODEBOOK + "embed"] = tensors[OUR_CODEBOOK + "embed"][0]
    out[FOURM_CODEBOOK + "cluster_size"] = tensors[OUR_CODEBOOK + "cluster_size"][0]
    out[FOURM_CODEBOOK + "initted"] = tensors[OUR_CODEBOOK + "initted"].reshape(1).float()
    return out
