"""Released-format 4M tokenizers through tokzoo.load_tokenizer, checked against tensors ml-4m's own code made.

tests/fixtures/fourm/ is written by scripts/make_fourm_fixtures.py (ml-4m at cda590f, reduced ViT size, random
perturbed weights): each case holds ml-4m's save of the tokenizer and ml-4m's input transform, tokens and
decoder output for the same raw data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import tokzoo
from tokzoo.errors import CheckpointError, ConfigError
from tokzoo.fourm.checkpoints import to_fourm

FIXTURES = Path(__file__).parent / "fixtures" / "fourm"
CASES = {
    "4M_tokenizers_rgb_tiny": "rgb",
    "4M_tokenizers_depth_tiny": "depth",
    "4M_tokenizers_normal_tiny": "normals",
    "4M_tokenizers_edge_tiny": "edges",
    "4M_tokenizers_semseg_tiny": "semseg",
    "4M_tokenizers_CLIP-B16_tiny": "dense_features",
    "4M_tokenizers_DINOv2-B14-global_tiny": "global_feature",
    "4M_tokenizers_human-poses_tiny": "human_pose",
    "4M_tokenizers_sam-instance_tiny": "sam_instances",
}


def source(case: str) -> Path:
    """The folder (hub form) or the single .safetensors (metadata form) of a case."""
    files = sorted((FIXTURES / case).glob("4M_*.safetensors"))
    return files[0] if files else FIXTURES / case


def reference(case: str) -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURES / case / "reference.safetensors"))


def test_fixture_folder_stays_small():
    assert sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file()) < 2_000_000


@pytest.mark.parametrize("case", sorted(CASES))
def test_port_matches_ml4m(case):
    tok = tokzoo.load_tokenizer(str(source(case)))
    ref = reference(case)
    assert tok.modality == CASES[case] and tok.architecture == "fourm_vqvae"
    # 4M's input convention, applied inside, gives what ml-4m's transforms give (bit for bit)
    model_input = tok.codec.to_model(ref["raw"].numpy())
    assert model_input.dtype == ref["fourm_input"].dtype and torch.equal(model_input, ref["fourm_input"])
    # identical tokens from raw values, row-major (B, h*w) as ml-4m's token files
    tokens = tok.encode(ref["raw"].numpy())
    assert tokens.dtype == torch.int64 and torch.equal(tokens, ref["tokens"].flatten(1))
    assert tok.token_shape == (ref["tokens"][0].numel(),)
    # decoder output close to ml-4m's; decode answers in tokzoo's values
    torch.testing.assert_close(tok.model.decode_tokens(ref["tokens"]), ref["decoded"], atol=1e-5, rtol=1e-5)
    decoded = tok.decode(tokens)
    assert_same_values(decoded, tok.codec.from_model(ref["decoded"]))


def assert_same_values(ours, theirs, path="decoded"):
    """Equal structure; floats within 1e-4. Integer maps thresholded from floats (edges) may flip where the
    decoder output sits within float error of the threshold, so they must agree on 99% of pixels."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and ours.keys() == theirs.keys(), path
        for key in theirs:
            assert_same_values(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(theirs, (list, tuple)) and not all(isinstance(v, (int, float)) for v in theirs):
        assert isinstance(ours, (list, tuple)) and len(ours) == len(theirs), path
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same_values(a, b, f"{path}[{i}]")
    elif isinstance(theirs, str) or theirs is None:
        assert ours == theirs, path
    else:
        a, b = np.asarray(ours), np.asarray(theirs)
        assert a.shape == b.shape and a.dtype == b.dtype, path
        if np.issubdtype(b.dtype, np.floating):
            np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4, err_msg=path)
        else:
            assert (a == b).mean() >= 0.99, f"{path}: {(a != b).sum()} of {b.size} values differ"


