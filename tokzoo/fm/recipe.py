"""The YAML recipe of a 4M-style training run: data, model, masking, train. Read with yaml.safe_load.

```yaml
data: {modalities: [rgb, depth, normals, semseg], max_items: 16}   # weights: [3, 1] for two --data datasets
model: {preset: fm-tiny, dim: 192, encoder_layers: 3}        # a preset, any field overridden
masking:
  input_tokens: 64                  # input budget per sample (4M: 128), or a range [low, high] drawn per sample
  target_tokens: [32, 64]           # target budget per sample (4M: 128)
  mixture:                          # Dirichlet settings; alpha: a number for every modality, or per modality (absent = 0)
    - {name: rgb->all, weight: 1, input_alpha: {rgb: 1000}, target_alpha: 0.5}
    - {name: all->all, weight: 1, input_alpha: 0.5, target_alpha: 0.5}
    # keep: {captions: all} in a component gives that sequence input whole (random | all | binary: 4M's keep)
train: {steps: 600, batch_size: 32, micro_batch_size: 32, lr: 1.0e-3, warmup_steps: 50, eval_every: 100}
```

Every problem is a ConfigError of one line naming the file and the field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from tokzoo.errors import ConfigError
from tokzoo.io.safety import read_yaml_file
from tokzoo.limits import check_field

from .masking import MaskingConfig, MixtureComponent
from .model import FMConfig, model_config
from .spans import KEEP_SCHEMES


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int  # global batch: samples per optimizer step, over all processes
    micro_batch_size: int = 0  # samples per forward pass and process; 0 = the whole share (no accumulation)
    lr: float = 1e-3
    warmup_steps: int = 0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    seed: int = 0
    num_workers: int = 1  # > 0: read the next global batch in a background thread while a step trains
    checkpoint_every: int = 0  # 0 = only at the end
    eval_every: int = 0  # score the held-out set (--eval-data) every this many steps; 0 = never
    eval_samples: int = 64  # held-out samples scored (the first ones, crop 0, masks drawn once)
    init: str | None = None  # an fm run folder whose weights start this run (its trunk and the shared modalities)

    def to_dict(self) -> dict:
        return {**asdict(self), "betas": list(self.betas)}


@dataclass(frozen=True)
class Recipe:
    modalities: tuple[str, ...]
    max_items: int
    weights: tuple[float, ...] | None
    model: FMConfig
    masking: MaskingConfig
    train: TrainConfig
    raw: dict  # the recipe as read, stored in the run's config


SECTIONS = ("data", "model", "masking", "train")


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file."""
    path = Path(path)
    return parse_recipe(read_yaml_file(path), path)


