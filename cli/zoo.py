"""``tokzoo zoo list`` and ``tokzoo zoo info NAME``."""

from __future__ import annotations

import json

import click

from .errors import TokzooGroup, UserError


@click.group("zoo", cls=TokzooGroup)
def zoo_group():
    """The named tokenizers that ship with tokzoo."""


@zoo_group.command("list")
def zoo_list():
    """Name, modality, token shape, vocabulary and whether weights are present."""
    from tokzoo.zoo import build_zoo_tokenizer, zoo_entries

    rows = [("name", "modality", "tokens", "vocab", "weights")]
    for name, entry in zoo_entries().items():
        tokenizer = build_zoo_tokenizer(name, untrained_ok=True)
        weights = "yes" if entry.weights_dir else ("not needed" if not entry.learned else "no (untrained)")
        rows.append((name, entry.modality, "x".join(map(str, tokenizer.token_shape)), str(tokenizer.vocab_size), weights))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@zoo_group.command("info")
@click.argument("name")
def zoo_info(name):
    """The input contract and full config of zoo tokenizer NAME."""
    from tokzoo.zoo import build_zoo_tokenizer, zoo_entries

    entries = zoo_entries()
    if name not in entries:
        raise UserError(f"{name}: not a zoo name; choose one of {', '.join(entries)}")
    tokenizer = build_zoo_tokenizer(name, untrained_ok=True)
    facts = tokenizer.describe()
    for key, value in facts.items():
        click.echo(f"{key}: {value}")
    if entries[name].learned and not entries[name].weights_dir:
        click.echo(f"weights: none shipped (train with `tokzoo train --recipe recipes/{name}.yaml`)")
    click.echo(f"input contract: {tokenizer.contract}")
    click.echo("config: " + json.dumps(tokenizer.config, indent=2, sort_keys=True))
