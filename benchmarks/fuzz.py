"""Seeded mutation fuzzer over every public reader: only tokzoo's typed errors may escape.

Valid PNG (8-bit colour, 16-bit depth), JPEG, NPY (depth, token ids, crops), JSON (pose, metadata, camera),
tar (a webdataset sample, gzipped too), token shard, safetensors, tokenizer config.json and WAV bytes are mutated
(bit flips, random / boundary bytes and integers, inserts, deletions, duplicated ranges, truncation, splices)
and handed to the readers that take them (tokzoo.io.read_modality, load_npy, TarReader, walk_tar,
tokzoo.tokens.open_shard, the pipeline's read_npy_tar, checkpoint.read_state_dict, load_tokenizer). A case passes
when it returns or raises a TokzooError; anything else (MemoryError included) is recorded with its traceback.
Each case runs under a SIGALRM timeout; the whole run under RLIMIT_AS when ``--memory-gb`` is given.

The newer entry points (``--kinds newer``, issue 25): a tiny fm run folder (config.json, model.safetensors,
optimizer.safetensors, trainer_state.json) through tokzoo.fm.checkpoint.load_model / load_optimizer / read_state,
fm and composition YAML recipes through their readers, a tiny GPT-2 component folder (config.json,
model.safetensors) through CausalLM.from_pretrained, and ml-4m tokenizer folders (an MLP and a ViT one, config.json
and model.safetensors) through load_tokenizer. JSON and YAML seeds are also mutated structurally: one value
replaced by a boundary number (10^k, -1, 0, NaN, inf, 5,000 digits), text, a list or deep nesting.

    python benchmarks/fuzz.py --cases 10000 --seed 0 --memory-gb 6 [--kinds newer] [--write-results]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import resource
import signal
import sys
import tarfile
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CASE_TIMEOUT_S = 20


class CaseTimeout(Exception):
    pass


def seeds() -> dict[str, bytes]:
    """Valid inputs, one per format (small, so a mutation is likely to hit a header)."""
    import torch
    from PIL import Image
    from safetensors.torch import save

    from tokzoo.tokens.tars import npy_bytes, tar_bytes

    rng = np.random.default_rng(0)

    def image(array, fmt, **options):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, fmt, **options)
        return buffer.getvalue()

    rgb = rng.integers(0, 255, (16, 16, 3), np.uint8)
    pose = {
        "skeleton": "coco17",
        "width": 16,
        "height": 16,
        "humans": [{"keypoints_2d": [[3.0, 4.0, 2]] * 17, "box": [1, 1, 10, 10]}],
    }
    sample = io.BytesIO()
    with tarfile.open(fileobj=sample, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (
            ("s0.rgb.png", image(rgb, "PNG")),
            ("s0.depth.npy", npy_bytes(np.ones((8, 8), np.float32))),
            ("s1.rgb.png", image(rgb[::-1].copy(), "PNG")),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    config = json.loads((ROOT / "tokzoo" / "tokenizers" / "weights" / "depth" / "config.json").read_text())
    return {
        "png": image(rgb, "PNG"),
        "png16": image(rng.integers(1, 60000, (16, 16)).astype(np.uint16), "PNG"),
        "jpeg": image(rgb, "JPEG", quality=90),
        "npy_depth": npy_bytes(np.full((8, 8), 2.0, np.float32)),
        "npy_ids": npy_bytes(np.arange(16, dtype=np.uint8).reshape(2, 8)),
        "npy_crops": npy_bytes(np.array([[0, 0, 8, 8, 0]], np.int32)),
        "json_pose": json.dumps(pose).encode(),
        "json_metadata": b'{"original_width": 64, "brightness": 0.5}',
        "json_camera": json.dumps(
            {"fx": 10, "fy": 10, "cx": 8, "cy": 8, "width": 16, "height": 16, "cam_to_world": np.eye(4).tolist()}
        ).encode(),
        "tar": sample.getvalue(),
        "tar_gz": gzip.compress(sample.getvalue(), mtime=0),
        "token_shard": tar_bytes([(f"k{i}", npy_bytes(np.full((2, 4), i, np.uint8))) for i in range(3)]),
        "safetensors": save({"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.zeros(2)}),
        "config": json.dumps(config).encode(),
        "wav": _wav(rng.uniform(-0.5, 0.5, 800).astype(np.float32)),
    }


NEWER = (
    "fm_config",
    "fm_weights",
    "fm_optimizer",
    "fm_state",
    "fm_recipe",
    "compose_recipe",
    "lm_config",
    "lm_weights",
    "fourm_mlp_config",
    "fourm_vit_config",
    "fourm_weights",
)
"""Seeds of the newer entry points (issue 25); ``--kinds newer`` fuzzes only these."""
STRUCTURED = (
    "fm_config",
    "fm_state",
    "fm_recipe",
    "compose_recipe",
    "lm_config",
    "fourm_mlp_config",
    "fourm_vit_config",
    "config",
    "json_pose",
    "json_metadata",
    "json_camera",
)
"""JSON / YAML seeds that also get structural mutations (a value replaced)."""
FOURM = ROOT / "tests" / "fixtures" / "fourm"


def newer_seeds(folder: Path) -> dict[str, bytes]:
    """A tiny fm run, fm / composition recipes, a tiny GPT-2 folder and two ml-4m folders, as bytes per file; the
    folders themselves are written under ``folder`` (``fm_run``, ``lm``) as the readers' valid siblings."""
    import torch
    import yaml
    from transformers import GPT2Config, GPT2LMHeadModel

    from tokzoo.fm.checkpoint import save_checkpoint
    from tokzoo.fm.model import FourM, model_config
    from tokzoo.fm.recipe import TrainConfig
    from tokzoo.fm.train import make_optimizer
    from tokzoo.tokens.spec import ModalitySpec

    torch.manual_seed(0)
    specs = [ModalitySpec("rgb", "image", 16, (2, 2)), ModalitySpec("depth", "image", 8, (2, 2))]
    model = FourM(specs, model_config("fm-tiny", dim=16, heads=2))
    optimizer = make_optimizer(model, TrainConfig(steps=1, batch_size=1))
    sum(p.sum() for p in model.parameters()).backward()
    optimizer.step()
    recipe = {
        "data": {"modalities": ["rgb", "depth"]},
        "model": {"preset": "fm-tiny", "dim": 16},
        "masking": {
            "input_tokens": 4,
            "target_tokens": 4,
            "mixture": [{"name": "all", "input_alpha": 0.5, "target_alpha": 0.5}],
        },
        "train": {"steps": 2, "batch_size": 2, "lr": 1.0e-3},
    }
    run = save_checkpoint(folder / "fm_run", model, recipe, optimizer, {"step": 1, "position": {"consumed": [4]}})
    GPT2LMHeadModel(
        GPT2Config(vocab_size=64, n_embd=16, n_layer=1, n_head=2, n_positions=16, bos_token_id=1, eos_token_id=1)
    ).save_pretrained(folder / "lm", safe_serialization=True)
    compose = {
        "steps": 1,
        "compose": {
            "method": "gats",
            "components": {"lm": {"causal_lm": "lm"}},
            "settings": {"layers": [{"lm": 1}], "dim": 16},
        },
        "data": {"scene_text": {"n_train": 8, "n_val": 2}},
    }
    mlp, vit = FOURM / "4M_tokenizers_DINOv2-B14-global_tiny", FOURM / "4M_tokenizers_rgb_tiny"
    return {
        "fm_config": (run / "config.json").read_bytes(),
        "fm_weights": (run / "model.safetensors").read_bytes(),
        "fm_optimizer": (run / "optimizer.safetensors").read_bytes(),
        "fm_state": (run / "trainer_state.json").read_bytes(),
        "fm_recipe": yaml.safe_dump(recipe).encode(),
        "compose_recipe": yaml.safe_dump(compose).encode(),
        "lm_config": (folder / "lm" / "config.json").read_bytes(),
        "lm_weights": (folder / "lm" / "model.safetensors").read_bytes(),
        "fourm_mlp_config": (mlp / "config.json").read_bytes(),
        "fourm_vit_config": (vit / "config.json").read_bytes(),
        "fourm_weights": (vit / "model.safetensors").read_bytes(),
    }


