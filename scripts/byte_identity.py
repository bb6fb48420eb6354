"""Write what tokzoo's writers produce on the demo data and list a sha256 per file.

Run it on two checkouts (e.g. before and after a restructure) and compare the listings; only the CLI is
used, so it runs against any layout of the package::

    PYTHONPATH=<checkout> python scripts/byte_identity.py OUT > before.txt
    diff before.txt after.txt     # empty when shards, checkpoints, sites and exports are byte-identical

Covered: the demo (token shards, manifest, report PNG, browser site), pseudo-label shards, a tokenizer
training run (checkpoints + tokenizer), an fm training run, a composition LM run, an ml-4m export, a site of
the fm tokens. Logs that carry wall-clock times (log.jsonl) and JSON fields named as timings are left out;
OUT's own path and the site's redraw fingerprints (hashes of input paths and file times) are masked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

VOLATILE = {"log.jsonl"}  # per-step wall-clock seconds
VOLATILE_KEYS = {
    "seconds",
    "elapsed_s",
    "wall_s",
    "started",
    "finished",
    "created",
    "time",
    "rate",
    "duration_s",
    "step_ms",
    "step_cpu_ms",
}


def tokzoo(*args: str, quiet: bool = False) -> bool:
    command = [sys.executable, "-c", "from tokzoo_cli.main import main; main()", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode and quiet:
        return False
    if result.returncode:
        raise SystemExit(f"tokzoo {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return True


def write_everything(out: Path) -> None:
    tokzoo("demo", "--out", str(out / "demo"), "--scenes", "8", "--no-progress")
    tokzoo("scenes", "-o", str(out / "scenes"), "--count", "4", "--size", "64")
    tokzoo(
        "pseudo-label",
        "-m",
        "edges,palette,metadata",
        "-i",
        str(out / "scenes"),
        "-o",
        str(out / "labelled"),
        "--no-progress",
    )
    tokzoo(
        "train",
        "--recipe",
        "depth",
        "--steps",
        "2",
        "--threads",
        "1",
        "-o",
        str(out / "tokenizer-run"),
        "--no-progress",
    )
    tokens = out / "fm-tokens"
    tokzoo(
        "tokenize",
        "-m",
        "rgb,depth,normals,semseg",
        "--scenes",
        "8",
        "--scene-size",
        "64",
        "--no-progress",
        "-o",
        str(tokens),
    )
    tokzoo(
        "fm",
        "train",
        "--recipe",
        "fm/scenes-cpu",
        "--data",
        str(tokens),
        "--out",
        str(out / "fm-run"),
        "--steps",
        "2",
        "--threads",
        "1",
        "--no-progress",
    )
    compose_lm(out)
    tokzoo("export", "--to", "4m", str(tokens), str(out / "export"))
    tokzoo("browse", str(tokens), "-o", str(out / "site"))


def compose_lm(out: Path) -> None:
    """A 2-step run of the composition's language model (shrunk), by `compose train` or, before it, `fm train`."""
    recipe = yaml.safe_load((ROOT / "recipes" / "compose" / "text_lm.yaml").read_text())
    recipe.update(batch_size=4, data={"scene_text": {"n_train": 6, "n_val": 3, "size": 32}})
    recipe["compose"]["pretrain_lm"].update(vocab_size=300, hidden_size=32, layers=2)
    (out / "text_lm.yaml").write_text(yaml.safe_dump(recipe))
    args = (
        "--recipe",
        str(out / "text_lm.yaml"),
        "--out",
        str(out / "compose-lm"),
        "--steps",
        "2",
        "--threads",
        "1",
        "--no-progress",
    )
    if not tokzoo("compose", "train", *args, quiet=True):
        tokzoo("fm", "train", *args)


def stable_bytes(path: Path, out: Path) -> bytes:
    """The file's bytes with OUT's absolute path written as <OUT> and wall-clock fields of JSON files dropped."""
    data = path.read_bytes().replace(str(out.resolve()).encode(), b"<OUT>")
    if path.suffix == ".js":  # the site's redraw fingerprints hash input paths and file times
        data = re.sub(rb'"fingerprints":\{[^}]*\}|"listing":"[0-9a-f]+"', b"<FINGERPRINT>", data)
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
        print(hashlib.sha256(stable_bytes(path, out)).hexdigest()[:16], path.relative_to(out))


if __name__ == "__main__":
    main()