@pytest.mark.parametrize(
    "case", ["4M_tokenizers_semseg_tiny", "4M_tokenizers_CLIP-B16_tiny", "4M_tokenizers_DINOv2-B14-global_tiny"]
)
def test_tensors_map_back_to_ml4m_names_exactly(case):
    tok = tokzoo.load_tokenizer(str(source(case)))
    original = load_file(str(source(case) if source(case).is_file() else source(case) / "model.safetensors"))
    mapped = to_fourm(tok.tensors())
    assert sorted(mapped) == sorted(original)  # no missing, no unexpected
    for name, tensor in original.items():
        assert mapped[name].shape == tensor.shape and torch.equal(mapped[name].to(tensor.dtype), tensor), name
    if "quantize._codebook.embed" in original:  # cosine VQ: kept in vector-quantize-pytorch's layout
        embed = tok.tensors()["quantize.inner._codebook.embed"]
        assert embed.shape == (1, *original["quantize._codebook.embed"].shape)


def test_save_pretrained_round_trip(tmp_path):
    tok = tokzoo.load_tokenizer(str(source("4M_tokenizers_semseg_tiny")))
    tok.save_pretrained(tmp_path / "mine")
    again = tokzoo.load_tokenizer(str(tmp_path / "mine"))
    ref = reference("4M_tokenizers_semseg_tiny")
    assert json.loads((tmp_path / "mine" / "config.json").read_text())["architecture"] == "fourm_vqvae"
    assert again.content_hash() == tok.content_hash()
    assert torch.equal(again.encode(ref["raw"].numpy()), ref["tokens"].flatten(1))
    assert "4M semseg_coco tokenizer" in again.contract and "shifts ids by one" in again.contract


def copy_case(case: str, tmp_path: Path, name: str | None = None) -> Path:
    target = tmp_path / (name or case)
    shutil.copytree(FIXTURES / case, target)
    return target


def test_tensor_mismatches_are_one_line(tmp_path):
    folder = copy_case("4M_tokenizers_depth_tiny", tmp_path)
    tensors = load_file(str(folder / "model.safetensors"))
    save_file({k: v for k, v in tensors.items() if k != "quant_proj.bias"}, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model.safetensors: missing tensor\(s\) \['quant_proj.bias'\]"):
        tokzoo.load_tokenizer(str(folder))
    save_file({**tensors, "encoder.extra": torch.zeros(2)}, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"unexpected tensor\(s\) \['encoder.extra'\]"):
        tokzoo.load_tokenizer(str(folder))


def test_legacy_pth_is_refused_with_a_recipe(tmp_path):
    path = tmp_path / "depth.pth"
    path.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(CheckpointError) as e:
        tokzoo.load_tokenizer(str(path))
    message = str(e.value)
    assert "pickled checkpoint, not loaded" in message and "legacy 4M tokenizer .pth" in message
    assert "weights_only=False" in message
    assert "st.save_file({k: v.contiguous() for k, v in c['model'].items()}" in message and "\n" not in message


def test_domain_from_config_or_refused(tmp_path):
    folder = copy_case("4M_tokenizers_depth_tiny", tmp_path, "my_tokenizer")
    with pytest.raises(ConfigError, match="cannot tell which 4M domain"):
        tokzoo.load_tokenizer(str(folder))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "domain": "depth"}))
    assert tokzoo.load_tokenizer(str(folder)).modality == "depth"


def test_hub_id_loads_through_the_download_hook(monkeypatch):
    import tokzoo.tokenizers.zoo as zoo

    monkeypatch.setattr(zoo, "_download_from_hub", lambda repo_id: FIXTURES / "4M_tokenizers_semseg_tiny")
    tok = tokzoo.load_tokenizer("EPFL-VILAB/4M_tokenizers_semseg_4k_224-448")
    assert tok.modality == "semseg" and tok.config["domain"] == "semseg_coco"


