"""Feature-map and global-feature recipes train on synthetic features: a few steps lower the loss."""

from pathlib import Path

import pytest

from tokzoo.tokenizers.training import load_recipe, train, validate_recipe

RECIPES = sorted(
    p
    for p in (Path(__file__).parent.parent / "recipes").glob("*.yaml")
    if load_recipe(p)["tokenizer"]["modality"] in ("dense_features", "global_feature")
)


def test_every_feature_zoo_name_has_a_recipe():
    assert {"dinov2_b14", "clip_b16", "imagebind_h14", "dinov2_global", "clip_global", "imagebind_global"} <= {
        p.stem for p in RECIPES
    }


pytestmark = pytest.mark.usefixtures("one_thread")  # CPU runs are bit-reproducible per thread count


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_feature_recipe_trains_on_synthetic_features(tmp_path, path):
    recipe = load_recipe(path)
    assert "synthetic" in recipe["data"]
    recipe["data"]["synthetic"].update(n_train=64, n_val=8)
    if recipe["tokenizer"]["modality"] == "dense_features":
        recipe["resolution"] = [4, 4]  # the per-position model takes any grid; a small one keeps the test fast
    recipe.update(
        steps=25,
        batch_size=8,
        log_every=5,
        checkpoint_every=0,
        ema=None,
        schedule={"warmup_steps": 3, "min_lr_ratio": 0.5},
    )
    result = train(validate_recipe(recipe), tmp_path, progress=False)
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert last < 0.8 * first, (first, last)
    assert result.validation_loss is not None and result.validation_loss < first
