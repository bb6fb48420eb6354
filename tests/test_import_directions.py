"""One-way imports between jobs, engines, labelers and trainers (issue 26), read from the source with ast, imports
inside functions included: a job is handed its engine and never imports one; labelers are labelers only; the
trainers' shared run pieces import no trainer."""

import ast
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent


def imported(folder: str, package: str) -> dict[str, set[str]]:
    """``{file: tokzoo modules it imports}`` for the modules under ``folder`` (the import package ``package``),
    relative imports resolved, imports inside functions included."""
    found = {}
    for path in sorted((REPOSITORY / folder).rglob("*.py")):
        here = [*package.split("."), *path.relative_to(REPOSITORY / folder).parent.parts]
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                names |= {module} | {f"{module}.{alias.name}" for alias in node.names}
        found[path.relative_to(REPOSITORY / folder).as_posix()] = {n for n in names if n.startswith("tokzoo")}
    return found


@pytest.mark.parametrize(
    "package,forbidden",
    [
        ("pipeline", ("tokzoo.scale",)),
        ("labelers", ("tokzoo.scale", "tokzoo.pipeline")),
        ("runs", ("tokzoo.fm", "tokzoo.compose", "tokzoo.tokenizers")),
    ],
)
def test_imports_run_one_way(package, forbidden):
    wrong = sorted(
        f"{module} imports {name}"
        for module, names in imported(f"tokzoo/{package}", f"tokzoo.{package}").items()
        for name in names
        if name.startswith(forbidden)
    )
    assert not wrong, wrong


def test_the_walker_sees_relative_imports_and_imports_inside_functions():
    """What the check reads: scale's relative imports, and the CLI choosing the engine inside its function."""
    assert {"tokzoo.scale.tokenize", "tokzoo.pipeline"} <= {
        n.rsplit(".", 1)[0]
        for n in imported("tokzoo/scale", "tokzoo.scale")["engine.py"]
        | imported("tokzoo/scale", "tokzoo.scale")["tokenize.py"]
    }
    assert {"tokzoo.scale.engine", "tokzoo.pipeline.engine"} <= imported("cli", "tokzoo_cli")["tokenize.py"]
