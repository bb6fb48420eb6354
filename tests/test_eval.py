"""tokzoo eval: metrics on known cases, baselines at the stated bit budget, report and JSON shape."""

import io
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from tokzoo.tokenizers.evaluation import METRICS, baselines, evaluate, format_table, heldout_values, save_grid
from tokzoo.tokenizers.evaluation.baselines import bits_per_sample, downsample_bicubic, jpeg, jpeg_at_least, jpeg_bytes
from tokzoo.tokenizers.evaluation.metrics import (
    abs_rel,
    angular_error,
    binary_iou,
    cosine,
    mae,
    mean_iou,
    psnr,
    rmse,
    ssim,
    valid_accuracy,
)
from tokzoo.tokenizers.learned import LearnedTokenizer
from tokzoo.tokenizers.training.codebook import CodebookUsage
from tokzoo_cli.main import cli

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 250, (3, 32, 32, 3), dtype=np.uint8)


def small_tokenizer(modality="rgb", levels=(5, 5, 5)):
    torch.manual_seed(0)
    return LearnedTokenizer(
        {
            "modality": modality,
            "name": f"test_{modality}",
            "latent_dim": 8,
            "model": {"preset": "conv-tiny", "width": 8, "groups": 4},
            "quantizer": {"type": "fsq", "levels": list(levels)},
            "input_size": [32, 32],
        }
    )


def test_image_metrics_on_known_cases():
    assert psnr(IMAGES, IMAGES) == math.inf
    assert ssim(IMAGES, IMAGES) == pytest.approx(1.0)
    assert mae(IMAGES, IMAGES) == 0
    shifted = IMAGES + np.uint8(4)  # every value off by 4: MSE 16
    assert psnr(IMAGES, shifted) == pytest.approx(10 * math.log10(255**2 / 16))
    assert mae(IMAGES, shifted) == pytest.approx(4)
    assert ssim(IMAGES, shifted) < 1.0
    assert ssim(IMAGES, RNG.integers(0, 256, IMAGES.shape).astype(np.uint8)) < 0.1


def reference_ssim(original, reconstruction, peak=255.0):
    """SSIM with the full 2-D 11x11 Gaussian window, as metrics.ssim computed it before its separable blur."""
    a = torch.as_tensor(np.asarray(original, np.float64)).permute(0, 3, 1, 2)
    b = torch.as_tensor(np.asarray(reconstruction, np.float64)).permute(0, 3, 1, 2)
    size = min(11, a.shape[-1], a.shape[-2])
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * 1.5**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(a.shape[1], 1, size, size)

    def blur(t):
        return torch.nn.functional.conv2d(t, window, groups=a.shape[1])

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    return float((((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))).mean())


def test_ssim_equals_the_2d_window_definition():
    noisy = np.clip(IMAGES + RNG.normal(0, 20, IMAGES.shape), 0, 255).astype(np.uint8)
    for a, b in ((IMAGES, noisy), (IMAGES[:, :8, :9], noisy[:, :8, :9])):  # 11x11 window, and one cut to 8x8
        assert ssim(a, b) == pytest.approx(reference_ssim(a, b), abs=1e-12)


def test_depth_metrics_on_known_cases():
    depth = RNG.uniform(1, 10, (2, 8, 8)).astype(np.float32)
    depth[0, 0, :4] = np.nan
    assert abs_rel(depth, depth) == 0 and rmse(depth, depth) == 0 and valid_accuracy(depth, depth) == 1
    assert abs_rel(depth, depth * 1.1) == pytest.approx(0.1, rel=1e-5)
    assert rmse(depth, depth + 0.5) == pytest.approx(0.5, rel=1e-5)
    missed = depth.copy()
    missed[1, 0, :] = np.nan  # 8 of 128 pixels decoded as invalid
    assert valid_accuracy(depth, missed) == pytest.approx(120 / 128)
    assert abs_rel(depth, missed) == 0  # abs-rel only counts pixels valid in both


def test_label_normal_and_feature_metrics_on_known_cases():
    a = np.array([[[0, 0, 1, 1]]], np.uint8)
    b = np.array([[[0, 1, 1, 1]]], np.uint8)
    assert mean_iou(a, a) == 1
    assert mean_iou(a, b) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert mean_iou(np.array([[255, 0]]), np.array([[1, 0]])) == 1  # ignore pixels do not count
    assert binary_iou(a, b) == pytest.approx(2 / 3)
    up = np.zeros((1, 2, 2, 3), np.float32)
    up[..., 2] = -1
    right = np.zeros_like(up)
    right[..., 0] = 1
    assert angular_error(up, up) == pytest.approx(0, abs=1e-6)
    assert angular_error(up, right) == pytest.approx(90)
    v = RNG.standard_normal((4, 16))
    assert cosine(v, 3 * v) == pytest.approx(1) and cosine(v, -v) == pytest.approx(-1)


