"""The iterative consensus loop (tokzoo.consensus): kept regions condition the next round, generator calls are
counted exactly and equal across the loop and its baselines, seeded determinism, scorers that measure what
they claim, one-line recipe errors, and ``tokzoo fm generate --consensus`` end to end on a tiny run."""

from pathlib import Path

import numpy as np
import pytest
import torch

from tokzoo.consensus import (
    ConsensusRecipe,
    DepthNetConfig,
    Evidence,
    best_of_n,
    choose_weights,
    consensus_loop,
    ensemble_errors,
    greedy,
    load_depth_net,
    parse_recipe,
    read_recipe,
    region_errors,
    save_depth_net,
    train_depth_net,
)
from tokzoo.consensus import loop as loop_module
from tokzoo.consensus.generator import target_distribution
from tokzoo.errors import ConfigError
from tokzoo.fm.masking import flatten_batch
from tokzoo.fm.model import FourM, model_config
from tokzoo.labelers.normals_from_depth import intrinsics, normals_from_depth
from tokzoo.tokens.spec import ModalitySpec

SPECS = [ModalitySpec(n, "image", 30, (4, 4)) for n in ("rgb", "depth", "normals", "semseg")]
SIZE = 16  # decoded maps: each of the 4 x 4 tokens a 4 x 4 pixel block


@pytest.fixture
def model(one_thread):
    """A random model with 10x the usual initial scale, so that its inputs visibly move its outputs."""
    torch.manual_seed(0)
    model = FourM(SPECS, model_config("fm-tiny", dim=32, heads=2))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.mul_(10)
    return model


