"""Issue 25, class 2: no write leaves its output, none goes through a link tokzoo did not create.

Each case plants a symlink (absolute, relative, dangling, to a folder), a hard link, a FIFO or a folder where a
writer will write, or hands a writer a hostile name (``../x``, absolute paths, encoded forms); every case ends in a
one-line typed refusal naming the path and the reason, or in a correct write that stays inside, and never changes
``outside/victim.txt`` or adds a file beside it. The writers: tokzoo.io.writes itself, the browser site, manifests
with hostile modality names, ``export --to 4m`` with hostile member keys, fm runs, compose outputs, single-file
outputs (encode / decode). Serving is in test_browse_serve.py, script in the site in test_browse_hostile.py.
"""

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hostile_inputs import VICTIM, assert_one_line, assert_untouched, hostile_raw_dataset, npy_bytes, plant_outside

from tokzoo.errors import ConfigError, TokzooError, UnsafeOutputError
from tokzoo.io.writes import (
    append_file,
    create_file,
    file_name,
    is_plain_name,
    make_folder,
    remove_inside,
    rename_inside,
    write_file,
)
from tokzoo_cli.main import cli


def one_line_cli_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output[-2000:], result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


# -- tokzoo.io.writes: names that would leave the root ---------------------------------------------------------

ESCAPING_NAMES = [
    "../x",
    "../../x",
    "a/../../x",
    "./../x",
    "a/b/../../../x",
    "..",
    "../outside/victim.txt",
    "a/../../outside/victim.txt",
]


@pytest.mark.parametrize("name", ESCAPING_NAMES)
def test_a_relative_escape_is_refused(tmp_path, name):
    outside, root = plant_outside(tmp_path), tmp_path / "out"
    with pytest.raises(UnsafeOutputError) as error:
        write_file(root, root / name, b"evil")
    assert_one_line(error.value, name.split("/")[-1], "outside the output folder")
    assert_untouched(outside)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("absolute", ["/etc/tokzoo-x", "{outside}/victim.txt", "{outside}/new.txt", "{root}-sibling/x"])
def test_an_absolute_path_elsewhere_is_refused(tmp_path, absolute):
    outside, root = plant_outside(tmp_path), tmp_path / "out"
    path = Path(absolute.format(outside=outside, root=root))
    with pytest.raises(UnsafeOutputError) as error:
        write_file(root, root / path, b"evil")  # joining an absolute path replaces the root
    assert_one_line(error.value, str(path), "outside the output folder")
    assert_untouched(outside)
    assert not path.exists() or path.read_bytes() == VICTIM


@pytest.mark.parametrize("name", ["a\0b", "x" * 256, "é" * 128])
def test_an_unusable_name_is_refused(tmp_path, name):
    root = tmp_path / "out"
    with pytest.raises(UnsafeOutputError) as error:
        write_file(root, root / name, b"x")
    assert_one_line(error.value, "not a usable file name")


# -- file_name: the one way a name from data becomes a file name -------------------------------------------------

