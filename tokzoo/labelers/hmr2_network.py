"""The HMR 2.0 network (4D-Humans, Goel et al. 2023), written for tokzoo with the official parameter names.

Built from the architecture facts of the public 4D-Humans code, not from its source: a ViTPose-style ViT
(``backbone.*``: a 16 px patch convolution with padding 2, so a 256 x 192 crop gives 16 x 12 tokens; learned
positions of which row 0, a former class-token slot, is added to every token; pre-norm blocks with LayerNorm
eps 1e-6; a final ``last_norm``) and the SMPL transformer-decoder head (``smpl_head.*``: one query token,
embedded from a zero scalar (or from the mean parameters), cross-attending to the backbone tokens; pose in
the 6D rotation representation of Zhou et al. 2019, shape and camera as residuals added to the mean
parameters ``init_body_pose`` / ``init_betas`` / ``init_cam`` that the checkpoint carries as buffers).

:func:`infer_config` reads every hyperparameter the tensor shapes determine; the two head counts are not
in the shapes and default to the released model's (ViT-H 16, decoder 8 of 64 dims).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tokzoo.errors import CheckpointError

NUM_JOINTS = 24  # SMPL: global orientation + 23 body joints
NUM_BETAS = 10
POSE_6D = 6 * NUM_JOINTS  # 144
MEAN_TOKEN_DIM = POSE_6D + NUM_BETAS + 3  # 157: the query token when it is built from the mean parameters
PATCH_PADDING = 2  # the ViTPose patch convolution pads by 4 + 2 * (ratio // 2 - 1) = 2 at ratio 1


@dataclass(frozen=True)
class HMR2Config:
    """Hyperparameters; the defaults are the released HMR 2.0 (ViT-H/16 at 256 x 192, 6-layer 1024-d head)."""

    image_size: tuple[int, int] = (256, 192)  # (height, width) of the backbone input in pixels
    patch_size: int = 16
    embed_dim: int = 1280
    depth: int = 32
    heads: int = 16
    mlp_dim: int = 5120
    qkv_bias: bool = True
    decoder_dim: int = 1024
    decoder_depth: int = 6
    decoder_heads: int = 8
    decoder_dim_head: int = 64
    decoder_mlp_dim: int = 1024
    token_dim: int = 1  # 1: a zero query token (released); 157: the current mean parameters

    @property
    def grid(self) -> tuple[int, int]:
        """Backbone token grid (rows, columns) for ``image_size``."""
        return tuple((s + 2 * PATCH_PADDING - self.patch_size) // self.patch_size + 1 for s in self.image_size)


RELEASED = HMR2Config()


# ---- backbone (keys backbone.*) ---------------------------------------------------------------------------
class _PatchEmbed(nn.Module):
    def __init__(self, c: HMR2Config):
        super().__init__()
        self.proj = nn.Conv2d(3, c.embed_dim, c.patch_size, stride=c.patch_size, padding=PATCH_PADDING)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qkv_bias: bool):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, -1))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, c: HMR2Config):
        super().__init__()
        self.norm1 = nn.LayerNorm(c.embed_dim, eps=1e-6)
        self.attn = _Attention(c.embed_dim, c.heads, c.qkv_bias)
        self.norm2 = nn.LayerNorm(c.embed_dim, eps=1e-6)
        self.mlp = _Mlp(c.embed_dim, c.mlp_dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViTBackbone(nn.Module):
    """(B, 3, H, W) ImageNet-normalised crops -> (B, grid_h * grid_w, embed_dim) tokens, row-major."""

    def __init__(self, c: HMR2Config):
        super().__init__()
        rows, cols = c.image_size[0] // c.patch_size, c.image_size[1] // c.patch_size
        self.patch_embed = _PatchEmbed(c)
        self.pos_embed = nn.Parameter(torch.zeros(1, rows * cols + 1, c.embed_dim))
        self.blocks = nn.ModuleList(_Block(c) for _ in range(c.depth))
        self.last_norm = nn.LayerNorm(c.embed_dim, eps=1e-6)

    def forward(self, x):
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = x + self.pos_embed[:, 1:] + self.pos_embed[:, :1]
        for block in self.blocks:
            x = block(x)
        return self.last_norm(x)


# ---- SMPL head (keys smpl_head.*) -------------------------------------------------------------------------
def _out_projection(inner: int, dim: int, heads: int, dim_head: int) -> nn.Module:
    """``to_out``: Linear + the original's dropout slot (``to_out.0``), or nothing when one head spans the width."""
    return nn.Identity() if heads == 1 and dim_head == dim else nn.Sequential(nn.Linear(inner, dim), nn.Identity())


def _split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    return t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)


