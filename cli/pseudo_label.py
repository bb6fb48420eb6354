"""``tokzoo pseudo-label``: images -> multimodal raw shards (and, with ``--tokenize``, tokens)."""

from __future__ import annotations

from pathlib import Path

import click

from .errors import UserError
from .tokenize import (
    engine_options,
    image_filter_options,
    make_engine,
    max_member_bytes_option,
    modality_names,
    parse_size,
    parse_tokenizers,
)


def parse_pairs(option: str, values: tuple[str, ...]) -> dict[str, str]:
    """``("depth=hf_depth:dir",)`` -> ``{"depth": "hf_depth:dir"}`` (old modality names read as their canonical
    ones); one line per bad entry."""
    from tokzoo.vocabulary import canonical

    out = {}
    for value in values:
        modality, sep, spec = value.partition("=")
        if not sep or not modality.strip() or not spec.strip():
            raise UserError(f"{option} {value!r}: expected MODALITY=NAME_OR_PATH")
        out[canonical(modality.strip())] = spec.strip()
    return out


def parse_options(values: tuple[str, ...]) -> dict[str, dict]:
    """``("normals.steps=4",)`` -> ``{"normals": {"steps": 4}}``; values read as YAML scalars (4, 0.5, true, text)."""
    import yaml

    from tokzoo.vocabulary import canonical

    out: dict[str, dict] = {}
    for value in values:
        target, sep, raw = value.partition("=")
        modality, dot, key = target.partition(".")
        if not sep or not dot or not modality.strip() or not key.strip():
            raise UserError(f"--labeler-option {value!r}: expected MODALITY.OPTION=VALUE")
        try:
            parsed = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            parsed = raw
        if isinstance(parsed, (dict, list)):
            raise UserError(f"--labeler-option {value!r}: the value must be a number, true/false or text")
        out.setdefault(canonical(modality.strip()), {})[key.strip()] = parsed
    return out


