"""4M-style masking: budget shares follow the Dirichlet mixture, inputs and targets never overlap,
items are masked whole, sequences by spans, absent modalities take no part; recipe validation."""

import numpy as np
import pytest
import torch

from tokzoo.errors import ConfigError
from tokzoo.fm.masking import MaskedBatch, Masker, MaskingConfig, MixtureComponent, flatten_batch, split_budget
from tokzoo.fm.recipe import parse_recipe
from tokzoo.fm.spans import corrupt, mask_sequence, merge_spans
from tokzoo.tokens.spec import ModalitySpec

NAMES = ["rgb", "depth", "normals", "semseg"]


def image_specs(side=8):
    return [ModalitySpec(n, "image", 100, (side, side)) for n in NAMES]


def full_batch(specs, n):
    return MaskedBatch(
        {s.name: torch.zeros(n, s.length, dtype=torch.long) for s in specs},
        {s.name: torch.ones(n, s.length, dtype=torch.bool) for s in specs},
    )


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
    mixture = (
        MixtureComponent("all", all_to_all, all_to_all, weight=1.0),
        MixtureComponent("skew", skewed, skewed, weight=3.0),
    )
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
    masked = Masker(specs, MaskingConfig(12, 12, (MixtureComponent("all", alpha, alpha),)))(
        batch, np.random.default_rng(2)
    )
    assert not masked.input["depth"][::2].any() and not masked.target["depth"][::2].any()
    lacking = shares({m: masked.input[m][::2] for m in NAMES}, NAMES)
    np.testing.assert_allclose(lacking.mean(0), [1 / 3, 0, 1 / 3, 1 / 3], atol=0.015)  # Dirichlet over the other three
    having = shares({m: masked.input[m][1::2] for m in NAMES}, NAMES)
    np.testing.assert_allclose(having.mean(0), [0.25] * 4, atol=0.015)


def test_a_batch_without_any_item_flattens_to_all_invalid():
    """Outdoor scenes often hold no person: a loader batch of (B, 0, per_item) item tokens."""
    spec = ModalitySpec("human_pose", "items", 125, (6, 8), pad_id=125)
    flat = flatten_batch({spec.name: torch.zeros(2, 0, 8, dtype=torch.long)}, [spec])
    assert flat.tokens[spec.name].shape == (2, 48) and not flat.valid[spec.name].any()
    one = torch.full((2, 1, 8), 3, dtype=torch.long)
    assert flatten_batch({spec.name: one}, [spec]).valid[spec.name].sum() == 16  # one item of 8 tokens each


def test_items_are_masked_whole_and_padding_never_chosen():
    spec = ModalitySpec("sam_instances", "items", 125, (6, 4), pad_id=125)
    valid = torch.zeros(300, 24, dtype=torch.bool)
    counts = torch.randint(0, 7, (300,), generator=torch.Generator().manual_seed(0))
    for b, c in enumerate(counts):
        valid[b, : c * 4] = True
    batch = MaskedBatch({spec.name: torch.zeros(300, 24, dtype=torch.long)}, {spec.name: valid})
    alpha = {spec.name: 1.0}
    masked = Masker([spec], MaskingConfig(9, 10, (MixtureComponent("x", alpha, alpha),)))(
        batch, np.random.default_rng(3)
    )
    for masks in (masked.input, masked.target):
        per_item = masks[spec.name].reshape(300, 6, 4)
        assert ((per_item.sum(-1) == 0) | (per_item.sum(-1) == 4)).all()  # whole items
        assert not (masks[spec.name] & ~valid).any()
    assert (masked.input[spec.name].sum(1) == torch.minimum(counts, torch.tensor(2)) * 4).all()  # 9 tokens -> 2 items
    assert not (masked.input[spec.name] & masked.target[spec.name]).any()


def test_sentinel_span_corruption_round_trips():
    content = np.array([5, 6, 7, 8, 9, 10])
    keep = np.array([True, False, False, True, False, True])
    inputs, target = corrupt(content, keep, vocab=100)
    assert inputs.tolist() == [5, 100, 8, 101, 10]  # one sentinel per dropped span
    assert target.tolist() == [100, 6, 7, 101, 9, 102]  # each sentinel then its span; one more sentinel ends it
    np.testing.assert_array_equal(merge_spans(inputs, target, 100, 8), [5, 6, 7, 8, 9, 10, 0, 0])
    assert corrupt(content, np.ones(6, bool), 100)[1].tolist() == [100]  # nothing dropped: the end sentinel alone
    assert corrupt(content, np.zeros(6, bool), 100)[0].tolist() == [100]