HOSTILE_NAMES = [
    "../x",
    "..",
    ".",
    "",
    "/etc/passwd",
    "a/b",
    "a\\b",
    "%2e%2e%2f",
    "..%2fx",
    "\0",
    "x" * 500,
    "<script>alert(1)</script>",
    "é",
    ".hidden",
    "rgb\n",
    "a..b",
    "-",
    "~root",
    "$(id)",
    "a b",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_file_name_of_a_hostile_name_stays_one_plain_name(tmp_path, name):
    derived = file_name(name)
    assert is_plain_name(derived) and "/" not in derived and not derived.startswith(".") and ".." not in derived
    root = tmp_path / "out"
    assert write_file(root, root / derived, b"x").parent == root  # lands in the root, one level down


def test_file_name_keeps_plain_names_and_separates_the_rest():
    for plain in ("rgb", "tok_depth@224", "shard-000001-002", "failed.0.rgb", "worst.all.semseg", "a=b+c"):
        assert file_name(plain) == plain
    derived = [file_name(n) for n in HOSTILE_NAMES]
    assert len(set(derived)) == len(derived)
    assert file_name("a/b") != file_name("a_b") and file_name("../x") == file_name("../x")


# -- tokzoo.io.writes: planted links, FIFOs, folders, hard links ------------------------------------------------


def plant(root: Path, outside: Path, kind: str) -> Path:
    """Plant ``kind`` at the path the writer will write; returns that path."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / "f.txt"
    if kind == "link_file":
        target.symlink_to(outside / "victim.txt")
    elif kind == "link_relative":
        target.symlink_to(os.path.relpath(outside / "victim.txt", root))
    elif kind == "link_dangling":
        target.symlink_to(outside / "new.txt")
    elif kind == "link_folder":
        (root / "sub").symlink_to(outside)
        target = root / "sub" / "victim.txt"
    elif kind == "link_folder_deep":
        (root / "a").mkdir()
        (root / "a" / "b").symlink_to(outside)
        target = root / "a" / "b" / "new.txt"
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    return target


REFUSED = ["link_file", "link_relative", "link_dangling", "link_folder", "link_folder_deep", "fifo", "folder"]
WRITERS = {
    "write_file": lambda root, path: write_file(root, path, b"evil"),
    "create_file": lambda root, path: create_file(root, path, b"evil"),
    "append_file": lambda root, path: append_file(root, path, "evil\n"),
    "rename_inside": lambda root, path: (
        write_file(root, root / "staged", b"evil"),
        rename_inside(root, root / "staged", path),
    ),
}


@pytest.mark.parametrize("kind", REFUSED)
@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_planted_entry_is_refused_not_followed(tmp_path, writer, kind):
    outside, root = plant_outside(tmp_path), tmp_path / "out"
    path = plant(root, outside, kind)
    with pytest.raises(UnsafeOutputError) as error:
        WRITERS[writer](root, path)
    reason = {"fifo": "FIFO", "folder": "is a folder"}.get(kind, "symlink")
    assert_one_line(error.value, str(path), reason)
    assert_untouched(outside)


@pytest.mark.parametrize("writer", ["write_file", "create_file", "rename_inside"])
def test_a_hard_link_is_replaced_not_written_into(tmp_path, writer):
    outside, root = plant_outside(tmp_path), tmp_path / "out"
    root.mkdir()
    os.link(outside / "victim.txt", root / "f.txt")
    WRITERS[writer](root, root / "f.txt")
    assert (root / "f.txt").read_bytes() == b"evil" and os.stat(root / "f.txt").st_nlink == 1
    assert_untouched(outside)


def test_appending_to_a_hard_link_is_refused(tmp_path):
    outside, root = plant_outside(tmp_path), tmp_path / "out"
    root.mkdir()
    os.link(outside / "victim.txt", root / "log.jsonl")
    with pytest.raises(UnsafeOutputError) as error:
        append_file(root, root / "log.jsonl", "evil\n")
    assert_one_line(error.value, "log.jsonl", "2 hard links")
    assert (outside / "victim.txt").read_bytes() == VICTIM


def test_make_folder_through_a_link_is_refused(tmp_path):
    outside, root = plant_outside(tmp_path), tmp_path / "out"
    plant(root, outside, "link_folder")
    with pytest.raises(UnsafeOutputError) as error:
        make_folder(root, root / "sub" / "new")
    assert_one_line(error.value, "sub is a symlink")
    assert_untouched(outside)


@pytest.mark.parametrize("kind", ["link_file", "link_folder"])
def test_remove_inside_removes_the_link_not_its_target(tmp_path, kind):
    outside, root = plant_outside(tmp_path), tmp_path / "out"
    path = plant(root, outside, kind)
    link = path if kind == "link_file" else path.parent
    remove_inside(root, link)
    assert not os.path.lexists(link)
    assert_untouched(outside)


# -- the browser site ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_input(tmp_path_factory):
    return hostile_raw_dataset(tmp_path_factory.mktemp("raw") / "in")


def plant_in_site(site: Path, outside: Path, where: str) -> None:
    site.mkdir(parents=True, exist_ok=True)
    path = site / where
    path.parent.mkdir(parents=True, exist_ok=True)
    if where in ("data/chunks", "assets", "img", "img/shard-000000-000", "data"):
        path.symlink_to(outside, target_is_directory=True)
    else:
        path.symlink_to(outside / "victim.txt")


SITE_LINKS = [
    "data/site.js",
    "data/chunks.js",
    "data/dataset.js",
    "data/chunks/shard-000000-000.js",
    "data/chunks",
    "data",
    "assets/browse.js",
    "assets",
    "index.html",
    "img",
    "img/shard-000000-000",
    "img/shard-000000-000/0.rgb.source.png",
]


@pytest.mark.parametrize("where", SITE_LINKS)
def test_browse_refuses_a_link_planted_in_the_site(raw_input, tmp_path, where):
    from tokzoo.browse import build_site

    outside, site = plant_outside(tmp_path), tmp_path / "site"
    plant_in_site(site, outside, where)
    with pytest.raises(UnsafeOutputError) as error:
        build_site(raw_input, site, progress=False)
    assert_one_line(error.value, "symlink", "never", str(site))
    assert_untouched(outside)


@pytest.mark.slow
@pytest.mark.parametrize("special", ["zero", "fifo"])
def test_browse_neither_hangs_nor_reads_a_special_file_planted_in_the_site(raw_input, tmp_path, special):
    """A chunk file that is a link to /dev/zero or a FIFO: read back by a rebuild, it would never end."""
    from hostile_inputs import assert_one_line_error, run_cli

    site = tmp_path / "site"
    assert run_cli("browse", str(raw_input), "-o", str(site), "--no-progress").returncode == 0
    chunk = site / "data" / "chunks" / "shard-000000-000.js"
    chunk.unlink()
    chunk.symlink_to("/dev/zero") if special == "zero" else os.mkfifo(chunk)
    result = run_cli("browse", str(raw_input), "-o", str(site), "--no-progress", timeout=120)
    assert_one_line_error(result, str(chunk), "symlink" if special == "zero" else "FIFO")


@pytest.mark.parametrize("where", ["data/views", "img/stale-chunk"])
def test_browse_removes_a_stale_link_without_following_it(raw_input, tmp_path, where):
    from tokzoo.browse import build_site

    outside, site = plant_outside(tmp_path), tmp_path / "site"
    site.mkdir()
    (site / where).parent.mkdir(parents=True, exist_ok=True)
    (site / where).symlink_to(outside, target_is_directory=True)
    build_site(raw_input, site, progress=False)
    assert not (site / where).is_symlink()
    assert_untouched(outside)


def test_browse_replaces_a_hard_link_in_the_site(raw_input, tmp_path):
    from tokzoo.browse import build_site

    outside, site = plant_outside(tmp_path), tmp_path / "site"
    site.mkdir()
    os.link(outside / "victim.txt", site / "index.html")
    build_site(raw_input, site, progress=False)
    assert b"<!doctype html>" in (site / "index.html").read_bytes()
    assert_untouched(outside)


def test_browse_cli_refusal_is_one_line(raw_input, tmp_path):
    outside, site = plant_outside(tmp_path), tmp_path / "site"
    plant_in_site(site, outside, "img")
    result = CliRunner().invoke(cli, ["browse", str(raw_input), "-o", str(site), "--no-progress"])
    one_line_cli_error(result, str(site / "img"), "is a symlink")
    assert_untouched(outside)


# -- manifests naming modalities that would become paths outside ------------------------------------------------

MODALITY_NAMES = [
    "../x",
    "../../outside/x",
    "/tmp/tokzoo-x",
    "a/b",
    "..",
    ".",
    "_private",
    "crops",
    "x y",
    "<script>",
    "",
    "a\\b",
    "manifest.json",
    "rgb/../../x",
]


def manifest_with(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    entry = {
        "tokenizer": "t",
        "content_hash": "0",
        "vocab_size": 16,
        "token_shape": [4],
        "complete": True,
        "input": "x",
        "size": [32, 32],
        "name": "t",
        "untrained": True,
        "dtype": "uint8",
    }
    (folder / "manifest.json").write_text(
        json.dumps({"crops": {}, "samples_per_shard": 4, "modalities": {name: entry}})
    )
    return folder


@pytest.mark.parametrize("name", MODALITY_NAMES)
def test_browse_refuses_a_modality_name_that_is_no_plain_folder_name(tmp_path, name):
    from tokzoo.browse import build_site

    outside = plant_outside(tmp_path)
    data = manifest_with(tmp_path / "tokens", name)
    with pytest.raises(ConfigError) as error:
        build_site(data, tmp_path / "site", progress=False)
    assert_one_line(error.value, "manifest.json", "no plain folder name")
    assert_untouched(outside)


@pytest.mark.parametrize("name", ["../x", "/tmp/tokzoo-x", "a/b"])
def test_export_refuses_a_modality_name_that_is_no_plain_folder_name(tmp_path, name):
    outside = plant_outside(tmp_path)
    data = manifest_with(tmp_path / "tokens", name)
    result = CliRunner().invoke(cli, ["export", str(data), str(tmp_path / "dst"), "--to", "4m", "--no-progress"])
    one_line_cli_error(result, "manifest.json", "no plain folder name")
    assert_untouched(outside)
    assert not (tmp_path / "dst").exists() or not any((tmp_path / "dst").iterdir())


# -- export --to 4m: member keys that would become paths ------------------------------------------------------


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tokens"
    result = CliRunner().invoke(
        cli,
        [
            "tokenize",
            "-m",
            "rgb",
            "--scenes",
            "2",
            "--scene-size",
            "32",
            "--size",
            "32",
            "--samples-per-shard",
            "2",
            "--no-progress",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def rename_first_member(tar: Path, key: str) -> None:
    """Rewrite ``tar`` with its first ``<key>.npy`` member renamed (GNU format: long and odd names kept as given)."""
    with tarfile.open(tar) as source:
        members = [(m, source.extractfile(m).read()) for m in source.getmembers()]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as out:
        for index, (member, data) in enumerate(members):
            info = tarfile.TarInfo(key + ".npy" if index == 0 else member.name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    tar.write_bytes(buffer.getvalue())


MEMBER_KEYS = [
    "../../../outside/x",
    "../x",
    "/tmp/tokzoo-abs-x",
    "a/b",
    "..",
    "a.b",
    "",
    " ",
    "x" * 300,
    "<script>",
    "%2e%2e%2fx",
    "a\\b",
]


@pytest.mark.parametrize("layout", ["folder", "webdataset"])
@pytest.mark.parametrize("key", MEMBER_KEYS)
def test_export_refuses_a_member_key_that_is_no_sample_key(tokens, tmp_path, key, layout):
    outside = plant_outside(tmp_path)
    data = tmp_path / "tokens"
    shutil.copytree(tokens, data)
    for folder in ("crops", "rgb"):
        rename_first_member(data / folder / "shard-000000.tar", key)
    dst = tmp_path / "dst"
    result = CliRunner().invoke(cli, ["export", str(data), str(dst), "--to", "4m", "--layout", layout, "--no-progress"])
    line = one_line_cli_error(result, "shard-000000.tar")
    assert "not a tokzoo sample key" in line or "member" in line, line
    assert_untouched(outside)
    assert not Path("/tmp/tokzoo-abs-x.npy").exists()
    written = [p.relative_to(dst).as_posix() for p in dst.rglob("*")] if dst.exists() else []
    assert not any(key and key in name for name in written if key not in ("", " ")), written


def test_export_of_plain_keys_still_works(tokens, tmp_path):
    result = CliRunner().invoke(
        cli, ["export", str(tokens), str(tmp_path / "dst"), "--to", "4m", "--layout", "folder", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    files = sorted(p.relative_to(tmp_path / "dst").as_posix() for p in (tmp_path / "dst").rglob("*.npy"))
    assert len(files) == 4 and all(
        f.startswith(("crop_settings/shard-00000/", "tok_rgb@32/shard-00000/")) for f in files
    )


# -- fm runs -------------------------------------------------------------------------------------------------

FM_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "fm" / "scenes-cpu.yaml"


@pytest.fixture(scope="module")
def fm_tokens(tmp_path_factory):
    out = tmp_path_factory.mktemp("fm") / "tokens"
    result = CliRunner().invoke(
        cli,
        [
            "tokenize",
            "-m",
            "rgb,depth,normals,semseg",
            "--scenes",
            "16",
            "--scene-size",
            "64",
            "--no-progress",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def fm_train(tokens: Path, run: Path):
    return CliRunner().invoke(
        cli,
        [
            "fm",
            "train",
            "--recipe",
            str(FM_RECIPE),
            "--data",
            str(tokens),
            "--out",
            str(run),
            "--steps",
            "1",
            "--threads",
            "1",
            "--no-progress",
        ],
    )


@pytest.mark.parametrize(
    "name", ["log.jsonl", "config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"]
)
def test_fm_train_refuses_a_link_planted_in_the_run(fm_tokens, tmp_path, name):
    outside, run = plant_outside(tmp_path), tmp_path / "run"
    run.mkdir()
    (run / name).symlink_to(outside / "victim.txt")
    line = one_line_cli_error(fm_train(fm_tokens, run), str(run / name))
    assert "symlink" in line or name == "trainer_state.json" and "not valid UTF-8 JSON" in line, (
        line
    )  # read as a resume first
    assert_untouched(outside)


def test_fm_train_refuses_a_hard_linked_log(fm_tokens, tmp_path):
    outside, run = plant_outside(tmp_path), tmp_path / "run"
    run.mkdir()
    os.link(outside / "victim.txt", run / "log.jsonl")
    one_line_cli_error(fm_train(fm_tokens, run), "log.jsonl", "2 hard links")
    assert_untouched(outside)


@pytest.mark.slow
def test_fm_outputs_named_by_the_user_are_not_written_through_links(fm_tokens, tmp_path):
    outside, run = plant_outside(tmp_path), tmp_path / "run"
    assert fm_train(fm_tokens, run).exit_code == 0
    (tmp_path / "out.png").symlink_to(outside / "victim.txt")
    (tmp_path / "eval.json").symlink_to(outside / "victim.txt")
    result = CliRunner().invoke(
        cli,
        [
            "fm",
            "generate",
            "--model",
            str(run),
            "--data",
            str(fm_tokens),
            "--key",
            "scene_000001",
            "--from",
            "rgb",
            "--to",
            "depth",
            "-o",
            str(tmp_path / "out.png"),
            "--steps",
            "1",
        ],
    )
    one_line_cli_error(result, "out.png", "symlink")
    result = CliRunner().invoke(
        cli,
        [
            "fm",
            "eval",
            "--model",
            str(run),
            "--data",
            str(fm_tokens),
            "--n",
            "2",
            "--steps",
            "1",
            "--json",
            str(tmp_path / "eval.json"),
            "--no-progress",
        ],
    )
    one_line_cli_error(result, "eval.json", "symlink")
    assert_untouched(outside)


# -- tokenize output ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    [
        "rgb/shard-000000.tar",
        "crops/shard-000000.tar",
        "rgb/shard-000000.samples.jsonl",
        "rgb/shard-000000.tar.tmp",
        "_commit",
        "rgb",
    ],
)
def test_tokenize_never_writes_through_a_link_planted_in_out(tokens, tmp_path, where):
    """The shard made incomplete (its stats gone) and a link planted where the rerun writes: the link is refused,
    or removed (never followed) and the shard rewritten inside OUT."""
    outside, out = plant_outside(tmp_path), tmp_path / "tokens"
    shutil.copytree(tokens, out)
    (out / "rgb" / "shard-000000.stats.json").unlink()
    if os.path.lexists(out / where):
        shutil.rmtree(out / where) if (out / where).is_dir() else (out / where).unlink()
    (out / where).symlink_to(outside / "victim.txt" if "." in where else outside)
    result = CliRunner().invoke(
        cli,
        [
            "tokenize",
            "-m",
            "rgb",
            "--scenes",
            "2",
            "--scene-size",
            "32",
            "--size",
            "32",
            "--samples-per-shard",
            "2",
            "--no-progress",
            "-o",
            str(out),
        ],
    )
    if result.exit_code == 0:
        assert not (out / where).is_symlink() and (out / "rgb" / "shard-000000.stats.json").is_file()
    else:
        one_line_cli_error(result, where.split("/")[0], "symlink")
    assert_untouched(outside)


# -- pseudo-label output -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Four scenes labelled with edges, two shards; returns (scenes, output)."""
    root = tmp_path_factory.mktemp("label")
    assert (
        CliRunner()
        .invoke(cli, ["scenes", "--n", "4", "--size", "32", "--out", str(root / "scenes"), "--samples-per-shard", "2"])
        .exit_code
        == 0
    )
    result = CliRunner().invoke(
        cli, ["pseudo-label", "-m", "edges", "-i", str(root / "scenes"), "-o", str(root / "out"), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    return root / "scenes", root / "out"


@pytest.mark.parametrize(
    "name", ["shard-000001.tar", ".pseudo-label/shard-000001.samples.jsonl", ".pseudo-label/shard-000001.stats.json"]
)
def test_pseudo_label_refuses_a_link_where_a_shard_is_rewritten(labelled, tmp_path, name):
    """The second shard made incomplete (its stats gone), a link planted where its rerun writes."""
    scenes, done = labelled
    outside, out = plant_outside(tmp_path), tmp_path / "out"
    shutil.copytree(done, out)
    (out / ".pseudo-label" / "shard-000001.stats.json").unlink()
    (out / name).unlink(missing_ok=True)
    (out / name).symlink_to(outside / "victim.txt")
    result = CliRunner().invoke(
        cli, ["pseudo-label", "-m", "edges", "-i", str(scenes), "-o", str(out), "--no-progress"]
    )
    if name.endswith(".stats.json"):  # a marker that does not parse: the shard is labelled again, the link replaced
        assert result.exit_code == 0 and "labelling shard 1 again" in result.output, result.output
        stats = [{k: v for k, v in json.loads((d / name).read_text()).items() if k != "seconds"} for d in (out, done)]
        assert not (out / name).is_symlink() and stats[0] == stats[1]
    else:
        one_line_cli_error(result, name.split("/")[-1], "symlink")
    assert_untouched(outside)


# -- compose outputs -------------------------------------------------------------------------------------------


def text_lm_recipe():
    from tokzoo.compose import resolve_recipe

    return resolve_recipe(
        {
            "steps": 1,
            "batch_size": 2,
            "log_every": 1,
            "threads": 1,
            "data": {"scene_text": {"n_train": 4, "n_val": 2, "size": 32}},
            "compose": {"pretrain_lm": {"vocab_size": 280, "hidden_size": 16, "layers": 1, "heads": 2}},
        }
    )


@pytest.mark.parametrize(
    "name",
    [
        "config.json",
        *(
            pytest.param(n, marks=pytest.mark.slow)
            for n in ("model.safetensors", "vocab.json", "metrics.json", "generation_config.json")
        ),
    ],
)
def test_compose_refuses_a_link_planted_in_its_output(tmp_path, name):
    """The saved LM (config, weights, generation config: written by transformers into a private folder first),
    its vocabulary and metrics."""
    from tokzoo.compose.train import run_recipe

    outside, out = plant_outside(tmp_path), tmp_path / "lm"
    out.mkdir()
    (out / name).symlink_to(outside / "victim.txt")
    with pytest.raises(UnsafeOutputError) as error:
        run_recipe(text_lm_recipe(), out, log=lambda *_: None)
    assert_one_line(error.value, str(out / name), "symlink")
    assert_untouched(outside)


def test_a_composition_checkpoint_is_not_written_through_a_link(tmp_path):
    import torch
    from test_compose_methods import SETTINGS, components

    from tokzoo.compose import Composition

    outside, out = plant_outside(tmp_path), tmp_path / "glue"
    out.mkdir()
    (out / "glue.safetensors").symlink_to(outside / "victim.txt")
    (out / "config.json").symlink_to(outside / "victim.txt")
    composition = Composition(components(), "gats", SETTINGS["gats"])
    with torch.no_grad(), pytest.raises(UnsafeOutputError) as error:
        composition.save(out)
    assert_one_line(error.value, "symlink")
    assert_untouched(outside)


# -- tokenizer checkpoints, training checkpoints, single-file outputs -----------------------------------------


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_a_tokenizer_checkpoint_is_not_written_through_a_link(tmp_path, name):
    from tokzoo.tokenizers.learned import LearnedTokenizer

    outside, out = plant_outside(tmp_path), tmp_path / "tok"
    out.mkdir()
    (out / name).symlink_to(outside / "victim.txt")
    tok = LearnedTokenizer.from_defaults("depth", model={"preset": "conv-tiny"}, input_size=[32, 32])
    with pytest.raises(UnsafeOutputError) as error:
        tok.save_pretrained(out)
    assert_one_line(error.value, name, "symlink")
    assert_untouched(outside)


@pytest.mark.parametrize("where", ["checkpoints", "checkpoints/step-000001", "checkpoints/step-000001.tmp"])
def test_a_training_checkpoint_is_not_written_through_a_link(tmp_path, where):
    import torch

    from tokzoo.tokenizers.training.checkpointing import save_checkpoint

    outside, out = plant_outside(tmp_path), tmp_path / "train"
    (out / where).parent.mkdir(parents=True, exist_ok=True)
    (out / where).symlink_to(outside, target_is_directory=True)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    try:
        save_checkpoint(out, 1, model, optimizer, None, {})
    except UnsafeOutputError as error:
        assert_one_line(error, "symlink")
    else:  # a leftover link where the checkpoint goes is removed (the link, never its target), then written
        assert where != "checkpoints" and (out / "checkpoints" / "step-000001" / "trainer_state.json").is_file()
        assert not (out / "checkpoints" / "step-000001").is_symlink()
    assert_untouched(outside)


@pytest.mark.parametrize("command", ["encode", "decode"])
def test_codec_outputs_are_not_written_through_links(tmp_path, command):
    outside = plant_outside(tmp_path)
    (tmp_path / "depth.npy").write_bytes(npy_bytes(np.full((32, 32), 2.0, np.float32)))
    runner = CliRunner()
    if command == "decode":
        assert (
            runner.invoke(
                cli,
                [
                    "encode",
                    "-t",
                    "depth",
                    "--untrained",
                    str(tmp_path / "depth.npy"),
                    "-o",
                    str(tmp_path / "tokens.npy"),
                ],
            ).exit_code
            == 0
        )
    (tmp_path / "out.npy").symlink_to(outside / "victim.txt")
    source = tmp_path / ("depth.npy" if command == "encode" else "tokens.npy")
    result = runner.invoke(cli, [command, "-t", "depth", "--untrained", str(source), "-o", str(tmp_path / "out.npy")])
    one_line_cli_error(result, "out.npy", "symlink")
    assert_untouched(outside)


def test_show_png_is_not_written_through_a_link(tokens, tmp_path):
    """``tokzoo show`` (and every PNG of show / eval / fm generate / scenes previews: tokzoo.io.images.save_png)."""
    outside = plant_outside(tmp_path)
    (tmp_path / "show.png").symlink_to(outside / "victim.txt")
    key = json.loads((tokens / "rgb" / "shard-000000.samples.jsonl").read_text().splitlines()[0])["key"]
    result = CliRunner().invoke(cli, ["show", str(tokens), "--key", key, "-o", str(tmp_path / "show.png")])
    one_line_cli_error(result, "show.png", "symlink")
    assert_untouched(outside)


def test_every_refusal_is_a_tokzoo_error():
    assert issubclass(UnsafeOutputError, TokzooError)
