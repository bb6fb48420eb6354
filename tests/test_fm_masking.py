"""4M-style masking: budget shares follow the Dirichlet mixture, inputs and targets never overlap,
items are masked whole, sequences by spans, absent modalities take no part; recipe validation."""

import numpy as np
import pytest
import torch

from tokzoo.errors import ConfigError
from tokzoo.fm.masking import MaskedBatch, Masker, MaskingConfig, MixtureComponent, span_mask, split_budget
from tokzoo.fm.recipe import parse_recipe
from tokzoo.fm.spec import ModalitySpec

NAMES = ["rgb", "depth", "normals", "semseg"]


def image_specs(side=8):
    return [ModalitySpec(n, "image", 100, (side, side)) for n in NAMES]


def full_batch(specs, n):
    return MaskedBatch({s.name: torch.zeros(n, s.length, dtype=torch.long) for s in specs},
                       {s.name: torch.ones(n, s.length, dtype=torch.bool) for s in specs})


def shares(masks, names):
    counts = np.stack([masks[m].sum(1).numpy() for m in names], 1).astype(np.float64)
    return counts / counts.sum(1, keepdims=True)


def dirichlet_moments(components, weights, names):
    """Mean and variance of the mixture's shares: E[x] = a/a0, E[x^2] = a(a+1)/(a0(a0+1)) per component."""
    mean, second = np.zeros(len(names)), np.zeros(len(names))
    for c, w in zip(components, weights):
        a = np.array([c.get(n, 0.0) for n in names])
        a0 = a.sum()
        mean += w * a / a0
        second += w * a * (a + 1) / (a0 * (a0 + 1))
    return mean, second - mean**2


def test_budget_shares_follow_the_dirichlet_mixture():
    specs = image_specs(side=32)  # budgets of 256 tokens: rounding the shares to tokens moves them < 0.5%
    all_to_all = {n: 0.5 for n in NAMES}
    skewed = {"rgb": 3.0, "depth": 1.0, "normals": 0.5, "semseg": 0.5}
    mixture = (MixtureComponent("all", all_to_all, all_to_all, weight=1.0), MixtureComponent("skew", skewed, skewed, weight=3.0))
    masked = Masker(specs, MaskingConfig(256, 256, mixture))(full_batch(specs, 3000), np.random.default_rng(0))
    expected_mean, expected_var = dirichlet_moments([all_to_all, skewed], [0.25, 0.75], NAMES)
    for masks in (masked.input, masked.target):
        s = shares(masks, NAMES)
        np.testing.assert_allclose(s.mean(0), expected_mean, atol=0.015)  # ~3 standard errors
        np.testing.assert_allclose(s.var(0), expected_var, rtol=0.12)
        assert (np.stack([masks[m].sum(1) for m in NAMES], 1).sum(1) == 256).all()  # budgets are spent exactly
    for m in NAMES:  # never overlapping; every position equally likely to be an input
        assert not (masked.input[m] & masked.target[m]).any()
        frequency = masked.input[m].double().mean(0)
        p = float(frequency.mean())
        binomial_sd = (p * (1 - p) / 3000) ** 0.5  # one Bernoulli per sample and position
        assert float((frequency - p).abs().max()) < 5 * binomial_sd
        assert 0.8 < float(frequency.std()) / binomial_sd < 1.25  # no position favoured beyond sampling noise


def test_rgb_to_all_component_and_clamping():
    specs = image_specs(side=2)  # 4 tokens per modality: budgets clamp
    mixture = (MixtureComponent("rgb->all", {"rgb": 1000.0}, {n: 0.5 for n in NAMES[1:]}),)
    masked = Masker(specs, MaskingConfig(8, 64, mixture))(full_batch(specs, 200), np.random.default_rng(1))
    assert (masked.input["rgb"].sum(1) == 4).all()  # the input budget clamped to the 4 rgb tokens
    assert all(not masked.input[m].any() for m in NAMES[1:])
    assert not masked.target["rgb"].any()  # alpha 0 (absent) gets nothing, and rgb has nothing left anyway
    assert all((masked.target[m].sum(1) <= 4).all() for m in NAMES[1:])


