"""Iterative consensus: exact on agreeing candidates, robust to an outlier labeler, deterministic, and usable as a
``consensus:`` labeler in ``tokzoo pseudo-label``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tokzoo.datasets import generate_scene
from tokzoo.errors import ConfigError
from tokzoo.labelers import create_labeler
from tokzoo.labelers.consensus import depth_consensus, normals_consensus
from tokzoo.labelers.metrics import angular_errors
from tokzoo.labelers.normals_from_depth import normals_from_depth


@pytest.fixture(scope="module")
def scene():
    return generate_scene(1, seed=5, size=64)


def noisy(depth, seed, sigma=0.01):
    return (depth * np.exp(np.random.default_rng(seed).normal(0, sigma, depth.shape))).astype(np.float32)


def test_identical_candidates_give_the_candidate_with_confidence_one(scene):
    d = scene["depth"]
    result = depth_consensus([d, d, d], camera=scene["camera"])
    np.testing.assert_allclose(result.proposal, d, rtol=1e-5, equal_nan=True)
    assert result.confidence == pytest.approx(1.0) and len(result.history) == 2  # round 2 moves 0: stop
    n = scene["normals"]
    result = normals_consensus([n, n])
    np.testing.assert_allclose(result.proposal, n, atol=1e-6, equal_nan=True)
    assert result.confidence == pytest.approx(1.0)


def test_scales_are_aligned_so_relative_depth_agrees(scene):
    d = scene["depth"]
    result = depth_consensus([d, 2 * d, 0.5 * d], camera=scene["camera"])
    np.testing.assert_allclose(result.proposal, d, rtol=1e-5, equal_nan=True)  # geometric mean of the scales: 1
    assert result.confidence == pytest.approx(1.0)


def test_an_outlier_labeler_is_down_weighted_where_it_is_wrong(scene):
    d, camera = scene["depth"], scene["camera"]
    bad = noisy(d, 3)
    bad[10:40, 10:40] *= 1.6
    candidates = [noisy(d, 0), noisy(d, 1), noisy(d, 2), bad]
    result = depth_consensus(candidates, camera=camera)
    inside = result.weights[:, 15:35, 15:35].mean((1, 2))
    outside = result.weights[:, 50:, :].mean((1, 2))
    assert inside[3] < 0.05 * inside[:3].min()  # the outlier region is ignored ...
    assert outside[3] > 0.5 * outside[:3].min()  # ... but the labeler still counts where it agrees
    err = np.nanmean(np.abs(result.proposal - d) / d)
    mean = depth_consensus(candidates, camera=camera, iterations=1).proposal  # round 1: equal weights
    assert err < 0.5 * np.nanmean(np.abs(mean - d) / d)
    assert err < 0.01  # about the noise of the good candidates, averaged


def test_normals_outlier_and_confidence_falls_with_disagreement(scene):
    n = scene["normals"]
    rng = np.random.default_rng(0)
    cands = [n + rng.normal(0, 0.05, n.shape).astype(np.float32) for _ in range(3)]
    cands = [c / np.linalg.norm(c, axis=-1, keepdims=True) for c in cands]
    flipped = cands[0].copy()
    flipped[:, :32] *= -1
    result = normals_consensus([*cands, flipped])
    assert (
        angular_errors(result.proposal, n).mean()
        < angular_errors(normals_consensus([*cands, flipped], iterations=1).proposal, n).mean()
    )
    assert result.weights[3, :, :32].mean() < 0.05 * result.weights[:3, :, :32].mean()
    assert normals_consensus(cands).confidence > normals_consensus([cands[0], flipped]).confidence


def test_normals_of_the_proposal_score_the_depth_candidates(scene):
    d, camera = scene["depth"], scene["camera"]
    rough = noisy(d, 7, sigma=0.02)  # small depth error, wrong normals
    ref = normals_from_depth(d, camera)
    with_normals = depth_consensus([noisy(d, 8, 0.002), rough], [ref], camera=camera)
    assert with_normals.weights[1].mean() < 0.5 * with_normals.weights[0].mean()
    assert with_normals.history[-1]["normals_deg"] < with_normals.history[0]["normals_deg"]


def test_deterministic(scene):
    cands = [noisy(scene["depth"], s, 0.05) for s in range(3)]
    a, b = depth_consensus(cands, camera=scene["camera"]), depth_consensus(cands, camera=scene["camera"])
    assert np.array_equal(a.proposal, b.proposal, equal_nan=True) and a.confidence == b.confidence
    assert a.history == b.history


def test_consensus_labeler_spec_and_errors(scene):
    labeler = create_labeler("consensus:normals_from_depth,min_confidence=0.5,iterations=3")
    assert labeler.modality == "normals" and labeler.needs == ("depth",) and "camera" in labeler.optional
    assert labeler.min_confidence == 0.5 and labeler.iterations == 3
    (out,) = labeler.label({"depth": [scene["depth"]], "camera": [scene["camera"]]})
    np.testing.assert_allclose(out, normals_from_depth(scene["depth"], scene["camera"]), atol=1e-6, equal_nan=True)
    with pytest.raises(ConfigError, match="expected consensus"):
        create_labeler("consensus:normals_from_depth,threshold=2")
    with pytest.raises(ConfigError, match="depth or normals"):
        create_labeler("consensus:canny")


def test_pseudo_label_with_a_consensus_of_two_depth_models(tmp_path):
    import torch
    import transformers as tf
    from click.testing import CliRunner
    from PIL import Image

    from tokzoo_cli.main import cli

    torch.manual_seed(0)
    paths = []
    for i in range(2):
        model = tf.DPTForDepthEstimation(
            tf.DPTConfig(
                hidden_size=16,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=32,
                image_size=32,
                patch_size=8,
                neck_hidden_sizes=[8, 16],
                reassemble_factors=[2, 1],
                backbone_out_indices=[0, 1],
                fusion_hidden_size=8,
                head_hidden_size=8,
            )
        )
        torch.nn.init.constant_(model.head.head[-2].bias, 1.0)  # random weights, but a positive ReLU output
        paths.append(tmp_path / f"dpt{i}")
        model.save_pretrained(paths[-1])
        tf.DPTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(paths[-1])
    (tmp_path / "photos").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(tmp_path / "photos" / f"p{i}.png")
    spec = f"depth=consensus:hf_depth:{paths[0]},hf_depth:{paths[1]}"
    args = ["pseudo-label", "-m", "depth", "-i", str(tmp_path / "photos"), "--labeler", spec, "--no-progress"]
    result = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "out")], catch_exceptions=False)
    assert result.exit_code == 0 and "ok 3 / failed 0" in result.output, result.output
    assert "consensus -> depth (from rgb) [hf_depth, hf_depth]" in result.output
    strict = CliRunner().invoke(
        cli, [*args[:-2], f"{spec},min_confidence=1.01", "--no-progress", "-o", str(tmp_path / "strict")]
    )
    assert strict.exit_code == 2 and "all 3 samples failed" in strict.output
    table = (tmp_path / "strict" / ".pseudo-label" / "shard-000000.samples.jsonl").read_text().splitlines()
    assert all("min_confidence 1.01" in json.loads(line)["error"] for line in table)