class _SelfAttention(nn.Module):
    def __init__(self, c: HMR2Config):
        super().__init__()
        inner, self.heads = c.decoder_heads * c.decoder_dim_head, c.decoder_heads
        self.to_qkv = nn.Linear(c.decoder_dim, 3 * inner, bias=False)
        self.to_out = _out_projection(inner, c.decoder_dim, c.decoder_heads, c.decoder_dim_head)

    def forward(self, x):
        q, k, v = (_split_heads(t, self.heads) for t in self.to_qkv(x).chunk(3, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
        return self.to_out(out.reshape(x.shape[0], x.shape[1], -1))


class _CrossAttention(nn.Module):
    def __init__(self, c: HMR2Config):
        super().__init__()
        inner, self.heads = c.decoder_heads * c.decoder_dim_head, c.decoder_heads
        self.to_kv = nn.Linear(c.embed_dim, 2 * inner, bias=False)
        self.to_q = nn.Linear(c.decoder_dim, inner, bias=False)
        self.to_out = _out_projection(inner, c.decoder_dim, c.decoder_heads, c.decoder_dim_head)

    def forward(self, x, context):
        k, v = (_split_heads(t, self.heads) for t in self.to_kv(context).chunk(2, dim=-1))
        out = F.scaled_dot_product_attention(_split_heads(self.to_q(x), self.heads), k, v).transpose(1, 2)
        return self.to_out(out.reshape(x.shape[0], x.shape[1], -1))


class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm, self.fn = nn.LayerNorm(dim), fn

    def forward(self, x, **kwargs):
        return self.fn(self.norm(x), **kwargs)


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()  # the Identity slots keep the indices of the original's dropouts (net.0, net.3)
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Identity(), nn.Linear(hidden, dim), nn.Identity()
        )

    def forward(self, x):
        return self.net(x)


class _Layers(nn.Module):
    def __init__(self, c: HMR2Config):
        super().__init__()
        d = c.decoder_dim
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    _PreNorm(d, _SelfAttention(c)),
                    _PreNorm(d, _CrossAttention(c)),
                    _PreNorm(d, _FeedForward(d, c.decoder_mlp_dim)),
                ]
            )
            for _ in range(c.decoder_depth)
        )

    def forward(self, x, context):
        for self_attn, cross_attn, feed_forward in self.layers:
            x = self_attn(x) + x
            x = cross_attn(x, context=context) + x
            x = feed_forward(x) + x
        return x


class _TokenDecoder(nn.Module):
    def __init__(self, c: HMR2Config):
        super().__init__()
        self.to_token_embedding = nn.Linear(c.token_dim, c.decoder_dim)
        self.pos_embedding = nn.Parameter(torch.zeros(1, 1, c.decoder_dim))
        self.transformer = _Layers(c)

    def forward(self, token, context):
        return self.transformer(self.to_token_embedding(token) + self.pos_embedding, context)


