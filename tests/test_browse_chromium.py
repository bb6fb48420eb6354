"""The browser site in a real headless Chromium (Debian's ``chromium``; ``make test`` installs it when missing).

No skip: without Chromium these tests fail, saying how to install it. Pages are opened from disk (file://)
as a user would; every step checks for console errors, failed loads and images that do not load.
"""

from pathlib import Path

import pytest
from PIL import Image
from test_browse import make_token_dataset

from tokzoo.browse import build_site
from tokzoo.browse.chromium import Chromium, find_chromium


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("chromium")
    out = root / "site"
    build_site(make_token_dataset(root), out, progress=False, page_size=4)
    return out


@pytest.fixture(scope="module")
def browser():
    find_chromium()  # fails here, with how to install it, when there is none
    with Chromium() as chromium:
        yield chromium


def clean(browser) -> None:
    """No console error, exception or failed load so far, and every image of the page loads."""
    assert browser.broken_images() == []
    browser.drain()
    assert browser.console == []


def test_grid_filters_and_click_through_to_a_sample(site, browser, tmp_path):
    browser.open((site / "index.html").resolve().as_uri())
    assert browser.wait_for("document.body.dataset.ready") == "all.all.all/1"
    assert browser.evaluate("document.querySelectorAll('.tile').length") == 4
    assert browser.evaluate("document.getElementById('pageinfo').textContent") == "page 1 of 2"
    assert browser.evaluate("document.querySelectorAll('.tile img[loading=lazy]').length") == 4
    clean(browser)

    browser.click("#next")
    browser.wait_for("document.body.dataset.ready === 'all.all.all/2'")
    assert browser.evaluate("document.querySelectorAll('.tile').length") == 2
    clean(browser)

    browser.evaluate(
        "(() => { const s = document.getElementById('status'); s.value = 'failed';"
        "s.dispatchEvent(new Event('change')); })()"
    )
    browser.wait_for("document.body.dataset.ready === 'failed.all.all/1'")
    assert browser.evaluate("document.querySelectorAll('.tile.failed').length") == 1
    assert "file is empty" in browser.evaluate("document.querySelector('.tile .err').textContent")
    for modality, tiles in (("depth", 1), ("rgb", 0)):  # it failed in depth (rgb's table repeats depth's reason)
        browser.evaluate(
            f"(() => {{ const s = document.getElementById('modality'); s.value = '{modality}';"
            "s.dispatchEvent(new Event('change')); })()"
        )
        browser.wait_for(f"document.body.dataset.ready === 'failed.all.{modality}/{tiles}'")
        assert browser.evaluate("document.querySelectorAll('.tile').length") == tiles
        assert browser.evaluate("document.getElementById('count').textContent") == f"{tiles} samples"
    clean(browser)

    browser.open((site / "index.html").resolve().as_uri())
    browser.wait_for("document.body.dataset.ready")
    browser.evaluate(
        "(() => { const s = document.getElementById('source'); s.value = '1';s.dispatchEvent(new Event('change')); })()"
    )
    browser.wait_for("document.body.dataset.ready === 'all.1.all/1'")  # the b/ folder's three samples
    assert browser.evaluate("document.getElementById('source').selectedOptions[0].textContent").endswith("/b")
    assert [
        k[:5] for k in browser.evaluate("[...document.querySelectorAll('.tile .key')].map(e => e.textContent.trim())")
    ] == ["ok b_", "faile", "ok b_"]
    browser.open((site / "index.html").resolve().as_uri() + "#status=ok&modality=depth")
    browser.wait_for("document.body.dataset.ready === 'ok.all.all/1'")
    assert (
        browser.evaluate("[...document.querySelectorAll('.tile')].map(t => t.querySelectorAll('img').length)")
        == [2] * 4
    )
    clean(browser)

    browser.evaluate(
        "(() => { const s = document.getElementById('order'); s.value = 'worst-rgb';"
        "s.dispatchEvent(new Event('change')); })()"
    )
    browser.wait_for("document.body.dataset.ready === 'worst.all.rgb/1'")
    values = browser.evaluate(
        "[...document.querySelectorAll('.tile .metric')].map(e => parseFloat(e.textContent.split(' ')[1]))"
    )
    assert len(values) == 4 and values == sorted(values)
    assert browser.evaluate("document.getElementById('status').disabled") is True
    clean(browser)
    browser.open((site / "index.html").resolve().as_uri() + "#status=ok&modality=depth")
    browser.wait_for("document.body.dataset.ready === 'ok.all.all/1'")

    browser.click(".tile")
    key = browser.wait_for(
        "location.pathname.endsWith('sample.html') && document.body.dataset.ready"
        " && document.querySelector('h1').textContent"
    )
    assert key.startswith("a_img_000")
    assert browser.evaluate("[...document.querySelectorAll('.modality')].map(r => r.dataset.modality)") == [
        "depth",
        "rgb",
    ]
    assert browser.evaluate("document.querySelectorAll('.modality table').length") == 2  # metrics of both
    assert browser.evaluate("document.querySelectorAll('.modality img').length") == 6  # source, recon, tokens each
    clean(browser)
    shot = browser.screenshot(tmp_path / "sample.png")
    with Image.open(shot) as picture:
        assert picture.format == "PNG" and picture.size[0] == 1280 and picture.size[1] >= 600
        assert len(set(picture.convert("RGB").resize((64, 64)).getdata())) > 50  # drawn, not blank

    browser.click("#next")
    browser.wait_for("document.body.dataset.ready === 'shard-000000-000/1'")
    clean(browser)