def test_sentinel_masking_respects_budgets_and_draws_keep_probability_per_sample():
    rng = np.random.default_rng(4)
    vocab, content = 50, np.arange(1, 21)
    kept_fraction = []
    for _ in range(2000):
        n_in, n_target = int(rng.integers(0, 21)), int(rng.integers(0, 23))
        inputs, target = mask_sequence(content, n_in, n_target, vocab, rng)
        assert len(inputs) <= n_in and len(target) <= n_target
        if n_in == 0:
            assert len(inputs) == 0  # no input budget: the whole sequence is a target
        if len(target):
            assert target[0] >= vocab  # a (possibly cut) target always starts at a sentinel
        kept = inputs[inputs < vocab]
        assert set(kept.tolist()) <= set(content.tolist()) and not set(kept.tolist()) & set(
            target[target < vocab].tolist()
        )
    for _ in range(400):  # budgets that hold everything: nothing is lost, the keep probability is free
        inputs, target = mask_sequence(content, 20, 22, vocab, rng)
        kept_fraction.append(int((inputs < vocab).sum()) / 20)
        np.testing.assert_array_equal(merge_spans(inputs, target, vocab, 20), content)
    # a keep probability ~ U(0, 1) per sample: the kept fraction spreads over the whole range
    assert 0.35 < np.mean(kept_fraction) < 0.65 and np.std(kept_fraction) > 0.2


def test_sentinel_masking_without_input_budget_draws_nothing():
    """No input budget: the content is one span, decided without drawing (was 400 wasted draws per sample)."""
    rng, content = np.random.default_rng(9), np.arange(1, 41)
    before = rng.bit_generator.state
    inputs, target = mask_sequence(content, 0, 42, vocab=50, rng=rng)
    assert rng.bit_generator.state == before
    assert len(inputs) == 0 and target.tolist() == [50, *content.tolist(), 51]


def test_keep_all_gives_the_whole_sequence_and_binary_all_or_nothing():
    """4M's keep schemes: ``all`` gives a condition whole (as generation does) while the budget holds it, and
    lowers p like ``random`` when it does not; ``binary`` keeps everything or nothing, each about half the time."""
    rng, vocab, content = np.random.default_rng(11), 50, np.arange(1, 21)
    inputs, target = mask_sequence(content, 20, 0, vocab, rng, "all")
    assert inputs.tolist() == content.tolist() and len(target) == 0
    inputs, target = mask_sequence(content, 20, 22, vocab, rng, "all")
    assert target.tolist() == [vocab]  # nothing dropped: the target is the closing sentinel alone
    for _ in range(50):
        inputs, _ = mask_sequence(content, 8, 22, vocab, rng, "all")  # over budget: p lowered until it fits
        assert 0 < len(inputs) <= 8
    whole = [mask_sequence(content, 20, 22, vocab, rng, "binary")[0] for _ in range(400)]
    kinds = [x.tolist() == content.tolist() if len(x) > 1 else x.tolist() == [vocab] for x in whole]
    assert all(kinds)
    assert 0.4 < np.mean([len(x) > 1 for x in whole]) < 0.6
    with pytest.raises(ValueError, match="keep scheme 'some'"):
        mask_sequence(content, 20, 22, vocab, rng, "some")


def test_a_component_keeps_its_condition_whole_and_others_stay_random():
    spec = ModalitySpec("captions", "sequence", 30, (1, 16))
    image = ModalitySpec("rgb", "image", 20, (4, 4))
    ids, lengths = sequence_batch(500, seed=3)
    batch = flatten_batch({"rgb": torch.zeros(500, 16, dtype=torch.long), "captions": ids}, [image, spec])
    to_rgb = ({"captions": 1000.0}, {"rgb": 1000.0})
    for keep, whole in (({"captions": "all"}, True), ({}, False)):
        config = MaskingConfig(64, 16, (MixtureComponent("captions->rgb", *to_rgb, keep=keep),))
        masked = Masker([image, spec], config)(batch, np.random.default_rng(2))
        given = [masked.tokens["captions"][b, masked.input["captions"][b]].tolist() for b in range(500)]
        exact = [g == ids[b, : lengths[b]].tolist() for b, g in enumerate(given) if lengths[b] > 1]
        assert all(exact) if whole else np.mean(exact) < 0.3
    with pytest.raises(ConfigError, match="keep names 'rgb', not a sequence modality"):
        Masker([image, spec], MaskingConfig(8, 8, (MixtureComponent("x", *to_rgb, keep={"rgb": "all"}),)))
    with pytest.raises(ConfigError, match="keep 'most', not one of random, all, binary"):
        Masker([image, spec], MaskingConfig(8, 8, (MixtureComponent("x", *to_rgb, keep={"captions": "most"}),)))


