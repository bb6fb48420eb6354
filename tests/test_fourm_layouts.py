"""tokzoo export --to 4m (ml-4m's webdataset and folder layouts) and tokzoo.tokens / inspect / show reading them back."""

from __future__ import annotations

import io
import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tokzoo.errors import ConfigError, DtypeError, InvalidValueError, ShapeError
from tokzoo.fourm.export import export_4m
from tokzoo.fourm.reader import FourMLayout, detect_layout
from tokzoo.pipeline import TokenizeJob, tokenize
from tokzoo.tokens import make_loader
from tokzoo.tokens.layout import read_npy_tar
from tokzoo_cli.main import cli

CROPS = 2


@pytest.fixture(scope="module")
def tokens_dir(tmp_path_factory) -> Path:
    """A real `tokzoo tokenize` output: 5 built-in scenes in 2 shards, depth + rgb at 32 px, 2 crops, and human_pose."""
    out = tmp_path_factory.mktemp("tokens") / "tokens"
    tokenize(
        TokenizeJob(
            modalities=["depth", "rgb", "human_pose"],
            output=out,
            crops=CROPS,
            size=(32, 32),
            batch_size=8,
            workers=0,
            samples_per_shard=3,
            scenes=5,
            scene_size=48,
            progress=False,
        )
    )
    return out


def tokzoo_members(src: Path, folder: str) -> dict[str, np.ndarray]:
    return {k: a for tar in sorted((src / folder).glob("*.tar")) for k, a in read_npy_tar(tar)}


def exported_members(dst: Path, folder: str, layout: str) -> dict[str, np.ndarray]:
    if layout == "webdataset":
        return {k: a for tar in sorted((dst / folder).glob("*.tar")) for k, a in read_npy_tar(tar)}
    return {p.stem: np.load(p, allow_pickle=False) for p in sorted((dst / folder).glob("*/*.npy"))}


def all_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("layout", ["webdataset", "folder"])
def test_export_writes_4m_arrays_and_reads_back_identically(tokens_dir, tmp_path, layout):
    dst = tmp_path / "4m"
    info = export_4m(tokens_dir, dst, layout=layout, modalities=["depth", "rgb"], progress=False)
    assert set(info["modalities"]) == {"tok_depth@32", "tok_rgb@32"}
    assert info["modalities"]["tok_depth@32"] == {
        "vocab_size": 125,
        "input_size": 32,
        "patch_size": 8,
        "type": "img",
        "n_tokens": 16,
        "released": False,
    }
    assert detect_layout(dst) == layout
    if layout == "webdataset":
        assert sorted(p.name for p in (dst / "tok_depth@32").iterdir()) == ["shard-00000.tar", "shard-00001.tar"]
        assert info["data_path"] == "[tok_depth@32,tok_rgb@32,crop_settings]/shard-{00000..00001}.tar"
    else:
        assert sorted(p.name for p in (dst / "crop_settings").iterdir()) == ["shard-00000", "shard-00001"]
    for modality, name in [("depth", "tok_depth@32"), ("rgb", "tok_rgb@32"), ("crops", "crop_settings")]:
        ours, theirs = tokzoo_members(tokens_dir, modality), exported_members(dst, name, layout)
        assert list(ours) == list(theirs) and len(ours) == 5
        for key, array in ours.items():
            assert theirs[key].dtype == (np.int64 if modality == "crops" else np.int16)
            assert theirs[key].shape == (CROPS, 5 if modality == "crops" else 16)
            np.testing.assert_array_equal(theirs[key], array.reshape(CROPS, -1))
    # tokzoo.tokens reads the export like the original, tokzoo names or 4M names, batch for batch
    for crop in (0, 1):
        original = list(make_loader(tokens_dir, ["depth", "rgb", "crops"], batch_size=2, shuffle=False, crop=crop))
        again = list(make_loader(dst, ["tok_depth@32", "rgb", "crops"], batch_size=2, shuffle=False, crop=crop))
        assert len(original) == len(again) == 3
        for a, b in zip(original, again):
            assert a["__key__"] == b["__key__"]
            assert a["depth"].numpy().tobytes() == b["tok_depth@32"].numpy().tobytes()
            assert a["rgb"].numpy().tobytes() == b["rgb"].numpy().tobytes()
            assert a["crops"].numpy().tobytes() == b["crops"].numpy().tobytes()
    # same input, same bytes
    again_dst = tmp_path / "4m-again"
    export_4m(tokens_dir, again_dst, layout=layout, modalities=["depth", "rgb"], progress=False)
    assert all_bytes(dst) == all_bytes(again_dst)


