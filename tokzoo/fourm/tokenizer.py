"""Released 4M tokenizers behind tokzoo's Tokenizer interface (``tokzoo.load_tokenizer(DIR_OR_HUB_ID)``).

``encode`` takes tokzoo's raw values (``tok.contract``), applies 4M's input convention for its domain
(:mod:`tokzoo.fourm.conventions`) and returns int64 (B, h*w) ids, row-major like ml-4m's token files.
``decode`` runs the ViT decoder (semseg, CLIP, DINOv2, ImageBind) and answers in tokzoo's values. DiVAE
tokenizers (rgb, depth, normals, edges) decode through their patched UNet with deterministic DDIM
(:mod:`tokzoo.fourm.diffusion`): ``config["diffusion"]`` fixes steps (25), seed (0) and timestep spacing
(trailing), ``decode(..., steps=, seed=)`` overrides them. A diffusion decoder of another kind (UViT) is
carried unchanged (saved, hashed) and ``decode`` refuses in one line.

``save_pretrained`` writes tokzoo's form (config.json with ``"architecture": "fourm_vqvae"`` and the ml-4m
config under ``"fourm"``; model.safetensors in this port's tensor names), which ``from_pretrained`` rebuilds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tokzoo.errors import CheckpointError, ConfigError, ShapeError
from tokzoo.indices import to_ids
from tokzoo.io.tensors import check_tensors, check_values
from tokzoo.limits import MAX_VIT_TOKENS, check_field, count_parameters
from tokzoo.tokenizers.base import Tokenizer, register_architecture
from tokzoo.tokenizers.checkpoint import WEIGHTS_NAME, read_state_dict, read_tensors

from .checkpoints import read_fourm_checkpoint, to_ours
from .conventions import DOMAINS, build_codec, infer_domain
from .diffusion import ddim_sample
from .unet import UNETS, PatchedUNet
from .vqvae import FourMVQVAE

DIFFUSION_DEFAULTS = {"steps": 25, "seed": 0, "timesteps_mode": "trailing"}


def is_diffusion(config: dict) -> bool:
    """DiVAE checkpoints: a UNet / UViT decoder (``dec_type`` unet_*, uvit_*) or diffusion arguments."""
    dec = str(config.get("dec_type", ""))
    return dec.startswith(("unet", "uvit")) or "beta_schedule" in config


FOURM_SIZES = (
    "image_size",
    "patch_size",
    "latent_dim",
    "codebook_size",
    "num_codebooks",
    "n_channels",
    "n_labels",
    "mask_size",
    "image_size_enc",
    "image_size_dec",
    "patch_size_dec",
)


def check_fourm_config(fourm: object, where: object) -> None:
    """ml-4m constructor arguments checked before anything is built: a mapping; sizes (and MLP ids' depth, width and
    expansion) within tokzoo.limits.FIELD_LIMITS; at most MAX_VIT_TOKENS patches; the parameter count (on the meta
    device) at most MAX_PARAMETERS. One-line ConfigError naming the field and the limit."""
    if not isinstance(fourm, dict):
        raise ConfigError(f"{where}: the 4M config is not a mapping of constructor arguments")
    for key in FOURM_SIZES:
        if fourm.get(key) is not None or key in ("image_size", "patch_size", "codebook_size"):  # these are required
            table = {"image_size_enc": "image_size", "image_size_dec": "image_size", "patch_size_dec": "patch_size"}
            check_field(fourm.get(key), where, key, f"fourm.{table.get(key, key)}")
    for key in ("enc_type", "dec_type"):
        value = fourm.get(key)
        if (
            key == "enc_type"
            and not isinstance(value, str)
            or value is not None
            and not isinstance(value, str)
            or isinstance(value, str)
            and len(value) > 100
        ):
            raise ConfigError(f"{where}: {key} {str(value)[:60]!r} is refused: expected a 4M model name")
        if isinstance(value, str) and "MLP" in value:
            for part, table in zip(value.partition("/")[2].split("-"), ("blocks", "width", "expansion")):
                number = part.partition("_")[2]
                if number.isdigit() and len(number) <= 12:
                    check_field(int(number), where, f"{key} {part.partition('_')[0]}_", f"fourm.mlp.{table}")
                else:
                    raise ConfigError(
                        f"{where}: {key} {value[:60]!r} is refused: expected BottleneckMLP/B_<n>-Wi_<width>"
                    )
    size, patch = fourm.get("image_size", 224), fourm.get("patch_size", 16)
    if isinstance(size, int) and isinstance(patch, int) and patch and (size // patch) ** 2 > MAX_VIT_TOKENS:
        raise ConfigError(
            f"{where}: image_size / patch_size {size} / {patch} is refused: {(size // patch) ** 2} "
            f"patches, over the limit of {MAX_VIT_TOKENS}"
        )
    try:
        count_parameters(lambda: [FourMVQVAE(fourm, with_decoder=not is_diffusion(fourm))], str(where))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ConfigError(
            f"{where}: the 4M config does not build ({type(error).__name__}: {str(error)[:100]})"
        ) from None


@register_architecture("fourm_vqvae")
class FourMTokenizer(Tokenizer):
    """One 4M tokenizer: ``config["fourm"]`` are ml-4m's constructor arguments, ``config["domain"]`` its domain."""

    def __init__(self, config: dict):
        self.config = config
        fourm = config["fourm"]
        check_fourm_config(fourm, config.get("source") or config.get("name") or "4M tokenizer config")
        self.diffusion = is_diffusion(fourm)
        self.codec = build_codec(config["domain"], fourm)
        self.model = FourMVQVAE(fourm, with_decoder=not self.diffusion).eval()
        self.vector = "MLP" in str(fourm["enc_type"])  # global features: one (D,) vector per sample
        self.heads = int(fourm.get("num_codebooks", 1)) if fourm.get("quant_type") == "memcodes" else 1
        if self.heads > 1 and not self.vector:
            raise ConfigError("4M memcodes tokenizers on image grids are not ported (only the MLP vector tokenizers)")
        self.unet = (
            PatchedUNet(fourm["dec_type"], int(fourm["n_channels"]), int(fourm.get("latent_dim", 32))).eval()
            if self.diffusion and fourm.get("dec_type") in UNETS
            else None
        )
        self.carried: dict[str, torch.Tensor] = {}  # tensors of a diffusion decoder that is not ported, as loaded

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def from_fourm(cls, path: str | Path, name: str | None = None, domain: str | None = None) -> "FourMTokenizer":
        """Load a released 4M tokenizer (folder, single safetensors); tensors must match exactly."""
        path = Path(path)
        fourm, tensors, where = read_fourm_checkpoint(path)
        check_fourm_config(fourm, where)
        domain = domain or infer_domain(fourm, name or path.name)
        if domain not in DOMAINS:
            raise ConfigError(f"{path}: 4M domain {domain!r} is not supported (supported: {', '.join(DOMAINS)})")
        size = int(fourm["image_size"])
        patch = int(fourm["patch_size"]) if fourm.get("patch_proj", True) else 1
        grid_size = size // int(fourm["patch_size"])
        input_size = None if "MLP" in str(fourm["enc_type"]) else [size, size] if patch > 1 else [grid_size, grid_size]
        config = {
            "architecture": "fourm_vqvae",
            "modality": DOMAINS[domain][1],
            "name": name or path.name,
            "domain": domain,
            "fourm": fourm,
            "input_size": input_size,
            "source": str(path),
        }
        if is_diffusion(fourm):
            config["diffusion"] = dict(DIFFUSION_DEFAULTS)
        tok = cls(config)
        tok._load(to_ours(tensors), where)
        return tok

    @classmethod
    def from_config(cls, config: dict, directory: Path | None = None) -> "FourMTokenizer":
        tok = cls(config)
        if directory is not None:
            weights = Path(directory) / WEIGHTS_NAME
            tensors = read_state_dict(weights) if tok.carried_decoder else read_tensors(directory, tok._expected())
            tok._load(tensors, weights)
        return tok

    def _expected(self) -> dict[str, torch.Tensor]:
        unet = {} if self.unet is None else {f"decoder.{k}": v for k, v in self.unet.state_dict().items()}
        return {**self.model.state_dict(), **unet}

    def _load(self, tensors: dict[str, torch.Tensor], where) -> None:
        expected = self._expected()
        if self.diffusion and self.unet is None:  # a decoder that is not ported: carried, not checked by name
            self.carried = {k: v for k, v in tensors.items() if k not in expected}
            unknown = sorted(k for k in self.carried if not k.startswith("decoder."))
            if unknown:
                raise CheckpointError(f"{where}: unexpected tensor(s) {unknown[:3]}")
            tensors = {k: v for k, v in tensors.items() if k in expected}
        check_tensors(expected, tensors, where)
        check_values(expected, tensors, where)  # an F32 tensor relabelled I32 would load as integers: all-zero tokens
        self.model.load_state_dict(
            {k: v for k, v in tensors.items() if not (self.diffusion and k.startswith("decoder."))}, strict=True
        )
        if self.unet is not None:
            self.unet.load_state_dict(
                {k[len("decoder.") :]: v for k, v in tensors.items() if k.startswith("decoder.")}, strict=True
            )

    # -- facts ------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return int(self.config["fourm"]["codebook_size"])

    @property
    def token_shape(self) -> tuple[int, ...]:
        return self.token_shape_for(self.config["input_size"])

    def token_shape_for(self, input_size) -> tuple[int, ...]:
        if self.vector:
            return (self.heads,)
        h, w = (int(s) for s in input_size)
        patch = self._patch
        if h % patch or w % patch:
            raise ShapeError(f"{self.name} input", f"size {h}x{w} is not divisible by the 4M patch size {patch}")
        return ((h // patch) * (w // patch),)

    @property
    def _patch(self) -> int:
        fourm = self.config["fourm"]
        return int(fourm["patch_size"]) if fourm.get("patch_proj", True) else 1

    @property
    def contract(self) -> str:
        return f"4M {self.config['domain']} tokenizer: {self.codec.contract}"

    @property
    def carried_decoder(self) -> bool:
        """A diffusion decoder whose architecture is not ported (its tensors are kept, ``decode`` refuses)."""
        return self.diffusion and self.unet is None

    def tensors(self) -> dict[str, torch.Tensor]:
        return {**self._expected(), **self.carried}

    def to(self, device) -> "FourMTokenizer":
        self.model.to(device)
        if self.unet is not None:
            self.unet.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- the job ----------------------------------------------------------------------------------
    def encode(self, x) -> torch.Tensor:
        """Raw values (``contract``) -> int64 (B, h*w) ids."""
        return self.encode_normalized(self.codec.to_model(x))

    def encode_normalized(self, batch) -> torch.Tensor:
        """``encode`` for a batch already through ``self.codec.to_model``."""
        batch = torch.as_tensor(batch)
        patch = self._patch
        if not self.vector and (batch.shape[-2] % patch or batch.shape[-1] % patch):
            raise ShapeError(
                f"{self.name} input", f"size {tuple(batch.shape[-2:])} is not divisible by the 4M patch size {patch}"
            )
        with torch.inference_mode():
            return self.model.tokenize(batch.to(self.device)).flatten(1)

    def decode(self, tokens, input_size=None, steps: int | None = None, seed: int | None = None):
        """int ids (B, h*w) or one sample's (h*w,) -> tokzoo raw values, batch first.

        Diffusion decoders: ``steps`` DDIM steps from the noise of ``seed`` (defaults in ``config["diffusion"]``).
        """
        if self.carried_decoder:
            raise ConfigError(
                f"{self.name}: its diffusion decoder ({self.config['fourm'].get('dec_type')}) is not "
                f"ported; encode works exactly"
            )
        ids = to_ids(tokens, self.vocab_size, f"{self.name} tokens")
        ids = ids[None] if ids.ndim == 1 else ids
        if ids.ndim != 2:
            raise ShapeError(f"{self.name} tokens", f"expected (B, N) ids, got shape {tuple(ids.shape)}")
        if self.vector:
            if ids.shape[1] != self.heads:
                raise ShapeError(f"{self.name} tokens", f"expected {self.heads} ids per sample, got {ids.shape[1]}")
            grid = ids.reshape(len(ids), self.heads, 1, 1).to(self.device)
        else:
            h, w = self._grid(ids.shape[1], input_size)
            grid = ids.reshape(len(ids), h, w).to(self.device)
        with torch.inference_mode():
            if self.unet is None:
                out = self.model.decode_tokens(grid)
            else:
                settings = {**DIFFUSION_DEFAULTS, **self.config.get("diffusion", {})}
                patch = self._patch
                shape = (len(ids), int(self.config["fourm"]["n_channels"]), h * patch, w * patch)
                out = ddim_sample(
                    self.unet,
                    self.model.codes(grid),
                    shape,
                    self.config["fourm"],
                    steps or settings["steps"],
                    settings["seed"] if seed is None else seed,
                    settings["timesteps_mode"],
                )
        return self.codec.from_model(out)

    def _grid(self, n: int, input_size) -> tuple[int, int]:
        if input_size is not None:
            h, w = (int(s) // self._patch for s in input_size)
        else:
            h = w = int(np.sqrt(n))
        if h * w != n:
            raise ShapeError(
                f"{self.name} tokens",
                f"{n} tokens do not form the grid of input size {input_size} "
                f"(patch {self._patch}); pass input_size=(H, W)",
            )
        return h, w