def test_masks_without_keep_are_those_of_earlier_versions():
    """A recipe without ``keep`` masks byte for byte as before the keep scheme (runs resume and reproduce): the
    digest of every mask and id of a fixed batch, computed by commit b19c4c9's masker."""
    import hashlib

    spec = ModalitySpec("captions", "sequence", 30, (1, 16))
    image = ModalitySpec("rgb", "image", 20, (4, 4))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 30, (64, 16), generator=g)
    lengths = torch.randint(0, 17, (64,), generator=g)
    ids[torch.arange(16)[None] >= lengths[:, None]] = 0
    batch = flatten_batch({"rgb": torch.randint(0, 20, (64, 16), generator=g), "captions": ids}, [image, spec])
    alpha = {"rgb": 1.0, "captions": 1.0}
    mixture = (
        MixtureComponent("all", alpha, alpha),
        MixtureComponent("c->rgb", {"captions": 1000.0}, {"rgb": 1000.0}, weight=2.0),
    )
    m = Masker([image, spec], MaskingConfig((0, 24), (1, 24), mixture))(
        batch, [np.random.default_rng([5, b]) for b in range(64)]
    )
    digest = hashlib.sha256()
    for part in (m.input, m.target, m.tokens, m.target_tokens):
        for name in sorted(part):
            digest.update(name.encode())
            digest.update(part[name].numpy().astype(np.int64).tobytes())
    assert digest.hexdigest() == "ec47f8809f701f29790187ccff0b877d1c1f89443a619709931da810cd889fc1"


def sequence_batch(n, length=16, vocab=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (n, length), generator=g)
    lengths = torch.randint(0, length + 1, (n,), generator=g)
    ids[torch.arange(length)[None] >= lengths[:, None]] = 0  # PAD after each sample's content
    return ids, lengths


def test_no_target_id_ever_reaches_the_decoder_ahead_of_its_slot():
    """The leak test: over many draws, every id a decoder query reads is a target id of an earlier slot of the
    same sample (the teacher-forced previous target), and no dropped token that is not a target reaches the
    decoder or the encoder."""
    from tokzoo.fm.masking import flatten_batch
    from tokzoo.fm.model import FourM, model_config

    spec = ModalitySpec("captions", "sequence", 30, (1, 16))
    image = ModalitySpec("rgb", "image", 20, (2, 2))
    model = FourM([image, spec], model_config("fm-tiny", dim=16, heads=2, encoder_layers=1, decoder_layers=1))
    ids, lengths = sequence_batch(3000)
    raw = {"rgb": torch.randint(0, 20, (3000, 4)), "captions": ids}
    alpha = {"rgb": 1.0, "captions": 1.0}
    config = MaskingConfig((0, 24), (1, 24), (MixtureComponent("all", alpha, alpha),))
    masked = Masker([image, spec], config)(
        flatten_batch(raw, [image, spec]), [np.random.default_rng([9, b]) for b in range(3000)]
    )
    previous = model.previous_ids(masked)[:, image.slots :]  # the captions' slots
    decoder, target, encoder, inputs = (
        masked.target_tokens["captions"],
        masked.target["captions"],
        masked.tokens["captions"],
        masked.input["captions"],
    )
    checked = dropped_seen = 0
    for b in range(3000):
        n = int(lengths[b])
        slots = torch.nonzero(target[b])[:, 0]
        assert torch.equal(slots, torch.arange(len(slots)))  # the target sequence fills slots 0..m-1
        reads = previous[b, slots]
        assert reads[0] == -1 if len(slots) else True  # slot 0 reads the start token
        assert torch.equal(reads[1:], decoder[b, slots[:-1]])  # slot j reads target j-1, nothing else
        content = ids[b, :n].tolist()
        targets = decoder[b, slots]
        seen = set(encoder[b, inputs[b]].tolist()) | set(reads[1:].tolist())
        real_targets = set(targets[targets < 30].tolist())
        kept = set(encoder[b, inputs[b]][encoder[b, inputs[b]] < 30].tolist())
        dropped_not_target = set(content) - kept - real_targets
        dropped_seen += len(dropped_not_target & seen)
        checked += len(slots)
    assert checked > 10000 and dropped_seen == 0


