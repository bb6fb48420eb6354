"""MiT (multimodal infusion tuning, 2024): one global image vector infused into a frozen LM's keys, values and
feed-forward hidden states; no image token enters the sequence.

The image vector ``I`` (B, dim) is the frozen encoder's class token at ``vision_layer`` (its tokens' mean when it
has none) through a trainable LayerNorm + linear map. In each chosen LM block, per key / value head h and token t:

    g = sigmoid(L_h + cos(V_t,h, W_g I))          (adaptive; ``adaptive_gate: false``: sigmoid(L_h), the ablation)
    K' = K + (K * W_km I + W_kp I) g,   V' = V + (V * W_vm I + W_vp I) g
    FFN hidden state' = hidden state * (W_f I + b_f)

with ``L_h`` learnable per head (init 1), ``W_km, W_kp, W_vm, W_vp, W_f`` zero and ``b_f`` one at the start (so an
untrained MiT is the frozen LM). Keys are infused before a Llama block's rotary embedding. Compute: a handful of
(dim x width) products per sample and block, against a prefix method's extra tokens through every block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .registry import Glue, register_method


def head_gate(values: torch.Tensor, image: torch.Tensor, bias: torch.Tensor, adaptive: bool) -> torch.Tensor:
    """sigmoid(L_h + cos(V_t,h, I^v_h)) (B, H, T, 1); ``values`` (B, H, T, d), ``image`` I^v (B, H, d), ``bias`` L (H,)."""
    logit = bias[None, :, None, None]
    if adaptive:
        logit = logit + F.cosine_similarity(values, image[:, :, None, :], dim=-1)[..., None]
    return torch.sigmoid(logit.expand(values.shape[0], -1, values.shape[2], 1))


class Infusion(nn.Module):
    """One LM block's infusion of the image vector I (B, dim): keys, values (B, H, T, d) and the FFN hidden state."""

    def __init__(self, dim: int, heads: int, head_dim: int, ffn_width: int, adaptive: bool, ffn: bool):
        super().__init__()
        self.heads, self.head_dim, self.adaptive = heads, head_dim, adaptive
        width = heads * head_dim
        self.key_mul, self.key_add = nn.Linear(dim, width), nn.Linear(dim, width)
        self.value_mul, self.value_add = nn.Linear(dim, width), nn.Linear(dim, width)
        for linear in (self.key_mul, self.key_add, self.value_mul, self.value_add):
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)
        self.value_image = nn.Linear(dim, width) if adaptive else None
        self.gate_bias = nn.Parameter(torch.ones(heads))
        self.ffn = nn.Linear(dim, ffn_width) if ffn else None
        if ffn:
            nn.init.zeros_(self.ffn.weight)
            nn.init.ones_(self.ffn.bias)

    def _per_head(self, linear: nn.Module, image: torch.Tensor) -> torch.Tensor:
        return linear(image).view(-1, self.heads, 1, self.head_dim)

    def gate(self, values: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        image_v = self.value_image(image).view(-1, self.heads, self.head_dim) if self.adaptive else None
        return head_gate(values, image_v, self.gate_bias, self.adaptive)

    def kv(self, keys: torch.Tensor, values: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.gate(values, image)
        keys = keys + (keys * self._per_head(self.key_mul, image) + self._per_head(self.key_add, image)) * g
        values = values + (values * self._per_head(self.value_mul, image) + self._per_head(self.value_add, image)) * g
        return keys, values

    def hidden(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return x if self.ffn is None else x * self.ffn(image)[:, None, :]


@register_method("mit")
class MiT(Glue):
    """Settings: ``vision_layer`` (negative counts from the end), ``layers`` (LM blocks, default the last half),
    ``dim`` (width of I, default the LM's), ``adaptive_gate`` (the cos term), ``ffn`` (the FFN infusion)."""

    def __init__(
        self,
        lm,
        encoder,
        vision_layer: int = -1,
        layers: list[int] | None = None,
        dim: int | None = None,
        adaptive_gate: bool = True,
        ffn: bool = True,
    ):
        super().__init__()
        self.encoder_name = encoder.name
        n_v, n_l = encoder.n_layers, lm.n_layers
        self.vision_layer = vision_layer if vision_layer >= 0 else n_v + 1 + vision_layer
        self.layers = list(layers or range(n_l // 2 + 1, n_l + 1))
        if not 0 <= self.vision_layer <= n_v:
            raise ConfigError(f"mit: vision_layer {vision_layer} outside 0..{n_v} (negative counts from the end)")
        if any(not 1 <= i <= n_l for i in self.layers):
            raise ConfigError(f"mit: layers {layers} outside the LM's 1..{n_l}")
        self.dim, self.adaptive_gate, self.ffn = dim or lm.width(0), bool(adaptive_gate), bool(ffn)
        channels = encoder.width(self.vision_layer)
        self.image = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, self.dim))
        self.infusions = nn.ModuleDict(
            {
                str(i): Infusion(self.dim, *lm.kv_shape(i), lm.ffn_width(i), self.adaptive_gate, self.ffn)
                for i in self.layers
            }
        )

    def first_layer(self, name: str) -> int:
        return self.vision_layer if name == self.encoder_name else 0

    def settings(self) -> dict:
        return {
            "vision_layer": self.vision_layer,
            "layers": self.layers,
            "dim": self.dim,
            "adaptive_gate": self.adaptive_gate,
            "ffn": self.ffn,
        }

    def image_vector(self, encoder, inputs) -> torch.Tensor:
        """I (B, dim): the encoder's class token at ``vision_layer``, normed and projected."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not encoder.frozen):
            cls = encoder.class_token(encoder.run(encoder.begin(inputs), self.vision_layer))[:, 0]
        return self.image(cls)

    def forward(
        self, components: dict, inputs: dict, lm_name: str, prompt_len: torch.Tensor, select: torch.Tensor | None = None
    ) -> torch.Tensor:
        lm = components[lm_name]
        image = self.image_vector(components[self.encoder_name], inputs[self.encoder_name])
        stream = lm.begin(inputs[lm_name])
        for index in range(1, lm.n_layers + 1):
            if index in self.layers:
                infusion = self.infusions[str(index)]
                lm.step_infused(
                    stream, index, lambda k, v, f=infusion: f.kv(k, v, image), lambda x, f=infusion: f.hidden(x, image)
                )
            else:
                lm.step(stream, index)
        return lm.finish(stream, select)
