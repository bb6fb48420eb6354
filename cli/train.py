"""``tokzoo train``: train a learned tokenizer from a YAML recipe."""

from __future__ import annotations

from pathlib import Path

import click

from .machine import apply_threads, default_device, machine_options, threads_note
from .options import output_option, progress_option


@click.command("train")
@click.option(
    "--recipe",
    "-r",
    "recipe_path",
    required=True,
    help="A shipped recipe's name (depth; `tokzoo recipes` lists them) or a YAML file.",
)
@click.option(
    "--data", default=None, help="Train on this source (a folder, tar(s) or hf: dataset) instead of the recipe's."
)
@output_option(
    "out_dir",
    "Run directory (checkpoints/, tokenizer/). Default: runs/<name>.",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Override the recipe's step count.")
@click.option(
    "--resume",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Checkpoint directory, or a run directory (its latest checkpoint).",
)
@machine_options
@click.option(
    "--eval/--no-eval",
    "run_eval",
    default=True,
    show_default=True,
    help="Evaluate on held-out scenes at the end and store the numbers in config.json.",
)
@progress_option
def train_command(recipe_path, data, out_dir, device, steps, resume, threads, run_eval, progress):
    """Train the recipe's tokenizer; writes OUTPUT/tokenizer (config.json + model.safetensors) with provenance."""
    from tokzoo.recipes import resolve_recipe
    from tokzoo.tokenizers.training import load_recipe, train, validate_recipe

    recipe_path = resolve_recipe(recipe_path)
    recipe = load_recipe(recipe_path)
    if data is not None:
        kept = {k: recipe["data"][k] for k in ("crop", "sensor") if k in recipe["data"]}  # augmentations carry over
        recipe["data"] = {"path": data, **kept}
    if steps is not None:
        recipe["steps"] = steps
    recipe = validate_recipe(recipe, str(recipe_path))
    device = device or default_device()
    chosen = apply_threads(threads)
    out_dir = out_dir or Path("runs") / recipe["name"]
    result = train(recipe, out_dir, device=device, resume=resume, progress=progress)
    click.echo(
        f"{recipe['name']}: {len(result.losses)} steps, final loss {result.losses[-1]:.4f}, "
        f"validation loss {_fmt(result.validation_loss)}, codebook usage {result.codebook['usage']:.1%}; "
        f"{threads_note(threads, chosen)}"
    )
    if run_eval:
        from tokzoo.tokenizers.evaluation import attach_evaluation, evaluate, format_table, heldout_values

        values, description, _ = heldout_values(result.tokenizer, progress=progress)  # nothing unreadable here
        report = evaluate(result.tokenizer, values, data=description, progress=progress).report
        attach_evaluation(result.directory, report)
        click.echo(format_table(report))
    click.echo(f"saved {result.directory}")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
