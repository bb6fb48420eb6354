"""The consensus loop's recipe: rounds, proposals per round, sampling, scorers and their weights.

.. code-block:: yaml

    consensus:
      target: depth           # the generated modality (the scorers judge depth)
      sources: [rgb]          # what the generator and the fm scorers are given
      rounds: 4               # generator calls per scene = rounds x proposals
      proposals: 2
      temperature: 1.0
      top_p: 1.0
      seed: 0
      hfov_degrees: 60        # the pinhole camera the geometric scorers assume
      scorers:                # name: weight, or name: {weight: W, path: DIR} (depth_net: a trained DepthNet folder)
        normals: 1.0
        planarity: 1.0
        depth_net: {weight: 1.0, path: depthnets/unet}   # relative to the recipe's folder
        depth_net.coarse: {weight: 1.0, path: depthnets/coarse}   # more networks: depth_net.<label>

Every problem is a one-line ConfigError ``<file>: consensus.<field>: <reason>``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from tokzoo.errors import ConfigError
from tokzoo.io.safety import read_yaml_file

from .scorers import SCORERS, scorer_kind

FIELDS = ("target", "sources", "rounds", "proposals", "temperature", "top_p", "seed", "hfov_degrees", "scorers")
MAX_CALLS = 1024  # generator calls per scene


@dataclass(frozen=True)
class ConsensusRecipe:
    scorers: tuple[tuple[str, float], ...] = (("normals", 1.0), ("planarity", 1.0))  # (name, weight)
    rounds: int = 4
    proposals: int = 2
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    hfov_degrees: float = 60.0
    target: str = "depth"
    sources: tuple[str, ...] = ("rgb",)
    networks: tuple[tuple[str, str], ...] = ()  # (depth-network scorer name, its folder)
    where: str = "consensus"  # the recipe's file, for messages

    @property
    def calls(self) -> int:
        """Generator calls (proposals) per scene."""
        return self.rounds * self.proposals

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.scorers]

    @property
    def weights(self) -> list[float]:
        return [w for _, w in self.scorers]

    def with_scorers(self, scorers: dict[str, float]) -> "ConsensusRecipe":
        return replace(self, scorers=tuple(scorers.items()))


def _error(where, name: str, reason: str) -> ConfigError:
    return ConfigError(f"{where}: consensus.{name}: {reason}")


def _int(raw: dict, name: str, default: int, low: int, high: int, where) -> int:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _error(where, name, f"must be an integer in [{low}, {high}], got {value!r}")
    return value


def _float(raw: dict, name: str, default: float, low: float, high: float, where, low_open: bool = False) -> float:
    value = raw.get(name, default)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (low < value if low_open else low <= value) or value > high:
        raise _error(where, name, f"must be a number in {'(' if low_open else '['}{low}, {high}], got {value!r}")
    return float(value)


def parse_recipe(raw, where: str = "consensus", base: Path | None = None) -> ConsensusRecipe:
    """A :class:`ConsensusRecipe` from the ``consensus:`` mapping of a recipe document (or the mapping itself)."""
    if isinstance(raw, dict) and set(raw) == {"consensus"}:
        raw = raw["consensus"]
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: needs a 'consensus:' mapping (rounds, proposals, scorers, ...)")
    unknown = sorted(set(map(str, raw)) - set(FIELDS))
    if unknown:
        raise _error(where, unknown[0], f"unknown field (known: {', '.join(FIELDS)})")
    target = raw.get("target", "depth")
    if target != "depth":
        raise _error(where, "target", f"the scorers judge depth only, got {target!r}")
    sources = raw.get("sources", ["rgb"])
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) and s for s in sources):
        raise _error(where, "sources", f"must be a non-empty list of modality names, got {sources!r}")
    if target in sources:
        raise _error(where, "sources", f"{target!r} is the target; a modality is either given or generated")
    rounds = _int(raw, "rounds", 4, 1, MAX_CALLS, where)
    proposals = _int(raw, "proposals", 2, 1, MAX_CALLS, where)
    if rounds * proposals > MAX_CALLS:
        raise _error(
            where, "rounds", f"rounds x proposals = {rounds * proposals} generator calls per scene, over {MAX_CALLS}"
        )
    scorers, networks = _scorers(raw.get("scorers"), where, base)
    return ConsensusRecipe(
        scorers,
        rounds,
        proposals,
        _float(raw, "temperature", 1.0, 0.0, 100.0, where),
        _float(raw, "top_p", 1.0, 0.0, 1.0, where, low_open=True),
        _int(raw, "seed", 0, 0, 2**32 - 1, where),
        _float(raw, "hfov_degrees", 60.0, 0.0, 179.0, where, low_open=True),
        target,
        tuple(sources),
        networks,
        str(where),
    )


def _scorers(raw, where, base: Path | None) -> tuple[tuple[tuple[str, float], ...], tuple[tuple[str, str], ...]]:
    if not isinstance(raw, dict) or not raw:
        raise _error(where, "scorers", f"must map scorer names ({', '.join(SCORERS)}) to weights, got {raw!r}")
    out, networks = [], []
    for name, spec in raw.items():
        name = str(name)
        kind, _, label = name.partition(".")
        if kind not in SCORERS or (name != kind and (kind != "depth_net" or not label.isidentifier())):
            raise _error(where, f"scorers.{name}", f"unknown scorer (known: {', '.join(SCORERS)}, depth_net.<label>)")
        spec = {"weight": spec} if not isinstance(spec, dict) else spec
        extra = sorted(set(map(str, spec)) - {"weight", "path"})
        if extra:
            raise _error(where, f"scorers.{name}.{extra[0]}", "unknown field (known: weight, path)")
        weight = _float(spec, "weight", 1.0, 0.0, 1e6, where)
        out.append((name, weight))
        if scorer_kind(name) == "depth_net":
            path = spec.get("path")
            if not isinstance(path, str) or not path:
                raise _error(where, f"scorers.{name}.path", "give the folder of a trained depth network")
            networks.append(
                (name, str(Path(base, path) if base is not None and not Path(path).is_absolute() else Path(path)))
            )
        elif "path" in spec:
            raise _error(where, f"scorers.{name}.path", "only depth networks (depth_net, depth_net.<label>) read one")
    if not sum(w for _, w in out) > 0:
        raise _error(where, "scorers", "at least one weight must be positive")
    return tuple(out), tuple(networks)


def read_recipe(path: str | Path) -> ConsensusRecipe:
    """The recipe at ``path`` (YAML through tokzoo's guarded reader); relative network paths from its folder."""
    path = Path(path)
    return parse_recipe(read_yaml_file(path), str(path), path.parent)