HOSTILE_VALUES = (
    0,
    -1,
    1,
    2**31,
    2**63,
    10**9,
    10**12,
    10**30,
    float("nan"),
    float("inf"),
    -float("inf"),
    1e308,
    0.5,
    True,
    None,
    "x",
    "",
    [],
    {},
    [1, 2],
    {"a": 1},
    "9" * 5000,
)


def mutate_structure(data: bytes, rng: random.Random, yaml_text: bool) -> bytes:
    """One value of a JSON / YAML document replaced by a hostile one (numbers, types, 5,000 digits, deep nesting)."""
    import yaml

    try:
        doc = yaml.safe_load(data) if yaml_text else json.loads(data)
    except Exception:  # noqa: BLE001 - a seed that is no document: leave it to the byte mutations
        return data
    slots = []

    def walk(node):
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            slots.append((node, key))
            walk(value)

    walk(doc)
    if not slots:
        return data
    node, key = rng.choice(slots)
    if rng.random() < 0.05:
        text = json.dumps(doc).replace(json.dumps(node[key]), '{"a": ' * 20000 + "1" + "}" * 20000, 1)
        return text.encode()
    value = rng.choice(HOSTILE_VALUES)
    node[key] = value
    if isinstance(value, str) and len(value) == 5000:  # a 5,000-digit integer as the file spells it
        return json.dumps(doc).replace('"' + value + '"', value).encode()
    return (yaml.safe_dump(doc) if yaml_text else json.dumps(doc)).encode()


