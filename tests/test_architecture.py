"""The package rules of docs/ARCHITECTURE.md ("Packages and their rules"), checked on the source with ast.

Imports inside functions count. Core = every module under tokzoo/ except the ml-4m port (tokzoo/fourm/) and the
plug-in wiring (tokzoo/plugins.py, and tokzoo/__init__.py which only calls it); cli/ may import plug-ins.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
WIRING = {"tokzoo/plugins.py", "tokzoo/__init__.py"}
LAYOUT_FILES = ("manifest.json", ".stats.json", ".samples.jsonl")
"""File names of the token dataset layout (tokzoo/tokens/layout.py)."""
OTHER_FORMATS = {"tokzoo/datasets/photos.py": "the photo cache's own manifest.json (a list of downloaded images)"}


def modules(folder: str = "tokzoo"):
    for path in sorted((ROOT / folder).rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text())


def imported(name: str, tree: ast.AST) -> set[str]:
    """Absolute names of the tokzoo modules (and imported members) that module ``name`` (a/b/c.py) imports."""
    parts = name.removesuffix(".py").split("/")
    package = parts[:-1]  # what a relative import starts from (for __init__.py: its own package)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]).rstrip(".")
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return {n for n in found if n == "tokzoo" or n.startswith("tokzoo.")}


def is_core(name: str) -> bool:
    return not name.startswith("tokzoo/fourm/") and name not in WIRING


def test_no_core_module_imports_the_ml4m_port_or_the_plugin_wiring():
    offenders = [
        f"{name} imports {target}"
        for name, tree in modules()
        if is_core(name)
        for target in sorted(imported(name, tree))
        if target.startswith(("tokzoo.fourm", "tokzoo.plugins"))
    ]
    assert offenders == [], offenders


def layout_paths(tree: ast.AST) -> list[str]:
    """String pieces naming a layout file where a path is built: ``x / "..."``, ``.glob("...")``, ``open("...")``."""

    def pieces(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        return (
            [v.value for v in getattr(node, "values", []) if isinstance(v, ast.Constant)]
            if isinstance(node, ast.JoinedStr)
            else []
        )

    places = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            places.append(node.right)
        elif isinstance(node, ast.Call):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func in ("glob", "rglob", "with_suffix", "with_name", "joinpath", "open", "Path", "join"):
                places += node.args
    return [text for place in places for text in pieces(place) if any(f in text for f in LAYOUT_FILES)]


def test_only_tokens_builds_paths_into_the_token_layout():
    offenders = [
        f"{name}: {texts}"
        for name, tree in [*modules(), *modules("cli")]
        if not name.startswith("tokzoo/tokens/") and name not in OTHER_FORMATS
        for texts in [layout_paths(tree)]
        if texts
    ]
    assert offenders == [], offenders
    # the check sees the ways such a path is written
    probe = ast.parse('a = out / "manifest.json"; b = d.glob("shard-*.stats.json"); c = s / f"{n}.samples.jsonl"')
    assert len(layout_paths(probe)) == 3


def package_graph() -> dict[str, set[str]]:
    """Package (or root-level module) -> the ones it imports; tokzoo/__init__.py is node ``tokzoo``."""
    units = {
        p.stem if p.is_file() else p.name
        for p in (ROOT / "tokzoo").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file() or p.is_dir()
    }
    graph: dict[str, set[str]] = {}
    for name, tree in modules():
        parts = name.removesuffix(".py").split("/")
        source = "tokzoo" if parts[1:] == ["__init__"] else parts[1]
        for target in imported(name, tree):
            unit = target.split(".")[1] if "." in target else None
            if unit in units and unit != source:
                graph.setdefault(source, set()).add(unit)
    return graph


def test_no_import_cycles_between_packages():
    graph = package_graph()

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            node = stack.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                stack += graph.get(node, ())
        return False

    cyclic = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if reaches(b, a))
    assert cyclic == [], f"edges on import cycles: {cyclic}"
