"""Language components: a ``transformers`` causal LM (GPT-2 or Llama architecture) as a layer stack.

Inputs: int64 ids (B, T), right-padded (causal attention never lets a real token see the padding).
A ``vocab.json`` in the LM's folder is the caption BPE (:class:`tokzoo.tokenizers.text.CaptionTokenizer`) of its ids.
Layers: 0 = token (+ GPT-2 position) embeddings, 1 .. n = the decoder blocks; ``finish`` applies the final
norm and the LM head. Glue can prepend ``prefix`` vectors (B, P, D) at the input (eP-ALM's soft prompt; no
position embedding, positions of the text start at 0), insert or overwrite prefix slots between layers
(:meth:`set_prefix`), add to a block's attention output through ``attention_extra`` (``xattn``), and change a
block's keys, values and feed-forward hidden state (:meth:`step_infused`, MiT). Logits come back for the text
positions only: (B, T, vocab).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..limits import MAX_COMPONENT_PARAMETERS, count_parameters
from .components import Component, Stream, check_loaded, config_errors, load_reason, model_folder, transformers_config

SUPPORTED = ("gpt2", "llama")
VOCAB_NAME = "vocab.json"  # a caption BPE (tokzoo.tokenizers.text) saved beside the LM: the ids it was trained on


def load_causal_lm(path: str | Path):
    """A ``transformers`` causal LM from a local folder of config.json + model.safetensors (never pickles)."""
    from transformers import AutoModelForCausalLM

    path = model_folder(path)
    try:
        config = transformers_config(path)
        count_parameters(lambda: [AutoModelForCausalLM.from_config(config)], str(path), MAX_COMPONENT_PARAMETERS)
        model, info = AutoModelForCausalLM.from_pretrained(
            str(path), config=config, use_safetensors=True, attn_implementation="sdpa", output_loading_info=True
        )
    except ConfigError as error:
        raise CheckpointError(str(error)) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError, *config_errors()) as error:
        raise CheckpointError(f"{path}: not loadable as a causal LM ({load_reason(path, error)})") from None
    return check_loaded(path, model, info)


class CausalLM(Component):
    """A GPT-2 or Llama ``*ForCausalLM`` module; see the module docstring for layers and hooks."""

    kind = "lm"

    def __init__(self, model: nn.Module, name: str = "lm", source: str = ""):
        arch = getattr(model.config, "model_type", None)
        if arch not in SUPPORTED:
            raise ConfigError(
                f"component {name!r}: causal LM architecture {arch!r} is not supported ({', '.join(SUPPORTED)})"
            )
        super().__init__(name, model, source or arch)
        self.arch = arch
        core = model.transformer if arch == "gpt2" else model.model
        self.core = core
        self.blocks = core.h if arch == "gpt2" else core.layers
        self.hidden_size = int(model.config.hidden_size)
        self.heads = int(model.config.num_attention_heads)
        self.vocab_file = None

    @classmethod
    def from_pretrained(cls, path, name: str = "lm") -> "CausalLM":
        lm = cls(load_causal_lm(path), name=name, source=str(path))
        vocab = Path(path) / VOCAB_NAME
        lm.vocab_file = vocab if vocab.exists() else None  # a FIFO or device is refused by the reader, not skipped
        return lm

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    @property
    def vocab_size(self) -> int:
        return int(self.model.config.vocab_size)

    def width(self, layer: int) -> int:
        return self.hidden_size

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings (B, T, D), without positions."""
        return self.model.get_input_embeddings()(ids)

    # -- the stream ----------------------------------------------------------------------------------
    def begin(self, ids: torch.Tensor, prefix: torch.Tensor | None = None) -> Stream:
        ids = torch.as_tensor(ids)
        h = self.embed(ids)
        if self.arch == "gpt2":
            positions = torch.arange(ids.shape[1], device=ids.device)
            h = h + self.core.wpe(positions)[None]
        stream = Stream(h, 0, {"prefix": 0, "text": ids.shape[1]})
        if prefix is not None:
            self.set_prefix(stream, prefix)
        return stream

    def set_prefix(self, stream: Stream, vectors: torch.Tensor, slot: int = 0) -> Stream:
        """Insert ``vectors`` (B, P, D) as prefix slots ``slot .. slot + P`` when the stream has fewer, else overwrite."""
        n = vectors.shape[1]
        have = stream.extra["prefix"]
        if slot > have:
            raise ConfigError(f"prefix slot {slot} past the {have} prefix slots the stream holds")
        grow = max(0, slot + n - have)
        head, tail = stream.h[:, :slot], stream.h[:, slot + n - grow :]
        stream.h = torch.cat([head, vectors.to(stream.h.dtype), tail], dim=1)
        stream.extra["prefix"] = have + grow
        return stream

    def _mask(self, stream: Stream) -> torch.Tensor:
        """Additive causal mask (1, 1, L, L) for the current length (prefix slots first)."""
        length = stream.h.shape[1]
        cached = stream.extra.get("mask")
        if cached is None or cached.shape[-1] != length:
            allowed = torch.ones(length, length, dtype=torch.bool, device=stream.h.device).tril()
            cached = torch.zeros(length, length, dtype=stream.h.dtype, device=stream.h.device)
            cached = cached.masked_fill(~allowed, torch.finfo(stream.h.dtype).min)[None, None]
            stream.extra["mask"] = cached
        return cached

    def _attention(self, index: int) -> nn.Module:
        block = self.blocks[index - 1]
        return block.attn if self.arch == "gpt2" else block.self_attn

    def step(self, stream: Stream, index: int, attention_extra=None) -> Stream:
        """Apply block ``index``; ``attention_extra(x)`` (x: the block's normed input (B, L, D)) returns a
        (B, L, D) term added to the block's attention output before its MLP."""
        block, mask = self.blocks[index - 1], self._mask(stream)
        handle = None
        if attention_extra is not None:

            def hook(module, args, kwargs, output):
                x = args[0] if args else kwargs["hidden_states"]
                return (output[0] + attention_extra(x), *output[1:])

            handle = self._attention(index).register_forward_hook(hook, with_kwargs=True)
        try:
            if self.arch == "gpt2":
                stream.h = block(stream.h, attention_mask=mask)
            else:
                positions = self._positions(stream)
                rotary = self.core.rotary_emb(stream.h, position_ids=positions)
                stream.h = block(stream.h, attention_mask=mask, position_ids=positions, position_embeddings=rotary)
        finally:
            if handle is not None:
                handle.remove()
        if isinstance(stream.h, tuple):  # older transformers blocks return tuples
            stream.h = stream.h[0]
        stream.layer = index
        return stream

    def _positions(self, stream: Stream) -> torch.Tensor:
        length, prefix = stream.h.shape[1], stream.extra["prefix"]
        return (torch.arange(length, device=stream.h.device) - prefix).clamp(min=0)[None]

    def step_infused(self, stream: Stream, index: int, infuse_kv, infuse_hidden) -> Stream:
        """Block ``index`` recomputed from its frozen weights, with ``infuse_kv(k, v) -> (k, v)`` applied to its keys and
        values (B, kv_heads, L, head_dim; Llama: before the rotary embedding) and ``infuse_hidden(x) -> x`` to its
        feed-forward hidden state (B, L, F). With identities it is :meth:`step` (up to float rounding)."""
        block, mask, x = self.blocks[index - 1], self._mask(stream), stream.h
        b, length, _ = x.shape
        if self.arch == "gpt2":
            attention, a = block.attn, block.ln_1(x)
            q, k, v = (
                t.view(b, length, self.heads, -1).transpose(1, 2)
                for t in attention.c_attn(a).split(self.hidden_size, 2)
            )
            k, v = infuse_kv(k, v)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            h = x + attention.c_proj(y.transpose(1, 2).reshape(b, length, -1))
            mlp = block.mlp
            stream.h = h + mlp.c_proj(infuse_hidden(mlp.act(mlp.c_fc(block.ln_2(h)))))
        else:
            from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

            attention, a = block.self_attn, block.input_layernorm(x)
            q, k, v = (
                proj(a).view(b, length, -1, attention.head_dim).transpose(1, 2)
                for proj in (attention.q_proj, attention.k_proj, attention.v_proj)
            )
            k, v = infuse_kv(k, v)
            cos, sin = self.core.rotary_emb(x, position_ids=self._positions(stream))
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            groups = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attention.scaling)
            h = x + attention.o_proj(y.transpose(1, 2).reshape(b, length, -1))
            mlp, m = block.mlp, block.post_attention_layernorm(h)
            stream.h = h + mlp.down_proj(infuse_hidden(mlp.act_fn(mlp.gate_proj(m)) * mlp.up_proj(m)))
        stream.layer = index
        return stream

    def kv_shape(self, index: int) -> tuple[int, int]:
        """(key / value heads, head width) of block ``index``."""
        attention = self._attention(index)
        if self.arch == "gpt2":
            return self.heads, self.hidden_size // self.heads
        return attention.k_proj.out_features // attention.head_dim, attention.head_dim

    def ffn_width(self, index: int) -> int:
        """Width of block ``index``'s feed-forward hidden state."""
        mlp = self.blocks[index - 1].mlp
        return mlp.c_fc.nf if self.arch == "gpt2" else mlp.up_proj.out_features

    def queries(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """The frozen query projection of block ``index`` on its normed input x (B, L, D): (B, heads, L, D / heads)."""
        attention = self._attention(index)
        q = attention.c_attn(x)[..., : self.hidden_size] if self.arch == "gpt2" else attention.q_proj(x)
        return q.view(*x.shape[:2], self.heads, -1).transpose(1, 2)

    def project_out(self, index: int, y: torch.Tensor) -> torch.Tensor:
        """The frozen attention output projection of block ``index`` (weights only, no bias): (B, L, D) -> (B, L, D)."""
        attention = self._attention(index)
        if self.arch == "gpt2":
            return y @ attention.c_proj.weight
        return y @ attention.o_proj.weight.T

    def tokens(self, stream: Stream) -> torch.Tensor:
        return stream.h

    def add(self, stream: Stream, delta: torch.Tensor) -> Stream:
        stream.h = stream.h + delta
        return stream

    def finish(self, stream: Stream, select: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, vocab) of the text positions, or (n, vocab) at the True positions of ``select`` (B, T):
        the LM head is the costliest layer of a small LM, so training applies it only where the loss is."""
        norm = self.core.ln_f if self.arch == "gpt2" else self.core.norm
        h = stream.h[:, stream.extra["prefix"] :]
        if select is not None:
            h = h[select]
        return self.model.get_output_embeddings()(norm(h))

    def logits_with_prefix(
        self, ids: torch.Tensor, prefix: torch.Tensor, select: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The LM with ``prefix`` vectors (B, P, D) before the text: logits of the text positions, as :meth:`logits`."""
        return self.finish(self.run(self.begin(ids, prefix=prefix), self.n_layers), select)

    def logits(self, ids: torch.Tensor, select: torch.Tensor | None = None) -> torch.Tensor:
        """The plain LM on its own: logits (B, T, vocab), or (n, vocab) at ``select``."""
        return self.finish(self.run(self.begin(ids), self.n_layers), select)
