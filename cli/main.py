"""The ``tokzoo`` command: one group, each subcommand in its own module.

Command modules import torch, numpy and tokzoo inside their command functions, so that ``tokzoo --help``
and ``tokzoo CMD --help`` do not pay for them (tests/test_cli.py checks this).
"""

from __future__ import annotations

import click

from .browse import browse_command
from .codec import decode_command, encode_command
from .compose import compose_group
from .demo import demo_command
from .errors import TokzooGroup
from .eval import eval_command
from .eval_labels import eval_labels_command
from .export import export_command
from .fm import fm_group
from .inspect import inspect_command, show_command
from .photos import photos_command
from .pseudo_label import pseudo_label_command
from .recipes import recipes_command
from .scenes import scenes_command
from .tokenize import tokenize_command
from .train import train_command
from .zoo import zoo_group


def _print_version(ctx, _param, value) -> None:
    if value and not ctx.resilient_parsing:
        from tokzoo import __version__

        click.echo(f"tokzoo, version {__version__}")
        ctx.exit()


@click.group(cls=TokzooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
def cli():
    """tokzoo: pseudo-label, tokenize and shard multimodal data for any-to-any models."""


for command in (
    zoo_group,
    encode_command,
    decode_command,
    tokenize_command,
    inspect_command,
    show_command,
    demo_command,
    train_command,
    eval_command,
    pseudo_label_command,
    eval_labels_command,
    scenes_command,
    export_command,
    fm_group,
    compose_group,
    browse_command,
    recipes_command,
    photos_command,
):
    cli.add_command(command)


def main() -> None:
    cli()
