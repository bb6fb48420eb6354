"""``tokzoo tokenize``: samples -> consistently cropped tokens, one folder of shards per modality."""

from __future__ import annotations

import click

from .errors import UserError

MAX_SIDE, MAX_PIXELS = 8192, 64_000_000  # tokzoo.limits (not imported here: it would pull in torch for --help)


def parse_size(text: str | None, option: str = "--size") -> tuple[int, int] | None:
    """``"64"`` -> (64, 64); ``"48x64"`` -> (48, 64) (height x width)."""
    if text is None:
        return None
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise UserError(f"{option} {text!r}: expected N or HxW with positive integers")
    if max(parts) > MAX_SIDE or parts[0] * parts[-1] > MAX_PIXELS:
        raise UserError(f"{option} {text!r}: over the limits of {MAX_SIDE} per side and {MAX_PIXELS} pixels")
    return (parts[0], parts[-1])


def parse_tokenizers(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for value in values:
        modality, sep, reference = value.partition("=")
        if not sep or not modality or not reference:
            raise UserError(f"--tokenizer {value!r}: expected MODALITY=ZOO_NAME_OR_DIR")
        out[modality.strip()] = reference.strip()
    return out


def modality_names(text: str, rename, option: str = "--modality") -> list[str]:
    """``--modality a,b`` -> distinct names, each passed through ``rename`` (old names -> canonical ones, a note
    on stderr names what was renamed); ``option`` names the option in the note and errors."""
    given = [m.strip() for m in text.split(",") if m.strip()]
    names = [rename(m) for m in given]
    if not names or len(set(names)) != len(names):
        raise UserError(f"{option} {text!r}: expected distinct comma-separated names")
    renamed = [f"{old} -> {new}" for old, new in zip(given, names) if old != new]
    if renamed:
        click.echo(f"note: {option} read as {', '.join(renamed)}", err=True)
    return names


def engine_options(command):
    """``--engine``, ``--address``, ``--gpus``, ``--actors`` (tokenize and pseudo-label)."""
    for option in reversed(
        [
            click.option(
                "--engine",
                type=click.Choice(["local", "ray"]),
                default="local",
                show_default=True,
                help="local: this machine's processes; ray: a Ray cluster (pip install 'tokzoo[ray]').",
            ),
            click.option(
                "--address",
                help="--engine ray: the cluster (ray://HOST:10001 or HOST:6379). "
                "Default: RAY_ADDRESS, else a Ray started on this machine.",
            ),
            click.option(
                "--gpus",
                default=0,
                show_default=True,
                type=click.IntRange(min=0),
                help="--engine ray: model actors with one GPU each (0: actors on CPUs).",
            ),
            click.option(
                "--actors", type=click.IntRange(min=1), help="--engine ray: model actors (default: --gpus, else 1)."
            ),
        ]
    ):
        command = option(command)
    return command


def image_filter_options(command):
    """``--min-image-size`` and ``--max-aspect-ratio`` (img2dataset's names; tokenize and pseudo-label)."""
    command = click.option(
        "--max-aspect-ratio",
        type=click.FloatRange(min=1),
        default=None,
        help="Fail samples whose longer side exceeds this times the shorter one (default: no limit).",
    )(command)
    return click.option(
        "--min-image-size",
        default=0,
        show_default=True,
        type=click.IntRange(min=0),
        help="Fail samples whose shorter side is under this many pixels (0: keep all).",
    )(command)


max_member_bytes_option = click.option(
    "--max-member-bytes",
    default=256 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(min=1),
    help="Largest input file or tar member read; larger ones (and GNU sparse members) fail their sample unread.",
)


def make_engine(engine: str, address, gpus: int, actors):
    """The engine the job is handed: ``--engine local`` (this machine) or ``ray`` (a Ray cluster, checked to be
    installed and reachable before anything is written)."""
    stray = [name for name, value in (("--address", address), ("--gpus", gpus), ("--actors", actors)) if value]
    if stray and engine != "ray":
        raise UserError(f"{stray[0]} only applies with --engine ray")
    if engine == "ray":
        from tokzoo.scale.engine import RayEngine

        return RayEngine(address, gpus, actors)
    from tokzoo.pipeline.engine import LocalEngine

    return LocalEngine()


def tokenizer_label(entry: dict) -> str:
    return f"{entry['name']} ({entry['tokenizer']}, hash {entry['content_hash'][:12]})" + (
        " UNTRAINED: random weights, tokens carry no meaning" if entry["untrained"] else ""
    )


@click.command("tokenize")
@click.option(
    "--modality", "-m", "modalities", required=True, help="Modalities to tokenize, comma-separated (depth,rgb)."
)
@click.option("--input", "-i", "input_", help="Folder, tar(s) or hf: dataset. Default: built-in procedural scenes.")
@click.option(
    "--output", "-o", required=True, help="Token dataset folder, or an object-store URL (s3://bucket/tokens)."
)
@click.option(
    "--tokenizer",
    "-t",
    "tokenizers",
    multiple=True,
    help="MODALITY=ZOO_NAME_OR_DIR (repeatable); default: the modality's zoo tokenizer (edges: canny_edges).",
)
@click.option(
    "--untrained", is_flag=True, help="Allow untrained zoo tokenizers (random weights, labelled in the manifest)."
)
@click.option(
    "--crops",
    default=1,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Crops per sample; crop 0 is the centre crop.",
)
@click.option("--size", help="Crop output size, N or HxW. Default: each tokenizer's input_size.")
@click.option(
    "--batch-size",
    default=32,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Samples per encoder call (x crops).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=0),
    help="Decode/crop processes (0: in the main process).",
)
@click.option("--device", default=None, help="Device for the encoders (cpu, cuda, ...).")
@click.option(
    "--samples-per-shard",
    default=256,
    show_default=True,
    type=click.IntRange(min=1),
    help="Samples per shard for non-tar inputs and scenes.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random crops (and of the scenes).")
