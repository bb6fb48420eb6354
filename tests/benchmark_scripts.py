"""Load a script of benchmarks/ as a module, so the tests run its toy modes and helpers."""

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """benchmarks/<name>.py as a fresh module (not added to sys.modules)."""
    spec = importlib.util.spec_from_file_location(f"tokzoo_benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
