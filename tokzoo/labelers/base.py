"""The labeler interface and the registry of labelers by name.

A labeler turns a batch of samples into one modality's raw values (the in-memory contract of
docs/ARCHITECTURE.md). ``label(batch)`` takes a dict modality -> list of B values (``rgb`` uint8
(H, W, 3), ``depth`` float32 (H, W), ``camera`` dict, ...), holding every modality in ``needs`` and
any of ``optional`` it has (a list entry may be None where one sample lacks it), and returns a list
of B values of ``modality``. Images of one batch may differ in size.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import ClassVar

from tokzoo.errors import ConfigError, InvalidValueError

LABELERS: dict[str, type["Labeler"]] = {}
"""Registry: labeler name -> class."""


class _Defaults(Mapping):
    """Modality -> the name of the labeler declaring itself its ``default``, read from :data:`LABELERS` when asked."""

    def __getitem__(self, modality: str) -> str:
        for name, cls in LABELERS.items():
            if cls.default and cls.modality == modality:
                return name
        raise KeyError(modality)

    def __iter__(self):
        return (cls.modality for cls in LABELERS.values() if cls.default)

    def __len__(self) -> int:
        return sum(1 for _ in self)


DEFAULTS: Mapping[str, str] = _Defaults()
"""Modality -> the labeler ``tokzoo pseudo-label`` uses unless told otherwise (``Labeler.default``)."""


def register_labeler(cls: type["Labeler"]) -> type["Labeler"]:
    """Class decorator adding ``cls`` to :data:`LABELERS` under ``cls.name``."""
    if cls.name in LABELERS:
        raise ValueError(f"labeler {cls.name!r} registered twice")
    if cls.default and cls.modality in DEFAULTS:
        raise ValueError(
            f"labelers {DEFAULTS[cls.modality]!r} and {cls.name!r} are both the default for {cls.modality}"
        )
    LABELERS[cls.name] = cls
    return cls


class Labeler:
    """Base of all labelers. Subclasses set the class attributes and implement :meth:`_label`."""

    name: ClassVar[str]
    modality: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ("rgb",)
    optional: ClassVar[tuple[str, ...]] = ()
    model_backed: ClassVar[bool] = False
    default: ClassVar[bool] = False
    """True for the one labeler ``tokzoo pseudo-label`` uses for ``modality`` unless told otherwise; classical ones
    only, so nothing is downloaded unasked."""
    zoo_tokenizer: ClassVar[str | None] = None  # zoo tokenizer for the output; None: the one named after ``modality``

    def __init__(self, device: str = "cpu", batch_size: int = 8):
        if batch_size < 1:
            raise ConfigError(f"labeler {self.name}: batch_size must be >= 1, got {batch_size}")
        self.device = str(device)
        self.batch_size = int(batch_size)

    def label(self, batch: Mapping[str, Sequence]) -> list:
        """``batch[m]``: list of B values per needed modality -> list of B values of ``self.modality``.

        Runs in chunks of ``batch_size``. Raises InvalidValueError when a needed modality is missing.
        """
        missing = [m for m in self.needs if m not in batch]
        if missing:
            raise InvalidValueError(self.name, f"needs {', '.join(missing)} (have {', '.join(batch) or 'nothing'})")
        sizes = {len(batch[m]) for m in self.needs}
        if len(sizes) != 1:
            raise InvalidValueError(self.name, f"inputs differ in batch size: {sorted(sizes)}")
        (n,) = sizes
        inputs = {m: list(batch[m]) for m in (*self.needs, *self.optional) if m in batch}
        out: list = []
        for start in range(0, n, self.batch_size):
            chunk = {m: values[start : start + self.batch_size] for m, values in inputs.items()}
            out += self._label(chunk)
        return out

    def _label(self, chunk: dict[str, list]) -> list:
        raise NotImplementedError

    def describe(self) -> str:
        """One line: name, modality and inputs, for tables and logs."""
        return f"{self.name} -> {self.modality} (from {', '.join(self.needs)})"


INTERNAL_PARAMETERS = {"device", "batch_size", "reference"}
"""Constructor parameters tokzoo sets itself; other parameters with defaults are user options."""


def labeler_options(cls: type[Labeler]) -> list[str]:
    """Names of the keyword options ``cls`` takes: the parameters with defaults of its ``__init__`` and
    ``from_pretrained`` (base classes included), except :data:`INTERNAL_PARAMETERS`."""
    names = []
    for klass in cls.__mro__:
        for method in ("__init__", "from_pretrained"):
            function = getattr(klass.__dict__.get(method), "__func__", klass.__dict__.get(method))
            if function is None:
                continue
            for parameter in inspect.signature(function).parameters.values():
                if (
                    parameter.default is not parameter.empty
                    and parameter.name not in INTERNAL_PARAMETERS
                    and parameter.name not in names
                ):
                    names.append(parameter.name)
    return names


def create_labeler(spec: str, device: str = "cpu", batch_size: int = 8, **kwargs) -> Labeler:
    """A labeler from ``spec``: a registry name, or ``name:path_or_hub_id`` for a model-backed one;
    ``kwargs`` are the labeler's options (:func:`labeler_options`).

    Raises ConfigError (one line) for unknown names, unknown options, or a path given to a labeler
    without weights.
    """
    name, _, where = spec.partition(":")
    if name not in LABELERS:
        raise ConfigError(f"unknown labeler {name!r}; known: {', '.join(sorted(LABELERS))}")
    cls = LABELERS[name]
    if not hasattr(cls, "from_spec"):
        known = labeler_options(cls)
        unknown = [k for k in kwargs if k not in known]
        if unknown:
            raise ConfigError(
                f"labeler {name!r} has no option {unknown[0]!r}; its options: {', '.join(known) or 'none'}"
            )
    if hasattr(cls, "from_spec"):  # built from other labelers' specs (consensus)
        return cls.from_spec(where, device=device, batch_size=batch_size, **kwargs)
    if cls.model_backed:
        return cls.from_pretrained(where or cls.default_checkpoint, device=device, batch_size=batch_size, **kwargs)
    if where:
        raise ConfigError(f"labeler {name!r} has no weights; drop ':{where}'")
    return cls(device=device, batch_size=batch_size, **kwargs)