@click.option("--overwrite", is_flag=True, help="Delete what OUT holds and start over.")
@click.option(
    "--scenes", default=64, show_default=True, type=click.IntRange(min=1), help="Number of scenes when no --input."
)
@click.option(
    "--scene-size",
    default=256,
    show_default=True,
    type=click.IntRange(8, 4096),
    help="Scene resolution when no --input.",
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
@click.option(
    "--layout",
    type=click.Choice(["tokzoo", "4m"]),
    default="tokzoo",
    show_default=True,
    help="4m: after the run, also write ml-4m's webdataset layout to OUT-4m (`tokzoo export --to 4m OUT OUT-4m`).",
)
@image_filter_options
@max_member_bytes_option
@engine_options
def tokenize_command(
    modalities,
    input_,
    output,
    tokenizers,
    untrained,
    crops,
    size,
    batch_size,
    workers,
    device,
    samples_per_shard,
    seed,
    overwrite,
    scenes,
    scene_size,
    progress,
    layout,
    min_image_size,
    max_aspect_ratio,
    max_member_bytes,
    engine,
    address,
    gpus,
    actors,
):
    """Tokenize samples into OUT/<modality>/shard-*.tar (+ crops, tables, stats, manifest); resumable."""
    import math

    from tokzoo.pipeline import TokenizeJob, tokenize
    from tokzoo.storage import as_path
    from tokzoo.vocabulary import tokenized_name

    engine = make_engine(engine, address, gpus, actors)
    output = as_path(output)
    names = modality_names(modalities, tokenized_name)
    job = TokenizeJob(
        modalities=names,
        output=output,
        input=input_,
        tokenizers=parse_tokenizers(tokenizers),
        untrained=untrained,
        crops=crops,
        size=parse_size(size),
        batch_size=batch_size,
        workers=workers,
        device=device,
        samples_per_shard=samples_per_shard,
        seed=seed,
        overwrite=overwrite,
        scenes=scenes,
        scene_size=scene_size,
        progress=progress,
        max_member_bytes=max_member_bytes,
        min_image_size=min_image_size,
        max_aspect_ratio=max_aspect_ratio or math.inf,
    )
    summary = tokenize(job, engine)
    for line in summary.nodes:
        click.echo(line, err=True)
    for name in names:
        click.echo(f"{name}: {tokenizer_label(summary.manifest['modalities'][name])}")
    click.echo(f"shards: {summary.shards} ({summary.written} written by this run) in {output}")
    click.echo(summary.line(output))
    if summary.ok == 0:
        raise UserError(f"nothing written: all {summary.total} samples failed")
    if layout == "4m":
        from pathlib import Path

        from tokzoo.fourm.export import export_4m

        target = Path(str(output)).with_name(Path(str(output)).name + "-4m")
        info = export_4m(output, target, progress=progress)
        click.echo(f"ml-4m layout: {target} ({', '.join(info['modalities'])}); data_path {target / info['data_path']}")
