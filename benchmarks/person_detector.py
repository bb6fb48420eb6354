"""How well a small network trained for that one fact tells whether a scene shows a person (issue 27's hardest probe fact).

A reference point for the ViT's "person present" head and the linear probe, not a component. ``--model cnn``: three
conv blocks (3x3 conv, batch norm, ReLU, twice, then 2x2 max pool; 32 / 64 / 128 channels), a global max pool and
one logit. ``--model vit``: the scene ViT's architecture (recipes/compose/vision.yaml: 64 px, 8-px patches, width
128, 4 blocks, a class token; inputs scaled to [-1, 1]) with one logit on its final class token, from scratch: the
same fact and training as the CNN, so the two differ in the architecture only (the scene ViT learns it among a dozen
other targets). ``--model cvt``: a convolutional vision transformer of about the same size (transformers' CvT: a 7x7
stride-4 conv embedding to 16 x 16 tokens of width 64, one block whose attention projections are depthwise convs, a
3x3 stride-2 conv embedding to 8 x 8 tokens of width 128 and a class token, 4 such blocks; 946k parameters) with one
logit on its class token: a transformer with a convolutional stem. ``--model vit_max``: the ``vit`` model read like
the CNN, one logit per patch token and the maximum over the patches (the class token unused): whether the ViT's
features or its class-token read-out fail. ``--model patch_mlp``: no attention, each 8 x 8 patch alone through an
MLP (192 -> 256 -> 256 -> 1, ReLU) and the maximum over the 64 patches: what one patch, without its neighbours, says
about a person. ``--model hybrid``: the ViT paper's hybrid, loadable by transformers (a DPT model with
``is_hybrid``): a small BiT conv stem (7 x 7 stride-2 conv, max pool, three bottleneck stages of 64 / 128 / 256
channels with group norm, output stride 8) whose 8 x 8 x 256 map is projected to 8 x 8 tokens of width 128 plus a
class token, then the scene ViT's 4 blocks; one logit on the class token (965k parameters). Each is trained with BCE
on scenes 0 .. n-1 of the ViT's pretraining stream 7000001 (mirrored at random; the label is ``scene_text``'s "is
there a person?") and scored every 250 steps on 500 held-out scenes of stream 7000002 (the ViT's own held-out
stream; never the glue's evaluation stream 1000003). Prints the held-out accuracy against the majority answer, at a
logit of 0 and at the threshold fitted on 2,000 of the training scenes. One thread; about 0.75 s (cnn) / 0.3 s (vit)
/ 0.6 s (cvt) / 0.04 s (patch_mlp) / 0.55 s (hybrid) a step of 64 at 64 px.

Options for the ViTs: ``--lr / --warmup / --clip`` (the scene ViTs train with a warm-up and a clip of 1),
``--patch`` (4: 256 patch tokens), and two denser targets beside the image-level label: ``--dense-person`` (each
patch token predicts its patch's share of human pixels; for ``patch_mlp`` each patch's own logit does) and
``--teacher W`` (each patch token regresses, through a linear map, the standardised 8 x 8 x 128 map of the third
block of a CNN saved by ``--model cnn --save W``).

    nice -n 10 python benchmarks/person_detector.py --scenes 8000 --steps 3000 [--model vit|vit_max|cvt|hybrid]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def render(n: int, seed: int):
    """rgb float (n, 3, 64, 64) in [0, 1], the person label (n,) and each 8 x 8 patch's share of human pixels
    (n, 8, 8) of scenes 0 .. n-1 of stream ``seed``."""
    import torch

    from tokzoo.datasets.scene_text import PERSON, visible_things
    from tokzoo.datasets.scenes import SCENE_CLASSES, generate_scene

    images, labels, shares = [], [], []
    for i in range(n):
        sample = generate_scene(i, seed, 64)
        images.append(sample["rgb"])
        labels.append(any(t["cls"] == PERSON for t in visible_things(sample)))
        shares.append((sample["semseg"] == SCENE_CLASSES.index("human")).reshape(8, 8, 8, 8).mean((1, 3)))
    images = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    return images, torch.tensor(labels).float(), torch.from_numpy(np.stack(shares)).float()


def detector(kind: str, patch: int = 8):
    from torch import nn

    class ClassTokenLogit(nn.Module):
        """One logit on the class token (width 128) that ``read`` takes from ``backbone``'s output."""

        def __init__(self, backbone: nn.Module, read):
            super().__init__()
            self.backbone, self.read, self.logit = backbone, read, nn.Linear(128, 1)

        def forward(self, images):  # (B, 3, 64, 64) in [0, 1]
            return self.logit(self.read(self.backbone(pixel_values=images * 2 - 1)))

    if kind in ("vit", "vit_max"):
        from tokzoo.compose.vision_pretrain import build_vit

        class ViTLogit(nn.Module):
            def __init__(self):
                super().__init__()
                self.vit = build_vit({"size": 64, "patch": patch, "width": 128, "layers": 4, "heads": 4})
                self.logit = nn.Linear(128, 1)

            def forward(self, images):  # (B, 3, 64, 64) in [0, 1]
                tokens = self.tokens = self.vit(pixel_values=images * 2 - 1).last_hidden_state  # kept for --teacher
                if kind == "vit_max":  # the most person-like patch
                    return self.logit(tokens[:, 1:]).amax(dim=1)
                return self.logit(tokens[:, 0])

        return ViTLogit()
    if kind == "cvt":
        from transformers import CvtConfig, CvtModel

        each = {"drop_path_rate": 0.0, "drop_rate": 0.0, "attention_drop_rate": 0.0, "mlp_ratio": 4.0, "qkv_bias": True,
                "qkv_projection_method": "dw_bn", "kernel_qkv": 3, "padding_kv": 1, "stride_kv": 2, "padding_q": 1,
                "stride_q": 1}  # fmt: skip
        config = CvtConfig(num_stages=2, patch_sizes=[7, 3], patch_stride=[4, 2], patch_padding=[3, 1],
                           embed_dim=[64, 128], num_heads=[1, 4], depth=[1, 4], cls_token=[False, True],
                           **{key: [value] * 2 for key, value in each.items()})  # fmt: skip

        return ClassTokenLogit(CvtModel(config, add_pooling_layer=False), lambda out: out.cls_token_value[:, 0])
    if kind == "hybrid":
        from transformers import BitConfig, DPTConfig, DPTModel

        stem = BitConfig(embedding_size=32, hidden_sizes=[64, 128, 256], depths=[1, 1, 1], layer_type="bottleneck",
                         global_padding="same", output_stride=8, out_features=["stage1", "stage2", "stage3"],
                         embedding_dynamic_padding=True, num_groups=8)  # fmt: skip
        config = DPTConfig(is_hybrid=True, image_size=64, patch_size=8, hidden_size=128, num_hidden_layers=4,
                           num_attention_heads=4, intermediate_size=512, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0, backbone_config=stem,
                           backbone_featmap_shape=[1, 256, 8, 8])  # fmt: skip

        return ClassTokenLogit(DPTModel(config, add_pooling_layer=False), lambda out: out.last_hidden_state[:, 0])
    if kind == "patch_mlp":

        class PatchMLP(nn.Module):
            def __init__(self):
                super().__init__()  # an 8 x 8 stride-8 conv is a linear map of each patch alone; 1 x 1 convs keep it so
                self.mlp = nn.Sequential(
                    *(nn.Conv2d(3, 256, 8, stride=8), nn.ReLU(), nn.Conv2d(256, 256, 1), nn.ReLU()),
                    nn.Conv2d(256, 1, 1),
                )

            def forward(self, images):  # (B, 3, 64, 64) in [0, 1]
                self.patch_logits = self.mlp(images).flatten(1)  # (B, 64) row-major, kept for --dense-person
                return self.patch_logits.amax(1, keepdim=True)

        return PatchMLP()

    def block(c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(
            *(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()),
            *(nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()),
            nn.MaxPool2d(2),
        )

    return nn.Sequential(
        block(3, 32), block(32, 64), block(64, 128), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(128, 1)
    )


def fitted_threshold(scores, labels) -> float:
    """The logit threshold with the best accuracy on these (training) scenes: a read-out fitted like a probe's, for
    models whose logit is not trained to cross 0 at the decision (``patch_mlp --dense-person``: patch shares)."""
    import torch

    ordered = torch.sort(scores).values
    candidates = torch.cat([ordered[:1] - 1, (ordered[1:] + ordered[:-1]) / 2, ordered[-1:] + 1])
    accuracy = ((scores[None] > candidates[:, None]).float() == labels[None]).float().mean(1)
    return float(candidates[accuracy.argmax()])


def main() -> None:
    import torch
    import torch.nn.functional as F

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=8000, help="training scenes of stream 7000001")
    parser.add_argument("--steps", type=int, default=3000, help="steps of 64")
    parser.add_argument("--model", choices=("cnn", "vit", "cvt", "vit_max", "patch_mlp", "hybrid"), default="cnn")
    parser.add_argument("--patch", type=int, default=8, help="the ViTs' patch size in pixels")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW's peak learning rate")
    parser.add_argument("--warmup", type=int, default=0, help="linear warm-up steps; then constant")
    parser.add_argument("--clip", type=float, default=0.0, help="gradient norm clip (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and batch draws")
    parser.add_argument("--save", help="write the trained model's weights here (safetensors)")
    parser.add_argument(
        "--teacher", help="a --model cnn's saved weights: the vit also regresses its 8 x 8 x 128 feature map per patch"
    )
    parser.add_argument(
        "--dense-person",
        action="store_true",
        help="each patch (vit, vit_max: its token; patch_mlp: its logit) also predicts its share of human pixels (BCE)",
    )
    args = parser.parse_args()
    per_patch = ("vit", "vit_max") if args.teacher else ("vit", "vit_max", "patch_mlp")
    if (args.dense_person or args.teacher) and (args.model not in per_patch or args.patch != 8):
        raise SystemExit(
            "--dense-person / --teacher: only for --model vit / vit_max with 8-px patches (8 x 8 targets); "
            "--dense-person also for patch_mlp"
        )
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    start = time.time()
    train_x, train_y, train_share = render(args.scenes, 7000001)
    val_x, val_y, _ = render(500, 7000002)
    majority = max(val_y.mean().item(), 1 - val_y.mean().item())
    print(f"rendered in {time.time() - start:.0f} s; held-out majority answer {majority:.3f}", flush=True)
    model = detector(args.model, args.patch)
    if args.dense_person and args.model != "patch_mlp":
        model.share = torch.nn.Linear(128, 1)
    teacher = None
    if args.teacher:
        from safetensors.torch import load_file

        teacher = detector("cnn")
        teacher.load_state_dict(load_file(args.teacher))
        teacher = teacher[:3].eval().requires_grad_(False)  # the three conv blocks: (B, 128, 8, 8)
        model.distil = torch.nn.Linear(128, 128)
    optimizer = torch.optim.AdamW(model.parameters(), args.lr, weight_decay=0.05)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(1, args.warmup)))
    draw = torch.Generator().manual_seed(args.seed)
    for step in range(1, args.steps + 1):
        index = torch.randint(len(train_x), (64,), generator=draw)
        flip = torch.rand(64, generator=draw) < 0.5
        images = torch.where(flip[:, None, None, None], train_x[index].flip(-1), train_x[index])
        loss = F.binary_cross_entropy_with_logits(model(images)[:, 0], train_y[index])
        if args.dense_person:
            share = torch.where(flip[:, None, None], train_share[index].flip(-1), train_share[index]).flatten(1)
            logits = model.patch_logits if args.model == "patch_mlp" else model.share(model.tokens[:, 1:])[..., 0]
            loss = loss + F.binary_cross_entropy_with_logits(logits, share)
        if teacher is not None:  # each patch token predicts the teacher's features at its place, standardised
            with torch.no_grad():
                target = teacher(images).flatten(2).transpose(1, 2)  # (B, 64, 128), row-major like the patches
                target = (target - target.mean((0, 1))) / (target.std((0, 1)) + 1e-6)
            loss = loss + F.mse_loss(model.distil(model.tokens[:, 1:]), target)
        optimizer.zero_grad()
        loss.backward()
        if args.clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        warmup.step()
        if step % 250 == 0:
            model.eval()
            with torch.no_grad():
                scores = model(val_x)[:, 0]
                threshold = fitted_threshold(model(train_x[:2000])[:, 0], train_y[:2000])
            model.train()
            accuracy = ((scores > 0).float() == val_y).float().mean().item()
            refitted = ((scores > threshold).float() == val_y).float().mean().item()
            print(
                f"step {step}: loss {loss.item():.3f}, held-out accuracy {accuracy:.3f} (at the threshold fitted on "
                f"{min(2000, len(train_x)):,} training scenes {refitted:.3f}) ({time.time() - start:.0f} s)",
                flush=True,
            )
    if args.save:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.save)


if __name__ == "__main__":
    main()
