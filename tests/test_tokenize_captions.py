"""Captions as a stored value: the built-in scenes carry each scene's exact caption (``<key>.captions.txt``), and
``tokzoo tokenize -m captions`` reads it from them or from any input holding caption text files."""

import json

from click.testing import CliRunner
from PIL import Image

from tokzoo.datasets.scene_text import scene_text
from tokzoo.datasets.scenes import generate_scene
from tokzoo.tokenizers.zoo import load_tokenizer
from tokzoo.tokens import make_loader
from tokzoo_cli.main import cli


def tokenize(*args):
    return CliRunner().invoke(cli, ["tokenize", "--no-progress", *map(str, args)])


def decoded_captions(out) -> dict[str, str]:
    tok = load_tokenizer("captions")
    texts = {}
    for batch in make_loader(out, ["captions"], 8, shuffle=False, crop=0):
        texts.update(zip(batch["__key__"], tok.decode(batch["captions"].numpy())))
    return texts


def test_built_in_scenes_tokenize_their_exact_captions(tmp_path):
    out = tmp_path / "tokens"
    result = tokenize("-m", "captions", "--scenes", 3, "--scene-size", 48, "-o", out)
    assert result.exit_code == 0, result.output
    expected = {f"scene_{i:06d}": scene_text(generate_scene(i, seed=0, size=48))["caption"] for i in range(3)}
    assert decoded_captions(out) == expected
    assert json.loads((out / "_source" / "scenes.json").read_text())["format"] == 2


def test_a_source_written_before_captions_serves_other_runs_and_refuses_captions_in_one_line(tmp_path):
    """``_source`` of format 1 (no ``format`` in scenes.json, no caption members) is kept for runs that read no
    caption; a run asking for captions is told to render the scenes again instead of failing every sample."""
    out = tmp_path / "tokens"
    assert tokenize("-m", "rgb", "--scenes", 2, "--scene-size", 64, "-o", out).exit_code == 0
    params = json.loads((out / "_source" / "scenes.json").read_text())
    del params["format"]
    (out / "_source" / "scenes.json").write_text(json.dumps(params))
    again = tokenize("-m", "rgb", "--scenes", 2, "--scene-size", 64, "-o", out)
    assert again.exit_code == 0, again.output
    refused = tokenize("-m", "rgb,captions", "--scenes", 2, "--scene-size", 64, "-o", out)
    assert refused.exit_code == 2 and refused.output.count("\n") == 1
    assert "format 1, written by an older tokzoo without captions" in refused.output
    assert "--overwrite" in refused.output
    redone = tokenize("-m", "rgb,captions", "--scenes", 2, "--scene-size", 64, "-o", out, "--overwrite")
    assert redone.exit_code == 0, redone.output
    assert len(decoded_captions(out)) == 2


def test_caption_text_files_of_any_folder_are_tokenized_and_bad_ones_fail_alone(tmp_path):
    root = tmp_path / "photos"
    (root / "rgb").mkdir(parents=True)
    (root / "captions").mkdir()
    for i, text in enumerate(["a cat on a mat.\n", "  deux chiens près du lac  ", "\n"]):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(root / "rgb" / f"p{i}.png")
        (root / "captions" / f"p{i}.txt").write_text(text, encoding="utf-8")
    out = tmp_path / "tokens"
    result = tokenize("-m", "captions", "-i", root, "-o", out)
    assert result.exit_code == 0, result.output
    assert "ok 2 / failed 1" in result.output
    assert decoded_captions(out) == {"p0": "a cat on a mat.", "p1": "deux chiens près du lac"}
    failures = [json.loads(line) for path in (out / "captions").glob("*.samples.jsonl") for line in path.open()]
    assert [f["key"] for f in failures if f.get("status") != "ok"] == ["p2"]
