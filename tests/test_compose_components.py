"""Components run layer by layer give the wrapped models' own outputs; freezing; hashes; scene texts."""

import numpy as np
import pytest
import torch

import tokzoo
from tokzoo.compose import CausalLM, TokenizerEncoder
from tokzoo.datasets.scene_text import NUMBER_WORDS, SceneTextSet, question_type, scene_text, visible_things
from tokzoo.datasets.scenes import generate_scene
from tokzoo.tokenizers.learned import LearnedTokenizer


def tiny_lm(arch: str, vocab: int = 60):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if arch == "gpt2":
        model = GPT2LMHeadModel(
            GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=32, bos_token_id=1, eos_token_id=1)
        )
    else:
        model = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=vocab,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=32,
                bos_token_id=1,
                eos_token_id=1,
            )
        )
    return model.eval()


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_causal_lm_steps_match_the_model_and_stay_causal(arch):
    model = tiny_lm(arch)
    lm = CausalLM(model).freeze()
    ids = torch.randint(2, 60, (3, 9))
    with torch.no_grad():
        assert torch.allclose(lm.logits(ids), model(ids).logits, atol=1e-5)
        changed = ids.clone()
        changed[:, 6:] = 5
        assert torch.equal(lm.logits(ids)[:, :6], lm.logits(changed)[:, :6])
        select = torch.zeros_like(ids, dtype=torch.bool)
        select[0, 2] = select[2, 8] = True
        assert torch.allclose(lm.logits(ids, select), model(ids).logits[select], atol=1e-5)
        # an attention_extra hook changes the block's output; a zero one changes nothing
        base = lm.begin(ids)
        lm.step(base, 1)
        zero, one = lm.begin(ids), lm.begin(ids)
        lm.step(zero, 1, attention_extra=lambda x: torch.zeros_like(x))
        lm.step(one, 1, attention_extra=lambda x: torch.ones_like(x))
        assert torch.equal(zero.h, base.h) and not torch.allclose(one.h, base.h)
        # prefix slots come first, are inserted once and then overwritten; logits stay text-only
        stream = lm.begin(ids, prefix=torch.randn(3, 1, 32))
        lm.set_prefix(stream, torch.randn(3, 1, 32), slot=1)
        lm.set_prefix(stream, torch.randn(3, 1, 32), slot=1)
        assert stream.extra["prefix"] == 2 and stream.h.shape[1] == 11
        assert lm.finish(lm.run(stream, 2)).shape == (3, 9, 60)


def test_freeze_turns_gradients_off_and_keeps_eval_mode():
    lm = CausalLM(tiny_lm("gpt2")).freeze()
    lm.train()
    assert not lm.model.training and not any(p.requires_grad for p in lm.model.parameters())
    h = lm.content_hash()
    with torch.no_grad():
        next(lm.model.parameters()).add_(1e-3)
    assert lm.content_hash() != h


@pytest.mark.parametrize("preset", ["conv-tiny", "vit-tiny"])
def test_tokenizer_encoder_steps_match_the_encoder(preset):
    tokenizer = LearnedTokenizer.from_defaults("rgb", model={"preset": preset}, input_size=[32, 32])
    encoder = TokenizerEncoder(tokenizer, name="rgb")
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    x = encoder.normalize(images)
    with torch.no_grad():
        out = encoder.finish(encoder.run(encoder.begin(x), encoder.n_layers))
        assert torch.allclose(out, tokenizer.encoder(x), atol=1e-5)
        states = encoder.hidden_states(images)
    assert len(states) == encoder.n_layers + 1
    assert [s.shape[-1] for s in states] == [encoder.width(i) for i in range(encoder.n_layers + 1)]
    # the tokenizer's quantizer and decoder are not part of the component
    assert encoder.n_parameters() == sum(p.numel() for p in tokenizer.encoder.parameters())


def test_shipped_rgb_encoder_is_a_component():
    encoder = TokenizerEncoder(tokzoo.load_tokenizer("rgb"))
    assert encoder.n_layers == 9 and encoder.width(6) == 64 and encoder.width(9) == 32


def test_scene_text_answers_follow_the_rendered_scene():
    sample = generate_scene(3, seed=0, size=64)
    text = scene_text(sample)
    things = visible_things(sample)
    qa = dict(text["qa"])
    people = sum(t["cls"] == "person" for t in things)
    assert qa["is there a person?"] == ("yes" if people else "no")
    assert qa["how many people are there?"] == NUMBER_WORDS[people]
    boxes = {i for i in np.unique(sample["sam_instances"][sample["semseg"] == 4]) if i}
    assert qa["how many boxes are there?"] == NUMBER_WORDS[sum(t["cls"] == "box" for t in things)]
    assert sum(t["cls"] == "box" for t in things) <= len(boxes)
    nearest = min(things, key=lambda t: t["depth"])
    assert qa["what is the nearest thing?"] == nearest["cls"]
    for t in things:
        if t["colour"]:
            assert f"{t['colour']} {t['cls']}" in text["caption"] or len(things) > 5
    assert {question_type(q) for q in qa} <= {"person", "count", "nearest", "nearest_colour", "side", "colour"}
    again = SceneTextSet(2, seed=0, size=64)
    assert again.captions == SceneTextSet(2, seed=0, size=64).captions
    assert np.array_equal(again.images[1], generate_scene(1, 0, 64)["rgb"])
