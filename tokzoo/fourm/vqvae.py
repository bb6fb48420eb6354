"""The networks of 4M's VQ-VAE tokenizers, with ml-4m's tensor names, so released weights load as they are.

Built from the constructor arguments ml-4m stores in a tokenizer's ``config.json`` (``enc_type``, ``dec_type``,
``patch_size``, ``patch_proj``, ``post_mlp``, ``latent_dim``, ``codebook_size``, ``n_channels``, ``n_labels``, ...):

- encoders: ViT-S/B/L (``vit_{s,b,l}_enc``; patch or 1x1 projection, fixed 2-D sin-cos position embedding
  resized bicubically to the input's grid, optional tanh post-MLP) or MLPs (``BottleneckMLP/B_<n>-Wi_<w>``,
  ``MLP/B_<n>-Wi_<w>``);
- a 1x1 projection to ``latent_dim``, then the cosine-similarity VQ codebook (:class:`FourMQuantizer`) or, for
  the MLP tokenizers, ml-4m's multi-head Memcodes (:class:`FourMMemcodes`);
- decoders: ViT (``vit_{s,b,l}_dec``; linear patch un-projection, optional two ConvNeXt blocks) or MLPs.

The arithmetic follows ml-4m's module by module (same operation order) so tokens are identical, not only close.
Diffusion decoders (DiVAE's UNets) are not here: :mod:`tokzoo.fourm.tokenizer` keeps their tensors aside.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from vector_quantize_pytorch import VectorQuantize

from tokzoo.errors import ConfigError

VIT_SIZES = {"s": (512, 8, 8), "b": (768, 12, 12), "l": (1024, 24, 16), "t": (16, 1, 2)}
"""ViT size letter -> (width, depth, heads): ml-4m's vit_s/b/l; ``t`` is the reduced size the reference fixtures
register in ml-4m (scripts/fourm_reference.py), not a released one."""


def sincos_grid(h: int, w: int, dim: int) -> torch.Tensor:
    """(1, dim, h, w) 2-D sine-cosine position embedding (MoCo v3 layout: sin/cos of the column, then of the row)."""
    cols, rows = torch.meshgrid(
        torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32), indexing="ij"
    )
    freq = 1.0 / (10000.0 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4)))
    a, b = torch.einsum("m,d->md", cols.flatten(), freq), torch.einsum("m,d->md", rows.flatten(), freq)
    table = torch.cat([a.sin(), a.cos(), b.sin(), b.cos()], dim=1)  # ((w h), dim) in (w, h) order
    return table.reshape(h, w, dim).permute(2, 0, 1)[None].contiguous()


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        weights = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(b, n, c))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, activation: type[nn.Module] = nn.GELU):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), activation(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn, self.mlp = Attention(dim, heads), FeedForward(dim, 4 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ConvNeXtBlock(nn.Module):
    """Depth-wise 7x7 conv, LayerNorm, 4x point-wise MLP, layer scale; residual. (B, C, H, W) -> same."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1, self.act, self.pwconv2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x):
        y = self.pwconv2(self.act(self.pwconv1(self.norm(self.dwconv(x).permute(0, 2, 3, 1)))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class _ViT(nn.Module):
    """Shared trunk: position embedding on a (h, w) grid, transformer blocks, optional tanh post-MLP."""

    def __init__(self, size: str, grid: tuple[int, int], post_mlp: bool):
        super().__init__()
        self.dim, depth, heads = VIT_SIZES[size]
        self.pos_emb = nn.Parameter(sincos_grid(*grid, self.dim), requires_grad=False)
        self.blocks = nn.Sequential(*[Block(self.dim, heads) for _ in range(depth)])
        if post_mlp:
            self.norm_mlp = nn.LayerNorm(self.dim, eps=1e-6)
            self.post_mlp = FeedForward(self.dim, 4 * self.dim, nn.Tanh)

    def trunk(self, tokens: torch.Tensor, grid: tuple[int, int], float_post_mlp: bool) -> torch.Tensor:
        """(B, h*w, dim) -> (B, h*w, dim)."""
        pos = F.interpolate(self.pos_emb, size=grid, mode="bicubic", align_corners=False)
        x = self.blocks(tokens + pos.flatten(2).transpose(1, 2))
        if hasattr(self, "post_mlp"):
            x = (
                x.float() + self.post_mlp(self.norm_mlp(x.float()))
                if float_post_mlp
                else x + self.post_mlp(self.norm_mlp(x))
            )
        return x


class ViTEncoder(_ViT):
    """(B, C, H, W) images (or (B, C, h, w) feature maps without ``patch_proj``) -> (B, dim, h, w)."""

    def __init__(self, size: str, in_channels: int, patch_size: int, resolution: int, patch_proj: bool, post_mlp: bool):
        super().__init__(size, (resolution // patch_size,) * 2, post_mlp)
        self.patch = patch_size if patch_proj else 1
        self.proj = nn.Conv2d(in_channels, self.dim, kernel_size=self.patch, stride=self.patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = (x.shape[2] // self.patch, x.shape[3] // self.patch)
        x = self.trunk(self.proj(x).flatten(2).transpose(1, 2), grid, float_post_mlp=True)
        return x.transpose(1, 2).reshape(x.shape[0], self.dim, *grid)


class ViTDecoder(_ViT):
    """(B, dim, h, w) -> (B, out_channels, h * patch, w * patch) (patch 1 without ``patch_proj``)."""

    def __init__(
        self,
        size: str,
        out_channels: int,
        patch_size: int,
        resolution: int,
        patch_proj: bool,
        post_mlp: bool,
        out_conv: bool,
    ):
        super().__init__(size, (resolution // patch_size,) * 2, post_mlp)
        self.out_channels, self.patch = out_channels, patch_size if patch_proj else 1
        self.out_proj = nn.Linear(self.dim, out_channels * self.patch**2)
        if out_conv:
            self.out_conv = nn.Sequential(ConvNeXtBlock(out_channels), ConvNeXtBlock(out_channels))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b, _, h, w = z.shape
        x = self.out_proj(self.trunk(z.flatten(2).transpose(1, 2), (h, w), float_post_mlp=False))
        p, c = self.patch, self.out_channels
        x = x.reshape(b, h, w, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h * p, w * p)
        return self.out_conv(x) if hasattr(self, "out_conv") else x


class _Residual(nn.Module):
    """ml-4m's bottleneck block: ``block`` = Linear(thin, wide), GELU, Linear(wide, thin)."""

    def __init__(self, thin: int, wide: int):
        super().__init__()
        self.block = nn.Sequential(nn.Linear(thin, wide), nn.GELU(), nn.Linear(wide, thin))

    def forward(self, x):
        return self.block(x)


class TokenMLP(nn.Module):
    """Per-position MLP over (B, C, h, w) or (B, N, C): ``BottleneckMLP/B_<n>-Wi_<w>[-Ex_<e>]`` (pre-norm
    residual blocks) or ``MLP/B_<n>-Wi_<w>`` (norm + linear layers)."""

    def __init__(self, model_id: str, dim_in: int | None, dim_out: int | None):
        super().__init__()
        try:
            kind, spec = model_id.split("/")
            parts = spec.split("-")
            n_blocks, width = int(parts[0].split("_")[1]), int(parts[1].split("_")[1])
            expansion = int(parts[2].split("_")[1]) if len(parts) == 3 else 4
        except (ValueError, IndexError):
            raise ConfigError(f"4M MLP id {model_id!r}: expected BottleneckMLP/B_<n>-Wi_<width>[-Ex_<e>]") from None
        if kind not in ("BottleneckMLP", "MLP"):
            raise ConfigError(f"4M MLP id {model_id!r}: unknown family {kind!r}")
        self.bottleneck, self.dim_in, self.dim_out = kind == "BottleneckMLP", dim_in or width, dim_out or width
        self.linear_in, self.linear_out = nn.Linear(self.dim_in, width), nn.Linear(width, self.dim_out)
        if self.bottleneck:
            self.blocks = nn.ModuleList(_Residual(width, expansion * width) for _ in range(n_blocks))
        else:
            self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(n_blocks - 1))
        self.layernorms = nn.ModuleList(
            nn.LayerNorm(width) for _ in range(n_blocks if self.bottleneck else n_blocks - 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = x.ndim == 4
        if image:
            b, _, h, w = x.shape
            x = x.flatten(2).transpose(1, 2)
        x = self.linear_in(x)
        for i, norm in enumerate(self.layernorms):
            x = x + self.blocks[i](norm(x)) if self.bottleneck else self.layers[i](norm(x))
        x = self.linear_out(x)
        return x.transpose(1, 2).reshape(b, -1, h, w) if image else x


class FourMQuantizer(nn.Module):
    """ml-4m's cosine-similarity VQ, stored in vector-quantize-pytorch's layout (``_codebook.embed`` (1, K, D),
    ``cluster_size`` (1, K), ``embed_avg``, ``initted``).

    Tokens: argmax over codes of cos(z, code) with both sides l2-normalised (ml-4m normalises the codebook at
    lookup; vector-quantize-pytorch assumes unit codes, which trained EMA codebooks are only nearly), so the
    rule is applied here rather than through ``VectorQuantize.forward``. Codes: the stored, unnormalised rows.
    """

    def __init__(self, codebook_size: int, dim: int):
        super().__init__()
        self.codebook_size = codebook_size
        self.inner = VectorQuantize(
            dim=dim, codebook_size=codebook_size, use_cosine_sim=True, kmeans_init=False, accept_image_fmap=True
        )

    @property
    def codebook(self) -> torch.Tensor:
        """(K, D) float32."""
        return self.inner._codebook.embed[0]

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) latents -> (B, h, w) int64, in float32 with autocast off."""
        with torch.autocast(z.device.type, enabled=False):
            flat = F.normalize(z.float().permute(0, 2, 3, 1).reshape(-1, z.shape[1]), dim=-1)
            scores = flat @ F.normalize(self.codebook.float(), dim=-1).t()
            return scores.argmax(dim=-1).reshape(z.shape[0], z.shape[2], z.shape[3])

    def codes(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) int64 -> (B, D, h, w)."""
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2)


class HeadwiseLinear(nn.Module):
    """Per-head linear map without bias, ``weight`` (heads, d, c): (heads, n, d) -> (heads, n, c) (einops EinMix)."""

    def __init__(self, heads: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(heads, dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("hnd,hdc->hnc", x, self.weight)


class FourMMemcodes(nn.Module):
    """ml-4m's Memcodes quantizer (global features, human poses): ``heads`` codebooks ``codes`` (heads, K, d),
    keys and values by per-head linear maps. A latent (B, heads * d, h, w) gives ``heads`` ids per position: the
    code whose key has the largest dot product with the head's slice (scaled by d^-0.5); codes are the values."""

    def __init__(self, codebook_size: int, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"4M memcodes: latent_dim {dim} is not divisible by num_codebooks {heads}")
        self.codebook_size, self.heads, self.scale = codebook_size, heads, (dim // heads) ** -0.5
        self.codes = nn.Parameter(torch.zeros(heads, codebook_size, dim // heads))
        self.to_k, self.to_v = HeadwiseLinear(heads, dim // heads), HeadwiseLinear(heads, dim // heads)

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """(B, heads * d, h, w) -> (B, heads, h, w) int64."""
        b, _, h, w = z.shape
        q = z.flatten(2).transpose(1, 2).reshape(b, h * w, self.heads, -1).permute(0, 2, 1, 3) * self.scale
        logits = torch.einsum("bhid,hjd->bhij", q, self.to_k(self.codes))
        return logits.argmax(dim=-1).reshape(b, self.heads, h, w)

    def codes_of(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, heads, h, w) int64 -> (B, heads * d, h, w), head-major channels."""
        values = self.to_v(self.codes)  # (heads, K, d)
        picked = torch.stack([values[i][indices[:, i]] for i in range(self.heads)], dim=1)  # (B, heads, h, w, d)
        b, _, h, w, d = picked.shape
        return picked.permute(0, 1, 4, 2, 3).reshape(b, self.heads * d, h, w)


class FourMVQVAE(nn.Module):
    """Encoder, projection, quantizer and (when ``with_decoder``) a ViT / MLP decoder of one 4M tokenizer."""

    def __init__(self, config: dict, with_decoder: bool):
        super().__init__()
        c = {"patch_proj": True, "post_mlp": False, "latent_dim": 32, "n_labels": None, "out_conv": False, **config}
        enc, size = c["enc_type"], c.get("image_size_enc") or c["image_size"]
        if c["n_labels"]:
            self.cls_emb = nn.Embedding(c["n_labels"], c["n_channels"])
        if enc.startswith("vit_") and enc.endswith("_enc") and enc[4] in VIT_SIZES:
            self.encoder = ViTEncoder(enc[4], c["n_channels"], c["patch_size"], size, c["patch_proj"], c["post_mlp"])
            enc_dim = self.encoder.dim
        elif "MLP" in enc:
            self.encoder = TokenMLP(enc, c["n_channels"], None)
            enc_dim = self.encoder.dim_out
        else:
            raise ConfigError(f"4M encoder {enc!r} not supported (vit_s/b/l_enc, BottleneckMLP/..., MLP/...)")
        self.quant_proj = nn.Conv2d(enc_dim, c["latent_dim"], 1)
        if c.get("quant_type", "lucid") == "memcodes":
            self.quantize = FourMMemcodes(int(c["codebook_size"]), c["latent_dim"], int(c.get("num_codebooks", 1)))
        else:
            self.quantize = FourMQuantizer(int(c["codebook_size"]), c["latent_dim"])
        if not with_decoder:
            return
        dec, out = c["dec_type"], c["n_labels"] or c["n_channels"]
        if dec.startswith("vit_") and dec.endswith("_dec") and dec[4] in VIT_SIZES:
            self.decoder = ViTDecoder(
                dec[4],
                out,
                c.get("patch_size_dec") or c["patch_size"],
                c.get("image_size_dec") or c["image_size"],
                c["patch_proj"],
                c["post_mlp"],
                c["out_conv"],
            )
            dec_dim = self.decoder.dim
        elif "MLP" in dec:
            self.decoder = TokenMLP(dec, None, out)
            dec_dim = self.decoder.dim_in
        else:
            raise ConfigError(
                f"4M decoder {dec!r} not supported here (ViT and MLP decoders; diffusion UNets are not ported)"
            )
        self.post_quant_proj = nn.Conv2d(c["latent_dim"], dec_dim, 1)

    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        """Model input (B, C, H, W) float, or (B, H, W) int64 class ids with ``n_labels`` -> (B, h, w) int64
        ((B, heads, h, w) with memcodes)."""
        if hasattr(self, "cls_emb"):
            x = self.cls_emb(x).permute(0, 3, 1, 2)
        return self.quantize.indices(self.quant_proj(self.encoder(x)))

    def codes(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens as :meth:`tokenize` returns them -> quantized latents (B, latent_dim, h, w)."""
        return (
            self.quantize.codes_of(tokens) if isinstance(self.quantize, FourMMemcodes) else self.quantize.codes(tokens)
        )

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, h, w) (memcodes: (B, heads, h, w)) int64 -> decoder output (B, C_out, H, W) (logits for semseg)."""
        return self.decoder(self.post_quant_proj(self.codes(tokens)))
