"""benchmarks/consensus_pooled.py: per-scene differences to the ensemble loop, averaged over runs, bootstrapped."""

import json

import numpy as np
import pytest
from benchmark_scripts import load_benchmark

REFERENCE = "closed loop (4 rounds x 2), ensemble, weights tuned on validation (lowest abs-rel with floor planarity <= greedy's)"


def dump(path, reference, single, best):
    """A consensus_loop.py --json dump of one run: the ensemble loop and two one-scorer loops, 3 scenes."""
    figures = lambda abs_rel: {"abs_rel": abs_rel, "planarity": [0.04] * 3, "structure": [40.0] * 3}  # noqa: E731
    variants = {
        REFERENCE: figures(reference),
        "closed loop (4 rounds x 2), depth_net" + (" (best single scorer on validation)" if best else ""): figures(
            single
        ),
        "closed loop (4 rounds x 2), depth_net.coarse": figures([0.5] * 3),
    }
    path.write_text(json.dumps({"0": variants}))
    return path


def test_differences_are_averaged_over_runs_per_scene(tmp_path):
    pooled = load_benchmark("consensus_pooled")
    a = dump(tmp_path / "a.json", [0.30, 0.30, 0.30], [0.32, 0.34, 0.36], best=True)
    b = dump(tmp_path / "b.json", [0.30, 0.30, 0.30], [0.30, 0.30, 0.30], best=True)
    runs = pooled.runs_variants([a, b])
    rows = {r["variant"]: r for r in pooled.pooled(runs, pooled.best_single_loops(runs))}
    mean, low, high = rows["closed loop, best single scorer on validation (per run)"]["abs_rel_diff"]
    assert mean == pytest.approx(np.mean([0.01, 0.02, 0.03])) and 0.01 <= low <= mean <= high <= 0.03
    assert rows["closed loop (4 rounds x 2), depth_net.coarse"]["abs_rel_diff"][0] == pytest.approx(0.2)


def test_unmarked_dumps_need_the_best_single_scorer_named(tmp_path):
    pooled = load_benchmark("consensus_pooled")
    runs = pooled.runs_variants([dump(tmp_path / "a.json", [0.3] * 3, [0.4] * 3, best=False)])
    with pytest.raises(SystemExit, match="--best-single"):
        pooled.best_single_loops(runs)
    assert pooled.best_single_loops(runs, "depth_net.coarse") == ["closed loop (4 rounds x 2), depth_net.coarse"]