def batch(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return flatten_batch({s.name: torch.randint(1, 30, (n, 16), generator=g) for s in SPECS}, SPECS)


def decode(tokens: torch.Tensor) -> np.ndarray:
    """A stand-in tokenizer: token t decodes to a flat block of depth 1 + t / 10 metres."""
    blocks = 1 + tokens.reshape(-1, 4, 4).float().numpy() / 10
    return np.kron(blocks, np.ones((4, 4))).astype(np.float32)


def evidence(n=3, seed=0) -> Evidence:
    rng = np.random.default_rng(seed)
    return Evidence(
        depth_nets={"depth_net": (1 + rng.uniform(0, 2.9, (n, SIZE, SIZE))).astype(np.float32)},
        semseg=rng.integers(0, 3, (n, SIZE, SIZE)).astype(np.uint8),
    )


RECIPE = ConsensusRecipe(scorers=(("depth_net", 1.0), ("planarity", 0.5)), rounds=4, proposals=2, seed=3)


def test_kept_regions_condition_every_later_round_and_stay_in_the_result(model, monkeypatch):
    seen = []

    def recording(model_, batch_, sources, target, kept_tokens, kept):
        seen.append((kept_tokens.clone(), kept.clone()))
        return target_distribution(model_, batch_, sources, target, kept_tokens, kept)

    monkeypatch.setattr(loop_module, "target_distribution", recording)
    result = consensus_loop(model, batch(), evidence(), RECIPE, decode=decode)
    assert len(seen) == RECIPE.rounds and not seen[0][1].any()
    kept_counts = [int(k.sum()) for _, k in seen]
    assert kept_counts == sorted(kept_counts) and kept_counts[-1] > 0  # the kept set only grows
    for (tokens_a, kept_a), (tokens_b, kept_b) in zip(seen, seen[1:]):
        assert (kept_b[kept_a]).all() and (tokens_b[kept_a] == tokens_a[kept_a]).all()
    last_tokens, last_kept = seen[-1]
    assert (result.tokens[last_kept] == last_tokens[last_kept]).all()  # kept tokens survive to the end
    # and they are real conditioning: the generator's distribution over the other slots moves with them
    kept = last_kept[:1]
    logits_with = target_distribution(model, batch(1), ["rgb"], "depth", last_tokens[:1], kept)[0]
    logits_other = target_distribution(model, batch(1), ["rgb"], "depth", (last_tokens[:1] + 7) % 30, kept)[0]
    assert not torch.allclose(logits_with, logits_other)


def test_generator_calls_are_counted_exactly_and_equal_across_variants(model, monkeypatch):
    drawn, passes = [], []
    original_sample, original_logits = loop_module.sample_proposals, model.target_logits

    def counting_sample(logits, rows, positions, kept_tokens, n, *args, **kwargs):
        drawn.append(n * len(kept_tokens))
        return original_sample(logits, rows, positions, kept_tokens, n, *args, **kwargs)

    def counting_logits(masked):
        passes.append(masked.batch_size)
        return original_logits(masked)

    monkeypatch.setattr(loop_module, "sample_proposals", counting_sample)
    monkeypatch.setattr(model, "target_logits", counting_logits)
    b, n = 3, RECIPE.calls
    loop = consensus_loop(model, batch(b), evidence(b), RECIPE, decode=decode)
    assert sum(drawn) == b * n and sum(passes) == b * RECIPE.rounds
    assert (loop.calls.proposals == n).all() and (loop.calls.forwards == RECIPE.rounds).all()
    drawn.clear(), passes.clear()
    best = best_of_n(model, batch(b), evidence(b), RECIPE, n, decode=decode)
    assert sum(drawn) == b * n and sum(passes) == b and (best.calls.proposals == n).all()
    drawn.clear()
    assert (greedy(model, batch(b), RECIPE, decode=decode).calls.proposals == 1).all() and sum(drawn) == b


def test_same_seed_same_result_another_seed_differs_and_batches_do_not_matter(model):
    ev = evidence()
    a = consensus_loop(model, batch(), ev, RECIPE, row_seeds=[11, 12, 13], decode=decode)
    b = consensus_loop(model, batch(), ev, RECIPE, row_seeds=[11, 12, 13], decode=decode)
    assert torch.equal(a.tokens, b.tokens) and np.array_equal(a.depth, b.depth)
    from dataclasses import replace

    c = consensus_loop(model, batch(), ev, replace(RECIPE, seed=4), row_seeds=[11, 12, 13], decode=decode)
    assert not torch.equal(a.tokens, c.tokens)
    alone = consensus_loop(
        model,
        batch(1),
        Evidence(depth_nets={"depth_net": ev.depth_nets["depth_net"][:1]}, semseg=ev.semseg[:1]),
        RECIPE,
        row_seeds=[11],
        decode=decode,
    )
    assert torch.equal(alone.tokens[0], a.tokens[0])  # scene 0 alone = scene 0 in a batch of three


def test_the_loop_follows_its_scorer_more_than_the_open_loop_does(model):
    """With a scorer that knows the answer (its reference is the decoded target), feedback pays: the loop ends
    closer to the reference than best-of-N at the same calls, and both beat one sample."""
    target = torch.randint(1, 30, (3, 16), generator=torch.Generator().manual_seed(5))
    ev = Evidence(depth_nets={"depth_net": decode(target)})
    recipe = ConsensusRecipe(scorers=(("depth_net", 1.0),), rounds=4, proposals=2, temperature=2.0)
    gap = lambda r: float(np.mean(np.abs(np.log(r.depth) - np.log(ev.depth_nets["depth_net"]))))  # noqa: E731
    loop = consensus_loop(model, batch(), ev, recipe, decode=decode)
    best = best_of_n(model, batch(), ev, recipe, recipe.calls, decode=decode)
    one = best_of_n(model, batch(), ev, recipe, 1, decode=decode)
    assert gap(loop) < gap(best) < gap(one)


def test_scorers_measure_what_they_claim():
    h = w = SIZE
    _, fy, _, cy = intrinsics(h, w, None, 60.0)
    v = np.mgrid[0:h, 0:w][0].astype(np.float32)
    floor = (1.5 * fy / (v - cy + 9)).astype(np.float32)  # a ground plane seen from 1.5 m, horizon above row 0
    bumpy = floor * (1 + 0.2 * np.random.default_rng(0).standard_normal((h, w))).astype(np.float32)
    nets = {"depth_net": floor, "depth_net.far": 2 * floor}  # a second network that sees everything twice as far
    ev = Evidence(normals=normals_from_depth(floor), semseg=np.zeros((h, w), np.uint8), depth_nets=nets)
    names = ["normals", "planarity", "depth_net", "depth_net.far"]
    flat_errors, bumpy_errors = (region_errors(d, ev, names, (4, 4)) for d in (floor, bumpy))
    assert np.nanmax(flat_errors[0]) < 0.05 and np.nanmax(flat_errors[1:3]) < 1e-4  # degrees; relative; log
    assert np.allclose(flat_errors[3], np.log(2))  # each network is its own reference
    assert (np.nanmean(bumpy_errors[:3], (1, 2)) > [5.0, 0.02, 0.05]).all()
    # ensemble: per-scorer scale removed, weight-0 scorers ignored, a region nobody judges gets 1
    errors = np.stack(
        [
            np.stack([np.full((2, 2), 1.0), np.full((2, 2), 100.0)]),
            np.stack([np.full((2, 2), 3.0), np.full((2, 2), 100.0)]),
        ]
    )  # (C=2, S=2, 2, 2)
    only_first = ensemble_errors(errors, [1.0, 0.0])
    assert np.allclose(only_first[0], 0.5) and np.allclose(only_first[1], 1.5)
    assert np.allclose(ensemble_errors(np.full((1, 2, 2, 2), np.nan), [1.0, 1.0]), 1.0)


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"rounds": 0, "scorers": {"normals": 1}}, "consensus.rounds"),
        ({"rounds": 2, "proposals": 1000, "scorers": {"normals": 1}}, "consensus.rounds"),
        ({"scorers": {"clip": 1}}, "consensus.scorers.clip"),
        ({"scorers": {"normals": 0}}, "consensus.scorers"),
        ({"scorers": {"depth_net": 1}}, "consensus.scorers.depth_net.path"),
        ({"scorers": {"depth_net.coarse": 1}}, "consensus.scorers.depth_net.coarse.path"),
        ({"scorers": {"normals.x": 1}}, "consensus.scorers.normals.x"),
        ({"scorers": {"depth_net.": {"weight": 1, "path": "x"}}}, "consensus.scorers.depth_net."),
        ({"scorers": {"normals": {"weight": 1, "path": "x"}}}, "consensus.scorers.normals.path"),
        ({"target": "normals", "scorers": {"normals": 1}}, "consensus.target"),
        ({"temperature": "hot", "scorers": {"normals": 1}}, "consensus.temperature"),
        ({"top_p": 0, "scorers": {"normals": 1}}, "consensus.top_p"),
        ({"roundz": 3, "scorers": {"normals": 1}}, "consensus.roundz"),
        ({"sources": ["depth"], "scorers": {"normals": 1}}, "consensus.sources"),
    ],
)
def test_recipe_errors_are_one_line_naming_the_field(tmp_path, raw, field):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"consensus": raw}))
    with pytest.raises(ConfigError) as error:
        read_recipe(path)
    assert "\n" not in str(error.value) and str(error.value).startswith(f"{path}: {field}")


