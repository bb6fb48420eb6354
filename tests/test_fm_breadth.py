"""benchmarks/fm_breadth.py at toy size: rooms with eleven modalities (palette, metadata and the scenes' captions as
sentinel-masked sequences, a dense feature map from a vision model folder tokenized into its own folder) and outdoor
scenes with seven, mixed; the 4- and 11-modality recipes train and are evaluated rgb -> depth, normals, semseg, and
the wide one in five new directions against their priors."""

import json
import math

import pytest
from benchmark_scripts import load_benchmark


@pytest.mark.slow  # ~1-2 min on the shared 2-core machine: renders, labels and tokenizes three scene sets
def test_breadth_experiment_runs_end_to_end_at_toy_size(tmp_path, one_thread):
    breadth = load_benchmark("fm_breadth")
    result = breadth.main(["--tiny", "--out", str(tmp_path), "--no-write", "--threads", "1"])
    assert [r["target"] for r in result["rows"]] == ["depth", "normals", "semseg"]
    assert all(math.isfinite(r["four"][0]) and math.isfinite(r["wide"][0]) for r in result["rows"])
    directions = {r["direction"]: r for r in result["directions"]}  # each against its training prior
    four, wide = result["shares"]["breadth-4"], result["shares"]["breadth-10"]  # target tokens per training sample
    assert list(four) == ["rgb", "depth", "normals", "semseg"] and len(wide) == 11
    assert four["depth"] > 0 and four["rgb"] < four["depth"]  # rgb is a target only in the rarer all->all draws
    assert list(directions) == [
        "rgb -> captions",
        "captions -> semseg",
        "rgb -> edges",
        "rgb -> dense_features",
        "rgb -> human_pose",
    ]
    pose = directions["rgb -> human_pose"]
    assert pose["metric"] == "keypoint_error_px" and all(v >= 0 for v in (*pose["prior"], *pose["ceiling"]))
    captions = directions["rgb -> captions"]
    assert captions["metric"] == "class_word_accuracy"
    assert all(0 <= v <= 1 for v in (*captions["model"], *captions["prior"]))
    assert captions["ceiling"] == [1.0]  # the scenes' captions fit the tokenizer's 64 tokens: exact
    assert directions["captions -> semseg"]["metric"] == "miou"
    edges = directions["rgb -> edges"]  # the majority edge map: (nearly) empty, so F1 near 0
    assert edges["metric"] == "edge_f1_1px" and 0 <= edges["prior"][0] < 0.05 < edges["ceiling"][0] <= 1
    features = directions["rgb -> dense_features"]  # the shipped scene ViT and its feature tokenizer; 2 steps: no gain
    assert features["metric"] == "cosine" and all(-1 <= v <= 1 for v in (*features["prior"], *features["model"]))
    config = json.loads((tmp_path / "runs" / "breadth-10-seed0" / "config.json").read_text())
    kinds = {m["name"]: m["kind"] for m in config["modalities"]}
    assert len(kinds) == 11 and kinds["human_pose"] == "items"
    assert kinds["palette"] == kinds["metadata"] == kinds["captions"] == "sequence"
    log = [json.loads(line) for line in (tmp_path / "runs" / "breadth-10-seed0" / "log.jsonl").read_text().splitlines()]
    assert set(log[-1]["losses"]) == set(kinds)  # every modality was a target in the last step
    assert set(log[-1]["eval"]["losses"]) == {"rgb", "depth", "normals", "semseg"}  # the held-out rooms' modalities
    assert json.loads((tmp_path / "runs" / "breadth-4-seed0" / "config.json").read_text())["data"].endswith(
        "rooms-tokens"
    )

    # --decision-samples: the new directions also scored by a decision over sampled predictions; the evaluations
    # made above are read back, not made again (same request, written after the run's last checkpoint)
    greedy = tmp_path / "runs" / "breadth-10-seed0" / "eval-rgb-captions.json"
    made = greedy.stat().st_mtime_ns
    again = breadth.main(["--tiny", "--out", str(tmp_path), "--no-write", "--threads", "1", "--decision-samples", "2"])
    assert greedy.stat().st_mtime_ns == made and again["directions"] == result["directions"]
    assert [r["direction"] for r in again["decided"]] == list(directions)
    decided = json.loads((greedy.parent / "eval-rgb-captions-samples2.json").read_text())
    assert decided["decision_samples"] == 2 and decided["decode"]["temperature"] == 1.0
    assert result["decided"] is None

    # generate and eval read a dataset of two folders; sequences and feature maps are drawn in the PNG
    from click.testing import CliRunner
    from PIL import Image

    from tokzoo_cli.main import cli

    rooms = result["data"]["rooms"]  # three folders: tokens, features, captions
    png = tmp_path / "ten.png"
    done = CliRunner().invoke(
        cli,
        [
            "fm",
            "generate",
            "-m",
            str(tmp_path / "runs" / "breadth-10-seed0"),
            "--data",
            rooms,
            "--key",
            "scene_000001",
            "--from",
            "rgb",
            "--to",
            "palette,metadata,captions,dense_features",
            "-o",
            str(png),
            "--steps",
            "2",
        ],
    )
    assert done.exit_code == 0, done.output
    assert Image.open(png).size[0] > 9 * 16  # 1 input + 4 predictions + 4 truths
    done = CliRunner().invoke(
        cli,
        [
            "fm",
            "eval",
            "-m",
            str(tmp_path / "runs" / "breadth-10-seed0"),
            "--data",
            rooms,
            "--n",
            "2",
            "--steps",
            "1",
            "--no-progress",
        ],
    )
    assert done.exit_code == 0 and "| semseg | boundary_f1" in done.output, done.output

    # --finetune: each seed's 11-modality run fine-tuned by a recipe (train.init) and scored like it
    recipe = breadth.ROOT / "recipes" / "fm" / "directions_finetune.yaml"
    tuned = breadth.main(["--tiny", "--out", str(tmp_path), "--no-write", "--threads", "1", "--finetune", str(recipe)])
    run = tmp_path / "runs" / "directions_finetune-seed0"
    assert json.loads((run / "config.json").read_text())["recipe"]["train"]["init"] == str(
        tmp_path / "runs" / "breadth-10-seed0"
    )
    assert [r["direction"] for r in tuned["directions"]] == list(directions)
    assert set(tuned["reports"][0]["targets"]) == {"depth", "normals", "semseg"}
    for key in ("condition_use", "condition_use_before"):  # the fine-tuned model and its breadth-10 start
        use = tuned["reports"][0][key]  # target cross-entropy given the own vs another scene's source
        assert set(use) == {"rgb -> captions", "captions -> semseg"}
        assert all(0 < v < 10 for pair in use.values() for v in pair)