@click.command("pseudo-label")
@click.option(
    "--modality",
    "-m",
    "modalities",
    required=True,
    help="Modalities to label, comma-separated (normals,edges,palette,metadata).",
)
@click.option(
    "--input",
    "-i",
    "input_",
    required=True,
    help="Folder of images, folder of modality folders, tar(s) or hf: dataset.",
)
@click.option(
    "--output", "-o", required=True, help="Folder for OUT/shard-*.tar, or an object-store URL (s3://bucket/labelled)."
)
@click.option(
    "--labeler",
    "-l",
    "labelers",
    multiple=True,
    help="MODALITY=NAME[:PATH_OR_HUB_ID] (repeatable): the labeler of a modality, also for one the others need (depth=hf_depth:DIR).",
)
@click.option(
    "--labeler-option",
    "-O",
    "labeler_options",
    multiple=True,
    help="MODALITY.OPTION=VALUE (repeatable): an option of that modality's labeler (normals.steps=4); "
    "an unknown option is refused with the labeler's list.",
)
@click.option("--device", default="cpu", show_default=True, help="Device for model-backed labelers.")
@click.option(
    "--batch-size", default=8, show_default=True, type=click.IntRange(min=1), help="Samples per labeler call."
)
@click.option(
    "--samples-per-shard", default=256, show_default=True, type=click.IntRange(min=1), help="For non-tar inputs."
)
@click.option("--overwrite", is_flag=True, help="Delete what OUT holds and start over.")
@click.option(
    "--tokenize",
    "then_tokenize",
    is_flag=True,
    help="Then tokenize the labelled modalities (as `tokzoo tokenize --input OUT`).",
)
@click.option(
    "--tokens-output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Token dataset folder for --tokenize. Default: OUT-tokens.",
)
@click.option(
    "--tokenizer",
    "-t",
    "tokenizers",
    multiple=True,
    help="MODALITY=ZOO_NAME_OR_DIR for --tokenize (default: the labeler's).",
)
@click.option("--untrained", is_flag=True, help="--tokenize: allow untrained zoo tokenizers.")
@click.option("--size", help="--tokenize: crop output size, N or HxW.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
@image_filter_options
@max_member_bytes_option
@engine_options
def pseudo_label_command(
    modalities,
    input_,
    output,
    labelers,
    labeler_options,
    device,
    batch_size,
    samples_per_shard,
    overwrite,
    then_tokenize,
    tokens_output,
    tokenizers,
    untrained,
    size,
    progress,
    min_image_size,
    max_aspect_ratio,
    max_member_bytes,
    engine,
    address,
    gpus,
    actors,
):
    """Label every input image with MODALITIES and write webdataset shards OUT/shard-*.tar (resumable)."""
    import math

    from tokzoo.failures import reasons_text
    from tokzoo.pipeline.pseudo_label import STATUS, LabelJob, pseudo_label
    from tokzoo.storage import as_path
    from tokzoo.vocabulary import canonical

    engine = make_engine(engine, address, gpus, actors)
    output = as_path(output)
    names = modality_names(modalities, canonical)
    # the --tokenize options are checked now, not after labelling the whole input
    token_options = {
        "--tokens-output": tokens_output,
        "--tokenizer": tokenizers,
        "--untrained": untrained,
        "--size": size,
    }
    stray = [option for option, value in token_options.items() if value]
    if stray and not then_tokenize:
        raise UserError(f"{stray[0]} only applies with --tokenize")
    crop_size, token_tokenizers = parse_size(size), parse_tokenizers(tokenizers)
    job = LabelJob(
        modalities=names,
        input=input_,
        output=output,
        labelers=parse_pairs("--labeler", labelers),
        labeler_options=parse_options(labeler_options),
        device=device,
        batch_size=batch_size,
        samples_per_shard=samples_per_shard,
        overwrite=overwrite,
        progress=progress,
        max_member_bytes=max_member_bytes,
        min_image_size=min_image_size,
        max_aspect_ratio=max_aspect_ratio or math.inf,
    )
    summary = pseudo_label(job, engine)
    for line in summary.nodes:
        click.echo(line, err=True)
    for modality, labeler in summary.labelers.items():
        click.echo(f"{modality}: {labeler.describe()}")
    click.echo(f"shards: {summary.shards} ({summary.written} written by this run) in {output}")
    click.echo(
        f"ok {summary.ok} / failed {summary.failed} / total {summary.total}"
        f"{reasons_text(summary.failed_by_reason)}; "
        f"errors listed in {output / STATUS}/*.samples.jsonl"
    )
    if summary.ok == 0:
        raise UserError(f"nothing labelled: all {summary.total} samples failed")
    if then_tokenize:
        _tokenize(
            names,
            summary.labelers,
            output,
            tokens_output,
            token_tokenizers,
            untrained,
            crop_size,
            device,
            overwrite,
            progress,
        )


def _tokenize(names, labelers, output, tokens_output, tokenizers, untrained, size, device, overwrite, progress):
    from tokzoo.pipeline import TokenizeJob, tokenize
    from tokzoo.vocabulary import tokenized_name

    from .tokenize import tokenizer_label

    target = tokens_output or output.with_name(output.name + "-tokens")
    tokenized = [tokenized_name(m) for m in names]  # pose -> human_pose
    defaults = {tokenized_name(m): labelers[m].zoo_tokenizer for m in names if labelers[m].zoo_tokenizer}
    chosen = {tokenized_name(m): reference for m, reference in tokenizers.items()}
    summary = tokenize(
        TokenizeJob(
            modalities=tokenized,
            output=target,
            input=str(output),
            tokenizers={**defaults, **chosen},
            untrained=untrained,
            size=size,
            device=device,
            overwrite=overwrite,
            progress=progress,
            workers=0,
        )
    )
    for name in tokenized:
        click.echo(f"tokens {name}: {tokenizer_label(summary.manifest['modalities'][name])}")
    click.echo(f"tokens: {summary.line(target)}")
