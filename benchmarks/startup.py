"""Start-up time of commands that need no model: ``tokzoo --help``, ``zoo list``, ``recipes`` (goal: < 1.5 s).

Runs each command as a fresh process ``--repeats`` times (default 5) and prints the median wall time beside the
machine's load average; ``--record`` appends the table to benchmarks/RESULTS.md ("CLI start-up").

    python benchmarks/startup.py --record
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import append_to_section  # noqa: E402

COMMANDS = (["--help"], ["zoo", "list"], ["recipes"], ["fm", "train", "--help"])


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--record", action="store_true", help="Append the table to benchmarks/RESULTS.md.")
    args = parser.parse_args()
    tokzoo = shutil.which("tokzoo") or str(Path(sys.executable).with_name("tokzoo"))
    load_before = os.getloadavg()
    rows = []
    for command in COMMANDS:
        times = [timed([tokzoo, *command]) for _ in range(args.repeats)]
        rows.append((" ".join(command), statistics.median(times), min(times), max(times)))
    load_after = os.getloadavg()
    lines = [
        f"### {date.today()} — {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load_before[0]:.1f} before / {load_after[0]:.1f} after (1 min)",
        "",
        f"Fresh process per run, median of {args.repeats} (min - max); goal < 1.5 s.",
        "",
        "| command | median s | min - max s |",
        "|---|---|---|",
    ]
    lines += [f"| `tokzoo {name}` | {median:.2f} | {low:.2f} - {high:.2f} |" for name, median, low, high in rows]
    text = "\n".join(lines)
    print(text)
    if args.record:
        append_to_section(Path(__file__).with_name("RESULTS.md"), "## CLI start-up", text)


if __name__ == "__main__":
    main()
