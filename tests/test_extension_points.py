"""The three checklists of docs/ARCHITECTURE.md ("Extension points"), each followed once as a dry run: a toy
modality, a toy labeler and a toy composition method, each registered in ONE place (here, in the test) and
removed afterwards, show up in every command that should see them."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tokzoo.crops import apply_crop
from tokzoo.modalities import MODALITIES, STORED, Modality, register_modality
from tokzoo.viz import colorize
from tokzoo_cli.main import cli

TOY = "toy_heat"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


class ToyHeat(Modality):
    """A float (H, W) map in [0, 1]: the whole declaration of a new modality, in one class."""

    name = TOY
    file_format = "features"  # float .npy arrays of sample_ndim dimensions (tokzoo/io/formats.py)
    extensions = (".npy",)
    crop_rule = "nearest"
    metrics = ("mae",)
    contract = "float32 (H, W) in [0, 1]"
    in_channels = out_channels = 1
    sample_ndim = 2
    zoo_names = (TOY,)

    @classmethod
    def default_tokenizer(cls, name):
        return {
            "model": {"preset": "conv-tiny"},
            "latent_dim": 8,
            "quantizer": {"type": "fsq", "levels": [5, 5, 5]},
            "input_size": [32, 32],
            "loss": "mse",
        }

    def to_model(self, x):
        x = torch.as_tensor(np.asarray(self.as_batch(x, (np.float32,), "float32 (H, W)")))
        return (x * 2 - 1)[:, None]

    def from_model(self, y):
        return ((y[:, 0].float().clamp(-1, 1) + 1) / 2).cpu().numpy()

    def loss(self, prediction, target):
        return torch.nn.functional.mse_loss(prediction, target)

    def visualize(self, value):
        return colorize(np.asarray(value, np.float64))


@pytest.fixture
def toy_modality():
    register_modality(ToyHeat)
    yield ToyHeat
    del MODALITIES[TOY], STORED[TOY]


def heat(key: int, size: int = 40) -> np.ndarray:
    rows, cols = np.mgrid[:size, :size]
    return ((rows * (key + 1) + cols * 3) % 17 / 16).astype(np.float32)


def raw_shard(folder, n: int = 3):
    """A raw webdataset shard of ``n`` samples holding the toy modality alone (``k.toy_heat.npy``)."""
    folder.mkdir()
    with tarfile.open(folder / "shard-000000.tar", "w") as tar:
        for key in range(n):
            buffer = io.BytesIO()
            np.save(buffer, heat(key), allow_pickle=False)
            member = tarfile.TarInfo(f"s{key}.{TOY}.npy")
            member.size = len(buffer.getvalue())
            tar.addfile(member, io.BytesIO(buffer.getvalue()))
    return folder


def test_a_toy_modality_registered_once_is_read_cropped_tokenized_evaluated_and_browsed(toy_modality, tmp_path):
    from tokzoo.io import read_modality
    from tokzoo.tokenizers.evaluation import evaluate
    from tokzoo.tokenizers.zoo import load_tokenizer

    # io: its declared file format and extension read it
    value = heat(0)
    np.save(tmp_path / "v.npy", value)
    assert np.array_equal(read_modality(TOY, tmp_path / "v.npy"), value)
    # crops: its rule (nearest) keeps exact values; a flipped crop of the same size is the mirrored window
    cropped = apply_crop({TOY: value}, [4, 6, 20, 20, 1], 20)[TOY]
    assert np.array_equal(cropped, value[4:24, 6:26][:, ::-1])
    # tokenize: `-m toy_heat` plans it with its own default tokenizer, crops it and writes its tokens
    raw = raw_shard(tmp_path / "raw")
    tokens = tmp_path / "tokens"
    result = run(
        "tokenize",
        "-m",
        TOY,
        "--input",
        raw,
        "-o",
        tokens,
        "--untrained",
        "--workers",
        "0",
        "--crops",
        "2",
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    entry = json.loads((tokens / "manifest.json").read_text())["modalities"][TOY]
    assert entry["samples"]["ok"] == 3 and entry["name"] == TOY and entry["size"] == [32, 32]
    assert list((tokens / TOY).glob("shard-*.tar"))
    # metrics: evaluation computes the metric it declares, on its own tokenizer
    report = evaluate(load_tokenizer(TOY, untrained_ok=True), [heat(k)[:32, :32] for k in range(2)]).report
    assert report["main_metric"] == "mae" and 0 < report["rows"][0]["metrics"]["mae"] < 1
    # browse: the site lists it and draws its source and reconstruction, with its metric
    site = tmp_path / "site"
    result = run("browse", tokens, "-o", site, "--no-progress")
    assert result.exit_code == 0, result.output
    dataset = (site / "data" / "dataset.js").read_text()
    assert f'"{TOY}"' in dataset
    chunk = next((site / "data" / "chunks").glob("*.js")).read_text()
    assert f'"{TOY}"' in chunk and '"mae"' in chunk
    assert any(TOY in path.name for path in (site / "img").rglob("*.png"))


def test_removing_the_toy_modality_removes_it_everywhere(tmp_path):
    """The fixture's registration is what made the test above pass: without it every table refuses the name."""
    from tokzoo.errors import ConfigError, TokzooError
    from tokzoo.io import read_modality
    from tokzoo.tokenizers.evaluation.metrics import METRICS

    np.save(tmp_path / "v.npy", heat(0))
    with pytest.raises(TokzooError, match="unknown modality"):
        read_modality(TOY, tmp_path / "v.npy")
    with pytest.raises(ConfigError, match="no crop rule"):
        apply_crop({TOY: heat(0)}, [0, 0, 8, 8, 0], 8)
    assert TOY not in METRICS
    result = run(
        "tokenize",
        "-m",
        TOY,
        "--input",
        raw_shard(tmp_path / "raw"),
        "-o",
        tmp_path / "tok",
        "--untrained",
        "--workers",
        "0",
        "--no-progress",
    )
    assert result.exit_code == 2 and "not a modality tokzoo tokenizes" in result.output


