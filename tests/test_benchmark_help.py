"""Every benchmark script answers --help (its argument parser builds and its imports resolve)."""

import pytest
from benchmark_scripts import BENCHMARKS, load_benchmark

SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py") if "def main(" in p.read_text())


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_script_answers_help(name, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", [f"{name}.py", "--help"])
    with pytest.raises(SystemExit) as exit_:
        load_benchmark(name).main()
    assert exit_.value.code == 0
    assert "usage:" in capsys.readouterr().out
