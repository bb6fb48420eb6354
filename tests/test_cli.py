"""The README's command-line examples, run through click's test runner."""

import subprocess
import sys

import numpy as np
from click.testing import CliRunner

from tokzoo_cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_help_lists_the_commands():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("zoo", "encode", "decode"):
        assert command in result.output


HELP_WITHOUT_HEAVY_IMPORTS = """
import sys
from click.testing import CliRunner
from tokzoo_cli.main import cli

for args in [["--help"], *[[name, "--help"] for name in cli.commands], ["zoo", "list", "--help"]]:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and "Usage:" in result.output, (args, result.output)
print(sorted(name for name in ("torch", "numpy", "PIL", "tokzoo") if name in sys.modules))
"""


def test_help_imports_no_torch():
    """`tokzoo --help` took ~6 s: every command module imported torch (via tokzoo) at CLI load."""
    done = subprocess.run([sys.executable, "-c", HELP_WITHOUT_HEAVY_IMPORTS], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


COMMANDS_WITHOUT_TORCH = """
import sys
from click.testing import CliRunner
from tokzoo_cli.main import cli

tokens, labelled, scenes = sys.argv[1:]
for args in (["zoo", "list"], ["inspect", tokens], ["inspect", labelled], ["scenes", "--n", "2", "--size", "16", "--out", scenes],
             ["recipes"]):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, (args, result.output)
    assert "torch" not in sys.modules, args
print("ok")
"""


def test_zoo_list_inspect_and_scenes_import_no_torch(tmp_path):
    """`tokzoo zoo list` took 11.8 s on a busy machine: listing, inspecting and rendering scenes loaded torch."""
    tokens, labelled = tmp_path / "tokens", tmp_path / "labelled"
    assert (
        run(
            "tokenize",
            "-m",
            "depth,rgb",
            "-o",
            str(tokens),
            "--scenes",
            "2",
            "--scene-size",
            "64",
            "--workers",
            "0",
            "--no-progress",
        ).exit_code
        == 0
    )
    assert (
        run(
            "pseudo-label",
            "-m",
            "palette",
            "--input",
            str(tokens.with_name("tokens") / "_source"),
            "-o",
            str(labelled),
            "--no-progress",
        ).exit_code
        == 0
    )
    done = subprocess.run(
        [sys.executable, "-c", COMMANDS_WITHOUT_TORCH, str(tokens), str(labelled), str(tmp_path / "sc")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_the_zoo_index_matches_the_tokenizers():
    """`zoo list` reads tokzoo/tokenizers/weights/index.json; after changing a zoo tokenizer run `python -m tokzoo.tokenizers.zoo_index`."""
    import json

    from tokzoo.tokenizers.zoo_index import INDEX, build_rows

    assert json.loads(INDEX.read_text())["rows"] == build_rows()


def test_version_and_tokzoo_errors_still_work_without_eager_imports():
    import tokzoo

    assert run("--version").output == f"tokzoo, version {tokzoo.__version__}\n"
    one_line_error(run("zoo", "info", "nosuch"), "error: nosuch: not a zoo name")  # UserError
    one_line_error(run("eval", "-t", "no/such/dir"), "error: ", "no/such/dir")  # a TokzooError from tokzoo


def test_zoo_list_and_info():
    import tokzoo

    listing = run("zoo", "list")
    assert listing.exit_code == 0
    depth = tokzoo.load_tokenizer("depth", untrained_ok=True)
    depth_row = next(line for line in listing.output.splitlines() if line.startswith("depth "))
    assert depth_row.split()[1:4] == ["depth", "x".join(map(str, depth.token_shape)), str(depth.vocab_size)]
    info = run("zoo", "info", "depth")
    assert info.exit_code == 0 and "metres" in info.output and '"architecture": "learned"' in info.output


def test_encode_decode_round_trip(tmp_path):
    depth = np.random.default_rng(0).uniform(1, 10, (224, 224)).astype(np.float32)
    np.save(tmp_path / "depth.npy", depth)
    encoded = run(
        "encode", "-t", "depth", "--untrained", str(tmp_path / "depth.npy"), "-o", str(tmp_path / "tokens.npy")
    )
    assert encoded.exit_code == 0, encoded.output
    tokens = np.load(tmp_path / "tokens.npy")
    import tokzoo
    from tokzoo.indices import storage_dtype

    vocab = tokzoo.load_tokenizer("depth", untrained_ok=True).vocab_size  # the shipped weights set the dtype
    assert tokens.shape[0] == 1 and tokens.dtype == storage_dtype(vocab)
    decoded = run(
        "decode", "-t", "depth", "--untrained", str(tmp_path / "tokens.npy"), "-o", str(tmp_path / "again.npy")
    )
    assert decoded.exit_code == 0, decoded.output
    again = np.load(tmp_path / "again.npy")
    assert again.shape == (224, 224) and again.dtype == np.float32


def test_decode_input_size_round_trips_a_non_square_input(tmp_path):
    """decode of a non-square input's tokens said 'pass input_size=(H, W)', an option the CLI did not have."""
    depth = np.random.default_rng(0).uniform(1, 10, (64, 96)).astype(np.float32)
    np.save(tmp_path / "depth.npy", depth)
    tokens, out = str(tmp_path / "tokens.npy"), str(tmp_path / "again.npy")
    assert run("encode", "-t", "depth", "--untrained", str(tmp_path / "depth.npy"), "-o", tokens).exit_code == 0
    one_line_error(
        run("decode", "-t", "depth", "--untrained", tokens, "-o", out),
        f"error: {tokens}: 96 tokens form no square grid; pass --input-size HxW",
    )
    decoded = run("decode", "-t", "depth", "--untrained", tokens, "-o", out, "--input-size", "64x96")
    assert decoded.exit_code == 0, decoded.output
    again = np.load(out)
    assert again.shape == (64, 96) and again.dtype == np.float32
    reference = tokzoo_decode(tokens, (64, 96))
    np.testing.assert_array_equal(again, reference)
    one_line_error(
        run("decode", "-t", "depth", "--untrained", tokens, "-o", out, "--input-size", "65x96"),
        "error: --input-size 65x96: size 65x96 is not a positive multiple",
    )
    one_line_error(
        run("decode", "-t", "depth", "--untrained", tokens, "-o", out, "--input-size", "64"),
        f"error: {tokens}: 96 tokens per sample, expected 64",
    )
    one_line_error(
        run("decode", "-t", "palette", tokens, "-o", str(tmp_path / "p.json"), "--input-size", "64"),
        "error: --input-size: palette decodes no image or map",
    )


def tokzoo_decode(tokens_file, input_size):
    import tokzoo

    return tokzoo.load_tokenizer("depth", untrained_ok=True).decode(np.load(tokens_file), input_size=input_size)[0]


def test_user_errors_are_one_line_with_exit_2(tmp_path):
    (tmp_path / "broken.png").write_text("not an image")
    result = CliRunner().invoke(
        cli, ["encode", "-t", "rgb", "--untrained", str(tmp_path / "broken.png"), "-o", str(tmp_path / "t.npy")]
    )
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: ") and "broken.png" in result.output
    assert len(result.output.strip().splitlines()) == 1
    missing = CliRunner().invoke(
        cli, ["encode", "-t", "clip_global", str(tmp_path / "broken.png"), "-o", str(tmp_path / "t.npy")]
    )
    assert missing.exit_code == 2 and "no shipped weights" in missing.output
    assert "--untrained" in missing.output  # the flag a command-line user passes, not only the Python keyword


def one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_decode_errors_name_the_tokens_file(tmp_path):
    """Zero-byte (was 'Aborted!', exit 1), empty batch (was an IndexError traceback), several samples (only the
    first was written), floats and out-of-range ids (named 'depth tokens' instead of the file)."""
    out = str(tmp_path / "out.npy")
    (tmp_path / "zero.npy").write_bytes(b"")
    np.save(tmp_path / "empty.npy", np.zeros((0, 64), np.int64))
    np.save(tmp_path / "three.npy", np.zeros((3, 64), np.int64))
    np.save(tmp_path / "floats.npy", np.zeros((1, 64), np.float32))
    np.save(tmp_path / "big.npy", np.full((1, 64), 10**6, np.int64))
    for name, reason in [
        ("zero", "file is empty"),
        ("empty", "holds 0 samples"),
        ("three", "holds 3 samples"),
        ("floats", "token ids must be integers"),
        ("big", "token ids must lie in"),
    ]:
        path = str(tmp_path / f"{name}.npy")
        one_line_error(run("decode", "-t", "depth", "--untrained", path, "-o", out), f"error: {path}: {reason}")


def test_encode_shape_error_names_the_file(tmp_path):
    from PIL import Image

    Image.new("RGB", (65, 63)).save(tmp_path / "odd.png")
    path = str(tmp_path / "odd.png")
    one_line_error(
        run("encode", "-t", "rgb", "--untrained", path, "-o", str(tmp_path / "t.npy")),
        f"error: {path}: size 63x65 is not a positive multiple",
    )


def test_usage_and_output_path_errors_are_one_line(tmp_path):
    np.save(tmp_path / "depth.npy", np.full((64, 64), 3.0, np.float32))
    one_line_error(
        run("encode", "-t", "depth", str(tmp_path / "nothere.npy"), "-o", str(tmp_path / "t.npy")),
        "nothere.npy' does not exist",
        "encode --help",
    )
    one_line_error(run("tokenize", "-m", "depth", "-o", str(tmp_path / "o"), "--workers", "-1"), "--workers")
    one_line_error(run("zoo", "info"), "Missing argument 'NAME'")
    one_line_error(run("bogus"), "No such command 'bogus'")
    (tmp_path / "file").write_text("x")  # the output's parent is a file: no folder can be made there
    one_line_error(
        run("encode", "-t", "depth", str(tmp_path / "depth.npy"), "-o", str(tmp_path / "file" / "t.npy")),
        str(tmp_path / "file"),
    )


def test_demo_shows_progress_and_writes_a_report(tmp_path):
    from PIL import Image

    result = CliRunner().invoke(
        cli, ["demo", "--out", str(tmp_path / "demo"), "--scenes", "2", "--workers", "0"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "rendering scenes" in result.output and "sample/s" in result.output  # bars on stderr, with rates
    assert Image.open(tmp_path / "demo" / "report.png").size[0] > 128


def test_eval_of_a_rule_based_tokenizer_is_one_line():
    """tokzoo eval -t palette (or captions, boxes, metadata) crashed with KeyError: 'input_size'."""
    for name in ("palette", "captions"):
        one_line_error(run("eval", "-t", name, "--n", "2"), f"error: {name}: a ", "tokzoo eval measures learned")


def test_eval_data_reports_each_unreadable_file_and_evaluates_the_rest(tmp_path):
    """tokzoo eval --data DIR skipped unreadable files without a word."""
    import json

    for i in range(2):
        np.save(tmp_path / f"good{i}.npy", np.random.default_rng(i).uniform(1, 10, (64, 64)).astype(np.float32))
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "broken.png").write_text("not an image")
    table = run("eval", "-t", "depth", "--untrained", "--data", str(tmp_path))
    assert table.exit_code == 0, table.output
    assert "2 samples of" in table.output and "unreadable samples skipped: 2" in table.output
    assert f"  {tmp_path / 'empty.npy'}: file is empty" in table.output
    assert f"  {tmp_path / 'broken.png'}: bytes are not an image" in table.output
    report = json.loads(run("eval", "-t", "depth", "--untrained", "--data", str(tmp_path), "--json").stdout)
    assert report["n_samples"] == 2 and report["n_unreadable"] == 2
    assert sorted(line.split(":")[0] for line in report["unreadable"]) == [
        str(tmp_path / "broken.png"),
        str(tmp_path / "empty.npy"),
    ]


def test_eval_shows_progress_bars_on_stderr():
    """tokzoo eval rendered scenes and ran the tokenizer without any sign of progress."""
    shown = run("eval", "-t", "depth", "--untrained", "--n", "4")
    assert shown.exit_code == 0, shown.output
    assert "held-out scenes: 100%" in shown.stderr and "4/4" in shown.stderr
    assert "eval depth: 100%" in shown.stderr and "metrics" in shown.stderr
    assert "sample/s" in shown.stderr or "s/sample" in shown.stderr  # tqdm flips the rate when slow
    assert "eval depth" not in shown.stdout and shown.stdout.startswith("depth (depth): 4 samples")
    quiet = run("eval", "-t", "depth", "--untrained", "--n", "4", "--no-progress")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_train_evaluation_shows_a_progress_bar_unless_quiet(tmp_path, monkeypatch):
    """The evaluation at the end of tokzoo train ran silently (its training bar had finished)."""
    from functools import partial

    import yaml

    import tokzoo.tokenizers.evaluation

    monkeypatch.setattr(
        tokzoo.tokenizers.evaluation, "heldout_values", partial(tokzoo.tokenizers.evaluation.heldout_values, n=4)
    )
    recipe = {
        "name": "tiny_depth",
        "steps": 2,
        "batch_size": 2,
        "seed": 0,
        "checkpoint_every": 0,
        "loss": "smooth_l1",
        "tokenizer": {
            "modality": "depth",
            "model": {"preset": "conv-tiny", "width": 8, "groups": 4},
            "latent_dim": 8,
            "quantizer": {"type": "fsq", "levels": [5, 5, 5]},
            "input_size": [32, 32],
        },
        "data": {"scenes": {"n_train": 2, "n_val": 1, "seed": 3, "size": 40}},
        "optimizer": {"lr": 1e-3},
        "schedule": {"warmup_steps": 1},
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(recipe))
    for flags, shown in (([], True), (["-q"], False)):
        result = run("train", "--recipe", str(tmp_path / "tiny.yaml"), "--out", str(tmp_path / "run"), *flags)
        assert result.exit_code == 0, result.output
        assert "4 held-out scenes" in result.stdout  # the evaluation ran
        assert ("eval tiny_depth: 100%" in result.stderr) is shown and (
            "held-out scenes: 100%" in result.stderr
        ) is shown


def test_pseudo_label_progress_bar_is_labelled(tmp_path):
    """The pseudo-label bar showed only counts and 'sample/s', with no name."""
    from PIL import Image

    (tmp_path / "photos").mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            tmp_path / "photos" / f"p{i}.png"
        )
    result = run("pseudo-label", "-m", "edges", "-i", str(tmp_path / "photos"), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "pseudo-label: 100%" in result.stderr and "2/2" in result.stderr
    assert "sample/s" in result.stderr or "s/sample" in result.stderr


def test_show_skips_a_modality_whose_tokenizer_is_gone_or_changed(tmp_path):
    """show failed entirely when one modality's tokenizer could no longer be loaded or had changed."""
    import shutil

    import torch
    from PIL import Image

    import tokzoo
    from tokzoo.tokens.tokenizer import checked_tokenizer

    tok_dir, tokens = tmp_path / "depth_tok", tmp_path / "tokens"
    tokzoo.load_tokenizer("depth", untrained_ok=True).save_pretrained(tok_dir)
    assert run("scenes", "--n", "2", "--size", "64", "--out", str(tmp_path / "scenes")).exit_code == 0
    assert (
        run(
            "tokenize",
            "-m",
            "depth,rgb",
            "-t",
            f"depth={tok_dir}",
            "--untrained",
            "--input",
            str(tmp_path / "scenes"),
            "--size",
            "32",
            "-o",
            str(tokens),
            "--no-progress",
        ).exit_code
        == 0
    )

    def show(name):
        result = run("show", str(tokens), "--key", "scene_000001", "-o", str(tmp_path / name))
        return result, (Image.open(tmp_path / name).size if result.exit_code == 0 else None)

    both, two_rows = show("both.png")
    assert both.exit_code == 0 and "skipped" not in both.output
    changed = tokzoo.load_tokenizer(tok_dir)
    with torch.no_grad():
        next(changed.parameters()).add_(1)
    changed.save_pretrained(tok_dir)
    checked_tokenizer.cache_clear()  # this process cached the tokenizer (a CLI run is a fresh process)
    result, one_row = show("changed.png")
    assert result.exit_code == 0, result.output
    assert f"depth: skipped, tokenizer '{tok_dir}' changed since the tokens were written" in result.output
    assert "rgb: source crop | reconstruction by rgb" in result.output
    assert one_row[0] <= two_rows[0] and one_row[1] < two_rows[1]  # the rgb row only (its label is shorter)
    shutil.rmtree(tok_dir)
    result, gone = show("gone.png")
    assert result.exit_code == 0 and gone == one_row
    assert f"depth: skipped, {tok_dir}: no such tokenizer directory" in result.output

    tokzoo.load_tokenizer("depth", untrained_ok=True).save_pretrained(tmp_path / "x")
    assert (
        run(
            "tokenize",
            "-m",
            "depth",
            "-t",
            f"depth={tmp_path / 'x'}",
            "--untrained",
            "--input",
            str(tmp_path / "scenes"),
            "--size",
            "32",
            "-o",
            str(tmp_path / "t2"),
            "--no-progress",
        ).exit_code
        == 0
    )
    shutil.rmtree(tmp_path / "x")  # a dataset whose only tokenizer is gone: no PNG, one error line
    nothing = run("show", str(tmp_path / "t2"), "--key", "scene_000001", "-o", str(tmp_path / "none.png"))
    assert nothing.exit_code == 2 and "depth: skipped" in nothing.output
    assert (
        nothing.stderr == "error: scene_000001: nothing to draw, no modality could be shown (notes above); "
        f"{tmp_path / 'none.png'} not written\n"
    )
    assert not (tmp_path / "none.png").exists()


def test_output_under_a_file_says_so(tmp_path):
    np.save(tmp_path / "depth.npy", np.full((64, 64), 3.0, np.float32))
    (tmp_path / "taken").write_text("x")  # mkdir of an existing file: FileExistsError, 'File exists'
    one_line_error(
        run("encode", "-t", "depth", str(tmp_path / "depth.npy"), "-o", str(tmp_path / "taken" / "sub" / "t.npy")),
        f"{tmp_path / 'taken'}",
        "is a file, not a folder",
    )
