"""``tokzoo recipes``: the recipes that ship with tokzoo, and the command that runs each."""

from __future__ import annotations

import click


@click.command("recipes")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def recipes_command(as_json):
    """List the shipped recipes; pass a NAME to --recipe of `tokzoo train`, `tokzoo fm train` or `tokzoo compose train`."""
    import json

    from tokzoo.recipes import command_for, describe, recipe_names, recipes_dir

    names = recipe_names()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": n,
                        "command": command_for(n),
                        "summary": describe(n),
                        "path": str(recipes_dir() / f"{n}.yaml"),
                    }
                    for n in names
                ],
                indent=2,
            )
        )
        return
    if not names:
        raise click.ClickException("no recipes found: the tokzoo_recipes package is missing from this install")
    width = max(len(n) for n in names)
    for name in names:
        click.echo(f"{name:<{width}}  {describe(name)}")
    click.echo(
        f"\nrun one with `{command_for('depth')}` or `{command_for('fm/scenes-cpu')} --data TOKENS`; "
        f"files in {recipes_dir()}"
    )