def test_every_trainable_image_and_feature_modality_has_metrics():
    for modality in (
        "rgb",
        "depth",
        "normals",
        "semseg",
        "edges",
        "global_feature",
        "dense_features",
        "sam_instances",
        "human_pose",
    ):
        assert METRICS[modality]


def test_mask_and_keypoint_metrics_on_known_cases():
    from tokzoo.tokenizers.evaluation.metrics import keypoint_error, mask_iou, pck, visibility_accuracy

    a = np.zeros((2, 4, 4), bool)
    a[0, :2] = True
    b = a.copy()
    b[0, 2] = True  # mask 0: 8 of 12 pixels agree; mask 1 empty in both
    assert mask_iou(a, a) == 1 and mask_iou(a, b) == pytest.approx((8 / 12 + 1) / 2)
    kp = np.array([[[10, 10, 2], [20, 20, 1], [0, 0, 0]]], float)
    moved = kp + np.array([[[3, 4, 0], [1, 0, 0], [50, 50, 0]]])  # unlabelled joint 2 does not count
    assert keypoint_error(kp, moved) == pytest.approx(3) and pck(kp, moved) == pytest.approx(1 / 2)
    assert visibility_accuracy(kp, kp) == 1


@pytest.mark.parametrize("modality", ["sam_instances", "human_pose"])
def test_per_image_modalities_evaluate_image_by_image(modality):
    from tokzoo.modalities import get_modality

    torch.manual_seed(0)
    config = {**get_modality(modality).default_tokenizer(modality), "modality": modality, "name": f"t_{modality}"}
    if modality == "human_pose":
        config["normalization"] = {**config["normalization"], "image_size": [96, 96]}
    tok = LearnedTokenizer(config)
    values, description, unreadable = heldout_values(tok, 4)
    assert unreadable == () and isinstance(values, list) and 0 < len(values) <= 4 and "held-out scenes" in description
    report = evaluate(tok, values, data=description).report
    assert report["n_images"] == len(values) and report["n_samples"] >= len(values)
    assert [row["method"] for row in report["rows"]] == ["tokenizer", "downsample_bicubic"]
    assert report["main_metric"] == ("mask_iou" if modality == "sam_instances" else "keypoint_error")
    assert all(np.isfinite(row["metrics"][report["main_metric"]]) for row in report["rows"])


def test_codebook_usage_and_perplexity():
    usage = CodebookUsage(8)
    usage.update(torch.tensor([[0, 1, 2, 3]]))
    assert usage.usage == 0.5 and usage.perplexity == pytest.approx(4)
    usage.update(torch.tensor([0, 0, 0, 0]))
    assert usage.summary()["codes_used"] == 4 and usage.perplexity < 4


def test_downsample_baseline_uses_the_token_budget():
    tok = small_tokenizer()  # 32 px, 8x downsampling: 4 x 4 tokens of log2(125) bits
    budget = bits_per_sample(tok)
    assert budget == pytest.approx(16 * math.log2(125))
    reconstruction, bits = downsample_bicubic(tok, IMAGES)
    # 48 values share 16 x log2(125) bits: log2(5) each, so exactly 5 levels (not 4 from float rounding)
    assert bits == pytest.approx(48 * math.log2(5)) == pytest.approx(budget)
    assert reconstruction.shape == IMAGES.shape and reconstruction.dtype == np.uint8
    flat = np.full((2, 32, 32, 3), 77, np.uint8)  # a constant image survives downsampling and quantisation
    assert np.array_equal(downsample_bicubic(tok, flat)[0], flat)


