"""Issue 25, class 1: no script from data ever runs in the browser site, in a real headless Chromium.

Sample keys, sources, modality metadata (captions), failure reasons, tokenizer names and the manifest hold
``<img src=x onerror=...>``, ``<svg onload=...>``, ``<script>`` and ``javascript:`` payloads that would each set
``window.pwned`` if run. Every page must show them as text, make no element from them, and the pages'
Content-Security-Policy must refuse inline script even when markup gets in some other way.
"""

import json

import pytest
from hostile_inputs import HOSTILE_TEXTS, hostile_raw_dataset
from test_browse import make_token_dataset

from tokzoo.browse import build_site
from tokzoo.browse.chromium import Chromium, find_chromium
from tokzoo.browse.site import read_data_file

NOTHING_RAN = "typeof window.pwned === 'undefined'"
NO_MARKUP_FROM_DATA = "document.querySelectorAll('script:not([src]), svg, img[src=\"x\"], [onerror], [onload]').length"
NO_SCRIPT_LINKS = "[...document.querySelectorAll('[href], [src]')].filter(e => /^\\s*javascript:/i.test(e.getAttribute('href') || e.getAttribute('src'))).length"


@pytest.fixture(scope="module")
def browser():
    find_chromium()
    with Chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def raw_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-raw")
    return build_site(hostile_raw_dataset(root / "in"), root / "site", progress=False).site


@pytest.fixture(scope="module")
def token_site(tmp_path_factory):
    """The browse test dataset with its failed sample's key and reason, a tokenizer name and a manifest field
    replaced by payloads (the files a hostile dataset would hold)."""
    root = tmp_path_factory.mktemp("hostile-tokens")
    out = make_token_dataset(root)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["modalities"]["rgb"]["name"] = HOSTILE_TEXTS["svg"]
    manifest["note"] = HOSTILE_TEXTS["script"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    for table in out.glob("*/shard-*.samples.jsonl"):
        rows = [json.loads(line) for line in table.read_text().splitlines()]
        for row in rows:
            if row["status"] == "failed":
                row["key"], row["error"] = (
                    HOSTILE_TEXTS["img"],
                    HOSTILE_TEXTS["script"] + " " + HOSTILE_TEXTS["javascript"],
                )
        table.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return build_site(out, root / "site", progress=False).site


def visit(browser, url: str, ready: str = "document.body.dataset.ready") -> str:
    """Open ``url``, wait until the page drew itself, check nothing ran and nothing became markup; its text."""
    browser.open(url)
    browser.wait_for(ready)
    browser.drain(0.3)
    assert browser.evaluate(NOTHING_RAN), url
    assert browser.evaluate(NO_MARKUP_FROM_DATA) == 0, url
    assert browser.evaluate(NO_SCRIPT_LINKS) == 0, url
    return browser.evaluate("document.body.textContent")


def every_page(site):
    """URLs of the grid (each view), each sample page and the dataset page."""
    meta = read_data_file(site / "data" / "site.js")
    urls = [
        (site / "index.html").resolve().as_uri() + "#" + f"status={view.split('.')[0]}"
        for view in meta["views"]
        if view.endswith(".all.all")
    ]
    for chunk, count in read_data_file(site / "data" / "chunks.js"):
        urls += [(site / "sample.html").resolve().as_uri() + f"#c={chunk}&i={pos}" for pos in range(count)]
    return urls + [(site / "dataset.html").resolve().as_uri()]


def test_raw_site_shows_every_payload_as_text(raw_site, browser):
    text = "".join(visit(browser, url) for url in every_page(raw_site))
    for name, payload in HOSTILE_TEXTS.items():
        assert payload in text, name  # shown, as text
    assert browser.console == []


def test_token_site_shows_every_payload_as_text(token_site, browser):
    text = "".join(visit(browser, url) for url in every_page(token_site))
    for name in ("img", "script", "svg", "javascript"):
        assert HOSTILE_TEXTS[name] in text, name
    assert browser.console == []


def test_the_policy_refuses_inline_script_that_gets_in(raw_site, browser):
    """The CSP meta tag is a second wall: markup inserted by other means still runs no handler or script."""
    visit(browser, (raw_site / "index.html").resolve().as_uri())
    browser.evaluate(
        'document.body.insertAdjacentHTML(\'beforeend\', \'<img src="nothing.png" onerror="window.pwned=7">'
        '<a id="j" href="javascript:window.pwned=8">j</a>\'); 1'
    )
    browser.evaluate(
        "(() => { const s = document.createElement('script'); s.textContent = 'window.pwned = 9';"
        "document.body.append(s); return 1; })()"
    )
    browser.click("#j")
    browser.drain(0.5)
    assert browser.evaluate(NOTHING_RAN)
    assert any("Content Security Policy" in line for line in browser.console), browser.console
    browser.console.clear()


@pytest.mark.parametrize(
    "fragment",
    [
        "c=../../../etc/passwd&i=0",
        "c=%2e%2e%2fx&i=0",
        "c=javascript:pwned=1&i=0",
        "c=" + "<img src=x onerror=pwned=1>" + "&i=0",
    ],
)
def test_a_hostile_url_loads_no_file(raw_site, browser, fragment):
    """The sample page takes a chunk id from the URL only when the site lists it; else one line, nothing loaded."""
    browser.open((raw_site / "sample.html").resolve().as_uri() + "#" + fragment)
    message = browser.wait_for("document.getElementById('message').textContent")
    assert message.startswith("no chunk ") and message.endswith(" in this site")
    assert browser.evaluate(NOTHING_RAN) and browser.evaluate(NO_MARKUP_FROM_DATA) == 0
    browser.drain(0.3)
    assert browser.console == []
