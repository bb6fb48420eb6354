"""``tokzoo encode`` and ``tokzoo decode`` for single files."""

from __future__ import annotations

from pathlib import Path

import click

from .errors import UserError

MAX_DECODE_ITEMS = 1024
"""Most items (humans, instances) of one image a token file may hold for ``tokzoo decode``."""

tokenizer_option = click.option("--tokenizer", "-t", required=True, help="Zoo name, tokenizer directory or hub id.")
untrained_option = click.option(
    "--untrained", is_flag=True, help="Allow a randomly initialised zoo tokenizer when no weights ship."
)


def _label(tokenizer) -> str:
    return f"{tokenizer.name} ({tokenizer.modality}, vocab {tokenizer.vocab_size}" + (
        ", UNTRAINED)" if tokenizer.untrained else ")"
    )


@click.command("encode")
@tokenizer_option
@untrained_option
@click.argument("input_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Tokens .npy to write."
)
def encode_command(tokenizer, untrained, input_file, output):
    """Encode one file of the tokenizer's modality into a token .npy (smallest safe integer dtype)."""
    import io

    import numpy as np

    from tokzoo.errors import InputError
    from tokzoo.indices import to_storage
    from tokzoo.io.formats import read_modality
    from tokzoo.io.writes import write_output
    from tokzoo.tokenizers.zoo import load_tokenizer

    if output.suffix != ".npy":
        raise UserError(f"{output}: tokens are written as .npy")
    tok = load_tokenizer(tokenizer, untrained_ok=untrained)
    value = read_modality(tok.modality, input_file)
    try:
        tokens = to_storage(tok.encode(value), tok.vocab_size)
    except InputError as error:  # name the file, not the tokenizer's in-memory label
        raise UserError(f"{input_file}: {error.reason}") from None
    buffer = io.BytesIO()
    np.save(buffer, tokens, allow_pickle=False)
    write_output(output, buffer.getvalue())
    click.echo(f"{input_file} -> {output}: tokens {tokens.shape} {tokens.dtype} by {_label(tok)}")


@click.command("decode")
@tokenizer_option
@untrained_option
@click.argument("tokens_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write; its extension picks the format (e.g. .png, .npy, .json).",
)
@click.option(
    "--input-size",
    help="N or HxW of the encoded input, when not the tokenizer's input size: needed for a "
    "non-square input, whose token count says nothing of its shape.",
)
def decode_command(tokenizer, untrained, tokens_file, output, input_size):
    """Decode a token .npy back into the modality's raw form."""
    from tokzoo.errors import InputError
    from tokzoo.io.formats import write_modality
    from tokzoo.io.safety import load_npy, read_file
    from tokzoo.tokenizers.zoo import load_tokenizer

    from .tokenize import parse_size

    size = parse_size(input_size, "--input-size")
    tok = load_tokenizer(tokenizer, untrained_ok=untrained)
    if size is not None:
        if tok.config.get("architecture") != "learned" or tok.codec.family != "image":
            raise UserError(f"--input-size: {tok.name} decodes no image or map, so it takes no input size")
        try:
            tok.token_shape_for(size)
        except InputError as error:
            raise UserError(f"--input-size {input_size}: {error.reason}") from None
    tokens = load_npy(
        read_file(tokens_file), str(tokens_file)
    )  # FIFO, device, huge, empty, truncated, pickled: one line
    items = not getattr(getattr(tok, "codec", None), "batch_is_samples", True)  # rows: one image's humans / instances
    if items and (tokens.ndim < 1 or not 1 <= tokens.shape[0] <= MAX_DECODE_ITEMS):
        raise UserError(
            f"{tokens_file}: holds {tokens.shape[0] if tokens.ndim else 0} items (shape {tokens.shape}); "
            f"{tok.modality} decodes 1 to {MAX_DECODE_ITEMS} items of one image"
        )
    if not items and tokens.ndim > 1 and tokens.shape[0] != 1:
        raise UserError(
            f"{tokens_file}: holds {tokens.shape[0]} samples (shape {tokens.shape}); decode writes one "
            "sample, so give it a batch of 1"
        )
    try:
        decoded = tok.decode(tokens, input_size=size) if size is not None else tok.decode(tokens)
    except InputError as error:  # name the file, not the tokenizer's in-memory label; the option, not the keyword
        raise UserError(f"{tokens_file}: {error.reason.replace('input_size=(H, W)', '--input-size HxW')}") from None
    write_modality(
        getattr(getattr(tok, "codec", None), "stored_as", None) or tok.modality,
        decoded if items else decoded[0],
        output,
    )
    click.echo(f"{tokens_file} -> {output}: decoded by {_label(tok)}")