def test_webdataset_export_is_read_by_webdataset_as_ml4m_does(tokens_dir, tmp_path):
    """ml-4m merges one tar per modality with webdataset.tarfile_samples; members are '<key>.npy'."""
    import webdataset as wds

    dst = tmp_path / "4m"
    export_4m(tokens_dir, dst, modalities=["depth"], progress=False)
    samples = list(wds.tarfile_samples([{"url": str(dst / "tok_depth@32" / "shard-00000.tar")}]))
    assert [s["__key__"] for s in samples] == list(tokzoo_members(tokens_dir, "depth"))[:3]
    assert np.load(io.BytesIO(samples[0]["npy"])).dtype == np.int16


def write_like_ml4m(root: Path, layout: str, name: str = "tok_depth@224", n_tokens: int = 196) -> dict[str, np.ndarray]:
    """Token data as ml-4m's save_vq_tokens.py writes it (np.save of int16 tokens, int64 crop settings), 4 samples."""
    rng = np.random.default_rng(0)
    arrays = {f"img{i}": rng.integers(0, 8192, (3, n_tokens)).astype(np.int16) for i in range(4)}
    crops = {k: np.array([(0, 0, 224, 224, 0), (5, 6, 100, 120, 1), (1, 2, 3, 4, 0)]) for k in arrays}
    for folder, values in [(name, arrays), ("crop_settings", crops)]:
        if layout == "folder":
            for i, (key, array) in enumerate(values.items()):
                path = root / folder / f"class{i // 2}" / f"{key}.npy"
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, array)
        else:
            import webdataset as wds

            (root / folder).mkdir(parents=True)
            for shard in range(2):
                with wds.TarWriter(str(root / folder / f"shard-{shard:05d}.tar")) as sink:
                    for key in list(values)[2 * shard : 2 * shard + 2]:
                        buffer = io.BytesIO()
                        np.save(buffer, values[key])
                        sink.write({"__key__": key, "npy": buffer.getvalue()})
    return arrays


@pytest.mark.parametrize("layout", ["webdataset", "folder"])
def test_data_written_by_ml4m_is_read(tmp_path, layout):
    arrays = write_like_ml4m(tmp_path, layout)
    assert detect_layout(tmp_path) == layout
    batches = list(make_loader(tmp_path, ["tok_depth@224", "crops"], batch_size=4, shuffle=False, crop=1))
    assert len(batches) == 1 and batches[0]["__key__"] == list(arrays)
    assert batches[0]["tok_depth@224"].dtype.is_floating_point is False
    np.testing.assert_array_equal(batches[0]["tok_depth@224"].numpy(), np.stack([a[1] for a in arrays.values()]))
    assert batches[0]["crops"][0].tolist() == [5, 6, 100, 120, 1]
    result = CliRunner().invoke(cli, ["inspect", str(tmp_path), "--samples", "1"])
    assert result.exit_code == 0, result.output
    assert f"ml-4m {layout} layout: 2 shards, 4 samples" in result.output
    assert "tok_depth@224: vocab 8192, 14x14 tokens (224 px / patch 16); stored int16 (n_crops, 196)" in result.output


