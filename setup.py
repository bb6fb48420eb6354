"""Package discovery only (metadata lives in pyproject.toml).

The CLI sources sit in ``cli/`` (a layout the project fixed) but install as ``tokzoo_cli``, an import
name that cannot collide with other packages' top-level ``cli`` modules.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["tokzoo", "tokzoo.*"]) + ["tokzoo_cli"],
    package_dir={"tokzoo_cli": "cli"},
    package_data={"tokzoo": ["weights/*/*.json", "weights/*/*.safetensors", "browse/assets/*"]},
)
