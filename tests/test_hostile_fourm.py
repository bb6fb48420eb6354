"""Issue 25, the ml-4m import and export paths: hostile tokenizer config.json (an MLP of a million blocks, a width
of 10^6, 10^12 codes, nesting), tensors relabelled or NaN, legacy pickled .pth files (never unpickled), a FIFO in a
folder layout, hostile fourm_modalities.json, and exports whose ids leave the vocabulary or would wrap in int16."""

import json
import os
import shutil
import time

import numpy as np
import pytest
from hostile_newer import (
    PICKLE_PAYLOAD,
    big_int_json,
    deep_json,
    edit_json,
    edit_tensors,
    fifo_in_place_of,
    pickle_with_payload,
    poison,
    relabel,
)
from test_fourm_layouts import tokens_dir, write_like_ml4m  # noqa: F401 - the module fixture

import tokzoo
from tokzoo.errors import CheckpointError, ConfigError, InputError, TokzooError
from tokzoo.fourm.export import export_4m
from tokzoo.tokens import make_loader
from tokzoo.tokens.layout import read_npy_tar
from tokzoo.tokens.tars import npy_bytes, tar_bytes

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures" / "fourm"
MLP = "4M_tokenizers_DINOv2-B14-global_tiny"
VIT = "4M_tokenizers_rgb_tiny"


def config(**fields):
    return lambda f: edit_json(f / "config.json", lambda c: c.update(fields))


