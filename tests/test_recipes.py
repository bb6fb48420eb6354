"""Recipes installed with the package and nameable (issue 31, item 2), from the user's commands."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from click.testing import CliRunner

from tokzoo_cli.main import cli

REPO = Path(__file__).resolve().parent.parent


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_recipes_lists_every_shipped_recipe_with_its_summary():
    result = run("recipes")
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.output.splitlines() if line and not line.startswith("run ")]
    on_disk = sorted(
        p.relative_to(REPO / "recipes").with_suffix("").as_posix() for p in (REPO / "recipes").rglob("*.yaml")
    )
    assert names == on_disk and {"depth", "fm/scenes-cpu", "compose/gats"} <= set(names)
    first_comment = (REPO / "recipes/depth.yaml").read_text().splitlines()[0].lstrip("# ")
    assert first_comment in result.output


def test_recipe_names_and_paths_resolve_to_the_same_file(tmp_path):
    from tokzoo.recipes import resolve_recipe

    shipped = REPO / "recipes" / "fm" / "scenes-cpu.yaml"
    for text in ("fm/scenes-cpu", "recipes/fm/scenes-cpu.yaml", "fm/scenes-cpu.yaml", str(shipped)):
        assert resolve_recipe(text).resolve() == shipped
    own = tmp_path / "depth.yaml"  # a local file wins over the shipped recipe of the same name
    own.write_text("name: depth\n")
    assert resolve_recipe(str(own)) == own


def test_an_unknown_recipe_is_one_line_naming_the_listing(tmp_path):
    result = run("train", "--recipe", "dpeth", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "dpeth" in result.output and "tokzoo recipes" in result.output
    assert not (tmp_path / "run").exists()


def _venv_with_wheel(tmp_path: Path) -> Path:
    """A fresh venv holding only the built tokzoo wheel; its dependencies come from this interpreter's
    site-packages through a .pth path line (nothing downloaded, and this checkout is not on its path)."""
    source, wheels = tmp_path / "source", tmp_path / "wheels"  # a copy: building writes build/ and egg-info
    skip = shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__")
    shutil.copytree(
        REPO, source, ignore=lambda folder, names: skip(folder, names) | ({"runs"} if Path(folder) == REPO else set())
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # else pip finds this checkout's tokzoo
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(source),
        ],
        check=True,
        cwd=tmp_path,
        capture_output=True,
        env=env,
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (wheel,) = wheels.glob("tokzoo-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
        env=env,
    )
    # after the install: with the path in place pip would take the editable tokzoo there for this one
    Path(site, "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


@pytest.mark.slow
def test_recipes_work_from_an_installed_wheel_outside_the_checkout(tmp_path):
    """`tokzoo train --recipe depth` said 'recipe not found' for a pip user: recipes were not in the wheel."""
    venv = _venv_with_wheel(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    work = tmp_path / "elsewhere"
    work.mkdir()

    def tokzoo(*args):
        return subprocess.run([venv / "bin" / "tokzoo", *args], cwd=work, env=env, capture_output=True, text=True)

    where = subprocess.run(
        [
            venv / "bin" / "python",
            "-c",
            "import tokzoo, tokzoo.recipes as r; print(tokzoo.__file__);print(r.recipes_dir())",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    package, recipes = where.stdout.split()
    assert Path(package).is_relative_to(venv) and Path(recipes).is_relative_to(venv)  # the wheel's, not the checkout's
    shipped = Path(package).parent / "labelers" / "weights" / "scene_vit"  # the scene ViT ships in the wheel too
    assert (shipped / "model.safetensors").is_file() and (shipped / "preprocessor_config.json").is_file()
    assert (Path(package).parent / "tokenizers" / "weights" / "scene_vit_dense" / "model.safetensors").is_file()
    listing = tokzoo("recipes")
    assert listing.returncode == 0 and "fm/scenes-cpu" in listing.stdout and "compose/gats" in listing.stdout
    assert tokzoo("scenes", "--n", "8", "--size", "64", "--out", "scenes").returncode == 0
    trained = tokzoo(
        "train", "--recipe", "depth", "--data", "scenes", "--steps", "2", "--no-eval", "-q", "--out", "run"
    )
    assert trained.returncode == 0, trained.stderr
    assert (work / "run" / "tokenizer" / "config.json").is_file()
    fm = tokzoo("fm", "train", "--recipe", "fm/scenes-cpu", "--out", "fm-run")  # resolved; then asks for its data
    assert fm.returncode == 2 and "Missing option '--data'" in fm.stderr
