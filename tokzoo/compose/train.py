"""Training runs of composition recipes (:mod:`.recipe`): glue between frozen components, or the text LM.

``run_recipe(recipe, out)`` dispatches on the recipe's ``compose:`` section. A glue run prints the
trainable/frozen split first, optimises only the parameters with ``requires_grad`` (a frozen component has
no optimizer state), measures the step time, evaluates on the held-out scenes (task metrics and each
component's own task metric before and after) and writes the checkpoint (:mod:`.composition`) with
``metrics.json``. The same recipe and seed give the same weights.
"""

from __future__ import annotations

import functools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..datasets.scene_frames import FrameTextSet
from ..datasets.scene_text import SceneTextSet
from ..errors import ConfigError
from ..io.writes import copy_folder_into, make_folder, write_file
from ..runs.run_folder import append_log, truncate_log
from ..runs.schedule import warmup_cosine
from ..tokenizers.text import CaptionTokenizer, train_vocab
from .composition import Composition, build_component
from .evaluate import encoder_reconstruction, evaluate_task, lm_text_metrics
from .language import VOCAB_NAME, CausalLM
from .task import CAPTION_PROMPT, SceneTask, predicting, target_loss


@functools.lru_cache(maxsize=8)
def scene_set(n: int, seed: int, size: int, progress: bool = True) -> SceneTextSet:
    """Rendered scenes with their texts, kept for the next run of this process (benchmarks run several)."""
    with tqdm(total=n, desc=f"scenes (seed {seed})", file=sys.stderr, leave=False, disable=not progress) as bar:
        return SceneTextSet(n, seed, size, progress=bar.update)


@functools.lru_cache(maxsize=4)
def frame_set(n: int, seed: int, size: int, n_frames: int, progress: bool = True) -> FrameTextSet:
    """The multi-frame scenes (tokzoo.datasets.scene_frames), kept like :func:`scene_set`."""
    with tqdm(total=n, desc=f"frames (seed {seed})", file=sys.stderr, leave=False, disable=not progress) as bar:
        return FrameTextSet(n, seed, size, n_frames, progress=bar.update)


def _tasks(recipe: dict, normalize, tokenizer: CaptionTokenizer, progress: bool = True) -> tuple[SceneTask, SceneTask]:
    d = recipe["data"]["scene_text"]
    if d["frames"]:
        train = SceneTask(frame_set(d["n_train"], d["seed"], d["size"], d["frames"], progress), normalize, tokenizer)
        return train, SceneTask(
            frame_set(d["n_val"], d["val_seed"], d["size"], d["frames"], progress), normalize, tokenizer
        )
    train = SceneTask(scene_set(d["n_train"], d["seed"], d["size"], progress), normalize, tokenizer)
    val = SceneTask(scene_set(d["n_val"], d["val_seed"], d["size"], progress), normalize, tokenizer)
    return train, val


def lm_tokenizer(lm) -> CaptionTokenizer:
    """The caption BPE saved beside the LM (else the zoo's), checked against the LM's vocabulary size."""
    tokenizer = CaptionTokenizer(vocab=lm.vocab_file) if lm.vocab_file else CaptionTokenizer()
    if tokenizer.vocab_size > lm.vocab_size:
        raise ConfigError(
            f"component {lm.name!r} ({lm.source}): {tokenizer.vocab_size} caption ids, the LM has only {lm.vocab_size}"
        )
    return tokenizer


def _optimizer(params, opt: dict, steps: int):
    """AdamW and its warm-up + cosine schedule, as a factor of each group's own ``lr``."""
    optimizer = torch.optim.AdamW(params, lr=opt["lr"], weight_decay=opt["weight_decay"], betas=(0.9, 0.98))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, 1.0, opt["warmup_steps"], steps, opt["min_lr_ratio"])
    )