class SMPLHead(nn.Module):
    """Backbone tokens (B, N, embed_dim) -> 6D pose (B, 144), betas (B, 10), weak-perspective camera (B, 3)."""

    def __init__(self, c: HMR2Config):
        super().__init__()
        self.transformer = _TokenDecoder(c)
        self.decpose = nn.Linear(c.decoder_dim, POSE_6D)
        self.decshape = nn.Linear(c.decoder_dim, NUM_BETAS)
        self.deccam = nn.Linear(c.decoder_dim, 3)
        self.register_buffer("init_body_pose", torch.zeros(1, POSE_6D))
        self.register_buffer("init_betas", torch.zeros(1, NUM_BETAS))
        self.register_buffer("init_cam", torch.zeros(1, 3))
        self.mean_token = c.token_dim == MEAN_TOKEN_DIM

    def forward(self, tokens):
        b = tokens.shape[0]
        pose, betas, cam = (p.expand(b, -1) for p in (self.init_body_pose, self.init_betas, self.init_cam))
        token = torch.cat([pose, betas, cam], 1)[:, None] if self.mean_token else tokens.new_zeros(b, 1, 1)
        out = self.transformer(token, tokens)[:, 0]
        return self.decpose(out) + pose, self.decshape(out) + betas, self.deccam(out) + cam


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) rotations: Gram-Schmidt on the two 3-vectors (x[:3], x[3:]), which become the
    first two columns; the third is their cross product (HMR2's convention)."""
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    return torch.stack([b1, b2, torch.cross(b1, b2, dim=-1)], dim=-1)


class HMR2(nn.Module):
    """(B, 3, H, W) ImageNet-normalised person crops at ``config.image_size`` -> dict of
    ``global_orient`` (B, 3, 3), ``body_pose`` (B, 23, 3, 3), ``betas`` (B, 10), ``cam`` (B, 3) = (s, tx, ty),
    HMR2's weak-perspective camera of the square crop (see the labeler for the full-image conversion)."""

    def __init__(self, config: HMR2Config = RELEASED):
        super().__init__()
        self.config = config
        self.backbone = ViTBackbone(config)
        self.smpl_head = SMPLHead(config)

    def forward(self, x):
        pose, betas, cam = self.smpl_head(self.backbone(x))
        rotations = rot6d_to_matrix(pose.reshape(-1, NUM_JOINTS, 6))
        return {"global_orient": rotations[:, 0], "body_pose": rotations[:, 1:], "betas": betas, "cam": cam}


# ---- hyperparameters from a state dict --------------------------------------------------------------------
def _shape(state: dict, key: str, where: str) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointError(f"{where}: no tensor {key!r}; not an HMR 2.0 state dict (keys backbone.*, smpl_head.*)")
    return tuple(state[key].shape)


def _count(state: dict, prefix: str) -> int:
    return len({k[len(prefix) :].split(".", 1)[0] for k in state if k.startswith(prefix)})


def infer_config(state: dict, where: str, heads: int | None = None, decoder_heads: int | None = None) -> HMR2Config:
    """The :class:`HMR2Config` the tensor shapes of ``state`` imply; CheckpointError (one line) when they do not fit.

    ``heads`` (backbone) and ``decoder_heads`` are not in the shapes: defaults 16 and decoder width / 64.
    """
    embed, _, ph, pw = _shape(state, "backbone.patch_embed.proj.weight", where)
    tokens = _shape(state, "backbone.pos_embed", where)[1] - 1
    unit = round((tokens / 12) ** 0.5)  # HMR2 crops are 4:3 (height:width): a 4u x 3u grid
    if ph != pw or unit < 1 or 12 * unit * unit != tokens:
        raise CheckpointError(
            f"{where}: backbone.pos_embed holds {tokens} + 1 positions, not a 4:3 grid of "
            f"{ph}x{pw} patches as HMR2's 256 x 192 crops give"
        )
    decoder_dim, token_dim = _shape(state, "smpl_head.transformer.to_token_embedding.weight", where)
    inner = _shape(state, "smpl_head.transformer.transformer.layers.0.1.fn.to_q.weight", where)[0]
    has_out = "smpl_head.transformer.transformer.layers.0.0.fn.to_out.0.weight" in state
    decoder_heads = decoder_heads or (1 if not has_out else max(inner // 64, 1))
    heads = heads or RELEASED.heads
    for name, width, n in (("backbone", embed, heads), ("decoder", inner, decoder_heads)):
        if width % n:
            raise CheckpointError(
                f"{where}: {name} width {width} does not split into {n} heads; pass the "
                f"model's {'heads' if name == 'backbone' else 'decoder_heads'}="
            )
    if token_dim not in (1, MEAN_TOKEN_DIM):
        raise CheckpointError(f"{where}: query token of {token_dim} values; HMR2 uses 1 (zero) or {MEAN_TOKEN_DIM}")
    config = HMR2Config(
        image_size=(4 * unit * ph, 3 * unit * ph),
        patch_size=ph,
        embed_dim=embed,
        depth=_count(state, "backbone.blocks."),
        heads=heads,
        mlp_dim=_shape(state, "backbone.blocks.0.mlp.fc1.weight", where)[0],
        qkv_bias="backbone.blocks.0.attn.qkv.bias" in state,
        decoder_dim=decoder_dim,
        decoder_depth=_count(state, "smpl_head.transformer.transformer.layers."),
        decoder_heads=decoder_heads,
        decoder_dim_head=inner // decoder_heads,
        decoder_mlp_dim=_shape(state, "smpl_head.transformer.transformer.layers.0.2.fn.net.0.weight", where)[0],
        token_dim=token_dim,
    )
    if config.decoder_heads == 1 and config.decoder_dim_head == decoder_dim and has_out:
        raise CheckpointError(
            f"{where}: one decoder head as wide as the decoder has no to_out projection; pass decoder_heads="
        )
    return config


def build_from_state_dict(state: dict, where: str, **heads) -> HMR2:
    """An :class:`HMR2` holding ``state`` (keys ``backbone.*`` and ``smpl_head.*`` only, checked strictly).

    Built on the meta device and filled by assignment, so a ViT-H costs one copy of its weights. Raises
    CheckpointError (one line) for missing, unexpected or mis-shaped tensors.
    """
    config = infer_config(state, where, **heads)
    with torch.device("meta"):
        model = HMR2(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        more = len(missing or unexpected) - 3
        more = f" (+{more} more)" if more > 0 else ""
        raise CheckpointError(f"{where}: {what}{more} for an HMR2 of {describe(config)}")
    for key, ref in expected.items():
        if tuple(state[key].shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{where}: tensor {key!r} has shape {tuple(state[key].shape)}, an HMR2 of "
                f"{describe(config)} needs {tuple(ref.shape)}"
            )
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    return model.eval()


def describe(c: HMR2Config) -> str:
    """One phrase naming the sizes, e.g. ``ViT 1280-d x 32 (16 heads) at 256x192, head 1024-d x 6 (8 heads)``."""
    return (
        f"ViT {c.embed_dim}-d x {c.depth} ({c.heads} heads) at {c.image_size[0]}x{c.image_size[1]}, "
        f"head {c.decoder_dim}-d x {c.decoder_depth} ({c.decoder_heads} heads)"
    )
