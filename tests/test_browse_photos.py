"""The browser on photographs (issue 31, item 6): thumbnails, and a bounded cost for many SAM instances."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tokzoo.browse.pictures import THUMBNAIL_BYTES, THUMBNAIL_SIDE
from tokzoo.browse.render import DRAWN_ITEMS
from tokzoo_cli.main import cli


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Two real photographs at their own resolution (512 x 512, 400 x 600), pseudo-labelled with slic instances
    (dozens per photo) and edges, then tokenized with the shipped tokenizers."""
    data = pytest.importorskip("skimage.data")
    root = tmp_path_factory.mktemp("photos")
    (root / "photos").mkdir()
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(data, name)()).save(root / "photos" / f"{name}.jpg", quality=90)
    run(
        "pseudo-label",
        "-m",
        "sam_instances,edges",
        "--input",
        root / "photos",
        "-o",
        root / "pl",
        "--tokenize",
        "--no-progress",
    )
    return root


def pictures(site):
    return [p for p in (site / "img").rglob("*.png") if p.parent.name != "plots"]


@pytest.mark.parametrize("dataset", ["pl", "pl-tokens"])
def test_sites_of_photos_hold_thumbnails(labelled, dataset):
    """Grid pictures were full-resolution PNGs of up to 1.75 MB."""
    site = labelled / f"{dataset}-site"
    run("browse", labelled / dataset, "-o", site, "--no-progress")
    written = pictures(site)
    assert written and all(p.stat().st_size <= THUMBNAIL_BYTES for p in written)
    assert all(max(Image.open(p).size) <= THUMBNAIL_SIDE for p in written)
    rgb = Image.open(next(p for p in written if p.name.endswith(".rgb.source.png") or ".sample.boxes" in p.name))
    assert max(rgb.size) == THUMBNAIL_SIDE  # shrunk from 512 / 600 px, not cropped
    assert np.asarray(rgb.convert("RGB")).std() > 20  # a picture, not a blank tile


def test_many_instances_are_drawn_up_to_a_bound_with_a_note(labelled):
    """Drawing 40-55 SAM instances per photo cost 1.6 s of CPU: the site decodes the first DRAWN_ITEMS."""
    import re

    site = labelled / "bounded-site"
    run("browse", labelled / "pl-tokens", "-o", site, "--no-progress")
    text = " ".join(p.read_text() for p in (site / "data").rglob("*.js*"))
    counts = [int(n) for n in re.findall(r'"items": ?(\d+)', text)]
    assert counts and max(counts) > DRAWN_ITEMS  # the photos do hold more instances than are drawn
    assert f"the first {DRAWN_ITEMS} of {max(counts)} items are decoded, drawn and measured" in text
