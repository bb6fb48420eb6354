"""Ray engine vs local engine: `tokzoo tokenize` throughput on the same cores and samples, and model loads per actor.

Input: webdataset tars of depth maps (``pipeline_throughput.write_input``: 100 procedural scenes cycled under unique
keys), one centre crop, batch 64. Default the 4M-like size (256 px sources, 224 px crops, conv-small, 196 tokens);
``--tiny``: 40 px sources, 32 px crops, conv-tiny, where the engine's own per-shard cost shows.

- local: ``--engine local --workers 1`` (one decode process, the main process encodes), in a fresh process;
- ray: ``--engine ray`` on a Ray started in a fresh process with ``num_cpus`` = this machine's cores (dashboard
  off, small object store): one encoder actor (1 CPU reserved, torch threads = cores) and decode tasks on the CPU
  left. The timed call includes creating the actor and loading its model; starting Ray itself is not timed (on a
  cluster it is already running).

Runs alternate local, ray, local, ray; ratio = mean ray rate / mean local rate. Outputs are checked to be the same
bytes. Usage: ``python benchmarks/ray_throughput.py [--tiny] [--samples N] [--append]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_throughput import BATCH, DEFAULT, TINY, append_section, write_input  # noqa: E402

CHILD = (
    """
import json, sys, time
from pathlib import Path
src, out, tok, engine, cpus = sys.argv[1:6]
if engine == "ray":
    import ray
    ray.init(num_cpus=int(cpus), include_dashboard=False, object_store_memory=300 * 2**20, log_to_driver=False)
from tokzoo.pipeline import TokenizeJob, tokenize
from tokzoo.pipeline.engine import LocalEngine
chosen = LocalEngine()
if engine == "ray":
    from tokzoo.scale.engine import RayEngine
    chosen = RayEngine()
start = time.perf_counter()
summary = tokenize(TokenizeJob(modalities=["depth"], output=Path(out), input=src, tokenizers={"depth": tok},
                               batch_size=%d, workers=1, samples_per_shard=1000, progress=False), chosen)
print(json.dumps({"ok": summary.ok, "seconds": time.perf_counter() - start, "nodes": summary.nodes,
                  "shards": summary.written}))
"""
    % BATCH
)


def run(src: str, tok_dir: Path, engine: str, out: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, src, str(out), str(tok_dir), engine, str(os.cpu_count())],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def same_bytes(a: Path, b: Path) -> bool:
    def files(root):
        out = {}
        for p in sorted(root.rglob("*")):
            if p.is_file():
                data = p.read_bytes().replace(str(root).encode(), b"OUT")
                if p.name.endswith(".stats.json"):
                    data = json.dumps({k: v for k, v in json.loads(data).items() if k != "seconds"}).encode()
                out[p.relative_to(root).as_posix()] = data
        return out

    return files(a) == files(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="conv-tiny at 32 px: the engine's own cost")
    parser.add_argument("--samples", type=int, default=2000, help="samples per run (default 2,000)")
    parser.add_argument("--per-tar", type=int, default=250, help="samples per input tar = per shard (default 250)")
    parser.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    size = TINY if args.tiny else DEFAULT

    from tokzoo.tokenizers.learned import LearnedTokenizer

    tok = LearnedTokenizer.from_defaults(
        "depth", model={"preset": size["preset"]}, input_size=[size["size"], size["size"]]
    )
    runs = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tok_dir = tok.save_pretrained(tmp / "tok")
        src = write_input(tmp / "in", args.samples, size["source"], per_tar=args.per_tar)
        for attempt in range(2):
            for engine in ("local", "ray"):
                runs[engine].append(run(src, tok_dir, engine, tmp / f"{engine}-{attempt}"))
                r = runs[engine][-1]
                print(f"{engine}: {r['ok'] / r['seconds']:.1f} samples/s ({r['seconds']:.1f} s)", file=sys.stderr)
        identical = same_bytes(tmp / "local-0", tmp / "ray-0") and same_bytes(tmp / "local-1", tmp / "ray-1")
    load = os.getloadavg()
    rates = {e: [r["ok"] / r["seconds"] for r in rs] for e, rs in runs.items()}
    mean = {e: sum(v) / len(v) for e, v in rates.items()}
    steady = [
        float(m.group(1))
        for r in runs["ray"]
        for line in r["nodes"]
        if (m := re.search(r"\(([\d.]+) samples/s\)", line))
    ]
    startup = [
        float(m.group(1)) for r in runs["ray"] for line in r["nodes"] if (m := re.search(r"ray: ([\d.]+) s", line))
    ]
    actor_lines = [line for r in runs["ray"] for line in r["nodes"] if "actor" in line]
    loads = [int(m.group(1)) for line in actor_lines if (m := re.search(r"(\d+) model load", line))]
    shards = [int(m.group(1)) for line in actor_lines if (m := re.search(r": (\d+) shards", line))]
    text = (
        "\n".join(
            [
                f"### {datetime.date.today()} — {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, "
                f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) at the end",
                f"{size['preset']} depth tokenizer at {size['size']}x{size['size']} ({tok.token_shape[0]} tokens), "
                f"{size['source']}x{size['source']} .npy sources, {args.samples:,} samples in tars of {args.per_tar}, "
                f"batch {BATCH}, 1 crop; `python benchmarks/ray_throughput.py{' --tiny' if args.tiny else ''} "
                f"--samples {args.samples}`.",
                "",
                "| engine | run 1 samples/s | run 2 samples/s | mean samples/s | ray / local |",
                "|---|---|---|---|---|",
                *[
                    f"| {e} | {rates[e][0]:.1f} | {rates[e][1]:.1f} | {mean[e]:.1f} | {mean[e] / mean['local']:.2f} |"
                    for e in ("local", "ray")
                ],
                "",
                f"Ray after start-up (connect, create the actor, load its model: {', '.join(f'{x:.1f}' for x in startup)} s): "
                f"{', '.join(f'{x:.1f}' for x in steady)} samples/s, {sum(steady) / len(steady) / mean['local']:.2f} of the "
                "local mean (the local engine's start-up, one worker process and the model load, is inside its rate).",
                "",
                f"Model loads per encoder actor: {loads} over {shards} shards (batches of {BATCH}: "
                f"{[s * -(-args.per_tar // BATCH) for s in shards]} batches); ray output == local output byte for byte: "
                f"{identical}.",
            ]
        )
        + "\n"
    )
    print(text)
    if args.append:
        append_section(text, "## Scale-out engine (Ray) throughput")


if __name__ == "__main__":
    main()
