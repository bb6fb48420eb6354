"""What readers yield (raw samples, decoded samples) and the reader base class.

Readers only list and read bytes (cheap, one process); :func:`decode_sample` turns a
:class:`RawSample` into a :class:`Sample` and is picklable-friendly, so a pipeline can read in one
place and decode in worker processes. Decoding never raises for bad data: the typed error's
message lands in ``Sample.errors[modality]`` and the other modalities still decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from tokzoo.errors import ConfigError, InputError
from tokzoo.io.formats import MODALITIES, from_value, read_modality
from tokzoo.io.safety import MAX_FILE_BYTES, read_file
from tokzoo.vocabulary import canonical

SAMPLE_ERROR = "sample"
"""``errors`` key for problems that belong to no single modality (unreadable shard, duplicate key)."""


@dataclass(frozen=True)
class FileRef:
    """One modality of one sample, not yet decoded: exactly one of ``data``, ``path``, ``value`` is set.

    ``source`` names it in errors (a path, ``shard.tar:member`` or ``hf:name[split][i].column``);
    ``ext`` is its extension (``""`` = sniff from the bytes); a ``path`` is read only if it is a regular file of
    at most ``max_bytes``.
    """

    source: str
    ext: str = ""
    data: bytes | None = None
    path: str | None = None
    value: object = None
    max_bytes: int = MAX_FILE_BYTES

    def read_bytes(self) -> bytes:
        """The file's bytes (``data``, or ``path`` read with :func:`~tokzoo.io.safety.read_file` and ``max_bytes``)."""
        return self.data if self.data is not None else read_file(self.path, self.max_bytes)


@dataclass
class RawSample:
    key: str
    files: dict[str, FileRef]
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class Sample:
    """Decoded values (contract of docs/ARCHITECTURE.md), their sources, and per-modality error messages."""

    key: str
    values: dict[str, object]
    sources: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def check_modalities(modalities: Sequence[str], where: str) -> tuple[str, ...]:
    """Raise ConfigError for names that are not modalities; returns their canonical names (tokzoo.vocabulary)."""
    modalities = [canonical(m) for m in modalities]
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise ConfigError(f"{where}: unknown modalities {unknown}; known: {', '.join(MODALITIES)}")
    return tuple(modalities)


def decode_file(modality: str, ref: FileRef, **options) -> object:
    """Decode one :class:`FileRef`; raises the typed error on bad data."""
    if ref.data is not None:
        return read_modality(modality, ref.source, ref.data, ref.ext, **options)
    if ref.path is not None:
        return read_modality(modality, ref.path, ref.read_bytes(), ref.ext or Path(ref.path).suffix, **options)
    return from_value(modality, ref.value, ref.source, **options)


def decode_sample(raw: RawSample, options: dict[str, dict] | None = None) -> Sample:
    """Decode every file of ``raw``; ``options[modality]`` are keyword options for that modality's reader."""
    options = options or {}
    values, errors = {}, dict(raw.errors)
    for modality, ref in raw.files.items():
        try:
            values[modality] = decode_file(modality, ref, **options.get(modality, {}))
        except InputError as exc:
            errors[modality] = str(exc)
    sources = {m: ref.source for m, ref in raw.files.items()}
    return Sample(raw.key, values, sources, errors)


class Reader:
    """Base of all readers: subclasses implement :meth:`raw` and :meth:`source_of`."""

    modalities: tuple[str, ...] = ()

    def raw(self) -> Iterator[RawSample]:
        raise NotImplementedError

    def source_of(self, key: str) -> str:
        """Where ``key`` came from (a path, pattern or dataset row), for messages and audits."""
        raise NotImplementedError

    def samples(self, options: dict[str, dict] | None = None) -> Iterator[Sample]:
        """Decoded samples, decoding in this process; ``options`` as in :func:`decode_sample`."""
        for raw in self.raw():
            yield decode_sample(raw, options)

    def __iter__(self) -> Iterator[Sample]:
        return self.samples()
