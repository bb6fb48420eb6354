"""Ship a trained tokenizer as a zoo entry: copy RUN/tokenizer into tokzoo/tokenizers/weights/NAME and record where it fails.

    python scripts/ship_weights.py runs/rgb rgb --known-failure "64 x 64 inputs: ..." [--known-failure ...]

The config keeps its training provenance and held-out evaluation (``tokzoo train --eval``); the measured failures go
to ``provenance.coverage.known_failures``, which ``tokzoo zoo info NAME`` prints. The zoo index is rebuilt when the
project has one (tokzoo/tokenizers/zoo_index.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="run directory of `tokzoo train` (holds tokenizer/)")
    parser.add_argument("name", help="zoo name")
    parser.add_argument("--known-failure", action="append", default=[], help="a measured failure, in words")
    args = parser.parse_args()
    source, target = args.run / "tokenizer", ROOT / "tokzoo" / "tokenizers" / "weights" / args.name
    config = json.loads((source / "config.json").read_text())
    if config.get("name") != args.name:
        sys.exit(f"error: {source}: tokenizer is named {config.get('name')!r}, not {args.name!r}")
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "model.safetensors", target / "model.safetensors")
    config.setdefault("provenance", {})["coverage"] = {"known_failures": args.known_failure}
    (target / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    subprocess.run([sys.executable, "-m", "tokzoo.tokenizers.zoo_index"], cwd=ROOT, check=True)
    print(f"shipped {source} as {target}")


if __name__ == "__main__":
    main()