def test_the_feature_labeler_follows_the_vision_folder(tmp_path):
    breadth = load_benchmark("fm_breadth")
    for model_type, labeler in (("vit", "vit_dense"), ("dinov2", "dinov2_dense")):
        folder = tmp_path / model_type
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
        assert breadth.feature_labeler(folder) == labeler
    # the tokenizer made for those features: the zoo's for the shipped scene ViT and DINOv2, none for another ViT
    assert breadth.default_feature_tokenizer(breadth.SCENE_VIT) == "scene_vit_dense"
    assert breadth.default_feature_tokenizer(tmp_path / "dinov2") == "dinov2_b14"
    assert breadth.default_feature_tokenizer(tmp_path / "vit") is None
    with pytest.raises(SystemExit) as stop:  # before anything is rendered
        breadth.main(["--out", str(tmp_path / "out"), "--vision-model", str(tmp_path / "vit")])
    assert stop.value.code == 2 and not (tmp_path / "out").exists()


def test_one_variant_can_run_alone(tmp_path, monkeypatch):
    breadth = load_benchmark("fm_breadth")
    ran = []
    monkeypatch.setattr(breadth, "prepare", lambda *a: {})
    monkeypatch.setattr(
        breadth, "run_variant", lambda out, name, data, seed, *a, **k: ran.append((name, seed, k["recipe"])) or {}
    )
    result = breadth.main(["--out", str(tmp_path), "--only", "breadth-10", "--seeds", "0,1", "--no-write"])
    wide = breadth.ROOT / "recipes" / "fm" / "breadth-10.yaml"
    assert ran == [("breadth-10", 0, wide), ("breadth-10", 1, wide)] and list(result["reports"]) == ["breadth-10"]
    # --wide: another eleven-modality recipe in the wide role, trained into runs named after it
    ran.clear()
    weighted = breadth.ROOT / "recipes" / "fm" / "breadth-10-weighted.yaml"
    breadth.main(
        ["--out", str(tmp_path), "--only", "breadth-10", "--seeds", "1", "--no-write", "--wide", str(weighted)]
    )
    assert ran == [("breadth-10-weighted", 1, weighted)]
    # --dim: both recipes at another width (a capacity test), in runs named after it
    seen = []
    monkeypatch.setattr(breadth, "run_variant", lambda out, name, data, seed, *a, **k: seen.append((name, k["dim"])))
    breadth.main(["--out", str(tmp_path), "--only", "breadth-4", "--seeds", "0", "--no-write", "--dim", "192"])
    assert seen == [("breadth-4-dim192", 192)]


def test_finetune_needs_the_trained_runs(tmp_path, monkeypatch, capsys):
    breadth = load_benchmark("fm_breadth")
    monkeypatch.setattr(breadth, "prepare", lambda *a: pytest.fail("checked after the data"))
    recipe = str(breadth.ROOT / "recipes" / "fm" / "directions_finetune.yaml")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        breadth.main(["--out", str(out), "--finetune", recipe, "--no-write"])
    assert "needs the trained and evaluated runs first" in str(stop.value.code)
    assert "breadth-4-seed0" in str(stop.value.code) and not out.exists()
    for wrong, message in (
        (["--only", "breadth-10"], "one or the other"),
        (["--finetune", str(tmp_path / "nothing.yaml")], "no such recipe file"),
        (["--finetune", str(breadth.ROOT / "recipes" / "fm" / "breadth-10.yaml")], "needs a name of its own"),
        (["--wide", str(tmp_path / "nothing.yaml")], "no such recipe file"),
    ):
        with pytest.raises(SystemExit) as stop:
            breadth.main(["--out", str(out), "--finetune", recipe, *wrong])
        assert stop.value.code == 2 and message in capsys.readouterr().err
