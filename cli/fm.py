"""``tokzoo fm``: train, sample and evaluate a 4M-style any-to-any model on a token dataset."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .errors import UserError
from .machine import apply_threads, machine_options, threads_note
from .options import count_option, output_option


def _names(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("give at least one modality name")
    return names


def _modalities(value: str, option: str) -> list[str]:
    """``--from`` / ``--to``: token modality names; an old name (``instances``) is read as its canonical one with a
    note (tokzoo.vocabulary)."""
    from tokzoo.vocabulary import tokenized_name

    from .tokenize import modality_names

    return modality_names(value, tokenized_name, option)


def _decode_options(f):
    f = click.option(
        "--guide",
        "guidance",
        multiple=True,
        metavar="MODALITY=WEIGHT",
        help="Multimodal guidance: weight of one condition (repeatable); replaces --guidance-scale.",
    )(f)
    f = click.option(
        "--guidance-scale",
        type=float,
        default=1.0,
        show_default=True,
        help="Classifier-free guidance: 1 = none, 0 = unconditional, > 1 pushes towards the inputs.",
    )(f)
    f = click.option(
        "--order",
        type=click.Choice(["maskgit", "random"]),
        default="maskgit",
        show_default=True,
        help="Which tokens a parallel step fixes: the most confident (MaskGIT) or random ones (ROAR).",
    )(f)
    f = click.option(
        "--temperature-schedule",
        type=click.Choice(["constant", "linear", "cosine"]),
        default="constant",
        show_default=True,
        help="Temperature over the parallel steps (linear / cosine decay towards 0).",
    )(f)
    f = click.option(
        "--top-p",
        type=click.FloatRange(min=0, min_open=True, max=1),
        default=1.0,
        show_default=True,
        help="Nucleus sampling: keep the most probable ids up to this mass.",
    )(f)
    f = click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed.")(f)
    f = click.option("--top-k", type=click.IntRange(min=0), default=0, show_default=True, help="0: whole vocabulary.")(
        f
    )
    f = click.option(
        "--temperature",
        type=click.FloatRange(min=0),
        default=0.0,
        show_default=True,
        help="Sampling temperature; 0 takes the most likely token.",
    )(f)
    f = click.option(
        "--steps",
        type=click.IntRange(min=1),
        default=8,
        show_default=True,
        help="Parallel decoding steps per image-like target.",
    )(f)
    return f


def _settings(steps, temperature, top_k, seed, top_p, temperature_schedule, order, guidance_scale, guidance):
    from tokzoo.fm.generate import DecodeSettings

    weights = []
    for item in guidance:
        name, _, weight = item.partition("=")
        try:
            weights.append((name.strip(), float(weight)))
        except ValueError:
            raise click.BadParameter(f"{item!r} is not MODALITY=WEIGHT", param_hint="--guide") from None
    return DecodeSettings(
        steps, temperature, top_k, seed, top_p, temperature_schedule, order, guidance_scale, tuple(weights)
    )


@click.group("fm")
def fm_group():
    """A 4M-style any-to-any model over the modalities of a token dataset."""


@fm_group.command("train")
@click.option(
    "--recipe",
    "-r",
    "recipe_path",
    required=True,
    help="A shipped recipe's name (fm/scenes-cpu; `tokzoo recipes` lists them) or a YAML file.",
)
@click.option(
    "--data",
    "data",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Token dataset folder written by `tokzoo tokenize`; repeat for a mixture, sampled by the recipe's "
    "data.weights.",
)
@click.option(
    "--eval-data",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Held-out token dataset scored every train.eval_every steps (per-modality loss in log.jsonl).",
)
@output_option(
    "out_dir",
    "Run folder; a run already there is resumed.",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option(
    "--steps", type=click.IntRange(min=1), default=None, help="Stop after this many steps in total (resume later)."
)
@machine_options
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
def fm_train_command(recipe_path, data, eval_data, out_dir, steps, device, threads, progress):
    """Train (or resume) a recipe on DATA into OUT; DDP when launched by torchrun."""
    from tokzoo.compose.recipe import is_compose_recipe_file
    from tokzoo.fm.recipe import load_recipe
    from tokzoo.fm.train import train
    from tokzoo.recipes import resolve_recipe

    given, recipe_path = recipe_path, resolve_recipe(recipe_path)
    if is_compose_recipe_file(recipe_path):
        raise UserError(
            f"{given}: a composition recipe (a `compose:` section); train it with "
            f"`tokzoo compose train --recipe {given}`"
        )
    if not data:
        raise click.UsageError("Missing option '--data'.")
    recipe = load_recipe(recipe_path)
    first_rank = os.environ.get("RANK", "0") == "0"  # under torchrun, one process speaks
    chosen = apply_threads(threads)
    record = train(
        recipe,
        list(data) if len(data) > 1 else data[0],
        out_dir,
        steps=steps,
        progress=progress,
        device=device,
        eval_data=eval_data,
    )
    if not first_rank:
        return
    if record:
        losses = ", ".join(f"{m} {v:.3f}" for m, v in record["losses"].items())
        held_out = f"; held-out loss {record['eval']['loss']:.4f}" if "eval" in record else ""
        click.echo(
            f"step {record['step']}: loss {record['loss']:.4f} ({losses}){held_out}; saved {out_dir}; "
            f"{threads_note(threads, chosen)}"
        )
    else:
        click.echo(f"{out_dir}: already trained to the recipe's {recipe.train.steps} steps")


@fm_group.command("generate")
@click.option(
    "--model", "-m", "run", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run folder."
)
@click.option("--data", required=True, type=click.Path(file_okay=False, path_type=Path), help="Token dataset folder.")
@click.option("--key", "keys", required=True, help="Sample key(s), comma-separated.")
@click.option("--from", "sources", required=True, help="Given modalities, comma-separated.")
@click.option("--to", "targets", required=True, help="Modalities to predict, comma-separated.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PNG to write.")
@click.option(
    "--scale",
    type=click.IntRange(1, 16),
    default=None,
    help="Enlarge every tile this many times (default: tiles of at least 128 px).",
)
@click.option(
    "--consensus",
    "consensus",
    default=None,
    help="Iterative consensus recipe (a YAML file or a shipped name: consensus/depth): scorers judge each proposal "
    "per token region, agreed regions are kept and the rest resampled; its sampling settings replace the decoding options.",
)
@_decode_options
def fm_generate_command(run, data, keys, sources, targets, output, scale, consensus, **decode):
    """Predict --to from --from for samples of DATA; PNG rows: inputs, predictions, ground truth."""
    from tokzoo.fm.checkpoint import load_model
    from tokzoo.fm.evaluate import example_rows
    from tokzoo.io.images import save_png
    from tokzoo.viz import labelled_grid

    sources, targets, keys = _modalities(sources, "--from"), _modalities(targets, "--to"), _names(keys)
    model = load_model(run)
    if consensus is not None:
        _consensus_picture(model, data, keys, sources, targets, output, scale, consensus)
        return
    rows = example_rows(model, data, keys, sources, targets, _settings(**decode))
    groups = [("given", len(sources)), ("predicted", len(targets)), ("ground truth", len(targets))]
    save_png(labelled_grid(rows, [*sources, *targets, *targets], keys, groups, scale=scale), output)
    click.echo(
        f"{output}: one row per key; columns: {', '.join(sources)} (inputs) | "
        f"{', '.join(targets)} (predicted) | {', '.join(targets)} (ground truth)"
    )


def _consensus_picture(model, data, keys, sources, targets, output, scale, recipe_path):
    """``fm generate --consensus``: rows of inputs | consensus prediction | the true tokens decoded."""
    from tokzoo.consensus.api import generate_consensus, picture
    from tokzoo.consensus.recipe import read_recipe
    from tokzoo.errors import ConfigError
    from tokzoo.io.images import save_png
    from tokzoo.recipes import resolve_recipe
    from tokzoo.viz import labelled_grid

    try:
        recipe_path = resolve_recipe(recipe_path)
    except ConfigError as error:
        raise ConfigError(str(error).replace("--recipe", "--consensus", 1)) from None
    recipe = read_recipe(recipe_path)
    if targets != [recipe.target] or sources != list(recipe.sources):
        raise ConfigError(
            f"{recipe_path}: generates {recipe.target} from {','.join(recipe.sources)}; pass "
            f"--from {','.join(recipe.sources)} --to {recipe.target}"
        )
    out = generate_consensus(model, data, keys, recipe)
    rows = [
        [
            *[picture(model, m, out["sources"][k][m]) for m in sources],
            picture(model, recipe.target, out["depth"][k]),
            picture(model, recipe.target, out["truth"][k]),
        ]
        for k in keys
    ]
    groups = [("given", len(sources)), ("consensus", 1), ("true tokens", 1)]
    save_png(labelled_grid(rows, [*sources, recipe.target, recipe.target], keys, groups, scale=scale), output)
    click.echo(
        f"{output}: one row per key; columns: {', '.join(sources)} (inputs) | {recipe.target} (consensus, "
        f"{out['calls']} generator calls per sample: {recipe.rounds} rounds x {recipe.proposals} proposals) | "
        f"{recipe.target} (true tokens decoded)"
    )


@fm_group.command("eval")
@click.option(
    "--model", "-m", "run", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run folder."
)
@click.option(
    "--data",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Held-out token dataset (with its raw source for ground truth).",
)
@click.option(
    "--train-data",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Training token dataset for the prior baseline (default: the one the run was trained on).",
)
@click.option("--from", "sources", default="rgb", show_default=True, help="Given modalities.")
@click.option("--to", "targets", default="depth,normals,semseg", show_default=True, help="Predicted modalities.")
@count_option("limit", "Evaluate the first COUNT samples.", type=click.IntRange(min=1), default=None)
@count_option(
    "train_limit",
    "Use the first COUNT training samples for the prior.",
    old="--train-n",
    name="--train-count",
    type=click.IntRange(min=1),
    default=None,
)
@click.option(
    "--samples",
    type=click.IntRange(min=0, max=1024),
    default=0,
    show_default=True,
    help="Score a decision over this many sampled predictions (the prior's rule: per-pixel majority, the words most "
    "samples name, ...; needs --temperature > 0); 0 scores one decoding.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
@click.option(
    "--output",
    "-o",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the report as JSON to this file.",
)
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
@_decode_options
def fm_eval_command(
    run, data, train_data, sources, targets, limit, train_limit, samples, as_json, json_path, progress, **decode
):
    """Cross-modal prediction on held-out samples vs the tokenizer ceiling and the training prior."""
    import json

    from tokzoo.errors import ConfigError
    from tokzoo.fm.checkpoint import load_model, read_run_config
    from tokzoo.fm.evaluate import evaluate

    train_data = train_data or read_run_config(run).get("data")
    if not train_data:
        raise ConfigError(f"{run}: the run does not record its training data; pass --train-data")
    model = load_model(run)
    report = evaluate(
        model,
        data,
        train_data,
        _modalities(sources, "--from"),
        _modalities(targets, "--to"),
        limit=limit,
        train_limit=train_limit,
        settings=_settings(**decode),
        progress=progress,
        samples=samples,
    )
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(f"{report['samples']} held-out samples, from {', '.join(report['sources'])}")
        click.echo("| target | metric | model | tokenizer ceiling | training prior |")
        click.echo("|---|---|---|---|---|")
        for target, r in report["targets"].items():
            click.echo(
                f"| {target} | {r['metric']} ({r['better']} is better) | {r['model']:.4f} | "
                f"{r['tokenizer_ceiling']:.4f} | {r['training_prior']:.4f} |"
            )
            for name, also in r.get("also", {}).items():
                click.echo(
                    f"| {target} | {name} ({also['better']} is better) | {also['model']:.4f} | "
                    f"{also['tokenizer_ceiling']:.4f} | {also['training_prior']:.4f} |"
                )
    if json_path:
        from tokzoo.io.writes import write_output

        write_output(json_path, json.dumps(report, indent=2) + "\n")