def test_a_recipe_reads_with_its_network_path_relative_to_its_folder(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(
        "consensus:\n  rounds: 3\n  proposals: 2\n  scorers: {normals: 2, depth_net: {weight: 1, path: nets/unet}, "
        "depth_net.coarse: {weight: 0.5, path: /abs/coarse}}\n"
    )
    recipe = read_recipe(path)
    assert recipe.calls == 6 and recipe.scorers == (("normals", 2.0), ("depth_net", 1.0), ("depth_net.coarse", 0.5))
    assert recipe.networks == (("depth_net", str(tmp_path / "nets" / "unet")), ("depth_net.coarse", "/abs/coarse"))
    with pytest.raises(ConfigError, match="needs a 'consensus:' mapping"):
        parse_recipe(["not", "a", "mapping"])


def test_a_depth_net_learns_and_round_trips(tmp_path, one_thread):
    config = DepthNetConfig("coarse", stream=5, scenes=8, size=32, steps=40, batch_size=8, lr=5e-3)
    losses = []
    net = train_depth_net(config, log=lambda step, loss: losses.append(loss))
    assert losses[-1] < losses[0]
    again = load_depth_net(save_depth_net(net, tmp_path / "net"))
    rgb = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    assert np.array_equal(net.predict(rgb), again.predict(rgb)) and again.config == config
    (tmp_path / "net" / "config.json").write_text('{"format": "tokzoo-depthnet", "layers": 3}')
    with pytest.raises(Exception, match="unknown field 'layers'"):
        load_depth_net(tmp_path / "net")


def test_cli_generate_with_consensus_end_to_end(tmp_path):
    """Tokenize 8 + 2 scenes, train a 2-step fm and a 5-step depth net, generate with the loop (4-16 s)."""
    from click.testing import CliRunner
    from PIL import Image

    from tokzoo_cli.main import cli

    def run(args, code=0):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == code, result.output
        return result.output

    tokens, heldout, gen = tmp_path / "tokens", tmp_path / "heldout", tmp_path / "gen"
    modalities = "rgb,depth,normals,semseg"
    run(["tokenize", "-m", modalities, "--scenes", "8", "--scene-size", "64", "--no-progress", "-o", str(tokens)])
    run(
        [
            "tokenize",
            "-m",
            modalities,
            "--scenes",
            "2",
            "--scene-size",
            "64",
            "--seed",
            "7",
            "--no-progress",
            "-o",
            str(heldout),
        ]
    )
    run(
        [
            "fm",
            "train",
            "--recipe",
            "fm/scenes-consensus",
            "--data",
            str(tokens),
            "--out",
            str(gen),
            "--steps",
            "2",
            "--threads",
            "1",
            "--no-progress",
        ]
    )
    save_depth_net(
        train_depth_net(DepthNetConfig("coarse", stream=9, scenes=4, steps=5, batch_size=4)), tmp_path / "net"
    )
    recipe = tmp_path / "loop.yaml"
    recipe.write_text(
        "consensus:\n  rounds: 2\n  proposals: 3\n  scorers: {normals: 1, planarity: 1, depth_net: {weight: 1, path: net}}\n"
    )
    png = tmp_path / "loop.png"
    args = [
        "fm",
        "generate",
        "-m",
        str(gen),
        "--data",
        str(heldout),
        "--key",
        "scene_000001,scene_000000",
        "--from",
        "rgb",
        "--to",
        "depth",
        "-o",
        str(png),
        "--consensus",
        str(recipe),
    ]
    output = run(args)
    assert "6 generator calls per sample: 2 rounds x 3 proposals" in output
    assert np.asarray(Image.open(png)).std() > 5
    recipe.write_text("consensus:\n  rounds: 0\n  scorers: {normals: 1}\n")
    output = run(args, code=2)
    assert output.strip().splitlines() == [f"error: {recipe}: consensus.rounds: must be an integer in [1, 1024], got 0"]
    output = run([*args[:-1], "consensus/depth", "--to", "normals"], code=2)
    assert "pass --from rgb --to depth" in output and len(output.strip().splitlines()) == 1

    # the README's Python lines, on the same run and the shipped recipe
    from tokzoo.consensus import gather_evidence
    from tokzoo.fm.checkpoint import load_model
    from tokzoo.fm.stream import ordered_batches

    model = load_model(gen)
    raw = next(iter(ordered_batches(heldout, [s.name for s in model.specs], 2)))
    batch = flatten_batch({s.name: raw[s.name] for s in model.specs}, model.specs)
    recipe = read_recipe(Path(__file__).resolve().parents[1] / "recipes" / "consensus" / "depth.yaml")
    result = consensus_loop(model, batch, gather_evidence(model, batch, recipe), recipe)
    assert result.depth.shape == (2, 64, 64) and (result.calls.proposals == 8).all()


def test_weights_are_chosen_for_abs_rel_under_the_structure_limit():
    scores = {
        (0, 0, 1): (0.33, 0.045),
        (0.25, 0.1, 1): (0.34, 0.037),
        (1, 1, 1): (0.42, 0.026),
        (1, 0, 1): (0.34, 0.039),
    }
    assert choose_weights(scores, limit=0.040) == ((0.25, 0.1, 1), True)  # first of the tie at 0.34 under the limit
    assert choose_weights(scores, limit=0.030) == ((1, 1, 1), True)
    assert choose_weights(scores, limit=0.020) == ((0, 0, 1), False)  # none qualifies: abs-rel alone, flagged
    assert choose_weights({(1,): (0.3, float("nan"))}, limit=1.0) == ((1,), False)
    with pytest.raises(ValueError):
        choose_weights({}, limit=1.0)
