"""``tokzoo demo``: tokenize built-in scenes end to end, inspect the result, draw a report."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .options import output_option

SCENE_MODALITIES = ("rgb", "depth", "normals", "semseg", "sam_instances", "edges", "pose", "camera")
"""What tokzoo.datasets.scenes renders for every scene."""


def demo_modalities() -> tuple[list[str], dict[str, str], bool]:
    """Every scene modality with a learned zoo tokenizer (one with shipped weights preferred): the modalities
    to tokenize in scene order, the zoo tokenizer of each, and whether any of them lacks weights."""
    from tokzoo.modalities import MODALITIES
    from tokzoo.tokenizers.zoo import zoo_entries

    def stored(modality: str) -> str:
        return getattr(MODALITIES.get(modality), "stored_as", None) or modality

    chosen = {}
    for entry in sorted(zoo_entries().values(), key=lambda e: (not e.ready, e.name != e.modality, e.name)):
        if entry.learned and stored(entry.modality) in SCENE_MODALITIES and entry.modality not in chosen:
            chosen[entry.modality] = entry
    names = sorted(chosen, key=lambda m: SCENE_MODALITIES.index(stored(m)))
    return names, {m: chosen[m].name for m in names}, any(not chosen[m].ready for m in names)


@click.command("demo")
@output_option("out", "Folder for tokens and report.", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--scenes", default=32, show_default=True, type=click.IntRange(min=1), help="Scenes to tokenize.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=0), help="Decode/crop processes.")
@click.option("--progress/--no-progress", default=True, help="Show progress bars on stderr.")
def demo_command(out, scenes, workers, progress):
    """Tokenize procedural scenes into OUT/tokens, inspect them, write OUT/report.png and the browser site OUT/site."""
    from tokzoo.browse import build_site
    from tokzoo.io.images import save_png
    from tokzoo.pipeline import TokenizeJob, tokenize
    from tokzoo.pipeline.report import inspect_lines, labelled_grid, show_pairs

    modalities, tokenizers, untrained = demo_modalities()
    tokens = out / "tokens"
    click.echo(
        f"tokenizing {scenes} procedural scenes ({', '.join(modalities)}) into {tokens}"
        + (
            " with UNTRAINED zoo tokenizers where no weights ship (random weights: tokens carry no meaning)"
            if untrained
            else ""
        )
    )
    started = time.perf_counter()
    summary = tokenize(
        TokenizeJob(
            modalities=modalities,
            tokenizers=tokenizers,
            output=tokens,
            untrained=untrained,
            scenes=scenes,
            scene_size=160,
            size=(128, 128),
            samples_per_shard=16,
            workers=workers,
            overwrite=True,
            progress=progress,
        )
    )
    click.echo(f"done in {time.perf_counter() - started:.1f} s: {summary.line(tokens)}")
    for modality, entry in summary.manifest["modalities"].items():
        click.echo(
            f"  {modality}: {entry['shards']} shards in {tokens / modality}/, tokens per sample "
            f"{entry['token_shape']} ({entry['dtype']}), vocab {entry['vocab_size']}, tokenizer {entry['name']}"
            + (" UNTRAINED" if entry["untrained"] else "")
        )
    click.echo("\n$ tokzoo inspect " + str(tokens))
    for line in inspect_lines(tokens, samples=2):
        click.echo(line)
    keys = [f"scene_{i:06d}" for i in range(min(3, summary.ok))]
    shown = [show_pairs(tokens, key)[0] for key in keys]
    names = [modality for modality, _, _ in shown[0]]
    rows = [[tile for _, source, reconstruction in pairs for tile in (source, reconstruction)] for pairs in shown]
    picture = labelled_grid(
        rows,
        ["source", "reconstruction"] * len(names),
        keys,
        groups=[(_group_label(m, summary.manifest["modalities"][m]), 2) for m in names],
    )
    report = save_png(picture, out / "report.png")
    click.echo(
        f"\nreport: one row per scene ({', '.join(keys)}), per modality "
        f"({', '.join(names)}) the source crop then its reconstruction: {report}"
    )
    site = build_site(tokens, out / "site", progress=progress)
    click.echo(
        f"browser: {site.line()}; open {site.index} in a web browser (no server needed), "
        f"or run `tokzoo browse {tokens} -o {out / 'site'} --serve`"
    )


def _group_label(modality: str, entry: dict) -> str:
    """Header above a modality's two report columns: the modality, and its tokenizer when named otherwise."""
    name = modality if entry["name"] == modality else f"{modality} ({entry['name']})"
    return name + (" UNTRAINED" if entry["untrained"] else "")
