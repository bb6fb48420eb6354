"""The Tokenizer API: every model family x quantizer saves and loads to identical tokens; bad checkpoints fail clearly."""

import json
import pickle

import numpy as np
import pytest
import torch

import tokzoo
from tokzoo.errors import CheckpointError, DtypeError, InvalidValueError, ShapeError, TokzooError
from tokzoo.indices import storage_dtype, to_ids, to_storage
from tokzoo.tokenizers.base import Tokenizer
from tokzoo.tokenizers.learned import LearnedTokenizer
from tokzoo.tokenizers.quantizers import FSQ_LEVELS, QUANTIZER_TYPES, build_quantizer

QUANTIZERS = {
    "fsq": {"type": "fsq", "levels": [8, 5, 5, 5]},
    "residual_fsq": {"type": "residual_fsq", "levels": [5, 5, 5], "num_quantizers": 2},
    "vq": {"type": "vq", "codebook_size": 64},
    "residual_vq": {"type": "residual_vq", "codebook_size": 64, "num_quantizers": 2},
    "lfq": {"type": "lfq", "codebook_size": 64},
    "residual_lfq": {"type": "residual_lfq", "codebook_size": 64, "num_quantizers": 2},
}
# (modality, model preset, input size, raw sample maker)
FAMILIES = {
    "conv": ("depth", "conv-tiny", [32, 48], lambda rng, n: rng.uniform(0.5, 20, (n, 32, 48)).astype(np.float32)),
    "vit": ("rgb", "vit-tiny", [32, 32], lambda rng, n: rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)),
    "mlp": ("global_feature", "mlp-small", [64], lambda rng, n: rng.standard_normal((n, 64)).astype(np.float32)),
}


def make_tokenizer(family, quantizer, seed=0):
    modality, preset, size, make = FAMILIES[family]
    config = {
        "modality": modality,
        "model": {"preset": preset},
        "latent_dim": 16,
        "quantizer": QUANTIZERS[quantizer],
        "input_size": size,
    }
    if modality == "global_feature":
        config["normalization"] = {"dim": 64}
    torch.manual_seed(seed)
    tokenizer = LearnedTokenizer(config)
    data = make(np.random.default_rng(seed), 4)
    if quantizer.endswith("vq"):  # VQ codebooks are initialised by k-means on a training batch
        tokenizer.train()
        tokenizer(tokenizer.codec.to_model(data))
        tokenizer.eval()
    return tokenizer, data


@pytest.mark.parametrize("quantizer", sorted(QUANTIZERS))
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_save_load_gives_identical_tokens(tmp_path, family, quantizer):
    tokenizer, data = make_tokenizer(family, quantizer)
    tokens = tokenizer.encode(data)
    assert tokens.dtype == torch.int64
    assert tuple(tokens.shape) == (len(data), *tokenizer.token_shape)
    assert int(tokens.min()) >= 0 and int(tokens.max()) < tokenizer.vocab_size

    tokenizer.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    reloaded = Tokenizer.from_pretrained(tmp_path)
    assert reloaded.untrained is False
    assert torch.equal(reloaded.encode(data), tokens)
    assert reloaded.content_hash() == tokenizer.content_hash()
    decoded = reloaded.decode(tokens)
    assert decoded.shape == data.shape


def test_every_quantizer_type_is_covered():
    assert set(QUANTIZERS) == set(QUANTIZER_TYPES)


@pytest.mark.parametrize("levels", list(FSQ_LEVELS.values()))
def test_fsq_indices_codes_round_trip_exactly(levels):
    quantizer = build_quantizer({"type": "fsq", "levels": levels}, dim=len(levels))
    every_id = torch.arange(quantizer.codebook_size)[None]
    codes = quantizer.indices_to_codes(every_id)
    assert torch.equal(quantizer.codes_to_indices(codes), every_id)


