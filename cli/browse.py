"""``tokzoo browse``: a static web site of a dataset's samples, modalities and reconstructions."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("browse")
@click.argument("out", metavar="DATASET", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--output",
    "-o",
    "site",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the site [default: DATASET-site beside DATASET].",
)
@click.option("--serve", is_flag=True, help="Serve the site after building it (Ctrl-C stops); only its own files.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address --serve binds: loopback unless you name another (0.0.0.0 serves every network).",
)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port for --serve.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
def browse_command(out, site, serve, host, port, progress):
    """Write a site for DATASET (a token dataset from `tokzoo tokenize`, raw or pseudo-labelled shards, photos):
    open SITE/index.html from disk. A rebuild redraws only what changed."""
    from tokzoo.browse import build_site

    site = site or out.parent / f"{out.name}-site"
    summary = build_site(out, site, progress=progress)
    for note in summary.notes:
        click.echo(f"note: {note}")
    click.echo(f"browser: {summary.line()}")
    click.echo(f"open {summary.index.resolve().as_uri()}")
    if serve:
        _serve(site, host, port)


def site_server(site: Path, port: int, host: str = "127.0.0.1"):
    """An HTTP server of ``site``'s files only (tokzoo.browse.serve) on ``host``:``port``, not yet serving."""
    from tokzoo.browse.serve import site_server as server

    return server(site, port, host)


def _serve(site: Path, host: str, port: int) -> None:
    from .errors import UserError

    try:
        server = site_server(site, port, host)
    except (OSError, OverflowError) as error:
        reason = getattr(error, "strerror", None) or error
        raise UserError(f"{host}:{port}: cannot serve there ({reason}); choose another --host / --port") from None
    with server:
        address = server.server_address
        click.echo(f"serving {site} on http://{address[0]}:{address[1]}/ (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            click.echo("stopped")
