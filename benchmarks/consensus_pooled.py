"""Pool several runs of benchmarks/consensus_loop.py (generators x sampling seeds) on the same held-out scenes.

Each run's ``--json`` dump holds per-scene figures for every variant. Per scene, the difference between a variant
and the reference (the loop with the ensemble weighted on validation) is averaged over the runs; the paired
bootstrap (2000 resamples of scenes) of those per-scene means gives one interval per variant and metric: the
question "does the reference beat this variant across runs?" without picking a run.

    python benchmarks/consensus_pooled.py RUN_A0.json RUN_A1.json RUN_B0.json RUN_B1.json [--write]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks")]

from paired import bootstrap  # noqa: E402
from results_md import append_to_section  # noqa: E402

SECTION = "## Iterative consensus: closed loop vs reranking"
MARK = " (best single scorer on validation)"
BEST_ROW = "closed loop, best single scorer on validation (per run)"
REFERENCE = "weights tuned on validation (lowest abs-rel with floor planarity <= greedy's)"
METRICS = ("abs_rel", "planarity", "structure")


def runs_variants(paths: list[Path]) -> list[dict]:
    """Every run's variants (name -> per-scene figures); the best single scorer's rows keep their name's mark."""
    return [seed_dump for path in paths for seed_dump in json.loads(path.read_text()).values()]


def normalised(name: str) -> str:
    """A variant's name without the run-dependent mark of the best single scorer."""
    return name.replace(MARK, "")


def best_single_loops(runs: list[dict], fallback: str | None = None) -> list[str]:
    """Per run, the loop with the best single scorer: marked in the dump, else the loop with ``fallback``."""
    picks = []
    for r in runs:
        marked = [n for n in r if n.startswith("closed loop") and n.endswith(MARK)]
        named = [n for n in r if n.startswith("closed loop") and fallback and n.endswith(f", {fallback}")]
        if not (marked or named):
            raise SystemExit("error: a dump marks no best single scorer; name it with --best-single")
        picks.append((marked or named)[0])
    return picks


def pooled(runs: list[dict], best: list[str]) -> list[dict]:
    """Per variant present in every run: per metric, the mean over runs of the variant's mean and the pooled
    paired difference to the reference with its 95% interval (positive = the reference is better: lower)."""
    reference = [next(r[n] for n in r if n.endswith(REFERENCE)) for r in runs]
    plain = [{normalised(k): v for k, v in r.items()} for r in runs]
    columns = {n: [p[n] for p in plain] for n in plain[0] if all(n in p for p in plain)}
    columns[BEST_ROW] = [r[b] for r, b in zip(runs, best)]
    rows = []
    for name, figures in columns.items():
        row = {"variant": name}
        for metric in METRICS:
            per_run = np.array([f[metric] for f in figures], np.float64)  # (runs, scenes)
            ref = np.array([f[metric] for f in reference], np.float64)
            row[metric] = float(np.nanmean(per_run))
            row[f"{metric}_diff"] = bootstrap(np.nanmean(per_run - ref, 0))
        rows.append(row)
    return rows


def table(rows: list[dict], runs: list[dict], paths: list[Path], best: list[str]) -> str:
    n = len(next(iter(runs[0].values()))["abs_rel"])
    fmt = lambda d: f"{d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}]"  # noqa: E731
    lines = [
        f"Pooled over {len(runs)} runs ({', '.join(p.name for p in paths)}), {n} held-out scenes each: per scene the "
        "mean over runs of (variant - reference), paired bootstrap over scenes (2000 resamples); reference: the "
        f"closed loop with the ensemble, {REFERENCE}; positive = the reference is better (lower). Best single "
        f"scorer per run (chosen on validation): {', '.join(b.split(', ')[-1].replace(MARK, '') for b in best)}.",
        "",
        "| variant | abs-rel | diff [95% CI] | floor planarity | diff [95% CI] | normals on floor + wall (deg) | diff [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['abs_rel']:.4f} | {fmt(r['abs_rel_diff'])} | {r['planarity']:.4f} | "
            f"{fmt(r['planarity_diff'])} | {r['structure']:.2f} | {fmt(r['structure_diff'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dumps", type=Path, nargs="+", help="--json files of benchmarks/consensus_loop.py")
    parser.add_argument("--write", action="store_true", help="append the table to benchmarks/RESULTS.md")
    parser.add_argument("--best-single", default=None, help="the best single scorer, for dumps that do not mark it")
    args = parser.parse_args(argv)
    runs = runs_variants(args.dumps)
    best = best_single_loops(runs, args.best_single)
    text = table(pooled(runs, best), runs, args.dumps, best)
    print(text)
    if args.write:
        command = "python benchmarks/consensus_pooled.py " + " ".join(sys.argv[1:] if argv is None else argv)
        append_to_section(ROOT / "benchmarks" / "RESULTS.md", SECTION, f"Pooled runs. `{command}`\n\n{text}")
    return text


if __name__ == "__main__":
    main()
