"""``tokzoo browse --serve``: an HTTP server of a built site's files and nothing else.

It binds 127.0.0.1 unless told another host. A request path is percent-decoded once, then split on ``/``; a
part that is empty, ``.``, ``..``, hidden (``.name``: temporaries), or holds a NUL or backslash is refused, so
``%2e%2e``, ``%2f`` and absolute paths never leave the site. The file is then opened from the site folder
part by part with ``O_NOFOLLOW``: a symlink anywhere below the site (tokzoo never writes one) is refused, not
followed, and so is anything that is no regular file (folders are not listed). Refusals answer 404 and read
nothing. Answers carry the pages' Content-Security-Policy and ``nosniff``; a client gets
:data:`REQUEST_TIMEOUT` seconds per request.
"""

from __future__ import annotations

import mimetypes
import os
import shutil
import stat
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

LOOPBACK = "127.0.0.1"
REQUEST_TIMEOUT = 15
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
"""The pages' Content-Security-Policy (their meta tag says the same, for pages opened from disk)."""
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}


def site_parts(request_path: str) -> tuple[str, ...] | None:
    """The parts of the site file a request path names (``/`` -> index.html), or None when it is refused."""
    if not request_path.startswith("/"):
        return None  # absolute-form (http://host/...) or no path at all
    path = unquote(request_path.split("?", 1)[0].split("#", 1)[0], errors="strict")
    parts = path[1:].split("/")
    if parts[-1] == "":
        parts[-1] = "index.html"
    if any(not p or p.startswith(".") or "\0" in p or "\\" in p for p in parts):
        return None
    return tuple(parts)


def open_in_site(site: str, parts: tuple[str, ...]) -> int | None:
    """A descriptor of the regular file ``site/parts...`` reached without following any link, or None."""
    nofollow = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(site, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | nofollow, dir_fd=fd)
            os.close(fd)
            fd = child
        file = os.open(parts[-1], os.O_RDONLY | os.O_NONBLOCK | nofollow, dir_fd=fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file).st_mode):
        os.close(file)
        return None
    return file


class SiteHandler(BaseHTTPRequestHandler):
    """GET and HEAD of the site's regular files; everything else 404 / 501."""

    server_version = "tokzoo-browse"
    timeout = REQUEST_TIMEOUT

    def __init__(self, *args, site: str, **kwargs):
        self.site = site
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        try:
            parts = site_parts(self.path)
        except UnicodeDecodeError:
            parts = None
        fd = open_in_site(self.site, parts) if parts else None
        if fd is None:
            self.send_error(404, "not a file of this site")
            return
        with os.fdopen(fd, "rb") as file:
            self.send_response(200)
            suffix = os.path.splitext(parts[-1])[1].lower()
            self.send_header(
                "Content-Type", TYPES.get(suffix) or mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
            )
            self.send_header("Content-Length", str(os.fstat(file.fileno()).st_size))
            self.send_header("Content-Security-Policy", POLICY)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            if body:
                shutil.copyfileobj(file, self.wfile)


def site_server(site, port: int, host: str = LOOPBACK) -> ThreadingHTTPServer:
    """A server of ``site``'s files on ``host``:``port`` (port 0: any free one), not yet serving."""
    server = ThreadingHTTPServer((host, port), partial(SiteHandler, site=os.fspath(site)))
    server.daemon_threads = True
    return server
