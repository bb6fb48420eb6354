"""End to end through ml-4m: a tokzoo token dataset exported with ``tokzoo export --to 4m`` (both layouts) is read by
ml-4m's own training data loader, and ml-4m's FourM model runs one training step on the batch.

    PYTHONPATH=/tmp/ml-4m:/tmp/ml4m-extra:scripts OMP_NUM_THREADS=1 python scripts/fourm_train_step.py [--work DIR]

Two datasets of the built-in scenes (rgb + depth, 3 crops):

- custom names: the zoo's shipped tokenizers at 64 px, exported as ``tok_rgb@64`` / ``tok_depth@64``; the export's
  ``fourm_modalities.py`` registers them with ml-4m;
- released names: 4M-format tokenizers (ViT, patch 16, built and saved by ml-4m at a reduced width with random
  weights, loaded by ``tokzoo tokenize -t depth=DIR``) at 224 px, exported as ``tok_rgb@224`` / ``tok_depth@224``,
  which ml-4m's stock ``MODALITY_INFO`` already holds (14 x 14 tokens).

``tokzoo tokenize``, ``tokzoo export --to 4m`` into the webdataset and the folder layout, then per layout: ml-4m's
``get_train_dataloader`` +
``build_mixture_dataloader`` (as run_training_4m.py's ``setup_data``), ``create_model('fm_tiny_6e_6d_gelu', ...)``
(as its ``get_model``), one forward / backward / AdamW step. Checks that every batch row is one crop of one
sample of the tokzoo dataset, and that the loss is finite and the step changes the weights. Prints a Markdown
table for benchmarks/RESULTS.md.

ml-4m's ``FM.forward`` calls ``random.sample`` on ``dict.items()``, which Python 3.11 refuses; the script gives
ml-4m's fm module a ``random`` whose ``sample`` takes a list of the items (same draw), without editing ml-4m.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from fourm_reference import fourm_commit, import_fourm

SCENARIOS = {
    "custom": (["tok_depth@64", "tok_rgb@64"], 64, 64),
    "released": (["tok_depth@224", "tok_rgb@224"], 224, 128),
}
"""name: (4M modalities, crop size, input and target token budget)."""


def tokzoo(*args: str) -> None:
    subprocess.run([str(Path(sys.executable).parent / "tokzoo"), *args], check=True, stdout=subprocess.DEVNULL)


def python311_random_sample(fm_module) -> None:
    """Let ``random.sample(d.items(), k)`` in ml-4m's fm.py run on Python >= 3.11 (population: a list)."""
    shim = types.ModuleType("random_for_fm")
    shim.__dict__.update(random.__dict__)
    shim.sample = lambda population, k, **kw: random.sample(list(population), k, **kw)
    fm_module.random = shim


def tokzoo_rows(root: Path, modalities: list[str]) -> dict[str, set[bytes]]:
    """Per modality: the bytes of every crop row (int64) of every sample of the tokzoo dataset."""
    from tokzoo.tokens.layout import read_npy_tar

    rows = {}
    for modality, name in zip(["depth", "rgb"], modalities):
        rows[name] = {
            crop.astype(np.int64).reshape(-1).tobytes()
            for tar in sorted((root / modality).glob("*.tar"))
            for _, tokens in read_npy_tar(tar)
            for crop in tokens
        }
    return rows


def fourm_tokenizers(work: Path) -> dict[str, Path]:
    """rgb and depth tokenizers in ml-4m's hub form (ViT-t enc/dec, patch 16, 224 px), built and saved by ml-4m."""
    from fourm.vq.vqvae import VQVAE
    from fourm_reference import perturb_, register_tiny_vits

    register_tiny_vits()
    folders = {}
    for seed, (modality, channels, codes) in enumerate([("depth", 1, 8192), ("rgb", 3, 16384)]):
        config = dict(
            enc_type="vit_t_enc",
            dec_type="vit_t_dec",
            quant_type="lucid",
            codebook_size=codes,
            latent_dim=32,
            norm_codes=True,
            post_mlp=True,
            patch_proj=True,
            sync_codebook=False,
            image_size=224,
            patch_size=16,
            n_channels=channels,
        )
        torch.manual_seed(seed)
        model = VQVAE(**config).eval()
        perturb_(model, seed, scale=0.3)
        folders[modality] = work / f"4M_tokenizers_{modality}_tiny224"
        model.save_pretrained(folders[modality], config=config)
    return folders