def test_token_grid_mismatch_is_one_line(tokens_dir, tmp_path):
    with pytest.raises(
        ConfigError, match=r"token grid mismatch: 16 tokens per crop, but 4M's tok_depth@224 holds 14x14"
    ):
        export_4m(tokens_dir, tmp_path / "a", names={"depth": "tok_depth@224"}, modalities=["depth"], progress=False)
    with pytest.raises(ConfigError, match=r"crops are 32x32 px but tok_depth@20 says 20 px"):
        export_4m(tokens_dir, tmp_path / "b", names={"depth": "tok_depth@20"}, modalities=["depth"], progress=False)
    write_like_ml4m(tmp_path / "c", "folder", n_tokens=100)  # 100 tokens in a folder called tok_depth@224
    with pytest.raises(
        ShapeError, match=r"token grid mismatch: \(100,\) tokens per crop, tok_depth@224 holds 14x14 = 196"
    ):
        next(iter(make_loader(tmp_path / "c", ["tok_depth@224"], batch_size=2)))
    result = CliRunner().invoke(
        cli, ["export", "--to", "4m", str(tokens_dir), str(tmp_path / "d"), "-n", "depth=tok_depth@224", "-m", "depth"]
    )
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert result.output.startswith("error: ") and "token grid mismatch" in result.output


def test_unknown_4m_name_is_one_line(tokens_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown 4M modality name 'tok_foo' \(not a released one\)"):
        export_4m(tokens_dir, tmp_path / "a", names={"depth": "tok_foo"}, modalities=["depth"], progress=False)
    with pytest.raises(ConfigError, match="not a 4M token modality name"):
        export_4m(tokens_dir, tmp_path / "b", names={"depth": "depth_tokens"}, modalities=["depth"], progress=False)
    write_like_ml4m(tmp_path / "c", "folder", name="tok_mine@224")
    with pytest.raises(ConfigError, match=r"unknown 4M modality name 'tok_mine@224': not a released 4M modality"):
        FourMLayout(tmp_path / "c", ["tok_mine@224"]).facts("tok_mine@224")
    result = CliRunner().invoke(cli, ["inspect", str(tmp_path / "c")])
    assert result.exit_code == 0 and "tok_mine@224: entry unknown (" in result.output


def test_int16_vocabulary_overflow_is_one_line(tokens_dir, tmp_path):
    big = tmp_path / "big"
    shutil.copytree(tokens_dir, big)
    manifest = json.loads((big / "manifest.json").read_text())
    manifest["modalities"]["depth"]["vocab_size"] = 40_000
    (big / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        ConfigError, match=r"vocabulary of 40000 ids overflows int16, the dtype ml-4m stores tokens in"
    ) as e:
        export_4m(big, tmp_path / "out", modalities=["depth"], progress=False)
    assert "\n" not in str(e.value) and not (tmp_path / "out").exists()


def test_set_valued_modalities_refused_unless_asked(tokens_dir, tmp_path):
    with pytest.raises(ConfigError, match="human_pose: set-valued modality; ml-4m keeps these as pickled"):
        export_4m(tokens_dir, tmp_path / "a", progress=False)
    export_4m(tokens_dir, tmp_path / "b", layout="folder", modalities=["human_pose"], allow_sets=True, progress=False)
    stored = tokzoo_members(tokens_dir, "human_pose")
    pad = json.loads((tokens_dir / "manifest.json").read_text())["modalities"]["human_pose"]["pad_id"]
    for path in sorted((tmp_path / "b" / "tok_human_pose@32").glob("*/*.npy")):
        crops = np.load(path, allow_pickle=True)
        assert crops.dtype == object and len(crops) == CROPS
        for c, crop in enumerate(crops):
            expect = stored[path.stem][c]
            np.testing.assert_array_equal(crop["token_ids"], expect[expect[:, 0] != pad])
    with pytest.raises(DtypeError, match="pickled .npy .* tokzoo never unpickles"):
        next(iter(make_loader(tmp_path / "b", ["tok_human_pose@32"], batch_size=2)))


def test_modality_file_registers_entries_with_ml4m(tokens_dir, tmp_path, monkeypatch):
    """fourm_modalities.py run against stand-ins of the ml-4m modules it imports: adds custom entries, checks released ones."""
    info, transforms = {"tok_rgb@32": {"input_size": 32, "patch_size": 16, "vocab_size": 16384}}, {}
    modules = {
        "fourm": {},
        "fourm.data": {},
        "fourm.models": {},
        "fourm.data.modality_info": {"MODALITY_INFO": info, "MODALITY_TRANSFORMS": transforms},
        "fourm.data.modality_transforms": {"TokTransform": lambda: "tok-transform"},
        "fourm.models.decoder_embeddings": {"ImageTokenDecoderEmbedding": dict},
        "fourm.models.encoder_embeddings": {"ImageTokenEncoderEmbedding": dict},
        "fourm.utils": {"generate_uint15_hash": lambda name: len(name)},
    }
    for name, attributes in modules.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attributes))
    export_4m(tokens_dir, tmp_path / "x", modalities=["depth", "rgb"], progress=False)
    code = (tmp_path / "x" / "fourm_modalities.py").read_text()
    with pytest.raises(ValueError, match="tok_rgb@32: ml-4m already defines it with another token grid"):
        exec(compile(code, "fourm_modalities.py", "exec"), {})
    info["tok_rgb@32"]["patch_size"] = 8
    exec(compile(code, "fourm_modalities.py", "exec"), {})
    entry = info["tok_depth@32"]
    assert (entry["vocab_size"], entry["input_size"], entry["patch_size"], entry["pretokenized"]) == (125, 32, 8, True)
    assert entry["encoder_embedding"]() == {"vocab_size": 125} and transforms == {"tok_depth": "tok-transform"}
    assert "encoder_embedding" not in info["tok_rgb@32"]  # released / existing entries are checked, not replaced