def test_samples_lacking_a_modality_contribute_none_of_it():
    specs = image_specs()
    batch = full_batch(specs, 4000)
    batch.valid["depth"][::2] = False  # even samples come from a dataset without depth
    alpha = {n: 1.0 for n in NAMES}
    masked = Masker(specs, MaskingConfig(12, 12, (MixtureComponent("all", alpha, alpha),)))(batch, np.random.default_rng(2))
    assert not masked.input["depth"][::2].any() and not masked.target["depth"][::2].any()
    lacking = shares({m: masked.input[m][::2] for m in NAMES}, NAMES)
    np.testing.assert_allclose(lacking.mean(0), [1 / 3, 0, 1 / 3, 1 / 3], atol=0.015)  # Dirichlet over the other three
    having = shares({m: masked.input[m][1::2] for m in NAMES}, NAMES)
    np.testing.assert_allclose(having.mean(0), [0.25] * 4, atol=0.015)


def test_items_are_masked_whole_and_padding_never_chosen():
    spec = ModalitySpec("sam_instances", "items", 125, (6, 4), pad_id=125)
    valid = torch.zeros(300, 24, dtype=torch.bool)
    counts = torch.randint(0, 7, (300,), generator=torch.Generator().manual_seed(0))
    for b, c in enumerate(counts):
        valid[b, :c * 4] = True
    batch = MaskedBatch({spec.name: torch.zeros(300, 24, dtype=torch.long)}, {spec.name: valid})
    alpha = {spec.name: 1.0}
    masked = Masker([spec], MaskingConfig(9, 10, (MixtureComponent("x", alpha, alpha),)))(batch, np.random.default_rng(3))
    for masks in (masked.input, masked.target):
        per_item = masks[spec.name].reshape(300, 6, 4)
        assert ((per_item.sum(-1) == 0) | (per_item.sum(-1) == 4)).all()  # whole items
        assert not (masks[spec.name] & ~valid).any()
    assert (masked.input[spec.name].sum(1) == torch.minimum(counts, torch.tensor(2)) * 4).all()  # 9 tokens -> 2 items
    assert not (masked.input[spec.name] & masked.target[spec.name]).any()


def test_span_masking_keeps_inputs_and_takes_a_run_of_masked_tokens():
    rng = np.random.default_rng(4)
    runs = []
    for _ in range(300):
        kept, target = span_mask(30, 12, 8, 3.0, rng)
        assert len(kept) == 12 and len(target) == 8 and not set(kept) & set(target)
        masked = np.setdiff1d(np.arange(30), kept)
        start = int(np.searchsorted(masked, target[0]))
        np.testing.assert_array_equal(target, masked[start:start + 8])  # consecutive in the masked order
        runs.append(int(np.sum(np.diff(np.concatenate([[0], np.isin(np.arange(30), masked).astype(int)])) == 1)))
    assert 5 <= np.mean(runs) <= 7  # 18 masked tokens, mean span 3 -> 6 spans
    kept, target = span_mask(10, 0, 10, 3.0, rng)
    assert len(kept) == 0 and list(target) == list(range(10))


def test_split_budget_spends_exactly_and_respects_zero_alphas():
    rng = np.random.default_rng(5)
    for _ in range(100):
        budget = split_budget(37, np.array([0.5, 0.0, 2.0, 0.1]), rng)
        assert budget.sum() == 37 and budget[1] == 0
    assert split_budget(10, np.zeros(3), rng).sum() == 0


RECIPE = {"data": {"modalities": ["rgb", "depth"]}, "model": {"preset": "fm-tiny"},
          "masking": {"input_tokens": 8, "target_tokens": 8, "mixture": [{"input_alpha": 0.5, "target_alpha": 0.5}]},
          "train": {"steps": 2, "batch_size": 4}}


@pytest.mark.parametrize("change, message", [
    (lambda r: r["data"].update(modalities=[]), "data.modalities must be a non-empty list"),
    (lambda r: r["model"].update(preset="4M-XXL"), "unknown model preset '4M-XXL'"),
    (lambda r: r["model"].update(width=3), "unknown model field(s) ['width']"),
    (lambda r: r["masking"]["mixture"][0].update(input_alpha={"audio": 1}), "names 'audio', not in data.modalities"),
    (lambda r: r["masking"]["mixture"][0].update(target_alpha=-1), "must be a number >= 0"),
    (lambda r: r["train"].update(steps=0), "train.steps must be an integer >= 1"),
    (lambda r: r["train"].update(lr="fast"), "train.lr must be a number"),
    (lambda r: r.update(extra={}), "unknown field 'extra' in top level"),
    (lambda r: r.pop("masking"), "section 'masking' missing"),
])
def test_recipe_errors_are_one_line(change, message):
    import copy

    raw = copy.deepcopy(RECIPE)
    change(raw)
    with pytest.raises(ConfigError) as error:
        parse_recipe(raw, "r.yaml")
    assert message in str(error.value) and str(error.value).startswith("r.yaml: ") and "\n" not in str(error.value)