def test_tokenize_with_a_4m_tokenizer_like_a_zoo_one(tmp_path):
    """`tokzoo tokenize -t depth=PATH_TO_4M_TOKENIZER`: the pipeline uses it, tokens equal its own encode."""
    from tokzoo.pipeline import TokenizeJob, tokenize
    from tokzoo.pipeline.report import source_crop
    from tokzoo.tokens.layout import read_npy_tar

    path = str(FIXTURES / "4M_tokenizers_depth_tiny")
    out = tmp_path / "tokens"
    tokenize(
        TokenizeJob(
            modalities=["depth"],
            output=out,
            tokenizers={"depth": path},
            crops=2,
            size=(16, 16),
            batch_size=4,
            workers=0,
            scenes=3,
            scene_size=32,
            progress=False,
        )
    )
    manifest = json.loads((out / "manifest.json").read_text())["modalities"]["depth"]
    assert (
        manifest["vocab_size"] == 64
        and manifest["token_shape"] == [16]
        and manifest["name"] == "4M_tokenizers_depth_tiny"
    )
    tok = tokzoo.load_tokenizer(path)
    crops = dict(read_npy_tar(out / "crops" / "shard-000000.tar"))
    for key, tokens in read_npy_tar(out / "depth" / "shard-000000.tar"):
        crop = source_crop(manifest, "depth", key, crops[key][1])
        assert np.array_equal(tokens[1], tok.encode(crop)[0].numpy())


def test_diffusion_decoder_matches_ml4m_under_the_same_scheduler_steps_and_noise():
    """DiVAE: ml-4m's pipeline with its DDIMScheduler, 3 trailing steps, noise from Generator().manual_seed(0)."""
    case = "4M_tokenizers_depth_divae_tiny"
    tok = tokzoo.load_tokenizer(str(FIXTURES / case))
    ref = reference(case)
    assert tok.unet is not None and tok.config["diffusion"] == {"steps": 25, "seed": 0, "timesteps_mode": "trailing"}
    tokens = tok.encode(ref["raw"].numpy())
    assert torch.equal(tokens, ref["tokens"].flatten(1))
    decoded = tok.decode(tokens, steps=3, seed=0)  # standardised depth (B, H, W)
    np.testing.assert_allclose(decoded, ref["decoded"][:, 0].numpy(), atol=1e-5, rtol=1e-5)
    assert not np.allclose(tok.decode(tokens, steps=3, seed=1), decoded)  # the seed is the noise
    original = load_file(str(FIXTURES / case / "model.safetensors"))
    mapped = to_fourm(tok.tensors())
    assert sorted(mapped) == sorted(original) and any(k.startswith("decoder.input_blocks") for k in mapped)
    assert all(torch.equal(mapped[k].to(v.dtype), v) for k, v in original.items())


def test_unported_diffusion_decoder_is_carried_and_decode_refuses(tmp_path):
    folder = copy_case("4M_tokenizers_depth_divae_tiny", tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "dec_type": "uvit_b"}))  # a UViT decoder: not ported
    tok = tokzoo.load_tokenizer(str(folder))
    ref = reference("4M_tokenizers_depth_divae_tiny")
    assert torch.equal(tok.encode(ref["raw"].numpy()), ref["tokens"].flatten(1))
    assert any(k.startswith("decoder.") for k in tok.tensors())  # kept, saved and hashed as loaded
    with pytest.raises(ConfigError, match=r"diffusion decoder \(uvit_b\) is not ported; encode works exactly"):
        tok.decode(ref["tokens"].flatten(1))
    tok.save_pretrained(tmp_path / "saved")
    assert tokzoo.load_tokenizer(str(tmp_path / "saved")).content_hash() == tok.content_hash()


def test_human_pose_tokenizer_takes_one_images_smpl_pose_dict():
    tok = tokzoo.load_tokenizer(str(FIXTURES / "4M_tokenizers_human-poses_tiny"))
    ref = reference("4M_tokenizers_human-poses_tiny")
    pose = {"skeleton": "smpl", "humans": [{"body_pose": r.tolist()} for r in ref["raw"].numpy()]}
    assert tok.codec.batch_is_samples is False  # set-valued: the batch axis is one image's humans
    assert torch.equal(tok.encode(pose), ref["tokens"].flatten(1)) and tok.token_shape == (4,)
    decoded = tok.decode(tok.encode(pose))
    assert decoded["skeleton"] == "smpl" and len(decoded["humans"]) == len(ref["raw"])


