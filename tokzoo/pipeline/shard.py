"""One output shard: what OUT already holds for it, and this run's results for it, in input order.

Alignment rule (docs/ARCHITECTURE.md): a sample that fails in any modality is absent from every
folder and listed as failed in every table. When OUT already has complete modalities for the
shard, their stored crops are reused and their failed samples stay failed (not decoded again);
a sample that now fails in a new modality is dropped from the old folders too (the writer
rewrites those shards in the same commit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokzoo.errors import ConfigError
from tokzoo.tokens.layout import read_table, stats_path, table_path

from .encode import encode_batch
from .modalities import RunModality
from .state import check_done
from .worker import Prepared


@dataclass
class ShardState:
    """Shard ``index`` as found in OUT: complete modalities (``done``), their tables, the stored crops."""

    index: int
    done: list[str]
    tables: dict[str, list[dict]] = field(default_factory=dict)
    crops: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def read(cls, out: Path, index: int, in_out: list[str], requested: list[str]) -> "ShardState":
        done = [m for m in in_out if stats_path(out, m, index).is_file()]
        done, crops = check_done(out, index, done, requested)  # never trust a marker over a damaged shard
        missing = [m for m in in_out if m not in requested and m not in done]
        if missing:
            raise ConfigError(
                f"the input has a shard {index} that {out / missing[0]} lacks: the input changed since "
                f"{out} was written; pass --overwrite to start over"
            )
        state = cls(index, done)
        if done:
            state.tables = {m: read_table(table_path(out, m, index)) for m in done}
            state.crops = crops
        return state

    def todo(self, requested: list[str]) -> list[str]:
        return [m for m in requested if m not in self.done]

    def known_error(self, position: int, key: str) -> str | None:
        """The recorded failure of the sample at ``position``, checking it is still ``key``."""
        if not self.done:
            return None
        records = self.tables[self.done[0]]
        if position >= len(records) or records[position]["key"] != key:
            raise ConfigError(
                f"input sample {position} of shard {self.index} is {key!r}, but OUT has "
                f"{records[position]['key'] if position < len(records) else 'nothing'!r} there: the "
                "input changed since OUT was written; pass --overwrite to start over"
            )
        return records[position]["error"] if records[position]["status"] == "failed" else None

    def check_count(self, count: int) -> None:
        if self.done and count != len(self.tables[self.done[0]]):
            raise ConfigError(
                f"shard {self.index} of the input has {count} samples, OUT has "
                f"{len(self.tables[self.done[0]])}: the input changed since OUT was written; "
                "pass --overwrite to start over"
            )


class ShardBuilder:
    """Collects prepared samples of one shard in input order, encoding every ``batch_size`` ok ones."""

    def __init__(self, state: ShardState, specs: list[RunModality], batch_size: int):
        self.state, self.specs, self.batch_size = state, specs, batch_size
        self.samples: list[Prepared] = []
        self.tokens: dict[str, dict[str, np.ndarray]] = {spec.modality: {} for spec in specs}
        self._pending: list[Prepared] = []

    def add(self, prepared: list[Prepared]) -> None:
        for sample in prepared:
            self.samples.append(sample)
            if sample.error is None:
                self._pending.append(sample)
                if len(self._pending) == self.batch_size:
                    self._encode()

    def finish(self) -> "ShardBuilder":
        if self._pending:
            self._encode()
        return self

    def _encode(self) -> None:
        for spec in self.specs:
            for sample, result in zip(self._pending, encode_batch(spec, self._pending)):
                if isinstance(result, str):
                    sample.error = sample.error or result
                else:
                    self.tokens[spec.modality][sample.key] = result
        for sample in self._pending:
            sample.values = {}
        self._pending = []
