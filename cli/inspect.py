"""``tokzoo inspect`` and ``tokzoo show``: look into a token dataset written by ``tokzoo tokenize``."""

from __future__ import annotations

from pathlib import Path

import click

from .errors import UserError

dataset_argument = click.argument(
    "out", metavar="DATASET", type=click.Path(exists=True, file_okay=False, path_type=Path)
)


@click.command("inspect")
@dataset_argument
@click.option(
    "--samples", default=3, show_default=True, type=click.IntRange(min=0), help="Samples whose tokens to print."
)
def inspect_command(out, samples):
    """Print the manifest, per-modality counts and failures, and a few samples' tokens (of a token dataset), or
    the labelers, failures and a few samples' files (of `tokzoo pseudo-label` output)."""
    from tokzoo.fourm.reader import detect_layout

    if detect_layout(out):  # ml-4m's layouts (tokzoo.fourm)
        from tokzoo.fourm.report import inspect_lines
    else:
        from tokzoo.pipeline.listing import inspect_lines

    for line in inspect_lines(out, samples):
        click.echo(line)


@click.command("show")
@dataset_argument
@click.option("--key", "-k", required=True, help="Sample key.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PNG to write.")
@click.option(
    "--tokenizer",
    "-t",
    "tokenizers",
    multiple=True,
    help="ml-4m layouts only: MODALITY=TOKENIZER (repeatable), e.g. tok_depth@224=PATH_TO_4M_TOKENIZER.",
)
@click.option(
    "--scale",
    type=click.IntRange(1, 16),
    default=None,
    help="Enlarge every tile this many times (default: tiles of at least 128 px).",
)
def show_command(out, key, output, tokenizers, scale):
    """PNG of one sample: per modality, the source crop beside the reconstruction from its tokens (a modality whose
    tokenizer is gone or changed is skipped with a note). ml-4m layouts: the reconstructions by --tokenizer."""
    from tokzoo.fourm.reader import detect_layout
    from tokzoo.io.images import save_png
    from tokzoo.viz import labelled_grid

    if detect_layout(out):
        from tokzoo.fourm.report import show_rows as fourm_rows

        from .tokenize import parse_tokenizers

        rows, notes = fourm_rows(out, key, parse_tokenizers(tokenizers))
        names, columns = (
            [n.split(":")[0] for n in notes if ": crop 0 decoded by " in n],
            [f"{key}: crop 0 from its tokens"],
        )
    else:
        from tokzoo.pipeline.report import show_pairs

        pairs, notes = show_pairs(out, key)
        rows, names = [[source, reconstruction] for _, source, reconstruction in pairs], [name for name, *_ in pairs]
        columns = [f"{key}: source crop 0", "from its tokens"]
    for note in notes:
        click.echo(note)
    if not rows:
        raise UserError(f"{key}: nothing to draw, no modality could be shown (notes above); {output} not written")
    click.echo(f"wrote {save_png(labelled_grid(rows, columns, names, scale=scale), output)}")
