"""The recipes that ship with tokzoo, found by name: ``depth``, ``fm/scenes-cpu``, ``compose/gats``.

The repository's top-level ``recipes/`` folder installs as the data package ``tokzoo_recipes`` (setup.py);
in a source checkout it is read in place. Imports nothing heavy, so ``tokzoo recipes`` starts fast.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import ConfigError

COMMANDS = {
    "": "tokzoo train --recipe",
    "fm": "tokzoo fm train --recipe",
    "compose": "tokzoo compose train --recipe",
    "consensus": "tokzoo fm generate -m RUN --data DATA --key KEY --from rgb --to depth -o OUT.png --consensus",
}
"""Recipe folder -> the command that runs its recipes."""


def recipes_dir() -> Path | None:
    """The folder of shipped recipes: the installed ``tokzoo_recipes`` package, else a source checkout's
    ``recipes/`` beside ``tokzoo/``; None when neither exists."""
    spec = importlib.util.find_spec("tokzoo_recipes")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location).is_dir():
            return Path(location)
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "recipes").is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout / "recipes"
    return None


def recipe_names() -> list[str]:
    """Every shipped recipe's name (its path under the recipes folder without ``.yaml``), sorted."""
    root = recipes_dir()
    if root is None:
        return []
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


def describe(name: str) -> str:
    """The first comment line of recipe ``name`` (its summary), or ''."""
    for line in (recipes_dir() / f"{name}.yaml").read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            return ""
    return ""


def command_for(name: str) -> str:
    """The command line that runs shipped recipe ``name``."""
    folder = name.rpartition("/")[0]
    return f"{COMMANDS.get(folder, COMMANDS[''])} {name}"


def resolve_recipe(text: str | Path) -> Path:
    """A recipe file from ``--recipe``: an existing path, else a shipped recipe's name (``depth``,
    ``fm/scenes-cpu``; ``recipes/depth.yaml`` also finds the shipped one outside a checkout)."""
    path = Path(text)
    if path.is_file():
        return path
    name = path.as_posix().removeprefix("./").removeprefix("recipes/").removesuffix(".yaml")
    root = recipes_dir()
    if root is not None and name in recipe_names():
        return root / f"{name}.yaml"
    names = recipe_names()
    close = [n for n in names if n.rpartition("/")[2].startswith(name.rpartition("/")[2][:3])][:4]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(f"--recipe {text}: no such file, nor a shipped recipe{hint}; `tokzoo recipes` lists them")
