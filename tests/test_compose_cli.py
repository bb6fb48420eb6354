"""`tokzoo compose train` runs recipes with a `compose:` section (recipes/compose/*.yaml) without a token dataset;
`tokzoo fm train` refuses them, pointing at it."""

import json

import yaml
from click.testing import CliRunner

from tokzoo_cli.main import cli

TOY_DATA = {"scene_text": {"n_train": 6, "n_val": 3, "size": 32}}


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_compose_train_runs_compose_recipes(tmp_path):
    lm_recipe = yaml.safe_load(open("recipes/compose/text_lm.yaml"))
    lm_recipe.update(batch_size=4, data=TOY_DATA)
    lm_recipe["compose"]["pretrain_lm"].update(vocab_size=300, hidden_size=32, layers=2)
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(lm_recipe))
    result = invoke(
        "compose",
        "train",
        "--recipe",
        str(tmp_path / "lm.yaml"),
        "--out",
        str(tmp_path / "lm"),
        "--steps",
        "2",
        "--threads",
        "1",
    )
    assert result.exit_code == 0, result.output
    assert "held-out text: cross-entropy" in result.output

    recipe = yaml.safe_load(open("recipes/compose/epalm.yaml"))
    recipe.update(batch_size=4, data={**TOY_DATA, "caption_fraction": 0.5})
    recipe["compose"]["components"]["lm"] = {"causal_lm": str(tmp_path / "lm")}
    recipe["compose"]["settings"]["inject_layers"] = [2]
    (tmp_path / "epalm.yaml").write_text(yaml.safe_dump(recipe))
    result = invoke(
        "compose",
        "train",
        "--recipe",
        str(tmp_path / "epalm.yaml"),
        "--out",
        str(tmp_path / "epalm"),
        "--steps",
        "2",
        "--threads",
        "1",
    )
    assert result.exit_code == 0, result.output
    output = result.output  # progress bars (stderr) end without a newline: look for the text, not for line starts
    split = output.index("lm: 0 trainable")  # the split is printed before training starts
    assert "rgb: 0 trainable" in output and "%), frozen" in output[split:]
    assert split < output.index("step 2/2: loss")
    metrics = json.loads((tmp_path / "epalm" / "metrics.json").read_text())
    assert 0 < metrics["split"]["trainable_percent"] < 100
    assert metrics["components_unchanged"] == {"lm": True, "rgb": True}
    assert 0.0 <= metrics["task"]["answer_accuracy"] <= 1.0
    for run in ("lm", "epalm"):  # the trainers' run-folder log (tokzoo.runs.run_folder)
        log = [json.loads(line) for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
        assert log[-1]["step"] == 2 and log[-1]["loss"] > 0 and log[-1]["lr"] > 0


def test_compose_train_errors_are_one_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("compose: {method: gats, components: {}}\n")
    result = CliRunner().invoke(
        cli, ["compose", "train", "--recipe", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "compose.components is empty" in result.output and "Traceback" not in result.output
    (tmp_path / "bad2.yaml").write_text("compose: {method: gats, components: {lm: {causal_lm: /nonexistent}}}\n")
    result = CliRunner().invoke(
        cli, ["compose", "train", "--recipe", str(tmp_path / "bad2.yaml"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "not a transformers model folder" in result.output


def test_compose_recipes_honour_no_progress(tmp_path):
    """`--no-progress` on a compose recipe still drew its scene and step bars (issue 31)."""
    lm_recipe = yaml.safe_load(open("recipes/compose/text_lm.yaml"))
    lm_recipe.update(batch_size=4, data={"scene_text": {"n_train": 5, "n_val": 2, "seed": 11, "size": 32}})
    lm_recipe["compose"]["pretrain_lm"].update(vocab_size=300, hidden_size=32, layers=2)
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(lm_recipe))

    def train(out, *flags):
        result = CliRunner().invoke(
            cli,
            [
                "compose",
                "train",
                "--recipe",
                str(tmp_path / "lm.yaml"),
                "--out",
                str(tmp_path / out),
                "--steps",
                "2",
                "--threads",
                "1",
                *flags,
            ],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        return result.stderr

    assert "it/s]" in train("bars") or "s/it]" in train("bars2")  # new seed each time: the scene cache is per (n, seed)
    assert "it]" not in train("quiet", "--no-progress") and "|" not in train("quiet2", "--no-progress")


def test_each_trainer_refuses_the_others_recipes_in_one_line(tmp_path):
    """No sniffing: `fm train` names `compose train` for a compose recipe, and `compose train` names `fm train`."""
    result = CliRunner().invoke(cli, ["fm", "train", "--recipe", "compose/gats", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and not (tmp_path / "o").exists()
    assert result.output == (
        "error: compose/gats: a composition recipe (a `compose:` section); train it with "
        "`tokzoo compose train --recipe compose/gats`\n"
    )
    result = CliRunner().invoke(cli, ["compose", "train", "--recipe", "fm/scenes-cpu", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and not (tmp_path / "o").exists()
    assert result.output.count("\n") == 1 and "`tokzoo fm train --recipe fm/scenes-cpu`" in result.output