def test_converted_legacy_checkpoint_with_training_argument_names_loads(tmp_path):
    """What the .pth recipe writes: ml-4m's training args (encoder_type, quantizer_type, input_size, domain, ...) as
    metadata strings; n_channels comes from the tensors, as ml-4m's get_image_tokenizer derives it."""
    case = "4M_tokenizers_depth_tiny"
    config = json.loads((FIXTURES / case / "config.json").read_text())
    legacy = {
        "encoder_type": config["enc_type"],
        "decoder_type": config["dec_type"],
        "quantizer_type": "lucid",
        "input_size": config["image_size"],
        "patch_size": config["patch_size"],
        "post_mlp": True,
        "codebook_size": config["codebook_size"],
        "latent_dim": 32,
        "norm_codes": True,
        "domain": "depth",
        "mask_value": None,
        "blr": 0.0001,
    }
    path = tmp_path / "depth.safetensors"
    save_file(
        load_file(str(FIXTURES / case / "model.safetensors")),
        str(path),
        metadata={k: str(v) for k, v in legacy.items()},
    )
    tok = tokzoo.load_tokenizer(str(path))
    ref = reference(case)
    assert tok.config["domain"] == "depth" and tok.config["fourm"]["n_channels"] == 1
    assert torch.equal(tok.encode(ref["raw"].numpy()), ref["tokens"].flatten(1))


def test_metadata_that_is_not_a_plain_argument_stays_a_string(tmp_path):
    """A YAML alias 'bomb' in the single-file form's metadata is not expanded into the config (it would be hashed)."""
    case = "4M_tokenizers_CLIP-B16_tiny"
    original = source(case)
    from safetensors import safe_open

    with safe_open(str(original), framework="pt") as f:
        metadata = dict(f.metadata())
    bomb = "a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: [*c, *c, *c, *c]"
    path = tmp_path / f"{case}.safetensors"
    save_file(load_file(str(original)), str(path), metadata={**metadata, "notes": bomb})
    tok = tokzoo.load_tokenizer(str(path))
    assert tok.config["fourm"]["notes"] == bomb
    assert torch.equal(tok.encode(reference(case)["raw"].numpy()), reference(case)["tokens"].flatten(1))


def test_released_4m_tokenizers_are_listed_and_load_by_name_from_a_local_copy(tmp_path, monkeypatch):
    """`-t depth=4m_depth`: the catalog name finds $TOKZOO_4M_TOKENIZERS/<repo name> (ml-4m layout, random weights)."""
    from click.testing import CliRunner

    from tokzoo.fourm.catalog import RELEASED_TOKENIZERS
    from tokzoo_cli.main import cli

    entry = RELEASED_TOKENIZERS["4m_depth"]
    shutil.copytree(FIXTURES / "4M_tokenizers_depth_tiny", tmp_path / entry.repo_name)
    monkeypatch.setenv("TOKZOO_4M_TOKENIZERS", str(tmp_path))
    tok = tokzoo.load_tokenizer("4m_depth")
    assert tok.modality == "depth" and tok.config["domain"] == "depth"
    direct = tokzoo.load_tokenizer(str(FIXTURES / "4M_tokenizers_depth_tiny"))
    depth = np.full((32, 32), 2.5, np.float32)
    assert torch.equal(tok.encode(depth), direct.encode(depth))
    listing = CliRunner().invoke(cli, ["zoo", "list"]).output
    for released in RELEASED_TOKENIZERS.values():
        assert released.name in listing and released.hub_id in listing
    assert "MB (cached)" in next(line for line in listing.splitlines() if line.startswith("4m_depth"))


def test_released_4m_tokenizer_offline_is_one_line_naming_the_hub_id(monkeypatch):
    import tokzoo.tokenizers.zoo as zoo
    from tokzoo.errors import TokzooError

    monkeypatch.delenv("TOKZOO_4M_TOKENIZERS", raising=False)

    def offline(repo_id):
        raise TokzooError(f"{repo_id}: could not fetch from the Hugging Face hub (ConnectionError)")

    monkeypatch.setattr(zoo, "_download_from_hub", offline)
    with pytest.raises(TokzooError) as error:
        tokzoo.load_tokenizer("4m_rgb")
    message = str(error.value)
    assert "EPFL-VILAB/4M_tokenizers_rgb_16k_224-448" in message and "huggingface-cli download" in message
    assert "\n" not in message