def _loop(
    recipe: dict,
    params: list,
    loss_of,
    description: str,
    log=print,
    groups: list | None = None,
    progress: bool = True,
    out: Path | None = None,
) -> dict:
    """Run ``recipe['steps']`` optimisation steps of ``loss_of(step) -> loss``; returns losses and step times.

    ``groups``: AdamW parameter groups (each with its own ``lr``) covering ``params``; default one group at
    ``optimizer.lr``. ``out``: the run's folder, given a fresh ``log.jsonl`` (the trainers' run-folder log: step,
    mean loss since the last line, the first group's lr)."""
    steps, opt = recipe["steps"], recipe["optimizer"]
    optimizer, schedule = _optimizer(groups or params, opt, steps)
    if out is not None:
        make_folder(out)
        truncate_log(out, 0)
    times, cpu_times, losses = [], [], []
    bar = tqdm(range(steps), desc=description, file=sys.stderr, mininterval=1.0, disable=not progress)
    for step in bar:
        start, cpu_start = time.perf_counter(), time.process_time()
        lr = optimizer.param_groups[0]["lr"]
        loss = loss_of(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if opt["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(params, opt["grad_clip"])
        optimizer.step()
        schedule.step()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        losses.append(float(loss.detach()))
        if (step + 1) % recipe["log_every"] == 0 or step + 1 == steps:
            bar.set_postfix(loss=f"{np.mean(losses[-recipe['log_every'] :]):.4f}")
            log(f"step {step + 1}/{steps}: loss {np.mean(losses[-recipe['log_every'] :]):.4f}")
            if out is not None:
                append_log(out, {"step": step + 1, "loss": float(np.mean(losses[-recipe["log_every"] :])), "lr": lr})
    bar.close()
    skip = min(10, len(times) // 2)  # the first steps warm up allocators and caches

    def median_ms(values):
        return 1000 * float(np.median(values[skip:])) if values else None

    return {
        "final_loss": float(np.mean(losses[-recipe["log_every"] :])) if losses else None,
        "step_ms": median_ms(times),
        "step_cpu_ms": median_ms(cpu_times),
    }


def _parameter_groups(composition: Composition, opt: dict) -> list | None:
    """Glue at ``lr`` and trained components at ``component_lr``; None (one group) when it is not set."""
    if opt["component_lr"] is None or not composition.train_components:
        return None
    component_params = {id(p) for p in composition.components.parameters()}
    trainable = [p for p in composition.parameters() if p.requires_grad]
    return [
        {"params": [p for p in trainable if id(p) not in component_params], "lr": opt["lr"]},
        {"params": [p for p in trainable if id(p) in component_params], "lr": opt["component_lr"]},
    ]


def build_composition(recipe: dict) -> Composition:
    c = recipe["compose"]
    components = {name: build_component(name, spec) for name, spec in sorted(c["components"].items())}
    torch.manual_seed(recipe["seed"])
    return Composition(components, c["method"], c["settings"], c["train_components"], c["components"])


def own_metrics(composition: Composition, val: SceneTask) -> dict:
    """Each component's own task metric on the held-out scenes (see :mod:`.evaluate`)."""
    out = {}
    for name, component in composition.components.items():
        if component.kind == "lm":
            out[name] = lm_text_metrics(component, val)
        elif hasattr(component, "tokenizer"):
            out[name] = encoder_reconstruction(component, val.scenes.images)
    return out


def train_composition(recipe: dict, out: str | Path, log=print, progress: bool = True) -> dict:
    """Train the glue of a resolved glue recipe; write ``out/compose.json``, ``glue.safetensors``, ``metrics.json``."""
    if recipe["threads"]:
        torch.set_num_threads(int(recipe["threads"]))
    composition = build_composition(recipe)
    log(composition.describe_split())
    (image_key,) = [n for n in composition.components if n != composition.lm_name] or [None]
    encoder = composition.components[image_key] if image_key else None
    normalize = encoder.normalize if encoder is not None else (lambda x: torch.zeros(len(x), 1))
    train, val = _tasks(recipe, normalize, lm_tokenizer(composition.lm), progress)
    start = composition.encoder_start(image_key) if encoder is not None else 0
    if start:  # the frozen layers before the glue's first touch depend on the image alone: once per scene
        for task in (train, val):
            task.cache_encoder(encoder, start)
    before = own_metrics(composition, val)
    rng = np.random.default_rng(recipe["seed"])
    caption_fraction = recipe["data"]["caption_fraction"]
    params = [p for p in composition.parameters() if p.requires_grad]
    groups = _parameter_groups(composition, recipe["optimizer"])

    def loss_of(step: int) -> torch.Tensor:
        composition.train()
        batch = train.batch(train.sample(rng, recipe["batch_size"], caption_fraction))
        inputs = {
            composition.lm_name: batch["ids"],
            image_key: train.encoder_input(batch["images"], batch.get("frame_times")),
        }
        logits = composition(inputs, batch["prompt_len"], predicting(batch["loss_mask"]))
        return target_loss(logits, batch["ids"], batch["loss_mask"])[0]

    out = Path(out)
    run = (
        _loop(recipe, params, loss_of, f"compose {composition.method}", log, groups, progress, out)
        if params and recipe["steps"]
        else {"final_loss": None, "step_ms": None, "step_cpu_ms": None}
    )
    metrics = {
        "recipe": recipe["name"],
        "method": composition.method,
        "train_components": composition.train_components,
        "split": composition.split(),
        **run,
        "task": evaluate_task(composition, val, image_key, with_captions=caption_fraction > 0),
        "components_before": before,
        "components_after": own_metrics(composition, val),
        "components_unchanged": {
            n: composition.start_hashes[n] == c.content_hash() for n, c in composition.components.items()
        },
        "threads": torch.get_num_threads(),
    }
    composition.save(out, {"recipe": recipe})
    write_file(out, out / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    task = metrics["task"]
    captions = (
        f", caption BLEU-4 {task['caption_bleu4']:.3f}, exact {task['caption_exact']:.3f}" if task["n_captions"] else ""
    )
    log(
        f"held-out: answer accuracy {task['answer_accuracy']:.3f} (mean over types){captions}; "
        f"step {run['step_ms'] or 0:.1f} ms"
    )
    return metrics


def train_text_lm(recipe: dict, out: str | Path, log=print, progress: bool = True) -> dict:
    """Pretrain a small transformers LM from scratch on the training scenes' texts (prompt + target, all tokens).

    Writes a transformers folder (config.json + model.safetensors) at ``out`` and ``out/metrics.json``.
    """
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    from ..tokenizers.text import EOS, PAD

    if recipe["threads"]:
        torch.set_num_threads(int(recipe["threads"]))
    spec = recipe["compose"]["pretrain_lm"]
    out = make_folder(Path(out))
    d = recipe["data"]["scene_text"]
    scenes = scene_set(d["n_train"], d["seed"], d["size"], progress)
    texts = [CAPTION_PROMPT] + scenes.captions + [f"{q} {a}" for qa in scenes.qa for q, a in qa]
    write_file(out, out / VOCAB_NAME, train_vocab(texts, vocab_size=spec["vocab_size"]).to_str(pretty=True))
    tokenizer = CaptionTokenizer(length=spec["max_positions"], vocab=out / VOCAB_NAME)
    train, val = _tasks(recipe, lambda images: torch.zeros(len(images), 1), tokenizer, progress)
    vocab = tokenizer.vocab_size
    torch.manual_seed(recipe["seed"])
    if spec["arch"] == "gpt2":
        config = GPT2Config(
            vocab_size=vocab,
            n_embd=spec["hidden_size"],
            n_layer=spec["layers"],
            n_head=spec["heads"],
            n_positions=spec["max_positions"],
            resid_pdrop=spec["dropout"],
            embd_pdrop=spec["dropout"],
            attn_pdrop=spec["dropout"],
            bos_token_id=EOS,
            eos_token_id=EOS,
            pad_token_id=PAD,
        )
        model = GPT2LMHeadModel(config)
    elif spec["arch"] == "llama":
        config = LlamaConfig(
            vocab_size=vocab,
            hidden_size=spec["hidden_size"],
            intermediate_size=4 * spec["hidden_size"],
            num_hidden_layers=spec["layers"],
            num_attention_heads=spec["heads"],
            max_position_embeddings=spec["max_positions"],
            bos_token_id=EOS,
            eos_token_id=EOS,
            pad_token_id=PAD,
            tie_word_embeddings=True,
        )
        model = LlamaForCausalLM(config)
    else:
        raise ConfigError(f"compose.pretrain_lm: arch {spec['arch']!r} is not one of gpt2, llama")
    lm = CausalLM(model, name="lm", source=spec["arch"])
    log(f"text LM ({spec['arch']}): {lm.n_parameters():,} parameters, all trainable")
    rng = np.random.default_rng(recipe["seed"])

    def loss_of(step: int) -> torch.Tensor:
        lm.train()
        ids = train.batch(rng.choice(len(train.examples), recipe["batch_size"]))["ids"]
        real = ids != PAD
        real[:, 0] = False
        return target_loss(lm.logits(ids, predicting(real)), ids, real)[0]

    run = _loop(recipe, [p for p in model.parameters()], loss_of, "text LM", log, progress=progress, out=out)
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()  # transformers draws its own "Writing model shards" bar
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        with tempfile.TemporaryDirectory(prefix="tokzoo-lm-") as private:  # transformers opens its own paths
            model.save_pretrained(private, safe_serialization=True)
            copy_folder_into(out, private, out)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    metrics = {
        "recipe": recipe["name"],
        "parameters": lm.n_parameters(),
        **run,
        **lm_text_metrics(lm, val),
        "threads": torch.get_num_threads(),
    }
    write_file(out, out / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    log(
        f"held-out text: cross-entropy {metrics['text_cross_entropy']:.3f}, "
        f"token accuracy {metrics['text_token_accuracy']:.3f}"
    )
    return metrics


def run_recipe(recipe: dict, out: str | Path, log=print, progress: bool = True) -> dict:
    """Train what a resolved composition recipe describes (the text LM, the vision ViT or glue); ``progress``: bars
    on stderr."""
    if "pretrain_lm" in recipe["compose"]:
        return train_text_lm(recipe, out, log, progress)
    if "pretrain_vision" in recipe["compose"]:
        from .vision_pretrain import pretrain_vision

        if recipe["threads"]:
            torch.set_num_threads(int(recipe["threads"]))
        return pretrain_vision(recipe, out, _loop, log)
    return train_composition(recipe, out, log, progress)
