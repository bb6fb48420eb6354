"""Pretrain a small ``transformers`` ViT on procedural scenes, so that a frozen vision component knows the scene.

The ViT (a real class token; e.g. 64 px, patch 8, width 128, 4 blocks) is trained from scratch on a scene
stream of its own (``data.scenes: {n, seed}``, disjoint from the glue's training and held-out streams) with
heads that are thrown away afterwards:

- per patch (from the final patch tokens): the semantic classes (the share of each of the 10 ``semseg`` classes
  among the patch's pixels, a soft cross-entropy target, so that a person's thin limbs count where they are not
  the majority; scored by the majority class), the colour name of the instance covering most of the patch (``none`` for background
  and people, else :data:`tokzoo.datasets.scene_text.COLOR_NAMES`) and the mean log-depth (sky: 30 m);
- from the class token: multi-label "present" over the visible things' classes and colours, (softmax) the number
  of visible things of each class (0 .. ``MAX_COUNT``, more counted as ``MAX_COUNT``), the class of the nearest
  thing and the colour of the nearest object (``none`` when there is none);
- with ``attributes: true``, also from the class token, for each object class (sphere, box, cylinder) that the
  scene shows exactly once: its side (left / right of the centre column, as ``scene_text`` decides it) and its
  colour name; ``none`` for a class shown zero or several times;
- with ``pixel_semantic: true``, also per patch: the semantic class of each of its ``patch`` x ``patch`` pixels (a
  linear head to ``patch**2 * 10`` logits; the exact outline of a person inside a patch, where the shares only say
  how much of the patch it covers).

Training images are mirrored left-right with probability 1/2 (the per-patch targets and the sides with them; the
other class-token targets do not change under a mirror). ``person_weight`` multiplies the loss of the ``human`` class in the
per-patch (and per-pixel) semantic head and of the person label of the "present" head (people are a small share of the pixels);
``init``: a folder this module wrote, whose ViT and heads training goes on from (a ViT folder without heads, such
as the shipped scene ViT ``tokzoo/labelers/weights/scene_vit``, gets new heads).

Output: a transformers ViT folder (``config.json`` + ``model.safetensors`` + ``preprocessor_config.json``) that
``{vision_model: DIR}`` loads, the heads in ``heads.safetensors`` and ``metrics.json`` (held-out head accuracies).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save as save_tensors
from torch import nn
from tqdm import tqdm

from ..datasets.scene_text import COLOR_NAMES, PERSON, colour_name, visible_things
from ..datasets.scenes import SCENE_CLASSES, generate_scene
from ..errors import ConfigError
from ..io.writes import copy_folder_into, make_folder, write_file
from .vision import VisionTransformer

THING_CLASSES = ("sphere", "box", "cylinder", PERSON)  # what scene_text names the visible things
PERSON_LABEL = THING_CLASSES.index(PERSON)
OBJECT_CLASSES = tuple(c for c in THING_CLASSES if c != PERSON)  # the classes with a side and a colour
SIDES = ("none", "left", "right")
ATTRIBUTE_HEADS = ("colour_of", "side")  # the heads that ``attributes: true`` adds
OPTIONAL_HEADS = ATTRIBUTE_HEADS + ("pixel_semantic",)  # heads a run may add to an earlier folder's
COLOURS = ("none",) + COLOR_NAMES
SKY_DEPTH = 30.0  # metres, the depth target of sky pixels
MAX_COUNT = 4  # the counts head's classes: 0 .. MAX_COUNT things of a class (MAX_COUNT: that many or more)


def _patch_counts(labels: np.ndarray, patch: int, n_classes: int) -> np.ndarray:
    """Pixels of each label in each patch x patch cell of an int (H, W) map -> int (H / patch * W / patch, n_classes)."""
    h, w = labels.shape
    onehot = np.eye(n_classes, dtype=np.int32)[labels].reshape(h // patch, patch, w // patch, patch, n_classes)
    return onehot.sum(axis=(1, 3)).reshape(-1, n_classes)


def _patch_mode(labels: np.ndarray, patch: int, n_classes: int) -> np.ndarray:
    """Majority label of each patch x patch cell of an int (H, W) map -> (H / patch * W / patch,), row-major."""
    return _patch_counts(labels, patch, n_classes).argmax(-1)


def scene_targets(sample: dict, patch: int) -> dict:
    """The pretraining targets of one rendered scene (see the module docstring); numpy arrays."""
    instances, rgb = sample["sam_instances"], sample["rgb"]
    colour_map = np.zeros(instances.shape, np.int64)
    semseg = sample["semseg"]
    for instance in np.unique(instances):
        if instance == 0:
            continue
        mask = instances == instance
        if SCENE_CLASSES[int(np.bincount(semseg[mask]).argmax())] != "human":
            colour_map[mask] = COLOURS.index(colour_name(rgb[mask].reshape(-1, 3).mean(axis=0)))
    depth = np.nan_to_num(sample["depth"], nan=SKY_DEPTH).clip(0.1, SKY_DEPTH)
    h, w = depth.shape
    log_depth = np.log(depth).reshape(h // patch, patch, w // patch, patch).mean(axis=(1, 3)).reshape(-1)
    things = visible_things(sample)
    present = np.zeros(len(THING_CLASSES) + len(COLOR_NAMES), np.float32)
    counts = np.zeros(len(THING_CLASSES), np.int64)
    for t in things:
        present[THING_CLASSES.index(t["cls"])] = 1
        counts[THING_CLASSES.index(t["cls"])] += 1
        if t["colour"] is not None:
            present[len(THING_CLASSES) + COLOR_NAMES.index(t["colour"])] = 1
    objects = [t for t in things if t["cls"] != PERSON]
    nearest = min(things, key=lambda t: t["depth"])["cls"] if things else None
    nearest_colour = min(objects, key=lambda t: t["depth"])["colour"] if objects else "none"
    shares = _patch_counts(semseg.astype(np.int64), patch, len(SCENE_CLASSES)) / patch**2
    centre = (w - 1) / 2
    offset = np.full(len(OBJECT_CLASSES), np.nan, np.float32)  # (x - centre) / centre of a class shown once
    colour_of = np.zeros(len(OBJECT_CLASSES), np.int64)
    for i, name in enumerate(OBJECT_CLASSES):
        once = [t for t in objects if t["cls"] == name]
        if len(once) == 1:
            offset[i] = (once[0]["x"] - centre) / centre
            colour_of[i] = COLOURS.index(once[0]["colour"])
    pixels = semseg.astype(np.uint8).reshape(h // patch, patch, w // patch, patch).transpose(0, 2, 1, 3)
    return {"semantic": shares.astype(np.float32), "semantic_pixels": pixels.reshape(-1, patch * patch),
            "colour": _patch_mode(colour_map, patch, len(COLOURS)), "log_depth": log_depth.astype(np.float32),
            "present": present, "counts": counts.clip(max=MAX_COUNT), "nearest": np.int64(THING_CLASSES.index(nearest) + 1 if nearest else 0),
            "nearest_colour": np.int64(COLOURS.index(nearest_colour)), "centre_offset": offset, "colour_of": colour_of}  # fmt: skip


def side_labels(centre_offset: torch.Tensor) -> torch.Tensor:
    """Index into :data:`SIDES` of each (B, len(OBJECT_CLASSES)) centre offset: NaN -> none, < 0 -> left, else
    right (``scene_text``'s rule; a mirror negates the offset, so a thing on the centre column stays right)."""
    return torch.where(centre_offset.isnan(), 0, torch.where(centre_offset < 0, 1, 2))


def render_pretraining_set(n: int, seed: int, size: int, patch: int, progress=None) -> dict:
    """Scenes ``0 .. n-1`` of stream ``seed``: ``rgb`` uint8 (n, size, size, 3) and stacked :func:`scene_targets`."""
    rows, images = [], []
    for i in range(n):
        sample = generate_scene(i, seed, size)
        images.append(sample["rgb"])
        rows.append(scene_targets(sample, patch))
        if progress is not None:
            progress(1)
    out = {key: np.stack([r[key] for r in rows]) for key in rows[0]}
    return {"rgb": np.stack(images), **out}


class PretrainingHeads(nn.Module):
    """Linear heads on the final (layer-normed) tokens (B, 1 + P, D): per-patch and class-token predictions."""

    def __init__(self, width: int, attributes: bool = False, pixel_semantic: int = 0):
        """``pixel_semantic``: the patch size of the per-pixel semantic head (0: none)."""
        super().__init__()
        self.semantic = nn.Linear(width, len(SCENE_CLASSES))
        self.colour = nn.Linear(width, len(COLOURS))
        self.depth = nn.Linear(width, 1)
        self.present = nn.Linear(width, len(THING_CLASSES) + len(COLOR_NAMES))
        self.counts = nn.Linear(width, len(THING_CLASSES) * (MAX_COUNT + 1))
        self.nearest = nn.Linear(width, 1 + len(THING_CLASSES))
        self.nearest_colour = nn.Linear(width, len(COLOURS))
        if attributes:
            self.side = nn.Linear(width, len(OBJECT_CLASSES) * len(SIDES))
            self.colour_of = nn.Linear(width, len(OBJECT_CLASSES) * len(COLOURS))
        if pixel_semantic:
            self.pixel_semantic = nn.Linear(width, pixel_semantic**2 * len(SCENE_CLASSES))

    def forward(self, tokens: torch.Tensor) -> dict:
        cls, patches = tokens[:, 0], tokens[:, 1:]
        optional = {}
        if hasattr(self, "side"):
            optional = {"side": self.side(cls).unflatten(-1, (len(OBJECT_CLASSES), len(SIDES))),
                          "colour_of": self.colour_of(cls).unflatten(-1, (len(OBJECT_CLASSES), len(COLOURS)))}  # fmt: skip
        if hasattr(self, "pixel_semantic"):  # (B, P, patch**2, classes)
            optional["pixel_semantic"] = self.pixel_semantic(patches).unflatten(-1, (-1, len(SCENE_CLASSES)))
        return optional | {"semantic": self.semantic(patches), "colour": self.colour(patches),
                "log_depth": self.depth(patches)[..., 0], "present": self.present(cls),
                "counts": self.counts(cls).unflatten(-1, (len(THING_CLASSES), MAX_COUNT + 1)), "nearest": self.nearest(cls), "nearest_colour": self.nearest_colour(cls)}  # fmt: skip


def head_losses(out: dict, target: dict, person_weight: float = 1.0) -> dict:
    """Each head's loss (cross-entropy, soft for the semantic shares; BCE; L1 for log-depth); pretraining minimises the
    sum. ``person_weight``: the weight of the human class (semantic) and of the person label (present)."""
    classes = torch.ones(len(SCENE_CLASSES))
    classes[SCENE_CLASSES.index("human")] = person_weight
    labels = torch.ones(len(THING_CLASSES) + len(COLOR_NAMES))
    labels[PERSON_LABEL] = person_weight
    optional = {}
    if "side" in out:
        optional = {"side": F.cross_entropy(out["side"].flatten(0, 1), side_labels(target["centre_offset"]).flatten()),
                      "colour_of": F.cross_entropy(out["colour_of"].flatten(0, 1), target["colour_of"].flatten())}  # fmt: skip
    if "pixel_semantic" in out:
        optional["pixel_semantic"] = F.cross_entropy(
            out["pixel_semantic"].flatten(0, 2), target["semantic_pixels"].long().flatten(), weight=classes
        )
    return optional | {"semantic": F.cross_entropy(out["semantic"].flatten(0, 1), target["semantic"].flatten(0, 1), weight=classes),
            "colour": F.cross_entropy(out["colour"].flatten(0, 1), target["colour"].flatten()),
            "log_depth": F.l1_loss(out["log_depth"], target["log_depth"]),
            "present": F.binary_cross_entropy_with_logits(out["present"], target["present"], weight=labels),
            "counts": F.cross_entropy(out["counts"].flatten(0, 1), target["counts"].flatten()),
            "nearest": F.cross_entropy(out["nearest"], target["nearest"]),
            "nearest_colour": F.cross_entropy(out["nearest_colour"], target["nearest_colour"])}  # fmt: skip


def build_vit(spec: dict):
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(
        image_size=spec["size"],
        patch_size=spec["patch"],
        hidden_size=spec["width"],
        num_hidden_layers=spec["layers"],
        num_attention_heads=spec["heads"],
        intermediate_size=4 * spec["width"],
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return ViTModel(config, add_pooling_layer=False)


def _to_torch(data: dict, index) -> dict:
    return {k: torch.from_numpy(v[index]) for k, v in data.items() if k != "rgb"}


def mirror(images: torch.Tensor, targets: dict, flip: np.ndarray) -> tuple[torch.Tensor, dict]:
    """Mirror left-right the images (B, C, H, W) and the per-patch numpy targets (B, P[, K]) of the rows where
    ``flip`` (B,) bool; the other targets are unchanged."""
    images = torch.where(torch.from_numpy(flip)[:, None, None, None], images.flip(-1), images)
    targets = dict(targets)
    for key in ("semantic", "colour", "log_depth", "semantic_pixels"):
        value = targets[key].copy()
        side = int(round(value.shape[1] ** 0.5))
        grid = value[flip].reshape(flip.sum(), side, side, *value.shape[2:])
        if key == "semantic_pixels":  # each patch's pixels (row-major) mirror too
            patch = int(round(value.shape[2] ** 0.5))
            grid = grid.reshape(*grid.shape[:3], patch, patch)[..., ::-1]
        value[flip] = grid[:, :, ::-1].reshape(value[flip].shape)
        targets[key] = value
    offset = targets["centre_offset"].copy()
    offset[flip] = -offset[flip]
    targets["centre_offset"] = offset
    return images, targets


@torch.no_grad()
def head_accuracy(component: VisionTransformer, heads: PretrainingHeads, data: dict, batch_size: int = 256) -> dict:
    """Held-out accuracy of each classification head (semantic: the majority class; present: per label, and the
    person label alone; counts: per class), log-depth mean absolute error, and the recall and precision of the
    semantic head on the patches whose majority class is human; with attribute heads, the accuracy of the side and
    of the colour over the (scene, object class) pairs that show the class once; with the per-pixel head, its pixel
    accuracy and its recall and precision on the human pixels."""
    component.eval()
    heads.eval()
    sums: dict[str, float] = {}
    human = SCENE_CLASSES.index("human")
    hits = {"found": 0.0, "true": 0.0, "said": 0.0}  # human-majority patches: found, there, predicted
    asked = {"side": 0.0, "colour_of": 0.0, "pairs": 0.0}  # (scene, class) pairs shown once: side, colour right
    pixels = {"right": 0.0, "found": 0.0, "true": 0.0, "said": 0.0}  # per-pixel head: right, human found / there / said
    n = len(data["rgb"])
    for start in range(0, n, batch_size):
        index = np.arange(start, min(n, start + batch_size))
        out = heads(component.finish(component.run(component.begin(data["rgb"][index]), component.n_layers)))
        t = _to_torch(data, index)
        said, true = out["semantic"].argmax(-1), t["semantic"].argmax(-1)  # majority class per patch
        values = {
            "semantic": (said == true).float().mean(),
            "colour": (out["colour"].argmax(-1) == t["colour"]).float().mean(),
            "log_depth_mae": (out["log_depth"] - t["log_depth"]).abs().mean(),
            "present": ((out["present"] > 0).float() == t["present"]).float().mean(),
            "present_person": ((out["present"][:, PERSON_LABEL] > 0).float() == t["present"][:, PERSON_LABEL])
            .float()
            .mean(),
            "counts": (out["counts"].argmax(-1) == t["counts"]).float().mean(),
            "nearest": (out["nearest"].argmax(-1) == t["nearest"]).float().mean(),
            "nearest_colour": (out["nearest_colour"].argmax(-1) == t["nearest_colour"]).float().mean(),
        }
        for key, value in values.items():
            sums[key] = sums.get(key, 0.0) + float(value) * len(index)
        if "side" in out:
            sides = side_labels(t["centre_offset"])
            once = sides > 0
            asked["side"] += float((out["side"].argmax(-1) == sides)[once].sum())
            asked["colour_of"] += float((out["colour_of"].argmax(-1) == t["colour_of"])[once].sum())
            asked["pairs"] += float(once.sum())
        if "pixel_semantic" in out:
            said_px, true_px = out["pixel_semantic"].argmax(-1), t["semantic_pixels"].long()
            pixels["right"] += float((said_px == true_px).float().mean()) * len(index)
            pixels["found"] += float(((said_px == human) & (true_px == human)).sum())
            pixels["true"] += float((true_px == human).sum())
            pixels["said"] += float((said_px == human).sum())
        said, true = said == human, true == human
        hits["found"] += float((said & true).sum())
        hits["true"] += float(true.sum())
        hits["said"] += float(said.sum())
    recall = {"human_patch_recall": hits["found"] / max(hits["true"], 1.0),
              "human_patch_precision": hits["found"] / max(hits["said"], 1.0)}  # fmt: skip
    if "side" in out:  # the heads' output of the last batch
        recall |= {key: asked[key] / max(asked["pairs"], 1.0) for key in ATTRIBUTE_HEADS}
    if "pixel_semantic" in out:
        recall |= {"pixel_semantic": pixels["right"] / n, "human_pixel_recall": pixels["found"] / max(pixels["true"], 1.0),
                   "human_pixel_precision": pixels["found"] / max(pixels["said"], 1.0)}  # fmt: skip
    return {key: value / n for key, value in sums.items()} | recall


def start_from(model, heads: PretrainingHeads, folder: Path) -> list[str]:
    """Load a previous pretraining's ViT (``model.safetensors``) and, when the folder has them, its heads
    (``heads.safetensors``; a ViT folder without heads, such as the shipped scene ViT, starts fresh heads; heads
    without the optional heads (:data:`OPTIONAL_HEADS`) that ``heads`` has start those fresh). Returns the names of the heads that start
    fresh (empty: all loaded); ConfigError when the ViT is missing or either is of another shape."""
    from safetensors.torch import load_file

    try:  # transformers renames the tensors it writes: its own reader maps them back
        saved = type(model).from_pretrained(str(folder), add_pooling_layer=False, use_safetensors=True)
        model.load_state_dict(saved.state_dict())
        if not (folder / "heads.safetensors").is_file():
            return sorted(name for name, _ in heads.named_children())
        saved = load_file(str(folder / "heads.safetensors"))
        fresh = sorted({name for name, _ in heads.named_children()} - {key.split(".")[0] for key in saved})
        if not set(fresh) <= set(OPTIONAL_HEADS):
            raise ValueError(f"heads.safetensors lacks the heads {fresh}")
        heads.load_state_dict(saved, strict=not fresh)  # any unexpected key or other shape still raises
        return fresh
    except (OSError, RuntimeError, ValueError) as e:
        raise ConfigError(f"{folder}: compose.pretrain_vision.init: {str(e).splitlines()[0][:160]}") from None


def pretrain_vision(recipe: dict, out: str | Path, loop, log=print) -> dict:
    """Train the ViT of ``recipe['compose']['pretrain_vision']`` with ``loop`` (:func:`.train._loop`); write ``out``."""
    spec, d = recipe["compose"]["pretrain_vision"], recipe["data"]["scenes"]
    out = Path(out)
    make_folder(out)
    torch.manual_seed(recipe["seed"])
    model = build_vit(spec)
    component = VisionTransformer(model, name="vision", source="pretrain_vision")
    heads = PretrainingHeads(spec["width"], spec["attributes"], spec["patch"] if spec["pixel_semantic"] else 0)
    if spec["init"]:
        fresh = start_from(model, heads, Path(spec["init"]))
        log(f"vision ViT from {spec['init']}" + (f" (new heads: {', '.join(fresh)})" if fresh else ""))
    with tqdm(total=d["n"] + d["n_val"], desc="scenes", file=sys.stderr, leave=False) as bar:
        train = render_pretraining_set(d["n"], d["seed"], spec["size"], spec["patch"], bar.update)
        val = render_pretraining_set(d["n_val"], d["val_seed"], spec["size"], spec["patch"], bar.update)
    train_images = component.normalize(train["rgb"])
    log(
        f"vision ViT: {component.n_parameters():,} parameters; {d['n']} scenes of stream {d['seed']}, "
        f"{d['n_val']} held out of stream {d['val_seed']}"
    )
    rng = np.random.default_rng(recipe["seed"])

    def loss_of(step: int) -> torch.Tensor:
        component.train()
        heads.train()
        index = rng.choice(d["n"], recipe["batch_size"])
        images, targets = mirror(
            train_images[index], {k: v[index] for k, v in train.items() if k != "rgb"}, rng.random(len(index)) < 0.5
        )
        out = heads(component.finish(component.run(component.begin(images), component.n_layers)))
        return sum(
            head_losses(out, {k: torch.from_numpy(v) for k, v in targets.items()}, spec["person_weight"]).values()
        )

    run = loop(recipe, list(model.parameters()) + list(heads.parameters()), loss_of, "vision ViT", log, out=out)
    with tempfile.TemporaryDirectory(prefix="tokzoo-vit-") as private:  # transformers opens its own paths
        model.save_pretrained(private, safe_serialization=True)
        copy_folder_into(out, private, out)
    write_file(
        out,
        out / "preprocessor_config.json",
        json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3, "crop_size": spec["size"]}, indent=2) + "\n",
    )
    write_file(out, out / "heads.safetensors", save_tensors({k: v.contiguous() for k, v in heads.state_dict().items()}))
    metrics = {"recipe": recipe["name"], "parameters": component.n_parameters(), **run,
               "held_out": head_accuracy(component, heads, val), "threads": torch.get_num_threads(),
               "streams": {"train": [d["seed"], d["n"]], "held_out": [d["val_seed"], d["n_val"]]}}  # fmt: skip
    write_file(out, out / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    log("held-out heads: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics["held_out"].items()))
    return metrics
