"""Real training photos (tokzoo.datasets.photos), the ``data.photos`` recipe source, Canny's scale and the edges crop rule."""

import json

import numpy as np
import pytest
from PIL import Image

from tokzoo.crops import apply_crop
from tokzoo.datasets.photos import PACKAGES, _file_name, fetch_photos, load_photos
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
