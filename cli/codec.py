"""``tokzoo encode`` and ``tokzoo decode`` for single files."""

from __future__ import annotations

from pathlib import Path

import click

from .errors import UserError

tokenizer_option = click.option("--tokenizer", "-t", required=True, help="Zoo name, tokenizer directory or hub id.")
untrained_option = click.option("--untrained", is_flag=True,
                                help="Allow a randomly initialised zoo tokenizer when no weights ship.")


def _label(tokenizer) -> str:
    return f"{tokenizer.name} ({tokenizer.modality}, vocab {tokenizer.vocab_size}" + (
        ", UNTRAINED)" if tokenizer.untrained else ")")


@click.command("encode")
@tokenizer_option
@untrained_option
@click.argument("input_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Tokens .npy to write.")
def encode_command(tokenizer, untrained, input_file, output):
    """Encode one file of the tokenizer's modality into a token .npy (smallest safe integer dtype)."""
    import numpy as np

    from tokzoo.errors import InputError
    from tokzoo.indices import to_storage
    from tokzoo.io.formats import read_modality
    from tokzoo.zoo import load_tokenizer

    if output.suffix != ".npy":
        raise UserError(f"{output}: tokens are written as .npy")
    tok = load_tokenizer(tokenizer, untrained_ok=untrained)
    value = read_modality(tok.modality, input_file)
    try:
        tokens = to_storage(tok.encode(value), tok.vocab_size)
    except InputError as error:  # name the file, not the tokenizer's in-memory label
        raise UserError(f"{input_file}: {error.reason}") from None
    output.parent.mkdir(parents=True, exist_ok=True)
    np.save(output, tokens, allow_pickle=False)
    click.echo(f"{input_file} -> {output}: tokens {tokens.shape} {tokens.dtype} by {_label(tok)}")


@click.command("decode")
@tokenizer_option
@untrained_option
@click.argument("tokens_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write; its extension picks the format (e.g. .png, .npy, .json).")
def decode_command(tokenizer, untrained, tokens_file, output):
    """Decode a token .npy back into the modality's raw form."""
    from tokzoo.errors import InputError
    from tokzoo.io.formats import write_modality
    from tokzoo.io.safety import load_npy
    from tokzoo.zoo import load_tokenizer

    tok = load_tokenizer(tokenizer, untrained_ok=untrained)
    tokens = load_npy(tokens_file.read_bytes(), str(tokens_file))  # empty, truncated, pickled: one line
    if tokens.ndim > 1 and tokens.shape[0] != 1:
        raise UserError(f"{tokens_file}: holds {tokens.shape[0]} samples (shape {tokens.shape}); decode writes one "
                        "sample, so give it a batch of 1")
    try:
        decoded = tok.decode(tokens)
    except InputError as error:  # name the file, not the tokenizer's in-memory label
        raise UserError(f"{tokens_file}: {error.reason}") from None
    output.parent.mkdir(parents=True, exist_ok=True)
    write_modality(tok.modality, decoded[0], output)
    click.echo(f"{tokens_file} -> {output}: decoded by {_label(tok)}")