@pytest.fixture
def toy_labeler():
    from tokzoo.labelers import LABELERS, Labeler, register_labeler

    @register_labeler
    class MeanDepth(Labeler):
        """A plane at the image's mean brightness (metres): the whole declaration of a new labeler."""

        name = "toy_mean_depth"
        modality = "depth"
        default = True  # the labeler `pseudo-label -m depth` uses when none is named

        def _label(self, chunk):
            return [np.full(rgb.shape[:2], 1 + rgb.mean() / 255, np.float32) for rgb in chunk["rgb"]]

    yield MeanDepth
    del LABELERS[MeanDepth.name]


def test_a_toy_labeler_registered_once_runs_in_pseudo_label(toy_labeler, tmp_path):
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    for key, level in (("dark", 40), ("light", 200)):
        Image.fromarray(np.full((24, 32, 3), level, np.uint8)).save(photos / f"{key}.png")
    for args in ([], ["-l", "depth=toy_mean_depth"]):  # by modality (its default), then by name
        out = tmp_path / f"labelled{len(args)}"
        result = run("pseudo-label", "-m", "depth", "--input", photos, "-o", out, "--no-progress", *args)
        assert result.exit_code == 0, result.output
        with tarfile.open(out / "shard-000000.tar") as tar:
            depth = {
                m.name: np.load(io.BytesIO(tar.extractfile(m).read())) for m in tar if m.name.endswith(".depth.npy")
            }
        assert sorted(depth) == ["dark.depth.npy", "light.depth.npy"]
        assert np.allclose(depth["dark.depth.npy"], 1 + 40 / 255) and np.allclose(
            depth["light.depth.npy"], 1 + 200 / 255
        )


