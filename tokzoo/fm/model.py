"""A thin 4M-style any-to-any encoder-decoder over the token modalities of a tokzoo dataset.

Every token of every modality has an embedding ``where`` = fixed sin-cos position (2-D on its grid, 1-D for
sequences) + a learned embedding of its modality. The encoder sees the *input* tokens (token embedding +
where) and one always-present learned context token (so a sample with no input still has a context). The
decoder gets one query per *target* token: mask token + where (+ for sequences the embedding of the previous
id of the *target* sequence, teacher-forced: sentinels and spans, never a dropped token that is not a target;
see :mod:`.spans`); its self-attention stays within a modality (and is causal within a sequence),
its cross-attention reads a projection of the encoder output plus the inputs' ``where``. Each modality's
logits come from the decoder output times that modality's token embedding (tied head), divided by sqrt(D)
as in T5, since token embeddings start at unit scale like the positions. The per-modality
cross-entropy sums and counts come back so the trainer can average within each modality over the whole
global batch, then across modalities.

Shapes: B samples, L = sum of the modalities' slots (``spec.slots``), K <= L inputs, M <= L targets, D width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tokzoo.errors import ConfigError
from tokzoo.limits import check_field
from tokzoo.tokens.spec import ModalitySpec

from .blocks import DecoderBlock, EncoderBlock, layer_norm
from .masking import MaskedBatch


@dataclass(frozen=True)
class FMConfig:
    dim: int
    encoder_layers: int
    decoder_layers: int
    heads: int
    mlp_ratio: float = 4.0

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    "fm-tiny": FMConfig(dim=64, encoder_layers=2, decoder_layers=2, heads=2),
    "fm-small": FMConfig(dim=384, encoder_layers=6, decoder_layers=6, heads=6),
    "4M-B": FMConfig(dim=768, encoder_layers=12, decoder_layers=12, heads=12),
    "4M-L": FMConfig(dim=1024, encoder_layers=24, decoder_layers=24, heads=16),
}
"""4M-B / 4M-L: the sizes of the 4M paper (~198M / ~705M parameters without embeddings)."""


def model_config(preset: str | None = None, **overrides) -> FMConfig:
    """A preset, with any fields overridden; ConfigError (one line) for unknown names or fields."""
    if preset is not None and (not isinstance(preset, str) or preset not in PRESETS):
        raise ConfigError(f"unknown model preset {preset!r} (known: {', '.join(PRESETS)})")
    base = asdict(PRESETS[preset]) if preset else {}
    unknown = sorted(set(overrides) - set(FMConfig.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"unknown model field(s) {unknown} (known: {', '.join(FMConfig.__dataclass_fields__)})")
    try:
        config = FMConfig(**{**base, **overrides})
    except TypeError as e:
        raise ConfigError(f"model: {e}") from None
    return check_config(config, "model")


def check_config(config: FMConfig, where: object) -> FMConfig:
    """Every size of ``config`` within tokzoo.limits.FIELD_LIMITS (a negative or 10^6 layer count, a width of
    10^6, text), before anything is built; one-line ConfigError naming the field and the limit."""
    for name in FMConfig.__dataclass_fields__:
        check_field(getattr(config, name), where, name, f"fm.model.{name}")
    if config.dim % config.heads or config.dim % 4:
        raise ConfigError(f"{where}: width {config.dim} must be divisible by 4 and by heads ({config.heads})")
    return config


def sincos_positions(spec: ModalitySpec, dim: int) -> torch.Tensor:
    """Fixed positions, float32 (length, dim): 2-D sin-cos on the (rows, cols) grid, 1-D for sequences."""

    def one_axis(n: int, d: int) -> torch.Tensor:
        freq = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d // 2))
        angle = torch.arange(n, dtype=torch.float64)[:, None] * freq
        return torch.cat([angle.sin(), angle.cos()], 1)

    if spec.kind == "sequence":
        return one_axis(spec.slots, dim).float()
    rows, cols = spec.grid
    r, c = one_axis(rows, dim // 2), one_axis(cols, dim // 2)
    return (
        torch.cat([r[:, None].expand(-1, cols, -1), c[None].expand(rows, -1, -1)], -1).reshape(rows * cols, dim).float()
    )


def select(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) bool -> indices (B, N) of the True positions first (in order), and which of them are True; N = max count."""
    n = int(mask.sum(1).max()) if mask.numel() else 0
    order = torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)[:, :n]
    return order, torch.gather(mask, 1, order)


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, L, D), index (B, N) -> (B, N, D)."""
    return torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[-1]))


class FourM(nn.Module):
    def __init__(self, specs: list[ModalitySpec], config: FMConfig):
        super().__init__()
        self.specs, self.config = list(specs), config
        d = config.dim
        self.embeddings = nn.ModuleDict({s.name: nn.Embedding(s.model_vocab, d) for s in specs})
        self.modality_embedding = nn.Parameter(torch.zeros(len(specs), d))
        self.mask_token = nn.Parameter(torch.zeros(d))
        self.context_token = nn.Parameter(torch.zeros(d))
        self.has_sequences = any(s.kind == "sequence" for s in specs)
        if self.has_sequences:
            self.start_token = nn.Parameter(torch.zeros(d))
        self.encoder = nn.ModuleList(
            EncoderBlock(d, config.heads, config.mlp_ratio) for _ in range(config.encoder_layers)
        )
        self.encoder_norm = layer_norm(d)
        self.context_proj = nn.Linear(d, d, bias=False)
        self.decoder = nn.ModuleList(
            DecoderBlock(d, config.heads, config.mlp_ratio) for _ in range(config.decoder_layers)
        )
        self.decoder_norm = layer_norm(d)
        lengths = [s.slots for s in specs]
        self.register_buffer("positions", torch.cat([sincos_positions(s, d) for s in specs]), persistent=False)
        self.register_buffer(
            "modality_index", torch.cat([torch.full((n,), j) for j, n in enumerate(lengths)]), persistent=False
        )
        self.register_buffer("position_index", torch.cat([torch.arange(n) for n in lengths]), persistent=False)
        self.register_buffer(
            "is_sequence", torch.cat([torch.full((s.slots,), s.kind == "sequence") for s in specs]), persistent=False
        )
        self.apply(_init)
        for (
            e
        ) in self.embeddings.values():  # unit scale like the sin-cos positions; the tied heads divide by sqrt(D) (T5)
            nn.init.normal_(e.weight, std=1.0)
        for p in (self.modality_embedding, self.mask_token, self.context_token) + (
            (self.start_token,) if self.has_sequences else ()
        ):
            nn.init.trunc_normal_(p, std=0.02)

    def num_parameters(self, embeddings: bool = True) -> int:
        skip = {id(e.weight) for e in self.embeddings.values()} if not embeddings else set()
        return sum(p.numel() for p in self.parameters() if id(p) not in skip)

    # -- embeddings ---------------------------------------------------------------------------------------
    def _concat(self, per_modality: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([per_modality[s.name] for s in self.specs], 1)

    def _where(self) -> torch.Tensor:
        """(L, D): position + modality embedding of every token slot."""
        return self.positions + self.modality_embedding[self.modality_index]

    def _token_embeddings(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([self.embeddings[s.name](tokens[s.name]) for s in self.specs], 1)

    def previous_ids(self, batch: MaskedBatch) -> torch.Tensor:
        """(B, L) int64: per sequence slot the id its decoder query reads, the previous slot's *decoder* token
        (-1 at slot 0: the start token); -1 for other modalities' slots (they read nothing)."""
        parts = []
        for s in self.specs:
            ids = batch.decoder_tokens(s.name)
            none = torch.full_like(ids[:, :1], -1)
            parts.append(torch.cat([none, ids[:, :-1]], 1) if s.kind == "sequence" else torch.full_like(ids, -1))
        return torch.cat(parts, 1)

    def _previous_token_embeddings(self, batch: MaskedBatch, index: torch.Tensor) -> torch.Tensor:
        """(B, M, D) for the target slots ``index``: the embedding of :meth:`previous_ids` (start token at slot 0), else 0."""
        previous = torch.gather(self.previous_ids(batch), 1, index)
        out = torch.zeros(*index.shape, self.config.dim, device=index.device, dtype=self.mask_token.dtype)
        modality = self.modality_index[index]
        for j, s in enumerate(self.specs):
            if s.kind != "sequence":
                continue
            here = modality == j
            ids = previous[here]
            out[here] = torch.where((ids < 0)[:, None], self.start_token, self.embeddings[s.name](ids.clamp(min=0)))
        return out

    # -- encoder / decoder --------------------------------------------------------------------------------
    def encode(self, batch: MaskedBatch, return_layers: bool = False):
        """The encoder over the batch's input tokens.

        Returns ``(hidden (B, 1 + K, D), keep (B, 1 + K) bool, where (B, 1 + K, D))``; row 0 is the context
        token, ``keep`` marks real tokens, ``where`` is their position + modality embedding (0 for the context
        token). With ``return_layers`` ``hidden`` is a list: the embedded input, then each block's output.
        """
        b = batch.batch_size
        where = self._where()
        index, keep = select(self._concat(batch.input))
        x = gather_rows(self._token_embeddings(batch.tokens) + where, index)
        where_in = where[index]
        x = torch.cat([self.context_token.expand(b, 1, -1).to(x.dtype), x], 1)
        where_in = torch.cat(
            [where_in.new_zeros(b, 1, where_in.shape[-1]), where_in], 1
        )  # (B, 1, D) even with no inputs
        keep = torch.cat([keep.new_ones(b, 1), keep], 1)
        mask = keep[:, None, None, :]
        layers = [x]
        for block in self.encoder:
            x = block(x, mask)
            layers.append(x)
        return (layers if return_layers else x), keep, where_in

    def encoder_hidden_states(self, batch: MaskedBatch) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per-layer encoder states (embedded input first, then each block), each (B, 1 + K, D), and ``keep``."""
        layers, keep, _ = self.encode(batch, return_layers=True)
        return layers, keep

    def decode(self, batch: MaskedBatch, encoded=None):
        """Decoder states of the target tokens: ``(hidden (B, M, D) normalised, index (B, M) into the L slots,
        keep (B, M) bool)``."""
        hidden, context_keep, context_where = self.encode(batch) if encoded is None else encoded
        context = self.context_proj(self.encoder_norm(hidden)) + context_where
        index, keep = select(self._concat(batch.target))
        where = self._where()
        q = self.mask_token + where[index]
        if self.has_sequences:
            q = q + self._previous_token_embeddings(batch, index)
        modality, position, sequence = self.modality_index[index], self.position_index[index], self.is_sequence[index]
        causal = ~sequence[:, :, None] | (position[:, None, :] <= position[:, :, None])
        self_mask = (modality[:, :, None] == modality[:, None, :]) & keep[:, None, :] & causal
        self_mask = (self_mask | torch.eye(index.shape[1], dtype=torch.bool, device=index.device))[:, None]
        cross_mask = context_keep[:, None, None, :]
        for block in self.decoder:
            q = block(q, self_mask, context, cross_mask)
        return self.decoder_norm(q), index, keep

    def target_logits(self, batch: MaskedBatch) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per modality: ``(logits (n, V) float, sample (n,), position (n,))`` for its n target tokens."""
        hidden, index, keep = self.decode(batch)
        modality = self.modality_index[index]
        offsets = torch.cumsum(torch.tensor([0] + [s.slots for s in self.specs], device=index.device), 0)
        out = {}
        for j, s in enumerate(self.specs):
            chosen = keep & (modality == j)
            rows = hidden[chosen]
            logits = rows @ self.embeddings[s.name].weight.to(rows.dtype).t() * self.config.dim**-0.5
            sample = torch.nonzero(chosen, as_tuple=True)[0]
            out[s.name] = (logits.float(), sample, index[chosen] - offsets[j])
        return out

    def forward(self, batch: MaskedBatch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per modality: (sum of the target tokens' cross-entropy, their count). Every modality is present
        (count 0 when it has no targets), so every head takes part in backward (DDP needs that)."""
        out = {}
        for name, (logits, sample, position) in self.target_logits(batch).items():
            target = batch.decoder_tokens(name)[sample, position]
            out[name] = (
                F.cross_entropy(logits, target, reduction="sum"),
                torch.tensor(len(target), device=logits.device),
            )
        return out


def _init(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.trunc_normal_(module.weight, std=0.02)
