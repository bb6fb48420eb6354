"""Hugging Face ``datasets`` as a reader: columns mapped to modalities.

Image and Audio columns are cast to ``decode=False`` so the stored bytes go through tokzoo's own
format readers (same checks, same values as files). Other columns are in-memory values: nested
lists / arrays for array modalities, dicts or JSON text for JSON modalities.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from tokzoo.errors import ConfigError
from tokzoo.io.formats import MODALITIES
from tokzoo.io.keys import key_from_stem, split_ext
from tokzoo.io.safety import MAX_FILE_BYTES, check_limit
from tokzoo.io.samples import SAMPLE_ERROR, FileRef, RawSample, Reader, check_modalities
from tokzoo.vocabulary import canonical


def is_hf_dataset(obj: object) -> bool:
    """True for ``datasets`` Dataset / IterableDataset / DatasetDict objects (without importing datasets)."""
    return type(obj).__module__.startswith("datasets.")


def _load(name: str, split: str | None, streaming: bool):
    import datasets

    path = Path(name)
    if path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()):
        return datasets.load_from_disk(name), name
    return datasets.load_dataset(name, split=split or "train", streaming=streaming), name


def _pick_split(ds, split: str | None, name: str):
    if not hasattr(ds, "keys"):  # a single split already
        return ds, split or str(getattr(ds, "split", None) or "train")
    splits = list(ds.keys())
    if split is None:
        if len(splits) != 1 and "train" not in splits:
            raise ConfigError(f"{name}: choose a split from {splits}")
        split = "train" if "train" in splits else splits[0]
    if split not in splits:
        raise ConfigError(f"{name}: no split {split!r}; available: {splits}")
    return ds[split], split


def _undecoded(ds, columns: Sequence[str]):
    import datasets

    for col in columns:
        feature = (ds.features or {}).get(col)
        if isinstance(feature, (datasets.Image, datasets.Audio)) and feature.decode:
            ds = ds.cast_column(col, type(feature)(decode=False))
    return ds


def _column(modality: str, names: list[str]) -> str:
    """The column holding ``modality``: its own name, else an old name of it (``instances``) the dataset has."""
    old = [name for name in names if canonical(name) == canonical(modality)]
    return old[0] if old else modality


class HFReader(Reader):
    """Rows of a ``datasets`` dataset as samples.

    ``dataset_or_name``: a Dataset / IterableDataset / DatasetDict, a ``save_to_disk`` folder, or a
    hub name / local data folder for ``load_dataset`` (an ``hf:`` prefix is stripped).
    ``columns`` maps modality -> column (default: columns named after modalities, or
    ``modalities``). Keys are ``<split>_<row index, 9 digits>``, or the ``key_column`` value made
    safe with :func:`~tokzoo.io.keys.key_from_stem`.
    """

    def __init__(
        self,
        dataset_or_name: object,
        columns: Mapping[str, str] | None = None,
        split: str | None = None,
        streaming: bool = False,
        key_column: str | None = None,
        modalities: Sequence[str] | None = None,
        max_member_bytes: int = MAX_FILE_BYTES,
    ):
        self.max_bytes = check_limit(max_member_bytes, "max_member_bytes")
        if is_hf_dataset(dataset_or_name):
            info = getattr(dataset_or_name, "info", None)
            ds, self.name = dataset_or_name, (info and info.dataset_name) or "dataset"
        else:
            name = str(dataset_or_name).removeprefix("hf:")
            ds, self.name = _load(name, split, streaming)
        ds, self.split = _pick_split(ds, split, self.name)
        names = list(ds.column_names or [])
        if columns is None:
            wanted = modalities if modalities is not None else [c for c in names if canonical(c) in MODALITIES]
            columns = {m: m if m in names or not names else _column(m, names) for m in wanted}
        self.columns = {canonical(m): c for m, c in columns.items()}  # modality (its canonical name) -> column
        self.modalities = check_modalities(list(self.columns), self.name)
        missing = [c for c in [*self.columns.values(), key_column] if c is not None and names and c not in names]
        if missing:
            raise ConfigError(f"{self.name}: no column(s) {missing}; columns are {names}")
        self.key_column = key_column
        self.dataset = _undecoded(ds, list(self.columns.values()))
        self._rows: dict[str, int] = {}

    def _key(self, index: int, row: dict) -> str:
        if self.key_column is not None:
            return key_from_stem(str(row[self.key_column]))
        return f"{re.sub(r'[^A-Za-z0-9_-]', '_', self.split)}_{index:09d}"

    def source_of(self, key: str) -> str:
        """``hf:<name>[<split>][<row>]`` for keys met so far."""
        return f"hf:{self.name}[{self.split}][{self._rows[key]}]"

    def raw(self) -> Iterator[RawSample]:
        self._rows = {}
        for index, row in enumerate(self.dataset):
            key, where = self._key(index, row), f"hf:{self.name}[{self.split}][{index}]"
            errors = {}
            if key in self._rows:
                errors[SAMPLE_ERROR] = f"{where}: duplicate key {key!r} (also row {self._rows[key]})"
            else:
                self._rows[key] = index
            files = {
                m: _ref(f"{where}.{col}", row[col], self.max_bytes)
                for m, col in self.columns.items()
                if row[col] is not None
            }
            errors.update(
                {m: f"{where}.{col}: missing (empty cell)" for m, col in self.columns.items() if row[col] is None}
            )
            yield RawSample(key, files, errors)


def _ref(source: str, value: object, max_bytes: int) -> FileRef:
    encoded = isinstance(value, dict) and set(value) <= {"bytes", "path"}  # Image / Audio with decode=False
    if encoded:
        ext = split_ext(value.get("path") or "")[1]
        if value.get("bytes") is not None:
            return FileRef(source, ext, data=value["bytes"])
        if value.get("path"):
            return FileRef(value["path"], ext, path=value["path"], max_bytes=max_bytes)
    return FileRef(source, value=value)