def parse_recipe(raw: object, where: object = "recipe") -> Recipe:
    """Validate a recipe mapping (as YAML gives it)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a recipe is a mapping with sections {', '.join(SECTIONS)}")
    _known(raw, SECTIONS, where, "top level")
    data, model, masking, train = (_section(raw, name, where) for name in SECTIONS)
    _known(data, ("modalities", "max_items", "weights"), where, "data")
    modalities = data.get("modalities")
    if not isinstance(modalities, list) or not modalities or not all(isinstance(m, str) for m in modalities):
        raise ConfigError(f"{where}: data.modalities must be a non-empty list of modality names")
    if len(set(modalities)) != len(modalities):
        raise ConfigError(f"{where}: data.modalities lists a modality twice")
    max_items = _int(data.get("max_items", 16), "data.max_items", where, 1)
    weights = data.get("weights")
    if weights is not None:
        if not isinstance(weights, list) or not weights:
            raise ConfigError(f"{where}: data.weights must be a list of sampling weights, one per dataset")
        weights = tuple(_number(w, "data.weights", where, 0) for w in weights)
        if not sum(weights) > 0:
            raise ConfigError(f"{where}: data.weights: at least one weight must be positive")
    try:
        model_cfg = model_config(**model)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    return Recipe(
        tuple(modalities),
        max_items,
        weights,
        model_cfg,
        _masking(masking, modalities, where),
        _train(train, where),
        raw,
    )


def _masking(section: dict, modalities: list[str], where) -> MaskingConfig:
    _known(section, ("input_tokens", "target_tokens", "mixture"), where, "masking")
    mixture = section.get("mixture")
    if not isinstance(mixture, list) or not mixture:
        raise ConfigError(f"{where}: masking.mixture must be a non-empty list of Dirichlet settings")
    components = []
    for i, c in enumerate(mixture):
        field = f"masking.mixture[{i}]"
        if not isinstance(c, dict):
            raise ConfigError(f"{where}: {field} must be a mapping with input_alpha and target_alpha")
        _known(c, ("name", "weight", "input_alpha", "target_alpha", "keep"), where, field)
        alphas = [_alphas(c.get(k), modalities, f"{field}.{k}", where) for k in ("input_alpha", "target_alpha")]
        components.append(
            MixtureComponent(
                str(c.get("name", f"component {i}")),
                *alphas,
                weight=_number(c.get("weight", 1.0), f"{field}.weight", where, 0, "fm.masking.weight"),
                keep=_keep(c.get("keep", {}), modalities, f"{field}.keep", where),
            )
        )
    if sum(c.weight for c in components) <= 0:
        raise ConfigError(f"{where}: masking.mixture: at least one weight must be positive")
    return MaskingConfig(
        _budget(section.get("input_tokens"), "masking.input_tokens", where, 0),
        _budget(section.get("target_tokens"), "masking.target_tokens", where, 1),
        tuple(components),
    )


def _budget(value, field: str, where, low: int) -> int | tuple[int, int]:
    """A token budget: an integer >= ``low``, or a range [a, b] with low <= a <= b."""
    if isinstance(value, list):
        if len(value) != 2:
            raise ConfigError(f"{where}: {field} must be an integer or a range [low, high], got {value!r}")
        a, b = (_int(v, field, where, low) for v in value)
        if a > b:
            raise ConfigError(f"{where}: {field} range [{a}, {b}] has low > high")
        return (a, b)
    return _int(value, field, where, low)


def _alphas(value, modalities: list[str], field: str, where) -> dict[str, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {m: _number(value, field, where, 0, "fm.masking.alpha") for m in modalities}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {field} must be a number or a mapping modality -> alpha")
    unknown = sorted(set(value) - set(modalities))
    if unknown:
        raise ConfigError(f"{where}: {field} names {unknown[0]!r}, not in data.modalities ({', '.join(modalities)})")
    return {m: _number(a, f"{field}.{m}", where, 0, "fm.masking.alpha") for m, a in value.items()}


def _keep(value, modalities: list[str], field: str, where) -> dict[str, str]:
    """``keep: {modality: scheme}``; that each modality is a sequence is checked by the Masker, which knows kinds."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {field} must map sequence modalities to {' | '.join(KEEP_SCHEMES)}")
    unknown = sorted(set(value) - set(modalities))
    if unknown:
        raise ConfigError(f"{where}: {field} names {unknown[0]!r}, not in data.modalities ({', '.join(modalities)})")
    for m, scheme in value.items():
        if scheme not in KEEP_SCHEMES:
            raise ConfigError(f"{where}: {field}.{m} is {scheme!r}, not one of {', '.join(KEEP_SCHEMES)}")
    return dict(value)


def _train(section: dict, where) -> TrainConfig:
    names = [f.name for f in fields(TrainConfig)]
    _known(section, names, where, "train")
    if "steps" not in section or "batch_size" not in section:
        raise ConfigError(f"{where}: train.steps and train.batch_size are required")
    values = dict(section)
    for name in ("steps", "batch_size"):
        values[name] = _int(values[name], f"train.{name}", where, 1)
    for name, low in (
        ("micro_batch_size", 0),
        ("warmup_steps", 0),
        ("seed", 0),
        ("num_workers", 0),
        ("checkpoint_every", 0),
        ("eval_every", 0),
        ("eval_samples", 1),
    ):
        if name in values:
            values[name] = _int(values[name], f"train.{name}", where, low)
    for name in ("lr", "weight_decay", "grad_clip"):
        if name in values:
            values[name] = _number(values[name], f"train.{name}", where, 0)
    if "init" in values and not (isinstance(values["init"], str) and values["init"].strip()):
        raise ConfigError(f"{where}: train.init must be the folder of an fm run")
    if "betas" in values:
        betas = values["betas"]
        if not (
            isinstance(betas, list)
            and len(betas) == 2
            and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)
        ):
            raise ConfigError(f"{where}: train.betas must be two numbers in [0, 1)")
        values["betas"] = (float(betas[0]), float(betas[1]))
    return TrainConfig(**values)


def _section(raw: dict, name: str, where) -> dict:
    value = raw.get(name)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: section {name!r} missing or not a mapping")
    return value


def _known(section: dict, names, where, what: str) -> None:
    unknown = sorted(set(map(str, section)) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r} in {what} (known: {', '.join(names)})")


def _int(value, field: str, where, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{where}: {field} must be an integer >= {low}, got {_short(value)}")
    return check_field(value, where, field, f"fm.{field}")


def _number(value, field: str, where, low: float, table_key: str | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
        raise ConfigError(f"{where}: {field} must be a number >= {low}, got {_short(value)}")
    return check_field(value, where, field, table_key or f"fm.{field}")


def _short(value) -> str:
    text = (
        f"<an integer of {value.bit_length()} bits>"
        if isinstance(value, int) and value.bit_length() > 256
        else repr(value)
    )
    return text[:60] + "..." if len(text) > 60 else text
