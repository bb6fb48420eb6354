"""``tokzoo export --to 4m``: a token dataset in ml-4m's pre-tokenized layouts."""

from __future__ import annotations

from pathlib import Path

import click

from .errors import UserError


def parse_names(values: tuple[str, ...]) -> dict[str, str]:
    """``("depth=tok_depth@224",)`` -> ``{"depth": "tok_depth@224"}``."""
    out = {}
    for value in values:
        modality, sep, name = value.partition("=")
        if not sep or not modality.strip() or not name.strip():
            raise UserError(f"--name {value!r}: expected MODALITY=4M_NAME (depth=tok_depth@224)")
        out[modality.strip()] = name.strip()
    return out


@click.command("export")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--to", "target", required=True, type=click.Choice(["4m"]), help="Target format (ml-4m's pre-tokenized data)."
)
@click.option(
    "--layout",
    default="webdataset",
    show_default=True,
    type=click.Choice(["webdataset", "folder"]),
    help="ml-4m's layout: DST/<name>/shard-XXXXX.tar, or DST/<name>/<subdir>/<key>.npy.",
)
@click.option(
    "--name",
    "-n",
    "names",
    multiple=True,
    help="MODALITY=4M_NAME (repeatable); default tok_<modality>@<crop size> (normals -> tok_normal).",
)
@click.option("--modality", "-m", "modalities", help="Modalities to export, comma-separated. Default: all.")
@click.option(
    "--allow-pickled-sets",
    is_flag=True,
    help="Also export set-valued modalities in ml-4m's pickled per-crop dict form (see docs).",
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
def export_command(src, dst, target, layout, names, modalities, allow_pickled_sets, progress):
    """Write the token dataset SRC (from `tokzoo tokenize`) into DST in ml-4m's layout, with the modality
    entries ml-4m needs (DST/fourm_modalities.py to import, DST/fourm_modalities.json)."""
    from tokzoo.fourm.export import export_4m
    from tokzoo.vocabulary import tokenized_name

    from .tokenize import modality_names

    chosen = modality_names(modalities, tokenized_name) if modalities else None
    info = export_4m(
        src,
        dst,
        layout=layout,
        names=parse_names(names),
        modalities=chosen,
        allow_sets=allow_pickled_sets,
        progress=progress,
    )
    for name, facts in info["modalities"].items():
        origin = info["tokzoo_modalities"][name]
        click.echo(
            f"{origin} -> {name}: vocab {facts['vocab_size']}, {facts['n_tokens']} tokens "
            f"({facts['input_size']} px / patch {facts['patch_size']}){'' if facts['released'] else ', custom'}"
        )
    click.echo(
        f"wrote {dst} ({layout}); ml-4m data_path: {dst / info['data_path']}; "
        f"import {dst / 'fourm_modalities.py'} before building ml-4m's model"
    )
