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
    from tokzoo.tokenizers.zoo_index import zoo_rows

    rows = [("name", "modality", "tokens", "vocab", "weights")]
    rows += [(r["name"], r["modality"], r["tokens"], str(r["vocab"]), r["weights"]) for r in zoo_rows()]
    _table(rows)
    click.echo(
        "\nreleased 4M tokenizers (ViT-B, 224-448 px; GPU-sized): `-t MODALITY=NAME`, through the ml-4m port, "
        "from $TOKZOO_4M_TOKENIZERS/<repo> or the hub"
    )
    _table(_released_rows())


def _released_rows() -> list[tuple[str, ...]]:
    from tokzoo.fourm.catalog import LICENCE, RELEASED_TOKENIZERS, download_size

    rows = [("name", "hub id", "modality", "tokens", "vocab", "decoder", "download", "licence")]
    for entry in RELEASED_TOKENIZERS.values():
        size = download_size(entry)
        rows.append(
            (
                entry.name,
                entry.hub_id,
                entry.modality,
                entry.tokens,
                str(entry.vocab_size),
                entry.decoder,
                f"{size / 1e6:.0f} MB (cached)" if size else "not fetched",
                LICENCE,
            )
        )
    return rows


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@zoo_group.command("info")
@click.argument("name")
def zoo_info(name):
    """The input contract, what the weights were trained on, where they are known to fail, and the full config."""
    from tokzoo.tokenizers.zoo import build_zoo_tokenizer, training_coverage, zoo_entries

    entries = zoo_entries()
    if name not in entries:
        raise UserError(f"{name}: not a zoo name; choose one of {', '.join(entries)}")
    tokenizer = build_zoo_tokenizer(name, untrained_ok=True)
    facts = tokenizer.describe()
    for key, value in facts.items():
        click.echo(f"{key}: {value}")
    if entries[name].learned and not entries[name].weights_dir:
        click.echo(f"weights: none shipped (train with `tokzoo train --recipe {name}`)")
    coverage = training_coverage(tokenizer.config) if entries[name].learned else None
    if coverage is not None:
        size = "x".join(map(str, coverage["input_size"]))
        click.echo(f"trained on: {coverage['trained_on']}; {coverage['steps']} steps at input size {size}")
        if coverage["range"]:
            click.echo(f"range: {coverage['range']}")
        failures = coverage["known_failures"] or ["none recorded"]
        click.echo("known to fail: " + failures[0])
        for failure in failures[1:]:
            click.echo("  " + failure)
    click.echo(f"input contract: {tokenizer.contract}")
    click.echo("config: " + json.dumps(tokenizer.config, indent=2, sort_keys=True))
