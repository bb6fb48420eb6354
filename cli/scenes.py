"""``tokzoo scenes``: write procedural multimodal scenes as webdataset shards."""

from __future__ import annotations

from pathlib import Path

import click

from .options import count_option, output_option


@click.command("scenes")
@count_option("n", "Number of scenes.", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--size", type=click.IntRange(min=8), default=256, show_default=True, help="Image side in pixels.")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Stream seed; (seed, index, kind) fixes a scene.",
)
@click.option(
    "--kind",
    type=click.Choice(["indoor", "outdoor", "mix", "cluttered"]),
    default="indoor",
    show_default=True,
    help="Rooms, outdoor terrain scenes (0.1-100 m), each index either with probability 1/2, or rooms "
    "cluttered with small and thin objects.",
)
@output_option("out", "Output folder.", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--samples-per-shard", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Processes rendering shards in parallel (0: this process). Output bytes do not depend on it.",
)
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
def scenes_command(n, size, seed, kind, out, samples_per_shard, workers, progress):
    """Render COUNT scenes (rgb, depth, normals, semseg, sam_instances, edges, pose, camera) into OUTPUT/shard-*.tar."""
    from tqdm import tqdm

    from tokzoo.datasets import write_scene_shards
    from tokzoo.limits import check_field

    check_field(n, "scenes", "--n", "scenes.count")  # before the progress bar
    with tqdm(total=n, unit="scene", desc="scenes", disable=not progress) as bar:
        paths = write_scene_shards(
            out,
            n,
            seed=seed,
            size=size,
            samples_per_shard=samples_per_shard,
            workers=workers,
            progress=bar.update,
            kind=kind,
        )
    click.echo(f"wrote {n} scenes ({kind}, {size}x{size}, seed {seed}) in {len(paths)} shards:")
    for path in paths:
        click.echo(f"  {path}")
