"""open_clip and ImageBind labelers on tiny random open_clip ViTs registered from config dicts, saved to disk and
loaded back through ``create_labeler``: shapes, dtypes, batching, agreement with open_clip's own forward, and
the ImageBind key mapping against an ImageBind-named state dict built here independently; loading refusals."""

from __future__ import annotations

import json

import numpy as np
import open_clip  # noqa: E402  (dev extra: tokzoo[labelers])
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from tokzoo.errors import CheckpointError, ConfigError
from tokzoo.labelers import create_labeler

rng = np.random.default_rng(0)
IMAGES = [rng.integers(0, 256, (40, 60, 3), dtype=np.uint8) for _ in range(3)] + [
    rng.integers(0, 256, (50, 30, 3), dtype=np.uint8)
]
TEXT = {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1}
CONFIGS = {  # CLIP-like: LayerNorm eps 1e-5; ImageBind-like: eps 1e-6, as ImageBind's vision branch
    "tokzoo-test-vit": {
        "embed_dim": 24,
        "text_cfg": TEXT,
        "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 16},
    },
    "tokzoo-test-ib": {
        "embed_dim": 20,
        "text_cfg": TEXT,
        "vision_cfg": {
            "image_size": 28,
            "patch_size": 14,
            "width": 32,
            "layers": 2,
            "head_width": 8,
            "norm_kwargs": {"eps": 1e-6},
        },
    },
}
STEM, TRUNK, HEAD = "modality_preprocessors.vision.", "modality_trunks.vision.", "modality_heads.vision."


def close(a, b) -> bool:
    return np.allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def one_line_error(kind, match, spec, **kwargs):
    with pytest.raises(kind, match=match) as info:
        create_labeler(spec, **kwargs)
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Registered tiny configs, their open_clip models (random, LayerNorms perturbed) and eval transforms."""
    tmp = tmp_path_factory.mktemp("openclip")
    for name, config in CONFIGS.items():
        (tmp / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp)
    torch.manual_seed(0)
    out = {"dir": tmp}
    for name in CONFIGS:
        model, _, preprocess = open_clip.create_model_and_transforms(name)
        with torch.no_grad():
            for p in model.visual.parameters():
                p.add_(0.05 * torch.randn_like(p))
        out[name] = (model.eval(), preprocess)
    return out


def reference(model, preprocess, images):
    """open_clip's own outputs: the normalised image embedding, post-LN patch tokens (B, N, width), post-LN CLS."""
    pixels = torch.stack([preprocess(Image.fromarray(image)) for image in images])
    with torch.no_grad():
        out = model.visual.forward_intermediates(
            pixels, indices=1, normalize_intermediates=True, output_fmt="NLC", output_extra_tokens=True
        )
        embedding = model.encode_image(pixels, normalize=True)
    return embedding, out["image_intermediates"][-1], out["image_intermediates_prefix"][-1][:, 0].detach()


@pytest.fixture(scope="module")
def openclip_files(tiny):
    model, _ = tiny["tokzoo-test-vit"]
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    full, visual_only = tiny["dir"] / "clip.safetensors", tiny["dir"] / "visual.pt"
    save_file(state, str(full))
    torch.save({k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}, visual_only)
    return full, visual_only


def test_openclip_dense_and_global_match_open_clip(tiny, openclip_files):
    model, preprocess = tiny["tokzoo-test-vit"]
    full, visual_only = openclip_files
    embedding, tokens, _ = reference(model, preprocess, IMAGES)
    with torch.no_grad():
        projected = (tokens @ model.visual.proj).reshape(4, 4, 4, 24)
    dense = create_labeler(f"openclip_dense:tokzoo-test-vit@{full}", batch_size=3).label({"rgb": IMAGES})
    assert [x.shape for x in dense] == [(4, 4, 24)] * 4 and all(x.dtype == np.float32 for x in dense)  # 32 px / 8
    assert close(dense, projected)  # ln_post, then the projection
    glob = create_labeler(f"openclip_global:tokzoo-test-vit@{visual_only}", batch_size=3).label({"rgb": IMAGES})
    assert [x.shape for x in glob] == [(24,)] * 4 and all(x.dtype == np.float32 for x in glob)
    assert close(glob, embedding) and close(np.linalg.norm(glob, axis=1), 1.0)
    assert not np.allclose(glob[0], glob[1])
    one_by_one = create_labeler(f"openclip_global:tokzoo-test-vit@{full}", batch_size=1).label({"rgb": IMAGES})
    assert close(one_by_one, glob)


def test_openclip_spec_errors_are_one_line(tiny, openclip_files, tmp_path):
    full, _ = openclip_files
    one_line_error(ConfigError, "MODEL@WEIGHTS", "openclip_dense:tokzoo-test-vit")
    one_line_error(ConfigError, "unknown open_clip model", f"openclip_dense:no-such-model@{full}")
    one_line_error(
        CheckpointError, "neither a file nor a pretrained tag", f"openclip_global:tokzoo-test-vit@{tmp_path}/x.pt"
    )
    one_line_error(CheckpointError, "has shape", f"openclip_global:tokzoo-test-ib@{full}")  # weights of another size


