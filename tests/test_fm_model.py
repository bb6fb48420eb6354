"""The 4M-style model: losses and gradients, per-layer encoder states, attention structure, presets, generation."""

import numpy as np
import pytest
import torch

from tokzoo.fm.generate import DecodeSettings, generate
from tokzoo.fm.masking import MaskedBatch, Masker, MaskingConfig, MixtureComponent, flatten_batch
from tokzoo.fm.model import PRESETS, FourM, model_config
from tokzoo.tokens.spec import ModalitySpec

SPECS = [
    ModalitySpec("rgb", "image", 50, (4, 4)),
    ModalitySpec("depth", "image", 30, (4, 4)),
    ModalitySpec("sam_instances", "items", 20, (3, 4), pad_id=20),
    ModalitySpec("captions", "sequence", 40, (1, 10)),
]


def random_batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    raw = {s.name: torch.randint(1, s.vocab_size, (n, s.length), generator=g) for s in SPECS}
    raw["sam_instances"] = raw["sam_instances"].reshape(n, 3, 4)[:, :2]  # two of three items
    raw["captions"][:, 8:] = 0  # 8 ids, then PAD
    alpha = {s.name: 1.0 for s in SPECS}
    masker = Masker(SPECS, MaskingConfig(20, 20, (MixtureComponent("all", alpha, alpha),)))
    return masker(flatten_batch(raw, SPECS), np.random.default_rng(seed))


@pytest.fixture
def model(one_thread):
    torch.manual_seed(0)
    return FourM(SPECS, model_config("fm-tiny", dim=32, heads=2))


def test_losses_counts_and_every_parameter_gets_a_gradient(model):
    batch = random_batch()
    out = model(batch)
    for name, (loss_sum, count) in out.items():
        assert int(count) == int(batch.target[name].sum())
        assert torch.isfinite(loss_sum)
        spec = next(s for s in SPECS if s.name == name)
        if count:  # untrained: close to uniform over the vocabulary (sequences: the previous id's embedding, tied to
            # the head, favours repeating it, which costs ~1 nat more at initialisation)
            assert abs(float(loss_sum.detach()) / int(count) - np.log(spec.model_vocab)) < (
                2.0 if spec.kind == "sequence" else 1.0
            )
    sum(loss for loss, _ in out.values()).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_encoder_hidden_states_per_layer(model):
    batch = random_batch()
    layers, keep = model.encoder_hidden_states(batch)
    k = int(max(sum(batch.input[s.name][b].sum() for s in SPECS) for b in range(6)))
    assert len(layers) == model.config.encoder_layers + 1
    assert all(x.shape == (6, 1 + k, 32) for x in layers) and keep.shape == (6, 1 + k) and keep[:, 0].all()


def test_decoder_self_attention_stays_within_a_modality(model):
    """rgb's predictions do not change when depth's targets are dropped (same inputs)."""
    batch = random_batch()
    rgb_logits = model.target_logits(batch)["rgb"][0]
    fewer = MaskedBatch(
        batch.tokens, batch.valid, batch.input, {**batch.target, "depth": torch.zeros_like(batch.target["depth"])}
    )
    torch.testing.assert_close(model.target_logits(fewer)["rgb"][0], rgb_logits, rtol=1e-5, atol=1e-5)


def test_sequences_are_causal_and_teacher_forced(model):
    batch = random_batch()
    n, length = 6, SPECS[3].slots
    target = torch.zeros(n, length, dtype=torch.bool)
    target[:, 4:] = True
    batch = MaskedBatch(
        batch.tokens, batch.valid, {**batch.input, "captions": ~target}, {**batch.target, "captions": target}
    )
    assert "captions" not in batch.target_tokens  # the decoder reads and predicts ``tokens`` here
    logits, _, position = model.target_logits(batch)["captions"]
    changed = {**batch.tokens, "captions": batch.tokens["captions"].clone()}
    changed["captions"][:, 7] = (changed["captions"][:, 7] + 1) % 40
    other, _, _ = model.target_logits(MaskedBatch(changed, batch.valid, batch.input, batch.target))["captions"]
    early = position <= 7  # positions up to 7 see tokens up to 6 only
    torch.testing.assert_close(other[early], logits[early], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(other[position == 8], logits[position == 8])  # position 8 reads token 7


def test_presets_match_the_paper_sizes():
    with torch.device("meta"):
        base = FourM([ModalitySpec("rgb", "image", 64000, (14, 14))], PRESETS["4M-B"])
    assert 190e6 < base.num_parameters(embeddings=False) < 205e6  # 4M-B: ~198M
    assert base.config.encoder_layers == base.config.decoder_layers == 12 and base.config.heads == 12
    assert all(
        getattr(m, "bias", None) is None for m in base.modules() if isinstance(m, (torch.nn.Linear, torch.nn.LayerNorm))
    )
    assert {m.eps for m in base.modules() if isinstance(m, torch.nn.LayerNorm)} == {1e-6}


def test_generation_is_seeded_keeps_sources_and_fills_every_target(model):
    batch = random_batch(n=3)
    settings = DecodeSettings(steps=3, temperature=1.0, top_k=5, seed=7)
    first = generate(model, batch, ["rgb"], ["depth", "captions", "sam_instances"], settings)
    again = generate(model, batch, ["rgb"], ["depth", "captions", "sam_instances"], settings)
    assert all(torch.equal(first[m], again[m]) for m in first)
    assert first["depth"].shape == (3, 16) and int(first["depth"].max()) < 30
    assert first["captions"].shape == (3, 10) and int(first["captions"].max()) < 40
    assert (first["sam_instances"][:, 8:] == 0).all()  # only the slots of existing items are filled
    greedy = generate(model, batch, ["rgb"], ["depth"], DecodeSettings(steps=1, temperature=0.0))["depth"]
    logits, sample, position = model.target_logits(
        MaskedBatch(
            batch.tokens,
            batch.valid,
            {**{m: torch.zeros_like(v) for m, v in batch.valid.items()}, "rgb": batch.valid["rgb"]},
            {**{m: torch.zeros_like(v) for m, v in batch.valid.items()}, "depth": batch.valid["depth"]},
        )
    )["depth"]
    assert torch.equal(greedy[sample, position], logits.argmax(-1))  # one step at temperature 0 = argmax everywhere