def test_cli_export_and_show(tokens_dir, tmp_path):
    dst = tmp_path / "4m"
    result = CliRunner().invoke(
        cli,
        [
            "export",
            "--to",
            "4m",
            str(tokens_dir),
            str(dst),
            "--layout",
            "folder",
            "-m",
            "depth,rgb",
            "--name",
            "rgb=tok_rgbx@32",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "depth -> tok_depth@32: vocab 125, 16 tokens (32 px / patch 8), custom" in result.output
    assert (dst / "tok_rgbx@32").is_dir()
    png = tmp_path / "show.png"
    result = CliRunner().invoke(
        cli, ["show", str(dst), "-k", "scene_000001", "-o", str(png), "-t", "depth=depth", "-t", "tok_rgbx@32=rgb"]
    )
    assert result.exit_code == 0, result.output
    from PIL import Image

    assert Image.open(png).size[0] > 32 and "depth: crop 0 decoded by depth" in result.output
    result = CliRunner().invoke(cli, ["show", str(dst), "-k", "scene_000001", "-o", str(png)])
    assert result.exit_code == 2 and "pass --tokenizer MODALITY=TOKENIZER" in result.output
    result = CliRunner().invoke(cli, ["export", "--to", "4m", str(tokens_dir), str(dst), "-m", "depth"])
    assert result.exit_code == 2 and "not empty" in result.output


def test_ids_outside_the_4m_vocabulary_are_refused(tmp_path):
    arrays = write_like_ml4m(tmp_path, "folder")
    path = tmp_path / "tok_depth@224" / "class0" / "img0.npy"
    np.save(path, np.full_like(arrays["img0"], 9000))  # tok_depth@224 has 8192 codes
    with pytest.raises(InvalidValueError, match=r"class0: token ids in \[\d+, 9000\], outside the \[0, 8192\)"):
        list(make_loader(tmp_path, ["tok_depth@224"], batch_size=4, shuffle=False))


def test_tokenize_layout_4m_writes_the_export_beside_out(tmp_path):
    out = tmp_path / "tokens"
    result = CliRunner().invoke(
        cli,
        [
            "tokenize",
            "-m",
            "depth",
            "--scenes",
            "3",
            "--scene-size",
            "48",
            "--size",
            "32",
            "--workers",
            "0",
            "--no-progress",
            "-o",
            str(out),
            "--layout",
            "4m",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"ml-4m layout: {out}-4m (tok_depth@32)" in result.output
    ours, theirs = tokzoo_members(out, "depth"), exported_members(tmp_path / "tokens-4m", "tok_depth@32", "webdataset")
    assert list(ours) == list(theirs) and all(np.array_equal(theirs[k], a.reshape(len(a), -1)) for k, a in ours.items())


def test_inspect_notes_folders_that_are_not_tokens(tmp_path):
    """An ml-4m root also holding raw images (jpg tars) or pickled SAM instances: inspect reads the rest."""
    import webdataset as wds

    write_like_ml4m(tmp_path, "webdataset")
    (tmp_path / "rgb").mkdir()
    with wds.TarWriter(str(tmp_path / "rgb" / "shard-00000.tar")) as sink:
        sink.write({"__key__": "img0", "jpg": b"not really a jpeg"})
    result = CliRunner().invoke(cli, ["inspect", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "tok_depth@224: vocab 8192" in result.output
    assert "rgb: not read as tokens (" in result.output and "bad .npy header" in result.output


def test_trainer_specs_from_data_tokenized_by_ml4m(tmp_path):
    """tokzoo.fm reads its modality specs from the dataset; on an ml-4m layout they come from the 4M entries."""
    from tokzoo.tokens.spec import specs_from_manifest

    write_like_ml4m(tmp_path, "webdataset")
    (spec,) = specs_from_manifest(tmp_path, ["tok_depth@224"])
    assert (spec.kind, spec.vocab_size, spec.grid, spec.size) == ("image", 8192, (14, 14), (224, 224))
    batch = next(iter(make_loader(tmp_path, ["tok_depth@224"], batch_size=4, shuffle=False)))
    assert batch["tok_depth@224"].shape == (4, spec.length)


def test_tokzoo_fm_trainer_trains_on_both_4m_layouts_alike(tokens_dir, tmp_path):
    """`tokzoo fm train` on ml-4m layouts: the same data in either layout gives the same losses."""
    recipe = tmp_path / "fm.yaml"
    recipe.write_text("""data: {modalities: [tok_depth@32, tok_rgb@32]}
model: {preset: fm-tiny, dim: 32, encoder_layers: 1, decoder_layers: 1, heads: 2}
masking: {input_tokens: 8, target_tokens: 8, mixture: [{name: all, weight: 1, input_alpha: 0.5, target_alpha: 0.5}]}
train: {steps: 2, batch_size: 4, lr: 1.0e-3, warmup_steps: 1, weight_decay: 0.0, grad_clip: 1.0, seed: 0,
        num_workers: 0, checkpoint_every: 2}
""")
    lines = []
    for layout in ("webdataset", "folder"):
        export_4m(tokens_dir, tmp_path / layout, layout=layout, modalities=["depth", "rgb"], progress=False)
        result = CliRunner().invoke(
            cli,
            [
                "fm",
                "train",
                "-r",
                str(recipe),
                "--data",
                str(tmp_path / layout),
                "-o",
                str(tmp_path / f"run-{layout}"),
                "--no-progress",
            ],
        )
        assert result.exit_code == 0, result.output
        lines.append(next(line for line in result.output.splitlines() if line.startswith("step 2: loss")).split(";")[0])
    assert lines[0] == lines[1] and "tok_depth@32" in lines[0]
