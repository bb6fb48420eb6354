"""Every benchmark script answers --help (its argument parser builds and its imports resolve)."""

import sys
from pathlib import Path

import pytest
from benchmark_scripts import BENCHMARKS, load_benchmark

SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py") if "def main(" in p.read_text())


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_script_answers_help(name, monkeypatch, capsys):
    # as `python benchmarks/<name>.py` runs it: its folder first on the path, no sibling module imported yet
    monkeypatch.setattr(sys, "path", [str(BENCHMARKS), *(p for p in sys.path if p and Path(p).resolve() != BENCHMARKS)])
    for sibling in BENCHMARKS.glob("*.py"):
        monkeypatch.delitem(sys.modules, sibling.stem, raising=False)
    monkeypatch.setattr("sys.argv", [f"{name}.py", "--help"])
    with pytest.raises(SystemExit) as exit_:
        load_benchmark(name).main()
    assert exit_.value.code == 0
    assert "usage:" in capsys.readouterr().out