def test_quantisation_stays_float32_under_bf16_autocast():
    quantizer = build_quantizer({"type": "fsq", "levels": FSQ_LEVELS[2**16]}, dim=8)
    z = torch.randn(2, 500, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = quantizer(z)
    assert out.quantized.dtype == torch.float32
    assert int(out.indices.max()) > 256  # ids above bf16's exact-integer range survive
    assert torch.equal(out.indices, quantizer(z).indices)


def test_index_storage_dtypes():
    assert storage_dtype(256) == np.uint8
    assert storage_dtype(1000) == np.uint16 and storage_dtype(65536) == np.uint16
    assert storage_dtype(65537) == np.int32
    ids = torch.tensor([[0, 65535]])
    stored = to_storage(ids, 65536)
    assert stored.dtype == np.uint16 and torch.equal(to_ids(stored, 65536), ids)
    with pytest.raises(DtypeError):
        to_ids(np.array([1.0, 2.0]), 10)
    with pytest.raises(InvalidValueError):
        to_ids(np.array([10]), 10)


def test_readme_python_example(tmp_path):
    # Mirrors the README's Python tour (works whether or not the zoo ships depth weights).
    tok = tokzoo.load_tokenizer("depth", untrained_ok=True)
    assert "metres" in tok.contract
    depth = np.full((224, 224), 3.0, dtype=np.float32)
    depth[:20] = np.nan  # invalid pixels are NaN (or 0, or inf)
    tokens = tok.encode(depth)
    assert tokens.dtype == torch.int64 and tokens.shape == (1, *tok.token_shape_for(depth.shape))
    metres = tok.decode(tokens, input_size=depth.shape)
    assert metres.shape == (1, 224, 224) and metres.dtype == np.float32
    tok.save_pretrained(tmp_path / "my-depth")
    again = tokzoo.load_tokenizer(tmp_path / "my-depth")
    assert torch.equal(again.encode(depth), tokens)
    assert again.untrained == tok.untrained


def test_zoo_refuses_missing_weights_unless_untrained_ok():
    with pytest.raises(TokzooError, match="no shipped weights"):
        tokzoo.load_tokenizer("clip_global")
    untrained = tokzoo.load_tokenizer("clip_global", untrained_ok=True)
    assert untrained.token_shape == (16,) and untrained.untrained is True
    with pytest.raises(TokzooError, match="not a zoo name"):
        tokzoo.load_tokenizer("no such thing")


def test_a_mistyped_local_path_is_not_reported_as_a_hub_outage(tmp_path, monkeypatch):
    """'runs/dpeth' beside a local runs/ used to end in 'could not fetch from the Hugging Face hub ... offline?'."""
    from tokzoo.tokenizers import zoo

    def offline(repo_id):
        raise TokzooError(f"{repo_id}: could not fetch from the Hugging Face hub (LocalEntryNotFoundError)")

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(TokzooError, match=r"^runs/dpeth: no such tokenizer directory \(nor a hub id"):
        zoo.load_tokenizer("runs/dpeth", download=offline)
    with pytest.raises(TokzooError, match="could not fetch"):  # no local 'someone/': a hub id after all
        zoo.load_tokenizer("someone/depth", download=offline)
    with pytest.raises(TokzooError, match="^./dpeth: no such tokenizer directory$"):
        zoo.load_tokenizer("./dpeth", download=offline)


def test_encode_validates_the_contract():
    tok = tokzoo.load_tokenizer("depth", untrained_ok=True)
    with pytest.raises(DtypeError, match="float metres"):
        tok.encode(np.ones((224, 224), np.uint16))
    with pytest.raises(InvalidValueError, match="no valid value"):
        tok.encode(np.full((224, 224), np.nan, np.float32))
    with pytest.raises(ShapeError, match="downsampling"):
        tok.encode(np.ones((100, 100), np.float32))


def test_read_only_arrays_encode_without_a_torch_warning():
    """Decoded images (np.asarray of a PIL image) are read-only; encode copies them instead of letting torch warn."""
    import warnings

    for name, value in [("depth", np.full((64, 64), 3.0, np.float32)), ("rgb", np.full((64, 64, 3), 90, np.uint8))]:
        value.flags.writeable = False
        tok = tokzoo.load_tokenizer(name, untrained_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert tok.encode(value).shape[0] == 1


def test_untrained_vq_is_refused_rather_than_silently_initialised():
    tokenizer = LearnedTokenizer(
        {
            "modality": "depth",
            "model": {"preset": "conv-tiny"},
            "latent_dim": 8,
            "quantizer": QUANTIZERS["vq"],
            "input_size": [32, 32],
        }
    )
    with pytest.raises(TokzooError, match="never initialised"):
        tokenizer.encode(np.ones((32, 32), np.float32))


# -- bad checkpoints ------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    tokenizer, data = make_tokenizer("conv", "fsq")
    tokenizer.save_pretrained(tmp_path)
    return tmp_path


def test_truncated_weights_give_a_clear_error(saved):
    weights = saved / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="model.safetensors: corrupt or truncated"):
        Tokenizer.from_pretrained(saved)


def test_unknown_format_version_is_refused(saved):
    config = json.loads((saved / "config.json").read_text())
    config["format_version"] = 99
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="format_version 99"):
        Tokenizer.from_pretrained(saved)


