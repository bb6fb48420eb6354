"""The README's command-line examples, run through click's test runner."""

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
    encoded = run("encode", "-t", "depth", "--untrained", str(tmp_path / "depth.npy"), "-o", str(tmp_path / "tokens.npy"))
    assert encoded.exit_code == 0, encoded.output
    tokens = np.load(tmp_path / "tokens.npy")
    assert tokens.shape[0] == 1 and tokens.dtype == np.uint16
    decoded = run("decode", "-t", "depth", "--untrained", str(tmp_path / "tokens.npy"), "-o", str(tmp_path / "again.npy"))
    assert decoded.exit_code == 0, decoded.output
    again = np.load(tmp_path / "again.npy")
    assert again.shape == (224, 224) and again.dtype == np.float32


def test_user_errors_are_one_line_with_exit_2(tmp_path):
    (tmp_path / "broken.png").write_text("not an image")
    result = CliRunner().invoke(cli, ["encode", "-t", "rgb", "--untrained", str(tmp_path / "broken.png"),
                                      "-o", str(tmp_path / "t.npy")])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: ") and "broken.png" in result.output
    assert len(result.output.strip().splitlines()) == 1
    missing = CliRunner().invoke(cli, ["encode", "-t", "clip_global", str(tmp_path / "broken.png"), "-o", str(tmp_path / "t.npy")])
    assert missing.exit_code == 2 and "no shipped weights" in missing.output
    assert "--untrained" in missing.output  # the flag a command-line user passes, not only the Python keyword