CONFIGS = {  # name -> (fixture, damage, what the one line says)
    "mlp_million_blocks": (MLP, config(enc_type="BottleneckMLP/B_1000000-Wi_32"),
                           "enc_type B_ 1000000 is refused: expected an integer in [1, 64]"),
    "mlp_width_1e6": (MLP, config(dec_type="BottleneckMLP/B_1-Wi_1000000"), "dec_type Wi_ 1000000 is refused"),
    "mlp_expansion_1e4": (MLP, config(enc_type="BottleneckMLP/B_1-Wi_32-Ex_10000"), "enc_type Ex_ 10000 is refused"),
    "mlp_5000_digit_depth": (MLP, config(enc_type="BottleneckMLP/B_" + "9" * 5000 + "-Wi_32"), "enc_type"),
    "mlp_id_garbage": (MLP, config(enc_type="BottleneckMLP/B_x-Wi_y"), "expected BottleneckMLP/B_<n>-Wi_<width>"),
    "latent_dim_1e6": (MLP, config(latent_dim=10**6), "latent_dim 1000000 is refused"),
    "codebook_1e12": (MLP, config(codebook_size=10**12), "codebook_size 1000000000000 is refused"),
    "codebooks_1e6": (MLP, config(num_codebooks=10**6), "num_codebooks 1000000 is refused"),
    "image_size_dec_1e6": (VIT, config(image_size_dec=10**6), "image_size_dec 1000000 is refused"),
    "image_size_1e6": (VIT, config(image_size=10**6), "image_size 1000000 is refused"),
    "patch_size_zero": (VIT, config(patch_size=0), "patch_size 0 is refused"),
    "patches_over_limit": (VIT, config(image_size=8192, patch_size=4), "patches, over the limit of 16384"),
    "image_size_text": (VIT, config(image_size="big"), "image_size 'big' is refused"),
    "labels_1e9": (VIT, config(n_labels=10**9), "n_labels 1000000000"),
    "enc_type_number": (VIT, config(enc_type=7), "enc_type"),
    "patch_size_missing": (MLP, lambda f: edit_json(f / "config.json", lambda c: c.pop("patch_size")),
                           "patch_size None is refused"),  # found by benchmarks/fuzz.py (a KeyError)
    "codebook_size_missing": (VIT, lambda f: edit_json(f / "config.json", lambda c: c.pop("codebook_size")),
                              "codebook_size None is refused"),
    "config_deep": (VIT, lambda f: (f / "config.json").write_text(deep_json()), "config.json"),
    "config_5000_digits": (VIT, lambda f: (f / "config.json").write_text(big_int_json("image_size")), "config.json"),
    "weights_relabelled": (VIT, lambda f: relabel(f / "model.safetensors", "I32", "encoder.proj.weight"),
                           "tensor 'encoder.proj.weight' has dtype int32, expected float32"),
    "weights_nan": (VIT, lambda f: edit_tensors(f / "model.safetensors", poison), "holds NaN or infinite values"),
    "weights_all_nan": (MLP, lambda f: edit_tensors(f / "model.safetensors", lambda t: poison(t, every=True)),
                        "holds NaN or infinite values"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_hostile_4m_tokenizer_folder_gives_one_typed_line(tmp_path, name):
    fixture, damage, fragment = CONFIGS[name]
    folder = tmp_path / fixture
    shutil.copytree(FIXTURES / fixture, folder)
    (folder / "reference.safetensors").unlink()
    damage(folder)
    start = time.perf_counter()
    with pytest.raises((CheckpointError, ConfigError)) as error:
        tokzoo.load_tokenizer(str(folder))
    message = str(error.value)
    assert "\n" not in message and str(folder) in message and fragment in message, message
    assert time.perf_counter() - start < 30


def test_relabelled_weights_no_longer_encode_to_zeros(tmp_path):
    """The intact fixture encodes to varied ids (the relabelled copy, refused above, gave all zeros)."""
    tok = tokzoo.load_tokenizer(str(FIXTURES / VIT))
    rgb = np.random.default_rng(0).integers(0, 255, (2, 16, 16, 3), np.uint8)
    assert len(np.unique(tok.encode(rgb).numpy())) > 1


def test_legacy_pth_is_refused_and_never_unpickled(tmp_path):
    pickle_with_payload(tmp_path / "4M_tokenizers_rgb.pth", tmp_path / PICKLE_PAYLOAD)
    with pytest.raises(CheckpointError, match=r"4M_tokenizers_rgb.pth: pickled checkpoint, not loaded"):
        tokzoo.load_tokenizer(str(tmp_path / "4M_tokenizers_rgb.pth"))
    assert not (tmp_path / PICKLE_PAYLOAD).exists()


def test_config_fifo_in_a_4m_folder_is_refused_without_blocking(tmp_path):
    folder = tmp_path / VIT
    shutil.copytree(FIXTURES / VIT, folder)
    fifo_in_place_of(folder / "config.json")
    with pytest.raises(TokzooError) as error:
        tokzoo.load_tokenizer(str(folder))
    assert "\n" not in str(error.value) and "config.json" in str(error.value)


# -- ml-4m token layouts ------------------------------------------------------------------------------------------
def test_fifo_in_a_folder_layout_is_refused_not_read(tmp_path):
    """np.load on a FIFO blocks forever; the folder layout reads through the guarded reader."""
    write_like_ml4m(tmp_path, "folder")
    fifo_in_place_of(tmp_path / "tok_depth@224" / "class0" / "img1.npy")
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"img1.npy: not a regular file \(FIFO\)"):
        list(make_loader(tmp_path, ["tok_depth@224"], batch_size=4, shuffle=False))
    assert time.perf_counter() - start < 30


def test_header_lying_npy_in_a_folder_layout(tmp_path):
    write_like_ml4m(tmp_path, "folder")
    path = tmp_path / "tok_depth@224" / "class0" / "img0.npy"
    data = path.read_bytes()
    path.write_bytes(data.replace(b"(3, 196)", b"(3000000, 196)", 1))
    with pytest.raises(InputError, match=r"img0.npy: .npy header declares"):
        list(make_loader(tmp_path, ["tok_depth@224"], batch_size=4, shuffle=False))


INFO = {  # fourm_modalities.json damage -> fragment
    "vocab_1e12": (lambda i: i["modalities"]["tok_depth@224"].update(vocab_size=10**12), "vocab_size 1000000000000"),
    "input_size_1e9": (lambda i: i["modalities"]["tok_depth@224"].update(input_size=10**9), "input_size 1000000000"),
    "patch_size_zero": (lambda i: i["modalities"]["tok_depth@224"].update(patch_size=0), "patch_size 0 is refused"),
}


@pytest.mark.parametrize("name", sorted(INFO) + ["deep", "fifo"])
def test_hostile_fourm_modalities_json(tmp_path, name):
    write_like_ml4m(tmp_path, "webdataset")
    info = tmp_path / "fourm_modalities.json"
    info.write_text(
        json.dumps(
            {"modalities": {"tok_depth@224": {"vocab_size": 8192, "input_size": 224, "patch_size": 16, "type": "img"}}}
        )
    )
    if name == "deep":
        info.write_text(deep_json())
    elif name == "fifo":
        fifo_in_place_of(info)
    else:
        edit_json(info, INFO[name][0])
    with pytest.raises(TokzooError) as error:
        list(make_loader(tmp_path, ["tok_depth@224"], batch_size=4, shuffle=False))
    message = str(error.value)
    assert "\n" not in message and "fourm_modalities.json" in message, message
    assert name not in INFO or INFO[name][1] in message, message
    assert name != "deep" or "nests too deeply" in message


# -- export --to 4m ------------------------------------------------------------------------------------------------
def with_ids(tokens_dir, target, value, dtype, vocab=None):
    """A copy of the dataset whose first depth shard holds ``value`` as every id (``dtype``), manifest vocabulary
    ``vocab`` (unchanged when None)."""
    shutil.copytree(tokens_dir, target)
    tar = sorted((target / "depth").glob("*.tar"))[0]
    members = [(k, npy_bytes(np.full(a.shape, value, dtype))) for k, a in read_npy_tar(tar)]
    tar.write_bytes(tar_bytes(members))
    if vocab is not None:
        edit_json(target / "manifest.json", lambda m: m["modalities"]["depth"].update(vocab_size=vocab))
    return target


@pytest.mark.parametrize(
    "value, dtype, vocab, fragment",
    [
        (200, np.uint8, None, r"token ids in \[200, 200\] outside the vocabulary \[0, 125\); not exported"),
        (40000, np.uint16, 30000, r"token ids in \[40000, 40000\] outside the vocabulary \[0, 30000\)"),
        (-3, np.int16, None, r"token ids in \[-3, -3\] outside the vocabulary"),
    ],
)
def test_export_refuses_ids_outside_the_vocabulary_and_int16_wraparound(
    tokens_dir,
    tmp_path,
    value,
    dtype,
    vocab,  # noqa: F811
    fragment,
):
    src = with_ids(tokens_dir, tmp_path / "src", value, dtype, vocab)
    with pytest.raises(InputError, match=fragment) as error:
        export_4m(src, tmp_path / "out", modalities=["depth"], progress=False)
    assert "\n" not in str(error.value) and "depth/shard-000000.tar" in str(error.value)
    written = [np.load(p) for p in (tmp_path / "out").rglob("*.npy")] if (tmp_path / "out").exists() else []
    assert not any((a < 0).any() for a in written)  # nothing wrapped around was written


def test_ray_address_of_a_closed_port_is_one_line_after_a_bounded_wait(tmp_path):
    """--engine ray --address at a loopback port nobody listens on: refused in one line, not retried forever."""
    import socket

    from hostile_inputs import assert_one_line_error, run_cli

    pytest.importorskip("ray")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    start = time.perf_counter()
    result = run_cli(
        "tokenize",
        "-m",
        "depth",
        "--scenes",
        "2",
        "--scene-size",
        "32",
        "--engine",
        "ray",
        "--address",
        f"127.0.0.1:{port}",
        "-o",
        str(tmp_path / "out"),
        timeout=120,
    )
    assert_one_line_error(result, f"--address 127.0.0.1:{port}: no Ray cluster answers there")
    assert time.perf_counter() - start < 90
    assert not os.path.exists(tmp_path / "out" / "manifest.json")


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("image_size", "9" * 5000, "image_size '99999999999"),  # a 5,000-digit integer stays text, then is refused
        ("patch_size", "[" * 5000, "patch_size '[[[[["),
        ("codebook_size", "1000000000000", "codebook_size 1000000000000 is refused"),
    ],
)
def test_hostile_metadata_of_a_single_file_4m_tokenizer(tmp_path, key, value, fragment):
    """ml-4m's single-file form keeps the constructor arguments as YAML strings in the safetensors metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    source = next((FIXTURES / "4M_tokenizers_CLIP-B16_tiny").glob("4M_*.safetensors"))
    with safe_open(str(source), framework="pt") as f:
        metadata = f.metadata()
    path = tmp_path / source.name
    save_file(load_file(str(source)), str(path), metadata={**metadata, key: value})
    with pytest.raises(ConfigError) as error:
        tokzoo.load_tokenizer(str(path))
    assert "\n" not in str(error.value) and str(path) in str(error.value) and fragment in str(error.value), str(
        error.value
    )
