"""Load a script of benchmarks/ as a module, so the tests run its toy modes and helpers."""

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """benchmarks/<name>.py as a fresh module (registered as ``tokzoo_benchmark_<name>``, replacing an earlier load,
    so that its dataclasses resolve their module)."""
    spec = importlib.util.spec_from_file_location(f"tokzoo_benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]  # no half-loaded module left behind
        raise
    return module
