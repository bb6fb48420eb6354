"""Real training photos (tokzoo.datasets.photos), the ``data.photos`` recipe source, Canny's scale and the edges crop rule."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tokzoo.crops import apply_crop
from tokzoo.datasets.photos import MORE_PACKAGES, PACKAGES, _file_name, fetch_photos, load_photos
from tokzoo.errors import ConfigError
from tokzoo.modalities.edges import canny_edges, canny_sigma
from tokzoo.tokenizers.training import validate_recipe
from tokzoo.tokenizers.training.data import TrainingData


def _cache(tmp_path, n=3, size=(96, 80)):
    """A photo cache as fetch_photos leaves it: images under <package>/, every package listed as fetched."""
    rng = np.random.default_rng(0)
    (tmp_path / "pkg").mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(tmp_path / "pkg" / f"p{i}.png")
    (tmp_path / "manifest.json").write_text(json.dumps({"images": [], "packages": list(PACKAGES)}))
    return tmp_path


def test_cached_photos_load_sorted_and_subsets_partition_them(tmp_path):
    cache = _cache(tmp_path)
    photos = load_photos(cache)
    assert len(photos) == 3 and all(p.dtype == np.uint8 and p.shape == (96, 80, 3) for p in photos)
    assert np.array_equal(load_photos(cache, every=2, offset=1)[0], photos[1])
    assert fetch_photos(cache) == cache  # every package already fetched: nothing is downloaded


def test_held_out_photos_are_exactly_the_validation_subset(tmp_path):
    cache = _cache(tmp_path, n=5)
    photos = load_photos(cache)
    training = load_photos(cache, hold_out_every=2)
    validation = load_photos(cache, every=2, offset=0)
    assert [p.tobytes() for p in training] == [photos[i].tobytes() for i in (1, 3)]
    assert [p.tobytes() for p in validation] == [photos[i].tobytes() for i in (0, 2, 4)]


def test_recipes_can_hold_validation_photos_out(tmp_path, monkeypatch):
    from tokzoo.tokenizers.training import build_tokenizer

    monkeypatch.setenv("TOKZOO_PHOTOS", str(_cache(tmp_path, n=4)))
    base = _recipe("rgb", "mse")
    recipe = validate_recipe({**base, "data": {**base["data"], "photos": {"repeat": 3, "hold_out_every": 2}}})
    data = TrainingData(recipe, build_tokenizer(recipe).codec)
    photos = load_photos()
    assert len(data.train) == 2 + 2 * 3  # scenes + photos 1 and 3, three times each
    assert [v.tobytes() for v in data.train[2:4]] == [photos[1].tobytes(), photos[3].tobytes()]
    with pytest.raises(ConfigError, match="data.photos.hold_out_every"):
        validate_recipe({**recipe, "data": {**recipe["data"], "photos": {"hold_out_every": 1}}})


def test_an_empty_cache_says_how_to_fill_it(tmp_path):
    with pytest.raises(ConfigError, match="no training photos"):
        load_photos(tmp_path)


def test_package_members_become_flat_safe_names():
    assert _file_name("usr/share/wallpapers/Kite/contents/images/2560x1600.jpg") == "Kite-2560x1600.png"
    assert _file_name("usr/share/backgrounds/mate/nature/Aqua.jpg") == "nature-Aqua.png"
    assert "/" not in _file_name("usr/share/backgrounds/../../etc/pass wd.jpg")


def _recipe(modality, loss):
    return validate_recipe(
        {
            "name": f"tiny_{modality}",
            "loss": loss,
            "tokenizer": {
                "modality": modality,
                "model": {"preset": "conv-tiny", "width": 8, "groups": 4},
                "latent_dim": 8,
                "quantizer": {"type": "fsq", "levels": [5, 5, 5]},
                "input_size": [32, 32],
            },
            "data": {
                "scenes": {"n_train": 2, "n_val": 1, "seed": 3, "size": 40},
                "photos": {"repeat": 2},
                "crop": {"scale": [0.2, 1.0], "hflip": 0.5},
            },
            "optimizer": {"lr": 1e-3},
            "schedule": {"warmup_steps": 1},
            "batch_size": 4,
            "steps": 1,
            "seed": 0,
        }
    )


@pytest.mark.parametrize("modality, loss", [("rgb", "mse"), ("edges", "bce")])
def test_recipes_train_on_scenes_plus_cached_photos(tmp_path, monkeypatch, modality, loss):
    monkeypatch.setenv("TOKZOO_PHOTOS", str(_cache(tmp_path)))
    from tokzoo.tokenizers.training import build_tokenizer

    recipe = _recipe(modality, loss)
    data = TrainingData(recipe, build_tokenizer(recipe).codec)
    assert len(data.train) == 2 + 3 * 2  # scenes + each photo twice
    photo = data.train[-1]
    if modality == "edges":  # the photo's Canny edges, as the pseudo-labeler computes them
        assert photo.shape == (96, 80) and set(np.unique(photo)) <= {0, 1}
    else:
        assert photo.shape == (96, 80, 3)
    assert data.batch(0).shape == (4, 1 if modality == "edges" else 3, 32, 32)


def test_photos_give_rgb_or_edges_only(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKZOO_PHOTOS", str(_cache(tmp_path)))
    from tokzoo.tokenizers.training import build_tokenizer

    recipe = _recipe("depth", "smooth_l1")
    with pytest.raises(ConfigError, match="photos give rgb or edges"):
        TrainingData(recipe, build_tokenizer(recipe).codec)


def test_canny_sees_the_same_structure_at_any_resolution():
    assert canny_sigma((128, 200)) == 1.0 and canny_sigma((512, 700)) == 4.0 and canny_sigma((40, 40)) == 1.0
    square = np.zeros((128, 128, 3), np.uint8)
    square[32:96, 32:96] = 255
    big = np.kron(square, np.ones((4, 4, 1), np.uint8))  # the same picture at 512 px
    small_edges = canny_edges(square)
    big_edges = apply_crop({"edges": canny_edges(big)}, [0, 0, 512, 512, 0], 128)["edges"]
    # the square's outline, found at both scales, lands on the same pixels (within one)
    rows = np.nonzero(small_edges.any(axis=1))[0]
    big_rows = np.nonzero(big_edges.any(axis=1))[0]
    assert abs(rows.min() - big_rows.min()) <= 1 and abs(rows.max() - big_rows.max()) <= 1


def test_shrinking_edges_keeps_thin_lines_and_enlarging_stays_binary():
    edges = np.zeros((256, 256), np.uint8)
    edges[:, 101] = 1  # a one-pixel vertical line: nearest sampling at 1/4 would miss it entirely
    small = apply_crop({"edges": edges}, [0, 0, 256, 256, 0], 64)["edges"]
    assert small.dtype == np.uint8 and small[:, 25].all() and small.sum() == 64
    flipped = apply_crop({"edges": edges}, [0, 0, 256, 256, 1], 64)["edges"]
    assert flipped[:, 63 - 25].all()
    big = apply_crop({"edges": edges[:32, 96:128]}, [0, 0, 32, 32, 0], 64)["edges"]
    assert set(np.unique(big)) == {0, 1} and big[:, 10:12].all()


@pytest.mark.slow
def test_fetch_unpacks_a_debian_package_with_its_licence(tmp_path):
    """Needs apt-get / dpkg-deb and the Debian mirror (a package registry): one small package, end to end."""
    cache = fetch_photos(tmp_path, packages=("lomiri-wallpapers-20.04",), progress=False)
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["packages"] == ["lomiri-wallpapers-20.04"] and len(manifest["images"]) >= 3
    assert (cache / "lomiri-wallpapers-20.04" / "copyright").read_bytes().startswith(b"Format:")
    photos = load_photos(cache)
    assert len(photos) == len(manifest["images"]) and max(max(p.shape[:2]) for p in photos) <= 768
    assert fetch_photos(cache, packages=("lomiri-wallpapers-20.04",)) == cache  # fetched once


def _folders(tmp_path, folders: dict[str, int], fetched=()):
    """A cache with ``n`` random images in each named folder; the manifest lists ``fetched`` packages."""
    rng = np.random.default_rng(1)
    tmp_path.mkdir(exist_ok=True)
    for folder, n in folders.items():
        (tmp_path / folder).mkdir()
        for i in range(n):
            image = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
            Image.fromarray(image).save(tmp_path / folder / f"{folder}-{i}.png")
    (tmp_path / "manifest.json").write_text(json.dumps({"images": [], "packages": list(fetched)}))
    return tmp_path


def test_more_packages_are_read_only_by_recipes_that_name_them(tmp_path):
    cache = _folders(
        tmp_path,
        {PACKAGES[0]: 2, MORE_PACKAGES[0]: 3, "mine": 1, "endless-sky-high-dpi": 4},
        fetched=PACKAGES + MORE_PACKAGES + ("endless-sky-high-dpi",),
    )
    assert len(load_photos(cache)) == 2 + 1  # the wallpapers and a folder of your own, not the extra packages
    assert len(load_photos(cache, packages=[MORE_PACKAGES[0]])) == 3
    assert len(load_photos(cache, packages=["endless-sky-high-dpi"])) == 4  # a PHOTO_MEMBERS package beyond MORE
    assert len(load_photos(cache, packages=[MORE_PACKAGES[0], "mine"], every=2)) == 2  # indices 0 and 2 of 4
    with pytest.raises(ConfigError, match="no training photos in nothing-here"):
        load_photos(cache, packages=["nothing-here"])


def test_several_photo_sources_hold_out_their_own_validation_photos(tmp_path, monkeypatch):
    from tokzoo.tokenizers.training import build_tokenizer

    cache = _folders(tmp_path, {"first": 2, "second": 4}, fetched=("first", "second"))
    monkeypatch.setenv("TOKZOO_PHOTOS", str(cache))
    base = _recipe("rgb", "mse")
    sources = [{"packages": ["first"], "repeat": 1}, {"packages": ["second"], "repeat": 2, "hold_out_every": 2}]
    recipe = validate_recipe({**base, "data": {**base["data"], "photos": sources}})
    data = TrainingData(recipe, build_tokenizer(recipe).codec)
    second = load_photos(cache, packages=["second"])
    validation = load_photos(cache, packages=["second"], every=2)  # what real_photos.py --packages scores
    assert len(data.train) == 2 + 2 + 2 * 2  # scenes, both of "first", photos 1 and 3 of "second" twice
    trained = {v.tobytes() for v in data.train[2:]}
    assert trained >= {second[1].tobytes(), second[3].tobytes()}
    assert not trained & {v.tobytes() for v in validation}
    for bad, field in [([], "data.photos"), ([{"packages": []}], r"data.photos\[0\].packages")]:
        with pytest.raises(ConfigError, match=field):
            validate_recipe({**base, "data": {**base["data"], "photos": bad}})


def _deb(tmp_path, members: dict[str, bytes]) -> Path:
    """A real .deb (dpkg-deb --build) holding ``members`` (path -> bytes)."""
    import subprocess

    root = tmp_path / "pkgroot"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: fake-photos\nVersion: 1\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n"
    )
    for path, content in members.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(content)
    deb = tmp_path / "fake-photos_1_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True, capture_output=True)
    return deb


def _png(image: np.ndarray) -> bytes:
    import io

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def test_fetch_keeps_the_named_photo_members_and_never_a_held_out_photo(tmp_path, monkeypatch):
    """Through a real .deb: members that PHOTO_MEMBERS names (also inside a Qt resource bundle) are kept, other
    images are not, and a cropped copy of a held-out photo is dropped even where a pattern names it."""
    from test_qt_resources import bundle

    from tokzoo.datasets import photos as photos_module
    from tokzoo.datasets.samples import load_sample

    rng = np.random.default_rng(2)
    blocks = lambda: rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)  # noqa: E731 - coarse, so thumbnails differ
    photo = lambda: _png(np.kron(blocks(), np.ones((70, 70, 1), np.uint8)))  # noqa: E731 - 420 x 560
    astronaut = load_sample("astronaut")["rgb"]
    members = {
        "usr/share/fake/photos/kept.jpg": photo(),
        "usr/share/fake/icons/drawing.png": photo(),  # an image no pattern names
        "usr/share/fake/photos/astronaut-copy.png": _png(astronaut[16:-16, 16:-16]),
        "usr/share/fake/rcc/game.rcc": bundle({"inside.png": (photo(), True), "notes.txt": (b"text", False)}),
    }
    deb = _deb(tmp_path, members)
    monkeypatch.setattr(photos_module, "_download", lambda package, folder: deb)
    monkeypatch.setitem(
        photos_module.PHOTO_MEMBERS, "fake-photos", ("usr/share/fake/photos/*", "usr/share/fake/rcc/*.rcc/dir/*")
    )
    cache = _folders(tmp_path / "cache", {}, fetched=PACKAGES)  # the wallpapers are there already
    cache = fetch_photos(cache, packages=("fake-photos",), progress=False)
    sources = sorted(i["source"] for i in json.loads((cache / "manifest.json").read_text())["images"])
    assert sources == ["usr/share/fake/photos/kept.jpg", "usr/share/fake/rcc/game.rcc/dir/inside.png"]
    assert len(load_photos(cache, packages=["fake-photos"])) == 2


def test_photos_command_lists_the_cache_without_fetching_again(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tokzoo.datasets import photos as photos_module
    from tokzoo_cli.main import cli

    monkeypatch.setattr(photos_module, "_download", lambda package, folder: pytest.fail(f"fetched {package}"))
    cache = _folders(tmp_path, {PACKAGES[0]: 2}, fetched=PACKAGES)
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["images"] = [{"package": PACKAGES[0]}, {"package": PACKAGES[0]}]
    (cache / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(cli, ["photos", "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    assert f"{PACKAGES[0]}" in result.output and f"2 images in {cache}" in result.output


def test_photo_sources_that_share_validation_photos_are_refused(tmp_path, monkeypatch):
    from tokzoo.tokenizers.training import build_tokenizer

    cache = _folders(tmp_path, {"first": 4}, fetched=("first",))
    monkeypatch.setenv("TOKZOO_PHOTOS", str(cache))
    base = _recipe("rgb", "mse")
    sources = [{"packages": ["first"]}, {"packages": ["first"], "hold_out_every": 2}]
    recipe = validate_recipe({**base, "data": {**base["data"], "photos": sources}})
    with pytest.raises(ConfigError, match=r"data.photos\[1\]: 2 of its validation photos are training photos of "):
        TrainingData(recipe, build_tokenizer(recipe).codec)


def test_a_folder_of_your_own_is_read_by_name_and_never_fetched(tmp_path, monkeypatch):
    from tokzoo.datasets import photos as photos_module

    cache = _folders(tmp_path, {"mine": 2, MORE_PACKAGES[0]: 1}, fetched=PACKAGES)
    monkeypatch.setattr(photos_module, "_download", lambda package, folder: pytest.fail(f"fetched {package}"))
    assert fetch_photos(cache, packages=("mine",)) == cache
    assert len(load_photos(cache, packages=["mine"])) == 2
    # a folder named like an extra package is never read by default, even if no manifest lists it (an
    # interrupted fetch of the old kind, or a copy): only recipes naming it read it
    assert len(load_photos(cache)) == 2
    with pytest.raises(ConfigError, match="neither a folder .* nor a Debian package name"):
        fetch_photos(cache, packages=("--option",))


def test_the_shipped_held_out_thumbnails_are_those_of_the_bundled_samples():
    from tokzoo.datasets.photos import HELD_OUT_THUMBS_FILE, held_out_thumbnails

    assert json.loads(HELD_OUT_THUMBS_FILE.read_text()) == held_out_thumbnails()


def test_a_known_package_left_half_fetched_is_fetched_again(tmp_path, monkeypatch):
    from tokzoo.datasets import photos as photos_module

    cache = _folders(tmp_path / "cache", {MORE_PACKAGES[0]: 1}, fetched=PACKAGES)  # folder there, not in manifest
    stale = sorted((cache / MORE_PACKAGES[0]).iterdir())
    rng = np.random.default_rng(3)
    photo = _png(np.kron(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), np.ones((70, 70, 1), np.uint8)))
    deb = _deb(tmp_path, {"usr/share/fake/photos/new.jpg": photo})
    monkeypatch.setattr(photos_module, "_download", lambda package, folder: deb)
    monkeypatch.setitem(photos_module.PHOTO_MEMBERS, MORE_PACKAGES[0], ("usr/share/fake/photos/*",))
    fetch_photos(cache, packages=(MORE_PACKAGES[0],), progress=False)
    files = sorted(p.name for p in (cache / MORE_PACKAGES[0]).iterdir())
    assert files == ["copyright", "photos-new.png"] and not any(p.exists() for p in stale)
    assert not list(cache.glob(".fetching*"))  # the staging folder is gone
