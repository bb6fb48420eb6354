"""``tokzoo photos``: fetch the real training photographs (Debian's wallpaper packages) into the local cache."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("photos")
@click.option(
    "--more",
    is_flag=True,
    help="Also fetch tokzoo.datasets.photos.MORE_PACKAGES (recipes read them only when they name them).",
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
    import json

    from tokzoo.datasets.photos import MORE_PACKAGES, PACKAGES, default_cache, fetch_photos

    wanted = (tuple(packages) if packages else PACKAGES) + (MORE_PACKAGES if more else ())
    cache = fetch_photos(cache if cache is not None else default_cache(), packages=wanted)
    manifest_path = cache / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"packages": [], "images": []}
    counts = {package: 0 for package in manifest["packages"]}
    for image in manifest["images"]:
        counts[image["package"]] = counts.get(image["package"], 0) + 1
    if not counts:
        raise click.ClickException(f"{cache}: no fetched package (folders of your own are read as they are)")
    width = max(len(p) for p in counts)
    for package, count in counts.items():
        click.echo(f"{package:<{width}}  {count:4d} images")
    click.echo(f"{sum(counts.values())} images in {cache}; licences in {cache}/<package>/copyright")
