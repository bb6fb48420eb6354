"""benchmarks/scene_vit_features.py at toy size: scenes labelled by a ViT folder (vit_dense), the feature tokenizer
recipe trained on them, held-out features scored against the mean map and same-bit baselines."""

import math

import pytest
from benchmark_scripts import load_benchmark


@pytest.mark.slow  # ~20-40 s on the shared 2-core machine: renders, labels, trains 3 steps, scores
def test_feature_tokenizer_benchmark_runs_end_to_end_at_toy_size(tmp_path, one_thread):
    bench = load_benchmark("scene_vit_features")
    result = bench.main(["--tiny", "--out", str(tmp_path), "--no-write"])
    rows = {r["method"].split(",")[0]: r for r in result["rows"]}
    assert {"tokenizer", "mean feature map (training scenes)", "bicubic", "PCA"} <= set(rows)
    assert result["budget"] == pytest.approx(64 * math.log2(15360))
    assert rows["PCA"]["bits"] <= result["budget"] and all(-1 <= r["cosine"] <= 1 for r in result["rows"])
    assert (result["n_train"], result["n_heldout"], result["steps"]) == (24, 8, 3)
