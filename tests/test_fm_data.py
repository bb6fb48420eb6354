"""The trainer's data path: datasets mixed by weight, each with its own modalities; each process reads only
its rows of a global batch (bytes measured); a fixed held-out set scored during training; exact resume."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tokzoo.fm.masking import Masker
from tokzoo.fm.recipe import parse_recipe
from tokzoo.fm.stream import MixtureStream, mixture_specs
from tokzoo.fm.train import held_out_batch, train
from tokzoo_cli.main import cli

MODALITIES = ["rgb", "depth", "palette"]


def run(args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output


def tokenize(out, modalities, scenes, seed, labelled=None):
    source = ["-i", str(labelled)] if labelled else ["--scenes", str(scenes), "--scene-size", "64", "--seed", str(seed)]
    run(["tokenize", "-m", ",".join(modalities), *source, "--samples-per-shard", "4", "--no-progress", "-o", str(out)])
    return out


@pytest.fixture(scope="module")
def rooms(tmp_path_factory):
    """Scenes with every modality of the recipe: rgb, depth and a k-means palette (a sequence, masked with sentinels)."""
    root = tmp_path_factory.mktemp("fmdata")
    run(["scenes", "--n", "16", "--size", "64", "--samples-per-shard", "4", "--out", str(root / "scenes")])
    run(
        [
            "pseudo-label",
            "-m",
            "palette,metadata",
            "-i",
            str(root / "scenes"),
            "-o",
            str(root / "labelled"),
            "--no-progress",
        ]
    )
    return tokenize(root / "rooms", MODALITIES, 16, 0, labelled=root / "labelled")


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """Other scenes without a palette (a dataset with its own, smaller modality set)."""
    return tokenize(tmp_path_factory.mktemp("fmdata") / "plain", ["rgb", "depth"], 12, 5)


def read_steps(sources, specs, world, rank, steps=6, batch=8):
    stream = MixtureStream(sources, specs, batch, seed=0, rank=rank, world=world)
    out = []
    for step in range(steps):
        positions, rows = stream.plan(step)
        out.append((stream.read(positions), rows))
    return out, stream.bytes_read


def test_each_process_reads_only_its_rows_and_together_they_read_one_process_batch(rooms, plain, one_thread):
    specs = mixture_specs([rooms, plain], MODALITIES, 16)
    for sources in ([(rooms, 1.0)], [(rooms, 3.0), (plain, 1.0)]):
        one, one_bytes = read_steps(sources, specs, 1, 0)
        halves = [read_steps(sources, specs, 2, r) for r in (0, 1)]
        for step, (whole, rows) in enumerate(one):
            first, second = halves[0][0][step], halves[1][0][step]
            assert first[1].tolist() == list(range(4)) and second[1].tolist() == list(range(4, 8))
            for m in MODALITIES:
                assert torch.equal(torch.cat([first[0].tokens[m], second[0].tokens[m]]), whole.tokens[m])
                assert torch.equal(torch.cat([first[0].valid[m], second[0].valid[m]]), whole.valid[m])
        bytes_0, bytes_1 = halves[0][1], halves[1][1]
        assert bytes_0 + bytes_1 == one_bytes > 0
        if len(sources) == 1:  # samples of one dataset all hold the same bytes: each process reads exactly half
            assert bytes_0 == bytes_1 == one_bytes // 2


def test_mixture_follows_its_weights_and_a_dataset_lacking_a_modality_leaves_it_missing(rooms, plain, one_thread):
    specs = mixture_specs([rooms, plain], MODALITIES, 16)
    stream = MixtureStream([(rooms, 3.0), (plain, 1.0)], specs, 8, seed=1)
    from_rooms = 0
    for step in range(60):
        positions, _ = stream.plan(step)
        from_rooms += len(positions[0])
        if step < 5:
            batch = stream.read(positions)
            n = len(positions[0])
            assert batch.valid["palette"][:n].any(1).all() and not batch.valid["palette"][n:].any()
            assert batch.valid["depth"].all()
    assert abs(from_rooms / 480 - 0.75) < 0.06  # binomial sd 0.02
    assert stream.consumed == [from_rooms, 480 - from_rooms]


def recipe(**train_fields):
    return parse_recipe(
        {
            "data": {"modalities": MODALITIES, "weights": [3, 1]},
            "model": {"preset": "fm-tiny"},
            "masking": {
                "input_tokens": [16, 48],
                "target_tokens": [16, 48],
                "mixture": [{"name": "all->all", "input_alpha": 0.5, "target_alpha": 0.5}],
            },
            "train": {
                "steps": 4,
                "batch_size": 8,
                "lr": 1.0e-3,
                "warmup_steps": 1,
                "num_workers": 1,
                "eval_every": 2,
                "eval_samples": 6,
                **train_fields,
            },
        }
    )


def test_mixture_training_resumes_exactly_and_logs_the_held_out_loss(rooms, plain, tmp_path, one_thread):
    train(recipe(checkpoint_every=2), [rooms, plain], tmp_path / "straight", progress=False, eval_data=rooms)
    train(recipe(checkpoint_every=2), [rooms, plain], tmp_path / "resumed", steps=2, progress=False, eval_data=rooms)
    train(recipe(checkpoint_every=2), [rooms, plain], tmp_path / "resumed", progress=False, eval_data=rooms)

    def read(run):
        lines = (run / "log.jsonl").read_text().splitlines()
        return [
            {k: v for k, v in json.loads(line).items() if k not in ("tokens_per_s", "data_bytes")} for line in lines
        ]

    straight = read(tmp_path / "straight")
    assert straight == read(tmp_path / "resumed")
    assert [("eval" in r) for r in straight] == [False, True, False, True]
    for r in straight[1::2]:
        assert set(r["eval"]["losses"]) == set(MODALITIES) and np.isfinite(r["eval"]["loss"])
    assert straight[1]["eval"] != straight[3]["eval"]  # the model changed, the held-out set did not
    state = json.loads((tmp_path / "straight" / "trainer_state.json").read_text())
    assert sum(state["position"]["consumed"]) == 32


def test_held_out_masks_are_drawn_once(rooms, one_thread):
    r = recipe()
    specs = mixture_specs([rooms], MODALITIES, 16)
    a, b = (held_out_batch(rooms, specs, Masker(specs, r.masking), 6, 0) for _ in range(2))
    assert all(torch.equal(a.input[m], b.input[m]) and torch.equal(a.target[m], b.target[m]) for m in MODALITIES)
    assert a.batch_size == 6 and a.target["palette"].any()


def test_cli_trains_a_mixture_with_a_held_out_set(rooms, plain, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps(recipe().raw))
    result = CliRunner().invoke(
        cli,
        [
            "fm",
            "train",
            "-r",
            str(path),
            "--data",
            str(rooms),
            "--data",
            str(plain),
            "--eval-data",
            str(rooms),
            "-o",
            str(tmp_path / "run"),
            "--steps",
            "2",
            "--threads",
            "1",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("step 2: loss ") and "held-out loss" in result.output
    result = CliRunner().invoke(cli, ["fm", "train", "-r", str(path), "--data", str(rooms), "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "data.weights has 2 entries for 1 datasets" in result.output


def test_a_set_valued_modality_in_a_second_folder_keeps_its_item_masks_in_row_order(rooms, one_thread):
    """``--data tokens/,instances/``: the item masks of a set-valued modality follow their rows through the
    reorder of a shuffled read (they used to make the read fail)."""
    from tokzoo.fm.stream import DatasetStream

    instances = tokenize(rooms.parent / "instances", ["sam_instances"], 16, 0)
    stream = DatasetStream(f"{rooms},{instances}", ["rgb", "sam_instances"], seed=3)
    batch = stream.read(np.array([9, 2, 14, 5]))
    assert batch["__key__"] != sorted(batch["__key__"])  # shuffled, so the rows were put back in order
    pad = json.loads((instances / "manifest.json").read_text())["modalities"]["sam_instances"]["pad_id"]
    real = (batch["sam_instances"] != pad).any(-1)
    assert torch.equal(batch["__mask__"]["sam_instances"], real) and real.any()


def test_an_incomplete_modality_of_a_second_folder_is_reported_against_that_folder(rooms, tmp_path):
    """``--data tokens/,instances/`` while ``instances/`` is being re-tokenized: the one-line error names
    ``instances/manifest.json``, not the first folder."""
    from tokzoo.errors import InputError
    from tokzoo.tokens.spec import specs_from_manifest

    instances = tokenize(tmp_path / "instances", ["sam_instances"], 16, 0)
    manifest = json.loads((instances / "manifest.json").read_text())
    manifest["modalities"]["sam_instances"]["complete"] = False
    (instances / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError) as error:
        specs_from_manifest(f"{rooms},{instances}", ["rgb", "sam_instances"])
    assert str(instances / "manifest.json") in str(error.value) and "not complete" in str(error.value)
    assert str(rooms / "manifest.json") not in str(error.value)
