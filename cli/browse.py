"""``tokzoo browse``: a static web site of a dataset's samples, modalities and reconstructions."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("browse")
@click.argument("out", metavar="DATASET", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--output", "-o", "site", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the site [default: DATASET-site beside DATASET].")
@click.option("--serve", is_flag=True, help="Serve the site on 127.0.0.1 after building it (Ctrl-C stops).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port for --serve.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
def browse_command(out, site, serve, port, progress):
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
        _serve(site, port)


def site_server(site: Path, port: int):
    """An HTTP server of ``site``'s files on 127.0.0.1 (port 0: any free one), not yet serving."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    return ThreadingHTTPServer(("127.0.0.1", port), functools.partial(SimpleHTTPRequestHandler, directory=str(site)))


def _serve(site: Path, port: int) -> None:
    from .errors import UserError

    try:
        server = site_server(site, port)
    except OSError as error:
        raise UserError(f"127.0.0.1:{port}: cannot serve there ({error.strerror}); choose another --port") from error
    with server:
        click.echo(f"serving {site} on http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            click.echo("stopped")
