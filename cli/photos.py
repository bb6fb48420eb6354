"""``tokzoo photos``: fetch the real training photographs (Debian's wallpaper packages) into the local cache."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("photos")
@click.option(
    "--more",
    is_flag=True,
    help="Also fetch the extra photo packages (~170 photographs; recipes read them only when they name them).",
)
@click.option(
    "--package",
    "packages",
    multiple=True,
    help="Fetch this Debian package instead of the wallpapers (repeatable); its images land in CACHE/<package>/.",
)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cache folder (default: $TOKZOO_PHOTOS or ~/.cache/tokzoo/photos).",
)
def photos_command(more, packages, cache):
    """Download and unpack the photo packages that recipes with `data.photos` train on (apt-get download, no
    root), then list the cache: images per package. Fetched once; later calls only list."""
    from tokzoo.datasets.photos import MORE_PACKAGES, PACKAGES, default_cache, fetch_photos, fetched_counts

    wanted = (tuple(packages) if packages else PACKAGES) + (MORE_PACKAGES if more else ())
    cache = fetch_photos(cache if cache is not None else default_cache(), packages=wanted)
    counts = fetched_counts(cache)
    if not counts:
        raise click.ClickException(f"{cache}: no fetched package (folders of your own are read as they are)")
    width = max(len(p) for p in counts)
    for package, count in counts.items():
        click.echo(f"{package:<{width}}  {count:4d} images")
    click.echo(f"{sum(counts.values())} images in {cache}; licences in {cache}/<package>/copyright")
