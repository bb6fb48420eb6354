"""``tokzoo compose train``: train a composition recipe (recipes/compose/*.yaml): glue between frozen components,
or a component (the text LM, the ViT) pretrained from scratch, on the built-in scene texts."""

from __future__ import annotations

from pathlib import Path

import click

from .errors import UserError
from .machine import apply_threads, threads_option
from .options import output_option


@click.group("compose")
def compose_group():
    """Compositions of frozen models: glue trained between them (docs/ARCHITECTURE.md, Composition)."""


@compose_group.command("train")
@click.option(
    "--recipe",
    "-r",
    "recipe_path",
    required=True,
    help="A shipped compose recipe's name (compose/gats; `tokzoo recipes` lists them) or a YAML file with a "
    "`compose:` section.",
)
@output_option(
    "out_dir",
    "Output folder: the composition, or the pretrained component.",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option(
    "--steps", type=click.IntRange(min=1), default=None, help="Training steps, in place of the recipe's `steps`."
)
@threads_option
@click.option("--progress/--no-progress", default=True, help="Progress bars on stderr.")
def compose_train_command(recipe_path, out_dir, steps, threads, progress):
    """Train what a composition recipe describes into OUT (compose.json + glue.safetensors, or a model folder)."""
    from tokzoo.compose.recipe import is_compose_recipe_file, read_recipe
    from tokzoo.compose.train import run_recipe
    from tokzoo.recipes import resolve_recipe

    path = resolve_recipe(recipe_path)
    if not is_compose_recipe_file(path):
        raise UserError(
            f"{recipe_path}: not a composition recipe (no `compose:` section); train an fm recipe with "
            f"`tokzoo fm train --recipe {recipe_path}`, a tokenizer's with `tokzoo train --recipe`"
        )
    apply_threads(threads)  # a recipe's own `threads:` still wins over the machine's default
    run_recipe(read_recipe(path, steps=steps, threads=threads), out_dir, log=click.echo, progress=progress)