def run_layout(
    layout: str,
    export: Path,
    rows: dict[str, set[bytes]],
    text_tokenizer,
    seed: int,
    modalities: list[str],
    size: int,
    budget: int,
) -> dict:
    from fourm.data import build_mixture_dataloader, get_train_dataloader, setup_sampling_mod_info
    from fourm.data.modality_info import MODALITY_INFO
    from fourm.models import fm
    from fourm.utils import create_model

    info = json.loads((export / "fourm_modalities.json").read_text())
    torch.manual_seed(seed), np.random.seed(seed), random.seed(seed)
    modality_info = {m: dict(MODALITY_INFO[m]) for m in modalities}
    for m in modality_info:  # run_training_4m.setup_modality_info
        modality_info[m]["max_tokens"] = (modality_info[m]["input_size"] // modality_info[m]["patch_size"]) ** 2
    dataset_config = {
        "type": "multimodal",
        "in_domains": "-".join(modalities),
        "out_domains": "-".join(modalities),
        "input_alphas": "1.0",
        "target_alphas": "1.0",
        "main_augment_domain": modalities[1],
        "tok_train_aug": True,
        "use_wds": layout == "webdataset",
        "data_path": str(export / info["data_path"]) if layout == "webdataset" else str(export),
        "wds_n_repeats": 1,
        "wds_shuffle_buffer_tar": 16,
        "wds_shuffle_buffer_repeat": 16,
    }
    mod_info, sampling_weights = setup_sampling_mod_info(dataset_config, modality_info)
    loader = get_train_dataloader(
        dataset_config=dataset_config,
        modality_info=mod_info,
        sampling_weights=sampling_weights,
        text_tokenizer=text_tokenizer,
        input_size=size,
        num_input_tokens=budget,
        num_target_tokens=budget,
        min_input_tokens=None,
        min_target_tokens=None,
        num_tasks=1,
        num_workers=0,
    )
    batches = build_mixture_dataloader(
        data_iters=[loader],
        weights=[1.0],
        modality_info=modality_info,
        batch_size=4,
        num_workers=1,
        epoch_size=8,
        num_gpus=1,
    )
    batch = next(iter(batches))
    read_ok = all(row.numpy().astype(np.int64).tobytes() in rows[m] for m in modalities for row in batch[m]["tensor"])

    encoder = {
        m: modality_info[m]["encoder_embedding"](
            patch_size=modality_info[m]["patch_size"], image_size=modality_info[m]["input_size"]
        )
        for m in modalities
    }
    decoder = {
        m: modality_info[m]["decoder_embedding"](
            patch_size=modality_info[m]["patch_size"], image_size=modality_info[m]["input_size"]
        )
        for m in modalities
    }
    python311_random_sample(fm)
    model = create_model(
        "fm_tiny_6e_6d_gelu",
        encoder_embeddings=encoder,
        decoder_embeddings=decoder,
        modality_info=modality_info,
        num_register_tokens=0,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    before = [p.detach().clone() for p in model.parameters()]
    mod_dict = {m: {k: v for k, v in batch[m].items()} for m in modalities}
    start = time.perf_counter()
    loss, mod_loss = model(mod_dict, num_encoder_tokens=budget, num_decoder_tokens=budget, loss_type="mod")
    loss.backward()
    optimizer.step()
    seconds = time.perf_counter() - start
    changed = sum(not torch.equal(a, p.detach()) for a, p in zip(before, model.parameters()))
    return {
        "names": ", ".join(modalities),
        "layout": layout,
        "batch": tuple(batch[modalities[0]]["tensor"].shape),
        "rows_from_tokzoo": read_ok,
        "loss": float(loss),
        "mod_loss": {k: round(float(v), 3) for k, v in mod_loss.items()},
        "params_changed": f"{changed}/{len(before)}",
        "step_s": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/tokzoo-fourm-e2e"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.work.exists():
        shutil.rmtree(args.work)
    import_fourm()
    import fourm
    from tokenizers import Tokenizer

    text_tokenizer = Tokenizer.from_file(
        str(Path(list(fourm.__path__)[0]) / "utils/tokenizer/trained/text_tokenizer_4m_wordpiece_30k.json")
    )
    results = []
    for scenario, (modalities, size, budget) in SCENARIOS.items():
        work = args.work / scenario
        tokens = work / "tokens"
        options = [
            "-m",
            "depth,rgb",
            "--scenes",
            "12",
            "--scene-size",
            str(size + 32),
            "--size",
            str(size),
            "--crops",
            "3",
            "--samples-per-shard",
            "5",
            "--workers",
            "0",
            "--no-progress",
            "-o",
            str(tokens),
        ]
        names = []
        if scenario == "released":
            folders = fourm_tokenizers(work)
            options += ["-t", f"depth={folders['depth']}", "-t", f"rgb={folders['rgb']}"]
            names = ["-n", f"depth={modalities[0]}", "-n", f"rgb={modalities[1]}"]
        tokzoo("tokenize", *options)
        for layout in ("webdataset", "folder"):
            tokzoo("export", "--to", "4m", str(tokens), str(work / layout), "--layout", layout, "--no-progress", *names)
        if scenario == "custom":  # registers tok_rgb@64, tok_depth@64 with ml-4m; released names need nothing
            spec = importlib.util.spec_from_file_location(
                "fourm_modalities", work / "webdataset" / "fourm_modalities.py"
            )
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        rows = tokzoo_rows(tokens, modalities)
        results += [
            run_layout(layout, work / layout, rows, text_tokenizer, seed, modalities, size, budget)
            for seed, layout in enumerate(("webdataset", "folder"))
        ]
    print(f"ml-4m commit {fourm_commit()}, torch {torch.__version__}, Python {sys.version.split()[0]}")
    print(
        "| modalities | layout | batch (B, tokens) | rows are tokzoo crops | loss | per-modality loss | params changed "
        "| step s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['names']} | {r['layout']} | {r['batch']} | {r['rows_from_tokzoo']} | {r['loss']:.3f} | {r['mod_loss']} | "
            f"{r['params_changed']} | {r['step_s']} |"
        )
    if not all(r["rows_from_tokzoo"] and np.isfinite(r["loss"]) for r in results):
        raise SystemExit("FAILED")


if __name__ == "__main__":
    main()