def _wav(wave: np.ndarray) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, wave, 8000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def mutate(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """One to four random mutations of ``data``."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(9)
        at = rng.randrange(len(out)) if out else 0
        if kind == 0 and out:  # bit flip
            out[at] ^= 1 << rng.randrange(8)
        elif kind == 1 and out:  # random or boundary byte
            out[at] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        elif kind == 2:  # boundary integer, 4 or 8 bytes, either endianness
            width = rng.choice([4, 8])
            value = rng.choice([0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1, 2**64 - 1, rng.getrandbits(width * 8)])
            out[at : at + width] = (value % 2 ** (width * 8)).to_bytes(width, rng.choice(["little", "big"]))
        elif kind == 3:  # ASCII digits (octal tar fields, JSON numbers, npy shapes)
            out[at : at + rng.randint(1, 12)] = str(rng.choice([0, -1, 7, 10 ** rng.randint(1, 30)])).encode()
        elif kind == 4:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        elif kind == 5 and out:
            del out[at : at + rng.randint(1, 256)]
        elif kind == 6 and out:  # duplicate a range
            end = min(len(out), at + rng.randint(1, 1024))
            out[at:at] = out[at:end]
        elif kind == 7:
            del out[rng.randrange(len(out) + 1) :]
        elif kind == 8:  # splice with another seed
            other = rng.choice(others)
            cut = rng.randrange(len(other) + 1)
            out[at:] = other[cut:]
    return bytes(out)


def readers(kind: str, data: bytes, scratch: Path):
    """The public readers ``kind`` goes through; each call returns or raises."""
    from tokzoo.io import TarReader, read_modality
    from tokzoo.io.safety import load_json, load_npy
    from tokzoo.io.tarwalk import walk_tar
    from tokzoo.tokenizers.checkpoint import read_state_dict
    from tokzoo.tokenizers.zoo import load_tokenizer
    from tokzoo.tokens import open_shard
    from tokzoo.tokens.layout import read_npy_tar

    def as_file(name: str) -> Path:
        path = scratch / name
        path.write_bytes(data)
        return path

    if kind in ("png", "png16", "jpeg"):
        ext = ".jpg" if kind == "jpeg" else ".png"
        yield "read_modality(rgb)", lambda: read_modality("rgb", f"x{ext}", data)
        yield "read_modality(depth)", lambda: read_modality("depth", "x.png", data) if ext == ".png" else None
        yield "read_modality(semseg)", lambda: read_modality("semseg", "x.png", data) if ext == ".png" else None
        yield "read_modality(normals)", lambda: read_modality("normals", "x.png", data) if ext == ".png" else None
    elif kind.startswith("npy"):
        yield "load_npy", lambda: load_npy(data, "x.npy")
        yield "read_modality(depth)", lambda: read_modality("depth", "x.npy", data)
        yield "read_modality(crops)", lambda: read_modality("crops", "x.npy", data)
        yield "read_modality(edges)", lambda: read_modality("edges", "x.npy", data)
    elif kind.startswith("json"):
        yield "load_json", lambda: load_json(data, "x.json")
        for modality in ("pose", "metadata", "camera", "palette", "boxes"):
            yield f"read_modality({modality})", lambda m=modality: read_modality(m, "x.json", data)
        yield "read_modality(captions)", lambda: read_modality("captions", "x.txt", data)  # mutated text
    elif kind in ("tar", "tar_gz"):
        path = as_file("x.tar")
        yield (
            "TarReader",
            lambda: (len(TarReader(str(path))), [s.errors for s in TarReader(str(path), ["rgb", "depth"])]),
        )
        yield "walk_tar", lambda: [read() for member, read in walk_tar(path, 1 << 20) if member.size < 1 << 20]
    elif kind == "token_shard":
        path = as_file("shard-000000.tar")
        yield "open_shard", lambda: _gather_all(open_shard(path))
        yield "read_npy_tar", lambda: list(read_npy_tar(path))
    elif kind == "wav":
        yield "read_modality(audio)", lambda: read_modality("audio", "x.wav", data)
    elif kind == "safetensors":
        path = as_file("w.safetensors")
        yield "read_state_dict", lambda: read_state_dict(path)
    elif kind in NEWER:
        yield from newer_readers(kind, data, scratch)
    elif kind == "config":
        folder = scratch / "tok"
        folder.mkdir(exist_ok=True)
        (folder / "config.json").write_bytes(data)
        weights = ROOT / "tokzoo" / "tokenizers" / "weights" / "depth" / "model.safetensors"
        if not (folder / "model.safetensors").exists():
            (folder / "model.safetensors").symlink_to(weights)
        yield "load_tokenizer", lambda: load_tokenizer(folder)


def newer_readers(kind: str, data: bytes, scratch: Path):
    """The readers of the newer entry points: ``data`` replaces one file of a valid folder (a fresh copy)."""
    import shutil

    from tokzoo.compose.language import CausalLM
    from tokzoo.compose.recipe import read_recipe
    from tokzoo.fm.checkpoint import load_model, read_state
    from tokzoo.fm.recipe import TrainConfig, load_recipe
    from tokzoo.fm.train import make_optimizer
    from tokzoo.runs.run_folder import load_optimizer
    from tokzoo.tokenizers.zoo import load_tokenizer

    seeds_dir = scratch.parent / "seeds"

    def folder_with(source: Path, name: str, target: str) -> Path:
        folder = scratch / target
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(source, folder)
        (folder / name).write_bytes(data)
        return folder

    if kind.startswith("fm_") and kind != "fm_recipe":
        name = {
            "fm_config": "config.json",
            "fm_weights": "model.safetensors",
            "fm_optimizer": "optimizer.safetensors",
            "fm_state": "trainer_state.json",
        }[kind]
        run = folder_with(seeds_dir / "fm_run", name, "fm_run")
        if kind == "fm_state":
            yield "fm read_state", lambda: read_state(run)
        elif kind == "fm_optimizer":

            def restore():
                model = load_model(run)
                load_optimizer(run, model, make_optimizer(model, TrainConfig(steps=1, batch_size=1)))

            yield "fm load_optimizer", restore
        else:
            yield "fm load_model", lambda: load_model(run)
    elif kind in ("fm_recipe", "compose_recipe"):
        path = scratch / "recipe.yaml"
        path.write_bytes(data)
        yield (
            ("fm load_recipe", lambda: load_recipe(path))
            if kind == "fm_recipe"
            else ("compose read_recipe", lambda: read_recipe(path))
        )
    elif kind.startswith("lm_"):
        folder = folder_with(seeds_dir / "lm", "config.json" if kind == "lm_config" else "model.safetensors", "lm")
        yield "CausalLM.from_pretrained", lambda: CausalLM.from_pretrained(folder)
    else:
        source = FOURM / (
            "4M_tokenizers_DINOv2-B14-global_tiny" if kind == "fourm_mlp_config" else "4M_tokenizers_rgb_tiny"
        )
        folder = folder_with(source, "config.json" if kind.endswith("config") else "model.safetensors", source.name)
        (folder / "reference.safetensors").unlink()
        yield "load_tokenizer(ml-4m)", lambda: load_tokenizer(str(folder))


def _gather_all(shard) -> None:
    if len(shard):
        index = np.arange(len(shard))
        shard.gather(index, np.zeros(len(shard), np.int64))


def run(cases: int, seed: int, kinds: str = "all") -> dict:
    """Fuzz ``cases`` cases; returns counts by outcome, the untyped failures, the slowest case and peak RSS.
    ``kinds``: "all", "readers" (issue 10's seeds), "newer" (issue 25's) or comma-separated seed names."""
    from tokzoo.errors import TokzooError

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "seeds").mkdir()
        valid = {**seeds(), **newer_seeds(Path(tmp) / "seeds")}
        groups = {"all": sorted(valid), "newer": sorted(NEWER), "readers": sorted(set(valid) - set(NEWER))}
        chosen = groups.get(kinds) or sorted(kinds.split(","))
        result = _run(cases, seed, {k: valid[k] for k in chosen}, list(valid.values()), Path(tmp), TokzooError)
        return {**result, "group": kinds}


def _run(cases: int, seed: int, valid: dict, others: list, tmp: Path, TokzooError) -> dict:
    kinds = sorted(valid)
    rng = random.Random(seed)
    outcomes, failures, slowest, calls = Counter(), [], (0.0, ""), Counter()
    signal.signal(signal.SIGALRM, _alarm)
    warm = tmp / "warm"
    warm.mkdir()
    for kind in kinds:  # unmutated seeds: some reader takes each (and imports are paid here, not in a case)
        accepted = 0
        for name, call in readers(kind, valid[kind], warm):
            try:
                call()
                accepted += 1
            except TokzooError:  # e.g. metadata JSON read as a pose
                pass
        assert accepted, f"no reader takes the unmutated {kind} seed"
    for case in range(cases):
        kind = kinds[case % len(kinds)]
        if kind in STRUCTURED and rng.random() < 0.5:
            data = mutate_structure(valid[kind], rng, yaml_text=kind.endswith("recipe"))
        else:
            data = mutate(valid[kind], rng, others)
        scratch = tmp / f"c{case % 4}"
        scratch.mkdir(exist_ok=True)
        for name, call in readers(kind, data, scratch):
            start = time.perf_counter()
            calls[kind] += 1
            signal.alarm(CASE_TIMEOUT_S)
            try:
                call()
                outcomes["ok"] += 1
            except TokzooError as error:
                outcomes[type(error).__name__] += 1
            except BaseException as error:  # noqa: BLE001 - the point: record what escapes
                if isinstance(error, KeyboardInterrupt):
                    raise
                outcomes[f"UNTYPED {type(error).__name__}"] += 1
                failures.append(
                    {
                        "case": case,
                        "kind": kind,
                        "reader": name,
                        "error": type(error).__name__,
                        "message": str(error)[:300],
                        "traceback": traceback.format_exc()[-2000:],
                        "data_hex": data[:4096].hex(),
                    }
                )
            finally:
                signal.alarm(0)
            elapsed = time.perf_counter() - start
            if elapsed > slowest[0]:
                slowest = (elapsed, f"case {case} ({kind} -> {name})")
    return {
        "cases": cases,
        "seed": seed,
        "kinds": dict(sorted(calls.items())),
        "calls": sum(outcomes.values()),
        "outcomes": dict(outcomes.most_common()),
        "untyped": len(failures),
        "failures": failures,
        "slowest_s": round(slowest[0], 3),
        "slowest": slowest[1],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _alarm(signum, frame):
    raise CaseTimeout(f"case ran over {CASE_TIMEOUT_S} s")


def _markdown(result: dict, seconds: float, command: str) -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    rows = "\n".join(f"| {name} | {count} |" for name, count in result["outcomes"].items())
    kinds = ", ".join(f"{kind} {count}" for kind, count in result["kinds"].items())
    group = {"newer": " of the newer entry points (issue 25)", "readers": " of the readers"}.get(
        result.get("group"), ""
    )
    return (
        f"\n### {time.strftime('%Y-%m-%d')}: {result['cases']} cases{group}, seed {result['seed']}\n\n"
        f"Reader calls per seed: {kinds}.\n\n"
        f"Machine: {os.cpu_count()} CPUs shared with other jobs, load average {load}; CPU only (no GPU involved). "
        f"Command: `{command}`. {seconds:.0f} s.\n\n"
        f"| outcome of a reader call | count |\n|---|---|\n{rows}\n\n"
        f"Reader calls: {result['calls']}; untyped exceptions: **{result['untyped']}**; slowest call "
        f"{result['slowest_s']} s ({result['slowest']}); peak RSS {result['peak_rss_mb']} MB.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-gb", type=float, default=None, help="RLIMIT_AS for this process")
    parser.add_argument(
        "--kinds",
        default="all",
        help="all, readers (issue 10's seeds), newer (issue 25's) or comma-separated seed names",
    )
    parser.add_argument("--json", type=Path, help="write the full result (failures with tracebacks) here")
    parser.add_argument("--write-results", action="store_true", help="append a dated entry to benchmarks/RESULTS.md")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    if args.memory_gb:
        limit = int(args.memory_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    start = time.perf_counter()
    result = run(args.cases, args.seed, args.kinds)
    seconds = time.perf_counter() - start
    summary = {k: v for k, v in result.items() if k != "failures"}
    print(json.dumps(summary, indent=2))
    for failure in result["failures"][:10]:
        print(
            f"UNTYPED case {failure['case']} {failure['kind']} -> {failure['reader']}: {failure['error']}: "
            f"{failure['message']}",
            file=sys.stderr,
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.write_results:
        command = "python benchmarks/fuzz.py " + " ".join(sys.argv[1:])
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from results_md import append_to_section

        append_to_section(
            ROOT / "benchmarks" / "RESULTS.md",
            "## Fuzzing the readers (issue 10)",
            _markdown(result, seconds, command).strip("\n"),
        )  # entries newest last
    sys.exit(1 if result["untyped"] else 0)


if __name__ == "__main__":
    main()
