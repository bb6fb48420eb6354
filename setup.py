"""Package discovery only (metadata lives in pyproject.toml).

The CLI sources sit in ``cli/`` (a layout the project fixed) but install as ``tokzoo_cli``, an import
name that cannot collide with other packages' top-level ``cli`` modules. The top-level ``recipes/`` folder
installs as the data package ``tokzoo_recipes`` (no copy in the tree; tokzoo.recipes finds it by name).
"""

from pathlib import Path

from setuptools import find_packages, setup

RECIPE_PACKAGES = ["tokzoo_recipes"] + sorted(
    f"tokzoo_recipes.{d.name}" for d in Path("recipes").iterdir() if d.is_dir()
)

setup(
    packages=find_packages(include=["tokzoo", "tokzoo.*"]) + ["tokzoo_cli"] + RECIPE_PACKAGES,
    package_dir={"tokzoo_cli": "cli", "tokzoo_recipes": "recipes"},
    package_data={
        "tokzoo": [
            "tokenizers/weights/*.json",
            "tokenizers/weights/*/*.json",
            "tokenizers/weights/*/*.safetensors",
            "labelers/weights/*/*.json",
            "labelers/weights/*/*.safetensors",
            "browse/assets/*",
            "datasets/held_out_thumbs.json",
        ],
        **{package: ["*.yaml"] for package in RECIPE_PACKAGES},
    },
)