def imagebind_state(model) -> dict[str, torch.Tensor]:
    """An ImageBind-named state dict whose vision branch computes ``model.visual`` (built from ImageBind's layout:
    a Conv3d stem over 2 repeated frames, cls/pos tensors with batch dims, blocks, head LayerNorm + Linear)."""
    v = {k: t.detach().clone() for k, t in model.visual.state_dict().items()}
    first = torch.randn_like(v["conv1.weight"])  # an uneven split over the 2 time steps: only their sum is right
    state = {
        STEM + "rgbt_stem.proj.1.weight": torch.stack([first, v["conv1.weight"] - first], dim=2),
        STEM + "cls_token": v["class_embedding"][None, None],
        STEM + "pos_embedding_helper.pos_embed": v["positional_embedding"][None],
        TRUNK + "pre_transformer_layer.0.weight": v["ln_pre.weight"],
        TRUNK + "pre_transformer_layer.0.bias": v["ln_pre.bias"],
        HEAD + "0.weight": v["ln_post.weight"],
        HEAD + "0.bias": v["ln_post.bias"],
        HEAD + "2.weight": v["proj"].t().contiguous(),
        "modality_trunks.text.blocks.0.attn.in_proj_weight": torch.randn(48, 16),  # other modalities: ignored
        "modality_postprocessors.text.1.log_logit_scale": torch.tensor(2.6),
    }
    names = {"ln_1": "norm_1", "ln_2": "norm_2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}  # attn.*: same
    for key, tensor in v.items():
        if key.startswith("transformer.resblocks."):
            i, rest = key.removeprefix("transformer.resblocks.").split(".", 1)
            module, param = rest.rsplit(".", 1)
            state[f"{TRUNK}blocks.{i}.{names.get(module, module)}.{param}"] = tensor
    return state


def test_imagebind_labelers_reproduce_the_open_clip_tower(tiny, tmp_path):
    model, preprocess = tiny["tokzoo-test-ib"]
    embedding, tokens, cls_token = reference(model, preprocess, IMAGES)
    state = imagebind_state(model)
    torch.save(state, tmp_path / "ib.pth")
    save_file({k: t.contiguous() for k, t in state.items()}, str(tmp_path / "ib.safetensors"))
    pth, safetensors = tmp_path / "ib.pth", tmp_path / "ib.safetensors"
    labeler = create_labeler(f"imagebind_dense:{pth}", num_heads=4, batch_size=3)
    assert "ViT 32-d x 2 (4 heads), patch 14 at 28 px" in labeler.describe()
    dense = labeler.label({"rgb": IMAGES})
    assert [x.shape for x in dense] == [(2, 2, 32)] * 4 and all(x.dtype == np.float32 for x in dense)  # unprojected
    assert close(dense, tokens.reshape(4, 2, 2, 32))
    glob = create_labeler(f"imagebind_global:{safetensors}", num_heads=4, batch_size=2).label({"rgb": IMAGES})
    assert [x.shape for x in glob] == [(20,)] * 4 and close(glob, embedding)
    cls = create_labeler(f"imagebind_global:{pth}", num_heads=4, projected=False).label({"rgb": IMAGES})
    assert [x.shape for x in cls] == [(32,)] * 4 and close(cls, cls_token)
    wrong_heads = create_labeler(f"imagebind_global:{pth}", num_heads=2).label({"rgb": IMAGES})
    assert not close(wrong_heads, embedding)  # the head count matters and is not in the file


def test_imagebind_refusals_are_one_line(tiny, tmp_path):
    state = imagebind_state(tiny["tokzoo-test-ib"][0])
    stem = STEM + "rgbt_stem.proj.1.weight"

    def refused(name, changed, match, kind=CheckpointError, num_heads=4):
        if changed is not None:
            torch.save(changed, tmp_path / name)
        one_line_error(kind, match, f"imagebind_dense:{tmp_path / name}", num_heads=num_heads)

    refused(
        "missing.pth",
        {k: v for k, v in state.items() if k != TRUNK + "blocks.1.mlp.fc2.bias"},
        "missing ImageBind tensor 'modality_trunks.vision.blocks.1.mlp.fc2.bias'",
    )
    refused(
        "shape.pth",
        {**state, HEAD + "2.weight": state[HEAD + "2.weight"].t()},
        "'modality_heads.vision.2.weight' has shape",
    )
    refused("one_frame.pth", {**state, stem: state[stem][:, :, :1]}, "expected a Conv3d")
    refused(
        "extra.pth", {**state, TRUNK + "blocks.0.attn.bias_k": torch.zeros(1, 1, 32)}, "unexpected ImageBind vision"
    )
    refused("text.pth", {"modality_trunks.text.blocks.0.attn.in_proj_weight": torch.zeros(3, 1)}, "no ImageBind vision")
    refused("ok.pth", state, "num_heads=5 does not divide", kind=ConfigError, num_heads=5)
    refused("pickled.pth", {"model": torch.nn.Linear(2, 2)}, "refused or unreadable with weights_only=True")
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    refused("broken.safetensors", None, "not a readable safetensors file")
    refused("absent.pth", None, "no such file.*imagebind_huge.pth")
