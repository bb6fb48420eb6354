"""Write what tokzoo's writers produce on the demo data and list a sha256 per file.

Run it on two checkouts (e.g. before and after a restructure) and compare the listings; only the CLI is
used, so it runs against any layout of the package::

    PYTHONPATH=<checkout> python scripts/byte_identity.py OUT > before.txt
    diff before.txt after.txt     # empty when shards, checkpoints, sites and exports are byte-identical

Covered: the demo (token shards, manifest, report PNG, browser site), pseudo-label shards, a tokenizer
training run (checkpoints + tokenizer), an fm training run (run folder), a composition run (LM), an ml-4m
export. Lines of logs that carry wall-clock times (log.jsonl, provenance timings) are left out, by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

VOLATILE = {"log.jsonl"}  # per-step wall-clock seconds
VOLATILE_KEYS = {"seconds", "elapsed_s", "wall_s", "started", "finished", "created", "time", "rate", "duration_s"}


def tokzoo(*args: str) -> None:
    command = [sys.executable, "-c", "from tokzoo_cli.main import main; main()", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"tokzoo {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


def write_everything(out: Path) -> None:
    tokzoo("demo", "--out", str(out / "demo"), "--scenes", "8", "--no-progress")
    tokzoo("scenes", "-o", str(out / "scenes"), "--count", "4", "--size", "64")
    tokzoo("pseudo-label", "-m", "edges,palette,metadata", "-i", str(out / "scenes"), "-o",
           str(out / "labelled"), "--no-progress")
    tokzoo("train", "--recipe", "depth", "--steps", "2", "--threads", "1", "-o", str(out / "tokenizer-run"),
           "--no-progress")
    tokens = out / "fm-tokens"
    tokzoo("tokenize", "-m", "rgb,depth,normals,semseg", "--scenes", "8", "--scene-size", "64", "--no-progress", "-o", str(tokens))
    tokzoo("fm", "train", "--recipe", "fm/scenes-cpu", "--data", str(tokens), "--out", str(out / "fm-run"),
           "--steps", "2", "--threads", "1", "--no-progress")
    tokzoo("export", "--to", "4m", str(tokens), str(out / "export"))
    tokzoo("browse", str(tokens), "-o", str(out / "site"))


def stable_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".json":
        try:
            value = json.loads(data)
        except ValueError:
            return data
        return json.dumps(drop_volatile(value), sort_keys=True).encode()
    return data


def drop_volatile(value):
    if isinstance(value, dict):
        return {k: drop_volatile(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [drop_volatile(v) for v in value]
    return value


def main() -> None:
    out = Path(sys.argv[1])
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out}: give an empty or new folder")
    write_everything(out)
    for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name not in VOLATILE):
        print(hashlib.sha256(stable_bytes(path)).hexdigest()[:16], path.relative_to(out))


if __name__ == "__main__":
    main()
