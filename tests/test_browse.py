"""tokzoo browse: the site's data for token datasets and raw shards, metrics, failures, paging, incremental rebuilds.

The real-browser checks (console errors, broken images, clicking through) are in test_browse_chromium.py.
"""

import json
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tokzoo.browse import build_site
from tokzoo.browse.site import read_data_file
from tokzoo.datasets.scenes import generate_scene
from tokzoo.pipeline.report import source_crop
from tokzoo.tokenizers.evaluation.metrics import abs_rel, psnr
from tokzoo.tokenizers.learned import LearnedTokenizer
from tokzoo.tokens.tokenizer import entry_tokenizer
from tokzoo_cli.browse import site_server
from tokzoo_cli.main import cli

BROKEN = "b/img_004"
"""The sample whose depth file is empty: it fails in every modality."""


def make_token_dataset(root: Path) -> Path:
    """Six 48 px scenes as 4M folders in two source folders (a/, b/), one empty depth file, tokenized to
    32 px crops (2 per sample) by tiny untrained conv tokenizers, 4 samples per shard; returns OUT."""
    data = root / "data"
    for i in range(6):
        scene = generate_scene(i, seed=5, size=48)
        name = f"{'a' if i < 3 else 'b'}/img_{i:03d}"
        for modality in ("rgb", "depth"):
            (data / modality / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(scene["rgb"]).save(data / "rgb" / f"{name}.png")
        if name == BROKEN:
            (data / "depth" / f"{name}.npy").write_bytes(b"")
        else:
            np.save(data / "depth" / f"{name}.npy", scene["depth"])
    args = []
    for modality in ("depth", "rgb"):
        tok = LearnedTokenizer.from_defaults(modality, model={"preset": "conv-tiny"}, input_size=[32, 32])
        args.append(f"--tokenizer={modality}={tok.save_pretrained(root / f'tok-{modality}')}")
    out = root / "tokens"
    result = CliRunner().invoke(
        cli,
        [
            "tokenize",
            "-m",
            "depth,rgb",
            "--input",
            str(data),
            "-o",
            str(out),
            "--size",
            "32",
            "--crops",
            "2",
            "--samples-per-shard",
            "4",
            "--no-progress",
            *args,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ok 5 / failed 1 / total 6" in result.output
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_token_dataset(tmp_path_factory.mktemp("browse"))


def chunks_of(site: Path) -> list[dict]:
    return [
        read_data_file(site / "data" / "chunks" / f"{chunk}.js")
        for chunk, _ in read_data_file(site / "data" / "chunks.js")
    ]


def snapshot(site: Path) -> dict[str, bytes]:
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


def test_site_of_a_token_dataset(dataset, tmp_path):
    site = tmp_path / "site"
    summary = build_site(dataset, site, progress=False, page_size=4)
    assert (summary.samples, summary.ok, summary.failed) == (6, 5, 1)
    for page in ("index.html", "sample.html", "dataset.html", "assets/browse.js", "assets/browse.css"):
        assert (site / page).is_file()
    meta = read_data_file(site / "data" / "site.js")
    assert meta["kind"] == "tokens" and meta["modalities"] == ["depth", "rgb"]
    assert [Path(s).name for s in meta["sources"]] == ["a", "b"]
    views = meta["views"]
    assert views["all.all.all"] == {"count": 6, "pages": 2} and views["ok.all.all"]["count"] == 5
    assert views["failed.all.all"]["count"] == 1 and views["failed.all.depth"]["count"] == 1
    assert views["all.0.all"]["count"] == 3 and views["failed.1.all"]["count"] == 1 and "failed.0.all" not in views
    assert "failed.all.rgb" not in views  # rgb's table repeats depth's reason: the sample failed in depth
    pages = [read_data_file(site / f"data/views/all.all.all/{n}.js") for n in (1, 2)]
    assert [len(p) for p in pages] == [4, 2]
    keys = [t["k"] for p in pages for t in p]
    assert len(set(keys)) == 6 and [k.split("-")[0] for k in keys] == [
        f"{'a' if i < 3 else 'b'}_img_{i:03d}" for i in range(6)
    ]
    assert meta["main_metrics"] == {"depth": "abs_rel", "rgb": "psnr"} and views["worst.all.rgb"]["count"] == 5
    worst = [t for n in (1, 2) for t in read_data_file(site / f"data/views/worst.all.rgb/{n}.js")]
    psnrs = [float(t["v"].split()[1]) for t in worst]
    assert psnrs == sorted(psnrs) and len(set(t["k"] for t in worst)) == 5  # lowest PSNR first
    abs_rels = [float(t["v"].split()[1]) for t in read_data_file(site / "data/views/worst.all.depth/1.js")]
    assert abs_rels == sorted(abs_rels, reverse=True)  # highest abs-rel first
    (failed_tile,) = read_data_file(site / "data/views/failed.all.all/1.js")
    assert failed_tile["s"] == "failed" and "file is empty" in failed_tile["e"]

    samples = [s for chunk in chunks_of(site) for s in chunk["samples"]]
    assert len(samples) == 6
    for sample in samples:  # every picture a page names exists and is a PNG
        paths = [sample["boxes"]] + [
            p for sec in sample["m"].values() for p in (sec["source"], sec["recon"], sec["tokens"])
        ]
        for path in filter(None, paths):
            with Image.open(site / path) as image:
                assert image.format == "PNG" and min(image.size) >= 1
    ok = [s for s in samples if s["status"] == "ok"]
    assert all(s["boxes"] and s["crops"] and len(s["crops"]) == 2 for s in ok)
    assert all(s["m"][m]["source"] and s["m"][m]["recon"] and s["m"][m]["tokens"] for s in ok for m in ("depth", "rgb"))
    with Image.open(site / ok[0]["boxes"]) as boxes:
        assert min(boxes.size) >= 160  # enlarged so the boxes show on small sources
    (failed,) = [s for s in samples if s["status"] == "failed"]
    assert list(failed["errors"]) == ["depth"] and "file is empty" in failed["errors"]["depth"]
    assert failed["crops"] is None
    assert failed["m"]["rgb"]["source"] and not failed["m"]["rgb"]["recon"]  # its readable source still shown
    assert any("uncropped" in note for note in failed["m"]["rgb"]["notes"])


def test_per_sample_metrics_are_those_of_the_source_crop_and_its_decoded_tokens(dataset, tmp_path):
    from tokzoo.tokens.layout import read_npy_tar, tar_path

    site = tmp_path / "site"
    build_site(dataset, site, progress=False)
    manifest = json.loads((dataset / "manifest.json").read_text())
    sample = chunks_of(site)[0]["samples"][1]
    key = sample["key"]
    crop = dict(read_npy_tar(tar_path(dataset, "crops", 0)))[key][0]
    for modality, metric, fn in (("rgb", "psnr", psnr), ("depth", "abs_rel", abs_rel)):
        entry = manifest["modalities"][modality]
        tokens = dict(read_npy_tar(tar_path(dataset, modality, 0)))[key]
        source = source_crop(entry, modality, key, crop)
        recon = entry_tokenizer(entry).decode(tokens[:1], input_size=(32, 32))
        expected = fn(source[None], recon)
        assert sample["m"][modality]["metrics"][metric] == pytest.approx(expected, rel=1e-3)
    assert set(sample["m"]["rgb"]["metrics"]) == {"psnr", "mae"}  # ssim is left to tokzoo eval
    page = read_data_file(site / "data" / "dataset.js")
    depth = next(m for m in page["modalities"] if m["name"] == "depth")
    assert (
        depth["codebook"]["codes_used"] >= 1
        and depth["codebook"]["vocab_size"] == manifest["modalities"]["depth"]["vocab_size"]
    )
    assert "abs_rel" in depth["metrics"] and depth["present"] == 5 and depth["failed"] == 1
    with Image.open(site / depth["plot"]) as plot:
        assert plot.size[0] > 300
    assert page["failures"][0]["key"] == next(
        s["key"] for c in chunks_of(site) for s in c["samples"] if s["status"] == "failed"
    )
    assert page["manifest"]["format"] == "tokzoo-tokens/1"


def test_rebuild_reuses_every_chunk_and_redraws_only_what_is_gone(dataset, tmp_path):
    site = tmp_path / "site"
    first = build_site(dataset, site, progress=False)
    assert first.chunks_drawn == 2 and first.chunks_reused == 0 and first.images_written > 0
    before = snapshot(site)
    again = build_site(dataset, site, progress=False)
    assert (again.chunks_drawn, again.chunks_reused, again.images_written) == (0, 2, 0)
    assert snapshot(site) == before  # same bytes, nothing rewritten differently
    (site / "data" / "chunks" / "shard-000001-000.js").unlink()
    (site / "img" / "shard-000001-000").rename(tmp_path / "moved")
    third = build_site(dataset, site, progress=False)
    assert (third.chunks_drawn, third.chunks_reused) == (1, 1)
    assert snapshot(site) == before  # redrawn identically


def test_site_of_pseudo_labelled_shards_shows_sources_and_failures(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(generate_scene(i, seed=2, size=40)["rgb"]).save(photos / f"p{i}.png")
    (photos / "broken.png").write_text("not an image")
    out = tmp_path / "labelled"
    result = CliRunner().invoke(
        cli, ["pseudo-label", "-m", "edges,palette", "-i", str(photos), "-o", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    site = tmp_path / "site"
    summary = build_site(out, site, progress=False)
    assert (summary.samples, summary.ok, summary.failed) == (4, 3, 1)
    meta = read_data_file(site / "data" / "site.js")
    assert meta["kind"] == "raw" and meta["modalities"] == ["rgb", "edges", "palette"]
    samples = [s for chunk in chunks_of(site) for s in chunk["samples"]]
    ok = [s for s in samples if s["status"] == "ok"]
    assert all(s["m"]["rgb"]["source"] and s["m"]["edges"]["source"] and not s["m"]["rgb"]["recon"] for s in ok)
    assert all('"colors"' in s["m"]["palette"]["text"]["source"] or s["m"]["palette"]["text"]["source"] for s in ok)
    (failed,) = [s for s in samples if s["status"] == "failed"]
    assert failed["key"] == "broken" and "not an image" in failed["errors"]["sample"]
    assert build_site(out, site, progress=False).chunks_reused == 1


def test_cli_builds_and_refuses_bad_input_and_the_site_serves_over_http(dataset, tmp_path):
    site = tmp_path / "site"
    result = CliRunner().invoke(cli, ["browse", str(dataset), "-o", str(site), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (
        "6 samples (ok 5, failed 1)" in result.output
        and f"open {(site / 'index.html').resolve().as_uri()}" in result.output
    )
    inside = CliRunner().invoke(cli, ["browse", str(dataset), "-o", str(dataset / "site"), "--no-progress"])
    assert inside.exit_code == 2 and inside.output.startswith("error: ") and "outside the dataset" in inside.output
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    refused = CliRunner().invoke(cli, ["browse", str(empty), "--no-progress"])
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1, refused.output

    server = site_server(site, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/data/site.js", timeout=10) as answer:
            assert answer.status == 200 and b"tokzoo.receive" in answer.read()
        taken = CliRunner().invoke(
            cli,
            [
                "browse",
                str(dataset),
                "-o",
                str(site),
                "--no-progress",
                "--serve",
                "--port",
                str(server.server_address[1]),
            ],
        )
        assert taken.exit_code == 2 and "cannot serve there" in taken.output and "Traceback" not in taken.output
    finally:
        server.shutdown()
        server.server_close()


def test_site_of_raw_webdataset_tars(tmp_path):
    """``tokzoo scenes`` tars (no status tables): every stored modality shown; a damaged tar's sample failed."""
    scenes = tmp_path / "scenes"
    result = CliRunner().invoke(
        cli, ["scenes", "--n", "3", "--size", "32", "--out", str(scenes), "--samples-per-shard", "2"]
    )
    assert result.exit_code == 0, result.output
    second = scenes / "shard-000001.tar"
    second.write_bytes(second.read_bytes()[:700])  # cut inside the first member
    site = tmp_path / "site"
    summary = build_site(scenes, site, progress=False)
    meta = read_data_file(site / "data" / "site.js")
    assert meta["kind"] == "raw" and meta["modalities"] == [
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
    samples = [s for chunk in chunks_of(site) for s in chunk["samples"]]
    assert summary.ok == 2 and summary.failed == len(samples) - 2 >= 1
    ok = [s for s in samples if s["status"] == "ok"]
    assert all(s["m"][m]["source"] for s in ok for m in meta["modalities"] if m not in ("camera", "captions"))
    assert all('"fx"' in s["m"]["camera"]["text"]["source"] for s in ok) and all(s["boxes"] is None for s in ok)
    assert all(s["m"]["captions"]["text"]["source"].endswith('."') for s in ok)  # the scene's caption as text
    assert all("shard-000001.tar" in " ".join(s["errors"].values()) for s in samples if s["status"] == "failed")


def test_demo_report_is_labelled_and_the_demo_names_its_site(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--out", str(out), "--scenes", "2", "--workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"browser: 2 samples (ok 2, failed 0) in {out / 'site'}" in result.output
    assert f"open {out / 'site' / 'index.html'} in a web browser" in result.output
    assert read_data_file(out / "site" / "data" / "site.js")["samples"] == 2
    report = np.asarray(Image.open(out / "report.png").convert("L"))
    header, margin = report[:30, 100:], report[40:, :60]  # column labels above, scene keys left of the tiles
    assert (header < 100).sum() > 200 and (margin < 100).sum() > 100
    assert (report[:30] == 255).mean() > 0.8 and (report[40:, :60] == 255).mean() > 0.8  # text on white, not tiles


def test_sources_gone_then_back(dataset, tmp_path):
    """Without its input the site still shows reconstructions, says why sources are missing, and a rebuild
    once the input is back draws them."""
    site, data = tmp_path / "site", dataset.parent / "data"
    data.rename(dataset.parent / "data-away")
    try:
        summary = build_site(dataset, site, progress=False)
    finally:
        (dataset.parent / "data-away").rename(data)
    assert any("sources unavailable" in note for note in summary.notes)
    sample = chunks_of(site)[0]["samples"][0]
    assert sample["m"]["rgb"]["recon"] and sample["m"]["rgb"]["source"] is None and sample["boxes"] is None
    assert "sources unavailable" in sample["m"]["rgb"]["notes"][0]
    back = build_site(dataset, site, progress=False)
    assert back.chunks_drawn == 2 and not back.notes
    sample = chunks_of(site)[0]["samples"][0]
    assert sample["m"]["rgb"]["source"] and sample["boxes"] and sample["m"]["rgb"]["metrics"]


def test_tokenizer_gone_then_back(dataset, tmp_path):
    """A tokenizer that cannot be loaded: its token grids still drawn (ids and vocabulary are in the dataset),
    no reconstructions, a note; once it is back, a rebuild draws them."""
    from tokzoo.tokens.tokenizer import checked_tokenizer

    site, weights = tmp_path / "site", dataset.parent / "tok-rgb"
    weights.rename(dataset.parent / "tok-rgb-away")
    checked_tokenizer.cache_clear()  # tokenizers are cached per process; a CLI run starts without them
    try:
        summary = build_site(dataset, site, progress=False)
    finally:
        (dataset.parent / "tok-rgb-away").rename(weights)
        checked_tokenizer.cache_clear()
    assert len(summary.notes) == 1 and summary.notes[0].startswith("rgb: no reconstruction")
    rgb = chunks_of(site)[0]["samples"][0]["m"]["rgb"]
    assert rgb["tokens"] and rgb["source"] and rgb["recon"] is None and not rgb["metrics"]
    assert chunks_of(site)[0]["samples"][0]["m"]["depth"]["recon"]
    back = build_site(dataset, site, progress=False)
    assert back.chunks_drawn == 2 and not back.notes
    assert chunks_of(site)[0]["samples"][0]["m"]["rgb"]["recon"]
