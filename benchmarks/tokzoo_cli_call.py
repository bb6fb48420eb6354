"""Run a ``tokzoo`` command in process, as the benchmarks that build their own data do."""

from __future__ import annotations


def cli(*args) -> str:
    """``tokzoo ARGS...`` through click's runner; its output, or SystemExit naming the command and its last output."""
    from click.testing import CliRunner

    from tokzoo_cli.main import cli as main

    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exit_code:
        raise SystemExit(f"tokzoo {' '.join(map(str, args[:2]))} failed: {result.output.strip()[-800:]}")
    return result.output
