"""The ``tokzoo`` command: one group, each subcommand in its own module."""

from __future__ import annotations

import click

from tokzoo import __version__

from .codec import decode_command, encode_command
from .demo import demo_command
from .errors import TokzooGroup
from .eval import eval_command
from .eval_labels import eval_labels_command
from .inspect import inspect_command, show_command
from .pseudo_label import pseudo_label_command
from .scenes import scenes_command
from .tokenize import tokenize_command
from .train import train_command
from .zoo import zoo_group


@click.group(cls=TokzooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tokzoo")
def cli():
    """tokzoo: pseudo-label, tokenize and shard multimodal data for any-to-any models."""


for command in (zoo_group, encode_command, decode_command, tokenize_command, inspect_command, show_command, demo_command,
                train_command, eval_command, pseudo_label_command, eval_labels_command, scenes_command):
    cli.add_command(command)


def main() -> None:
    cli()
