"""``tokzoo eval``: reconstruction metrics of a tokenizer and of same-bit baselines."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .codec import tokenizer_option, untrained_option
from .errors import UserError
from .machine import apply_threads
from .options import AliasOption, count_option


@click.command("eval")
@tokenizer_option
@untrained_option
@click.option(
    "--data",
    default=None,
    help="Samples to evaluate (a folder, tar(s) or hf: dataset; unreadable ones are "
    "skipped and listed). Default: held-out scenes.",
)
@count_option("n_samples", "Number of samples.", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--seed", type=int, default=None, help="Seed of the default held-out scenes.")
@click.option(
    "--kind",
    "--scenes",
    "kind",
    cls=AliasOption,
    aliases=("--scenes",),
    type=click.Choice(["indoor", "outdoor", "mix", "cluttered"]),
    default="indoor",
    show_default=True,
    help="Kind of the default held-out scenes (as `tokzoo scenes --kind`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--grid",
    "grid_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a PNG of originals, reconstructions and error maps.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads (default: the CPUs not kept busy by other processes, as train and fm train).",
)
@click.option("--progress/--no-progress", default=True, help="Show progress bars on stderr.")
def eval_command(tokenizer, untrained, data, n_samples, seed, kind, as_json, grid_path, threads, progress):
    """Evaluate a tokenizer: per-modality metrics, codebook usage and perplexity, same-bit baselines."""
    from tokzoo.tokenizers.evaluation import HELDOUT_SEED, evaluate, format_table, heldout_values, save_grid
    from tokzoo.tokenizers.zoo import load_tokenizer

    apply_threads(threads)
    tok = load_tokenizer(tokenizer, untrained_ok=untrained)
    architecture = tok.config.get("architecture")
    if architecture != "learned":  # the evaluation measures reconstructions of images and maps at an input size
        raise UserError(
            f"{tokenizer}: a {architecture} tokenizer (rule-based, no weights); tokzoo eval measures learned tokenizers"
        )
    values, description, unreadable = heldout_values(
        tok, n_samples, HELDOUT_SEED if seed is None else seed, data, progress=progress, kind=kind
    )
    evaluation = evaluate(tok, values, data=description, unreadable=unreadable, progress=progress)
    click.echo(json.dumps(evaluation.report, indent=2) if as_json else format_table(evaluation.report))
    if grid_path is not None:
        save_grid(evaluation, tok.codec, grid_path)
        click.echo(f"grid: {grid_path}", err=as_json)