def test_sequences_get_sentinel_masks_within_budget_ranges():
    spec = ModalitySpec("captions", "sequence", 30, (1, 16))
    image = ModalitySpec("rgb", "image", 20, (4, 4))
    ids, lengths = sequence_batch(2000, seed=1)
    from tokzoo.fm.masking import flatten_batch

    batch = flatten_batch({"rgb": torch.zeros(2000, 16, dtype=torch.long), "captions": ids}, [image, spec])
    assert batch.tokens["captions"].shape == (2000, 18) and torch.equal(batch.valid["captions"].sum(1), lengths)
    alpha = {"rgb": 1.0, "captions": 1.0}
    config = MaskingConfig((4, 20), (6, 12), (MixtureComponent("all", alpha, alpha),))
    masked = Masker([image, spec], config)(batch, np.random.default_rng(6))
    n_in = masked.input["rgb"].sum(1) + masked.input["captions"].sum(1)
    n_target = masked.target["rgb"].sum(1) + masked.target["captions"].sum(1)
    assert int(n_in.max()) <= 20 and int(n_target.max()) <= 12
    assert len(set(n_in.tolist())) > 10  # budgets vary per sample, over the range
    has_text = lengths > 0
    assert not masked.input["captions"][~has_text].any() and not masked.target["captions"][~has_text].any()
    sentinel_rows = (masked.target_tokens["captions"] >= 30) & masked.target["captions"]
    assert (sentinel_rows.sum(1) >= 1)[masked.target["captions"].any(1)].all()
    assert (masked.tokens["captions"][masked.input["captions"]] < 30 + spec.sentinels).all()


def test_split_budget_spends_exactly_and_respects_zero_alphas():
    rng = np.random.default_rng(5)
    for _ in range(100):
        budget = split_budget(37, np.array([0.5, 0.0, 2.0, 0.1]), rng)
        assert budget.sum() == 37 and budget[1] == 0
    assert split_budget(10, np.zeros(3), rng).sum() == 0


RECIPE = {
    "data": {"modalities": ["rgb", "depth"]},
    "model": {"preset": "fm-tiny"},
    "masking": {"input_tokens": 8, "target_tokens": 8, "mixture": [{"input_alpha": 0.5, "target_alpha": 0.5}]},
    "train": {"steps": 2, "batch_size": 4},
}


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r["data"].update(modalities=[]), "data.modalities must be a non-empty list"),
        (lambda r: r["model"].update(preset="4M-XXL"), "unknown model preset '4M-XXL'"),
        (lambda r: r["model"].update(width=3), "unknown model field(s) ['width']"),
        (
            lambda r: r["masking"]["mixture"][0].update(input_alpha={"audio": 1}),
            "names 'audio', not in data.modalities",
        ),
        (lambda r: r["masking"]["mixture"][0].update(target_alpha=-1), "must be a number >= 0"),
        (lambda r: r["train"].update(steps=0), "train.steps must be an integer >= 1"),
        (lambda r: r["masking"].update(input_tokens=[9, 3]), "masking.input_tokens range [9, 3] has low > high"),
        (lambda r: r["masking"].update(target_tokens=[0, 3]), "masking.target_tokens must be an integer >= 1"),
        (lambda r: r["train"].update(lr="fast"), "train.lr must be a number"),
        (lambda r: r.update(extra={}), "unknown field 'extra' in top level"),
        (lambda r: r.pop("masking"), "section 'masking' missing"),
        (lambda r: r["masking"]["mixture"][0].update(keep={"rgb": "most"}), "keep.rgb is 'most', not one of"),
        (lambda r: r["masking"]["mixture"][0].update(keep={"audio": "all"}), "keep names 'audio', not in data"),
        (lambda r: r["masking"]["mixture"][0].update(keep="all"), "keep must map sequence modalities to"),
    ],
)
def test_recipe_errors_are_one_line(change, message):
    import copy

    raw = copy.deepcopy(RECIPE)
    change(raw)
    with pytest.raises(ConfigError) as error:
        parse_recipe(raw, "r.yaml")
    assert message in str(error.value) and str(error.value).startswith("r.yaml: ") and "\n" not in str(error.value)