def test_pseudo_label_writes_a_toy_modality_as_it_declares(toy_modality, tmp_path):
    """A labeler of the toy modality: pseudo-label writes its values with the declared extension (.npy), and
    tokenize reads them back."""
    from PIL import Image

    from tokzoo.labelers import LABELERS, Labeler, register_labeler

    @register_labeler
    class Brightness(Labeler):
        name = "toy_brightness"
        modality = TOY

        def _label(self, chunk):
            return [(rgb.mean(axis=2) / 255).astype(np.float32) for rgb in chunk["rgb"]]

    try:
        photos = tmp_path / "photos"
        photos.mkdir()
        Image.fromarray(np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)).save(photos / "a.png")
        out = tmp_path / "labelled"
        result = run(
            "pseudo-label",
            "-m",
            TOY,
            "-l",
            f"{TOY}=toy_brightness",
            "--input",
            photos,
            "-o",
            out,
            "--no-progress",
            "--tokenize",
            "--untrained",
        )
        assert result.exit_code == 0, result.output
        with tarfile.open(out / "shard-000000.tar") as tar:
            stored = np.load(io.BytesIO(tar.extractfile(f"a.{TOY}.npy").read()))
        expected = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3).mean(axis=2) / 255
        assert np.array_equal(stored, expected.astype(np.float32))
        assert (
            json.loads((tmp_path / "labelled-tokens" / "manifest.json").read_text())["modalities"][TOY]["samples"]["ok"]
            == 1
        )
    finally:
        del LABELERS["toy_brightness"]


def test_without_the_toy_labeler_depth_has_no_default(tmp_path):
    from tokzoo.labelers import DEFAULTS

    assert "depth" not in DEFAULTS


@pytest.fixture
def toy_method():
    from torch import nn

    from tokzoo.compose.registry import METHODS, Glue, register_method

    @register_method("toy_bias")
    class ToyBias(Glue):
        """The LM's logits plus a learned per-id bias: the whole declaration of a new composition method."""

        def __init__(self, lm, encoder):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(lm.vocab_size))

        def forward(self, components, inputs, lm_name, prompt_len, select=None):
            return components[lm_name].logits(inputs[lm_name], select) + self.bias

    yield ToyBias
    del METHODS["toy_bias"]


def test_a_toy_composition_method_registered_once_trains(toy_method, tmp_path):
    from safetensors.torch import load_file

    from tokzoo.compose import load_composition, resolve_recipe
    from tokzoo.compose.train import run_recipe

    lm = tmp_path / "lm"
    run_recipe(
        resolve_recipe(
            {
                "steps": 1,
                "batch_size": 2,
                "threads": 1,
                "data": {"scene_text": {"n_train": 4, "n_val": 2, "size": 32}},
                "compose": {"pretrain_lm": {"vocab_size": 300, "hidden_size": 16, "layers": 1, "heads": 2}},
            }
        ),
        lm,
        log=lambda *_: None,
    )
    recipe = resolve_recipe(
        {
            "seed": 0,
            "steps": 2,
            "batch_size": 2,
            "log_every": 1,
            "threads": 1,
            "data": {"scene_text": {"n_train": 4, "n_val": 2, "size": 32}},
            "compose": {
                "method": "toy_bias",
                "components": {"rgb": {"tokenizer": "rgb"}, "lm": {"causal_lm": str(lm)}},
            },
        }
    )
    metrics = run_recipe(recipe, tmp_path / "run", log=lambda *_: None)
    assert metrics["method"] == "toy_bias" and metrics["components_unchanged"] == {"lm": True, "rgb": True}
    saved = load_file(str(tmp_path / "run" / "glue.safetensors"))
    assert list(saved) == ["glue.bias"] and saved["glue.bias"].abs().max() > 0  # trained away from its zero start
    assert torch.equal(load_composition(tmp_path / "run").glue.bias.detach(), saved["glue.bias"])


def test_the_registry_imports_none_of_its_readers():
    """io, crops, evaluation, browse and the labelers read tokzoo/modalities; it names their parts by string only
    (measured from its imports, those inside functions included), so they can import it without a cycle."""
    import ast
    from pathlib import Path

    import tokzoo.modalities

    imported = set()
    for path in Path(tokzoo.modalities.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                imported.add(f"tokzoo.{node.module}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tokzoo"):
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names if a.name.startswith("tokzoo"))
    assert imported == {"tokzoo.errors", "tokzoo.viz"}


def test_reading_the_registry_loads_no_torch():
    """tokzoo.io reads the declarations; the codecs import torch on first use (tokzoo/modalities/lazy_torch.py)."""
    import subprocess
    import sys

    code = (
        "import sys, tokzoo.io, tokzoo.modalities as m; assert m.STORED['depth'].extensions; "
        "print('torch' in sys.modules)"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )
