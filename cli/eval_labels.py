"""``tokzoo eval-labels``: the classical pseudo-labelers against the procedural scenes' ground truth."""

from __future__ import annotations

import json

import click

from .options import count_option


@click.command("eval-labels")
@count_option("n", "Number of scenes.", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--size", default=128, show_default=True, type=click.IntRange(min=16), help="Scene side in pixels.")
@click.option("--seed", default=1, show_default=True, type=int, help="Scene stream (0 was used to pick defaults).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
def eval_labels_command(n, size, seed, as_json, progress):
    """Print each labeler's error against scene ground truth (metrics: tokzoo/labelers/evaluate.py)."""
    from tokzoo.labelers.evaluate import evaluate

    results = {
        name: {k: round(float(v), 4) for k, v in metrics.items()}
        for name, metrics in evaluate(n, seed, size, progress=progress).items()
    }
    if as_json:
        click.echo(json.dumps({"scenes": n, "size": size, "seed": seed, "results": results}, indent=2))
        return
    click.echo(f"| labeler | metric | value |  ({n} scenes, {size} px, seed {seed})")
    click.echo("|---|---|---|")
    for name, metrics in results.items():
        for metric, value in metrics.items():
            click.echo(f"| {name} | {metric} | {value:.4g} |")