def test_tampered_config_shape_mismatch(saved):
    config = json.loads((saved / "config.json").read_text())
    config["latent_dim"] = 24
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="has shape"):
        Tokenizer.from_pretrained(saved)


def test_config_that_is_not_json(saved):
    (saved / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        Tokenizer.from_pretrained(saved)


def test_missing_tensor(saved):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(saved / "model.safetensors"))
    tensors.pop(sorted(tensors)[0])
    save_file(tensors, str(saved / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing tensor"):
        Tokenizer.from_pretrained(saved)


class _Exploit:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_pickled_checkpoint_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "model.pt"
    evil.write_bytes(pickle.dumps({"weight": _Exploit()}))
    with pytest.raises(CheckpointError, match="pickled checkpoints are not loaded"):
        tokzoo.load_tokenizer(evil)
    from tokzoo.tokenizers.checkpoint import read_foreign_state_dict

    with pytest.raises(CheckpointError, match="weights_only=True"):
        read_foreign_state_dict(evil)
    assert not (tmp_path / "PWNED").exists()
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(2)}, good)
    assert torch.equal(read_foreign_state_dict(good)["w"], torch.ones(2))


def test_every_architecture_loads_in_a_fresh_interpreter(tmp_path):
    # A saved captions tokenizer was unloadable unless tokzoo.tokenizers.text happened to be imported first:
    # `import tokzoo` registered only the learned and binned_* architectures.
    import subprocess
    import sys

    from tokzoo.tokenizers.structured import BoxesTokenizer, MetadataTokenizer, PaletteTokenizer
    from tokzoo.tokenizers.text import CaptionTokenizer

    for tokenizer in (CaptionTokenizer(length=8), PaletteTokenizer(), MetadataTokenizer(), BoxesTokenizer()):
        tokenizer.save_pretrained(tmp_path / tokenizer.architecture)
    script = "import sys, tokzoo\nfor d in sys.argv[1:]: print(tokzoo.load_tokenizer(d).architecture)\n"
    dirs = sorted(str(p) for p in tmp_path.iterdir())
    result = subprocess.run([sys.executable, "-c", script, *dirs], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [p.rsplit("/", 1)[1] for p in dirs]


def test_hub_download_fetches_the_vocabulary_of_text_tokenizers(monkeypatch, tmp_path):
    import huggingface_hub

    from tokzoo.tokenizers import zoo

    asked = {}

    def fake_snapshot_download(repo_id, allow_patterns):
        asked["patterns"] = allow_patterns
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    zoo._download_from_hub("someone/captions")
    assert {"config.json", "model.safetensors", "vocab.json"} <= set(asked["patterns"])


def test_inputs_the_contract_allows_are_taken_and_others_fail_with_typed_errors():
    depth = tokzoo.load_tokenizer("depth", untrained_ok=True)
    x = np.random.default_rng(0).uniform(0.5, 20, (64, 64)).astype(np.float32)
    # float32 in big-endian byte order (a .npy written elsewhere) is still float32 metres
    assert torch.equal(depth.encode(x.astype(">f4")), depth.encode(x))
    with pytest.raises(ShapeError, match="share one shape"):  # was a bare ValueError from np.stack
        depth.encode([x, x[:32, :32]])
    with pytest.raises(ShapeError, match="share one shape"):
        depth.encode([torch.from_numpy(x), torch.from_numpy(x[:32, :32])])
    # sam_instances: "other integer dtypes with ids >= 0 are accepted" (int8 and uint32 were refused)
    sam = tokzoo.load_tokenizer("sam_instances", untrained_ok=True)
    instance_map = np.zeros((64, 64), np.uint16)
    instance_map[8:40, 10:50] = 3
    expected = sam.encode(instance_map)
    for dtype in (np.int8, np.uint32, np.int64, np.uint64):
        assert torch.equal(sam.encode(instance_map.astype(dtype)), expected), dtype
    with pytest.raises(DtypeError):
        sam.encode(instance_map.astype(np.float32))
    # token ids in a float tensor are refused by the storage path too (bf16 used to raise TypeError)
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        with pytest.raises(DtypeError, match="must be integers"):
            to_storage(torch.ones(3, dtype=dtype), 10)