def test_failed_sample_and_dataset_pages(site, browser):
    browser.open((site / "dataset.html").resolve().as_uri())
    browser.wait_for("document.body.dataset.ready === 'dataset'")
    assert browser.evaluate("document.querySelectorAll('.plots img').length") == 2
    clean(browser)
    browser.click("td a")  # the failures table links to the failed sample
    browser.wait_for("location.pathname.endsWith('sample.html') && document.body.dataset.ready")
    assert "file is empty" in browser.evaluate("document.querySelector('ul.errors').textContent")
    clean(browser)


def test_raw_shards_site(tmp_path, browser):
    from click.testing import CliRunner

    from tokzoo_cli.main import cli

    scenes = tmp_path / "scenes"
    assert CliRunner().invoke(cli, ["scenes", "--n", "2", "--size", "32", "--out", str(scenes)]).exit_code == 0
    build_site(scenes, tmp_path / "site", progress=False)
    browser.open((tmp_path / "site" / "index.html").resolve().as_uri() + "#modality=depth")
    browser.wait_for("document.body.dataset.ready === 'all.all.all/1'")
    assert browser.evaluate("document.querySelectorAll('.tile img').length") == 2  # depth sources, no reconstructions
    clean(browser)
    browser.click(".tile")
    browser.wait_for("location.pathname.endsWith('sample.html') && document.body.dataset.ready")
    assert browser.evaluate("[...document.querySelectorAll('.modality')].map(r => r.dataset.modality)") == [
        "rgb",
        "depth",
        "normals",
        "semseg",
        "sam_instances",
        "edges",
        "pose",
        "camera",
        "captions",
    ]
    assert '"fx"' in browser.evaluate("document.querySelector('[data-modality=camera] pre').textContent")
    clean(browser)


def test_a_missing_image_is_reported(site, browser, tmp_path):
    """The checks above can fail: a page whose image is gone shows up as broken and in the console."""
    image = next((site / "img").glob("*/0.sample.boxes.png"))
    moved = tmp_path / "moved.png"
    image.rename(moved)
    try:
        browser.open((site / "index.html").resolve().as_uri() + "#page=1")
        browser.wait_for("document.body.dataset.ready")
        broken = browser.broken_images()
        browser.drain(0.5)
        assert any(src.endswith("0.sample.boxes.png") for src in broken)
        assert any("ERR_FILE_NOT_FOUND" in line for line in browser.console)
    finally:
        moved.rename(image)
        browser.console.clear()


def test_no_chromium_is_a_clear_failure(monkeypatch):
    from tokzoo.browse.chromium import ChromiumError

    monkeypatch.setenv("TOKZOO_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(ChromiumError, match="TOKZOO_CHROMIUM=/nonexistent/chromium: no such executable"):
        find_chromium()
    monkeypatch.delenv("TOKZOO_CHROMIUM")
    monkeypatch.setenv("PATH", str(Path("/nonexistent")))
    with pytest.raises(ChromiumError, match="apt-get install chromium"):
        find_chromium()