def test_baselines_at_another_input_size_get_the_tokens_that_size_gets(monkeypatch):
    tok = small_tokenizer()  # configured for 32 px; fully convolutional: 64 px gives 8 x 8 tokens
    large = np.repeat(np.repeat(IMAGES, 2, axis=1), 2, axis=2)
    budget = bits_per_sample(tok, (64, 64))
    assert budget == pytest.approx(64 * math.log2(125)) == pytest.approx(4 * bits_per_sample(tok))
    _, bits = downsample_bicubic(tok, large)  # 8 x 8 x 3 values sharing the 64-token budget: 5 levels each
    assert bits == pytest.approx(192 * math.log2(5)) == pytest.approx(budget)
    targets = []
    real = baselines.jpeg_at_least
    monkeypatch.setattr(baselines, "jpeg_at_least", lambda image, target: targets.append(target) or real(image, 1))
    jpeg(tok, large)
    assert targets == [math.ceil(budget / 8)] * len(large)  # bytes for the 64-px token count, not the 32-px one


def test_downsample_baseline_on_another_grid_spends_the_same_budget():
    tok = small_tokenizer()
    budget = bits_per_sample(tok)
    finer, finer_bits = downsample_bicubic(tok, IMAGES, (6, 6))  # 108 values: fewer levels each
    coarser, coarser_bits = downsample_bicubic(tok, IMAGES, (2, 2))  # 12 values: more levels each
    assert finer_bits == pytest.approx(108 * math.log2(2))  # 1.03 bits a value: 2 levels
    assert coarser_bits == pytest.approx(12 * math.log2(625)) == pytest.approx(budget)  # 125^(4/3): exactly 625
    assert finer_bits <= budget
    assert not np.array_equal(finer, coarser) and finer.shape == coarser.shape == IMAGES.shape


def test_jpeg_baseline_gets_at_least_the_token_bytes():
    image = IMAGES[0]
    for target in (400, 900, 1500):
        data = jpeg_at_least(image, target)
        assert len(data) >= target
        quality = next(q for q in range(1, 96) if jpeg_bytes(image, q) == data)
        assert quality == 1 or len(jpeg_bytes(image, quality - 1)) < target
    tok = small_tokenizer()
    reconstruction, bits = jpeg(tok, IMAGES)
    assert bits >= bits_per_sample(tok) and reconstruction.shape == IMAGES.shape
    assert np.asarray(Image.open(io.BytesIO(jpeg_at_least(image, 10)))).shape == image.shape
    assert jpeg(small_tokenizer("depth"), np.ones((1, 32, 32), np.float32)) is None


def test_report_shape_table_and_grid(tmp_path):
    tok = small_tokenizer()
    values, description, unreadable = heldout_values(tok, n=3)
    assert unreadable == () and values.shape == (3, 32, 32, 3) and "held-out scenes" in description
    evaluation = evaluate(tok, values, data=description)
    report = json.loads(json.dumps(evaluation.report))
    assert set(report) == {
        "tokenizer",
        "modality",
        "data",
        "n_samples",
        "vocab_size",
        "token_shape",
        "bits_per_sample",
        "main_metric",
        "codebook",
        "rows",
        "n_unreadable",
        "unreadable",
    }
    assert [row["method"] for row in report["rows"]] == ["tokenizer", "downsample_bicubic", "jpeg"]
    assert all(set(row["metrics"]) == {"psnr", "ssim", "mae"} for row in report["rows"])
    assert report["main_metric"] == "psnr" and report["rows"][0]["bits_per_sample"] == round(bits_per_sample(tok), 2)
    assert 0 < report["codebook"]["usage"] <= 1 and report["codebook"]["perplexity"] >= 1
    assert "downsample_bicubic" in format_table(report)
    picture = np.asarray(Image.open(save_grid(evaluation, tok.codec, tmp_path / "grid.png")))
    assert picture.shape[0] > 3 * 32 and picture.shape[1] > 7 * 32  # 3 rows; original + 3 x (reconstruction, error)


def test_cli_eval_json_and_grid(tmp_path):
    tok = small_tokenizer("depth")
    tok.config["untrained"] = False
    tok.save_pretrained(tmp_path / "tok")
    result = CliRunner().invoke(
        cli, ["eval", "-t", str(tmp_path / "tok"), "--n", "2", "--json", "--grid", str(tmp_path / "g.png")]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["modality"] == "depth" and report["n_samples"] == 2
    assert [row["method"] for row in report["rows"]] == ["tokenizer", "downsample_bicubic"]
    grid_picture = np.asarray(Image.open(tmp_path / "g.png"))
    assert (grid_picture[:20] < 100).any() and (grid_picture[:, :40] < 100).any()  # column headers, "sample i" labels
    bad = CliRunner().invoke(cli, ["eval", "-t", str(tmp_path / "missing")])
    assert bad.exit_code == 2 and bad.output.startswith("error: ")
