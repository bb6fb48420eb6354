"""Issue 25: ``tokzoo browse --serve`` binds loopback and serves the site's own files, nothing else.

A real server on 127.0.0.1 (port 0) answers raw requests (http.client sends the path as given: no client-side
normalisation) with a timeout on every request. Outside the site sit a secret file and folder; the site holds
symlinks to them, a link inside it, a FIFO and a hidden temporary. Every escape answers 404 without the secret.
"""

import http.client
import os
import socket
import threading

import pytest
from click.testing import CliRunner
from hostile_inputs import hostile_raw_dataset

from tokzoo.browse import build_site
from tokzoo.browse.serve import LOOPBACK, POLICY, site_parts
from tokzoo_cli.browse import site_server
from tokzoo_cli.main import cli

SECRET = b"the secret outside the site"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    site = build_site(hostile_raw_dataset(root / "in"), root / "site", progress=False).site
    (root / "secret.txt").write_bytes(SECRET)
    (root / "outside").mkdir()
    (root / "outside" / "secret.txt").write_bytes(SECRET)
    (site / "link-out.txt").symlink_to(root / "secret.txt")
    (site / "link-rel.txt").symlink_to("../secret.txt")
    (site / "linkdir").symlink_to(root / "outside")
    (site / "data" / "linked.js").symlink_to(site / "data" / "site.js")  # inside, still a link: refused
    (site / "etc-passwd").symlink_to("/etc/passwd")
    os.mkfifo(site / "fifo.js")
    (site / ".index.html.123.tmp").write_bytes(SECRET)
    server = site_server(site, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, site
    server.shutdown()
    server.server_close()


def get(server, path: str, method: str = "GET") -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", "localhost")
        connection.endheaders()
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        connection.close()


def test_binds_loopback_by_default(served):
    server, _ = served
    assert server.server_address[0] == LOOPBACK == "127.0.0.1"
    from tokzoo_cli.browse import browse_command

    assert {p.name: p.default for p in browse_command.params}["host"] == "127.0.0.1"


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/index.html",
        "/index.html?status=ok",
        "/data/site.js",
        "/assets/browse.js",
        "/sample.html%3Fx",
        "/%64ata/site.js",
    ],
)
def test_serves_the_site(served, path):
    server, site = served
    status, headers, body = get(server, path)
    if path == "/sample.html%3Fx":  # a decoded '?' is part of the name: no such file
        assert status == 404
        return
    assert status == 200, path
    assert headers["Content-Security-Policy"] == POLICY and headers["X-Content-Type-Options"] == "nosniff"
    name = {"/": "index.html", "/index.html?status=ok": "index.html", "/%64ata/site.js": "data/site.js"}.get(
        path, path[1:]
    )
    assert body == (site / name).read_bytes()


ESCAPES = [
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/%2e%2e%2fsecret.txt",
    "/data/..%2f..%2fsecret.txt",
    "/data/%2e%2e/%2e%2e/secret.txt",
    "/..%5csecret.txt",
    "/%252e%252e/secret.txt",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/etc/passwd",
    "/link-out.txt",
    "/link-rel.txt",
    "/linkdir/secret.txt",
    "/linkdir/",
    "/etc-passwd",
    "/data/linked.js",
    "/fifo.js",
    "/.index.html.123.tmp",
    "/img/",
    "/data",
    "/data/%00",
    "/%c0%ae%c0%ae/secret.txt",
    "/%ff",
    "http://localhost/../secret.txt",
    "secret.txt",
    "/./index.html",
    "/data/./site.js",
    "/index.html/",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_serves_nothing_outside_the_site(served, path):
    server, _ = served
    status, _, body = get(server, path)
    assert status == 404 and SECRET not in body and b"root:" not in body, (path, status, body[:200])


def test_the_decoder_alone():
    assert site_parts("/") == ("index.html",) and site_parts("/a/b.js?x#y") == ("a", "b.js")
    assert site_parts("/%252e%252e/x") == ("%2e%2e", "x")  # decoded once: a literal name, not a parent
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/data/..%2f..%2fsecret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/..%5csecret.txt",
        "/a//b",
        "/a/.",
        "/..",
        "secret.txt",
        "http://localhost/../x",
        "/data/%00",
    ]:
        assert site_parts(path) is None, path


def test_other_methods_and_oversized_requests_are_refused(served):
    server, _ = served
    assert get(server, "/index.html", "POST")[0] == 501
    assert get(server, "/index.html", "HEAD")[0] == 200
    assert get(server, "/" + "a" * 70000)[0] == 414


def test_an_idle_client_does_not_block_others(served):
    server, _ = served
    with socket.create_connection(server.server_address[:2], timeout=5) as idle:
        idle.sendall(b"GET /index.ht")  # never finishes its request line
        assert get(server, "/index.html")[0] == 200


def test_an_unusable_host_is_one_line(tmp_path):
    out = hostile_raw_dataset(tmp_path / "in")
    result = CliRunner().invoke(
        cli,
        [
            "browse",
            str(out),
            "-o",
            str(tmp_path / "site"),
            "--no-progress",
            "--serve",
            "--host",
            "256.1.1.1",
            "--port",
            "0",
        ],
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "256.1.1.1:0: cannot serve there" in errors[0], result.output
