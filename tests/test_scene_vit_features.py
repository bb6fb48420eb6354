"""benchmarks/scene_vit_features.py at toy size: scenes labelled by a ViT folder (vit_dense, or vit_global with
--kind global), the feature tokenizer recipe trained on them, held-out features scored against the mean and same-bit
baselines."""

import math

import numpy as np
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


@pytest.mark.slow  # ~15-30 s: renders, labels class tokens, trains 3 steps, scores
def test_global_feature_tokenizer_benchmark_runs_end_to_end_at_toy_size(tmp_path, one_thread):
    bench = load_benchmark("scene_vit_features")
    result = bench.main(["--tiny", "--kind", "global", "--out", str(tmp_path), "--no-write"])
    rows = {r["method"].split(",")[0]: r for r in result["rows"]}
    assert set(rows) == {"tokenizer", "mean vector (training scenes)", "PCA", "residual k-means"}
    assert result["budget"] == pytest.approx(8 * math.log2(15360))
    assert all(r["bits"] <= result["budget"] for r in result["rows"]) and rows["residual k-means"]["bits"] > 0
    assert all(-1 <= r["cosine"] <= 1 for r in result["rows"])
    assert (result["n_train"], result["n_heldout"], result["steps"]) == (24, 8, 3)
    assert (tmp_path / "global-run" / "tokenizer" / "config.json").is_file()


def test_same_bit_baselines_code_what_they_can_afford():
    """PCA and residual k-means on vectors with a known structure: 3 informative dimensions of 16."""
    bench = load_benchmark("scene_vit_features")
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((16, 3)))[0].T  # (3, 16) orthonormal rows
    train = (rng.standard_normal((512, 3)) * [4.0, 2.0, 1.0]) @ basis + 1.0
    heldout = (rng.standard_normal((64, 3)) * [4.0, 2.0, 1.0]) @ basis + 1.0
    rich, poor = bench.pca_same_bit(train, heldout, 60, max_k=16), bench.pca_same_bit(train, heldout, 2, max_k=16)
    assert rich["k"] == 3 and rich["bits"] <= 60 and rich["cosine"] > 0.999  # 3 components x 2^20 levels
    assert (poor["k"], poor["levels"]) in {(1, 4), (2, 2)} and poor["cosine"] < rich["cosine"]
    more, fewer = (bench.residual_kmeans_same_bit(train, heldout, bits) for bits in (48, 8))
    assert (more["stages"], fewer["stages"]) == (6, 1) and (more["codes"], fewer["codes"]) == (256, 256)
    assert more["cosine"] > fewer["cosine"] and more["mae"] < fewer["mae"]
