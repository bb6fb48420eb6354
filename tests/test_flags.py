"""One flag vocabulary across commands (issue 31, item 7); old spellings still parse but leave --help."""

import re

import click
from click.testing import CliRunner

from tokzoo_cli.main import cli


def commands(group=cli, path=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


def help_of(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    return result.output


def test_outputs_are_dash_o_output_and_json_is_a_flag_everywhere():
    for path, command in commands():
        for param in command.params:
            names = [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]
            if "--output" in names:
                assert "-o" in names, path
            if "--json" in names:
                assert param.is_flag, f"{' '.join(path)} --json takes a value; it prints JSON elsewhere"
            assert param.name != "quiet", path
        text = help_of(path)
        assert not re.search(r"--out\b|--n\b|--train-n\b|-q\b|--quiet\b", text), (path, "an old spelling is shown")
        assert "OUT " not in text.split("\n")[0] and "OUT]" not in text.split("\n")[0], path  # no positional OUT
        assert not re.search(r"open_reader|save_pretrained|tokzoo\.[a-z]", text), (path, "internal names in help")


def test_old_spellings_still_work(tmp_path):
    old = CliRunner().invoke(cli, ["scenes", "--n", "2", "--size", "16", "--out", str(tmp_path / "a")])
    new = CliRunner().invoke(cli, ["scenes", "--count", "2", "--size", "16", "-o", str(tmp_path / "b")])
    assert old.exit_code == new.exit_code == 0, old.output + new.output
    assert (tmp_path / "a" / "shard-000000.tar").read_bytes() == (tmp_path / "b" / "shard-000000.tar").read_bytes()


def test_eval_scenes_kind_is_kind_as_in_tokzoo_scenes():
    """`eval --scenes` was a kind while `tokenize --scenes` is a count; eval now says --kind, like `scenes`."""
    eval_kind = next(p for p in cli.commands["eval"].params if p.name == "kind")
    scenes_kind = next(p for p in cli.commands["scenes"].params if p.name == "kind")
    assert "--kind" in eval_kind.opts and eval_kind.type.choices == scenes_kind.type.choices
    assert "--scenes" not in help_of(("eval",))
