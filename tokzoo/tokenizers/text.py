"""Captions: a byte-level BPE text tokenizer (Hugging Face ``tokenizers``) with fixed-length rows.

Ids: 0 = PAD, 1 = EOS, then the BPE vocabulary. A caption becomes ``[t1, ..., tk, EOS, PAD, ...]`` of
``length`` ids; byte-level BPE has no unknown token, so any text up to ``length - 1`` tokens decodes back
exactly. The zoo vocabulary ships in ``tokzoo/tokenizers/weights/captions/vocab.json``
(``scripts/train_caption_vocab.py`` says what it was trained on).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError, DtypeError, InputError, ShapeError
from ..indices import to_ids
from ..io.writes import write_file
from . import checkpoint
from .base import Tokenizer, register_architecture

PAD, EOS = 0, 1
SPECIAL_TOKENS = ["<pad>", "<eos>"]
VOCAB_NAME = "vocab.json"
BUNDLED_VOCAB = Path(__file__).parent / "weights" / "captions" / VOCAB_NAME


def train_vocab(texts, vocab_size: int = 8192):
    """Train a byte-level BPE ``tokenizers.Tokenizer`` on an iterable of strings, PAD and EOS as ids 0 and 1."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    from ..limits import check_field

    check_field(vocab_size, "train_vocab", "vocab_size", "text.vocab_size")  # 10^9: the Rust trainer aborts (exit 134)
    bpe = HFTokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    return bpe


@register_architecture("text")
class CaptionTokenizer(Tokenizer):
    """Strings -> int64 (B, length) ids and back. ``vocab``: a ``tokenizers`` JSON file (default: the zoo's)."""

    def __init__(self, length: int = 64, vocab: str | Path = BUNDLED_VOCAB, name: str = "captions"):
        from tokenizers import Tokenizer as HFTokenizer

        if isinstance(length, bool) or not isinstance(length, int) or length < 2:
            raise ConfigError(f"captions config: 'length' must be an integer >= 2, got {length!r}")
        from ..io.safety import MAX_JSON_BYTES, read_file

        try:  # a regular file of at most 16 MiB (a FIFO would block); tokenizers raises bare Exceptions
            self._vocab_text = read_file(vocab, MAX_JSON_BYTES).decode("utf-8")
            self.bpe = HFTokenizer.from_str(self._vocab_text)
        except InputError as error:
            raise ConfigError(str(error)) from None
        except Exception as error:  # noqa: BLE001 - UnicodeDecodeError, tokenizers' parse errors
            raise ConfigError(
                f"{vocab}: not a tokenizers vocabulary ({str(error).splitlines()[0][:120] if str(error) else type(error).__name__})"
            ) from None
        if [self.bpe.token_to_id(t) for t in SPECIAL_TOKENS] != [PAD, EOS]:
            raise ConfigError(f"{vocab}: the vocabulary must hold {SPECIAL_TOKENS} as ids {PAD} and {EOS}")
        self.config = {
            "architecture": self.architecture,
            "modality": "captions",
            "name": name,
            "length": length,
            "vocab_file": VOCAB_NAME,
            "vocab_sha256": hashlib.sha256(self._vocab_text.encode()).hexdigest(),
        }

    @property
    def length(self) -> int:
        return self.config["length"]

    @property
    def vocab_size(self) -> int:
        return self.bpe.get_vocab_size()

    @property
    def token_shape(self) -> tuple[int, ...]:
        return (self.length,)

    @property
    def contract(self) -> str:
        return (
            f"A str, or a list of B str (any Unicode text). Tokenized by byte-level BPE ({self.vocab_size} ids; "
            f"0 = PAD, 1 = EOS) into (B, {self.length}) rows: tokens, EOS, PAD. Text longer than "
            f"{self.length - 1} tokens is truncated. decode returns a list of B str (exact for untruncated "
            f"text; ids after the first EOS are ignored)."
        )

    def encode(self, x) -> torch.Tensor:
        texts = [x] if isinstance(x, str) else x
        if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
            raise DtypeError("captions input", f"expected a str or a list of str, got {type(x).__name__}")
        rows = np.full((len(texts), self.length), PAD, dtype=np.int64)
        for row, encoding in zip(rows, self.bpe.encode_batch(list(texts), add_special_tokens=False)):
            ids = encoding.ids[: self.length - 1] + [EOS]
            row[: len(ids)] = ids
        return torch.from_numpy(rows)

    def decode(self, tokens) -> list[str]:
        ids = to_ids(tokens, self.vocab_size, "captions tokens")
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2:
            raise ShapeError("captions tokens", f"expected (L,) or (B, L), got {tuple(ids.shape)}")
        texts = []
        for row in ids.tolist():
            row = row[: row.index(EOS)] if EOS in row else row
            texts.append(self.bpe.decode([i for i in row if i != PAD], skip_special_tokens=False))
        return texts

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = checkpoint.write_checkpoint(directory, self.config, {})
        write_file(directory, directory / VOCAB_NAME, self._vocab_text)
        return directory

    @classmethod
    def from_config(cls, config: dict, directory: Path | None = None) -> "CaptionTokenizer":
        """Rebuild from a config and (when given) the ``vocab.json`` beside it, checked against its hash."""
        vocab = BUNDLED_VOCAB if directory is None else Path(directory) / config.get("vocab_file", VOCAB_NAME)
        if not vocab.is_file():
            raise CheckpointError(f"{vocab}: missing")
        tokenizer = cls(length=config.get("length", 64), vocab=vocab, name=config.get("name", "captions"))
        expected = config.get("vocab_sha256")
        if expected is not None and expected != tokenizer.config["vocab_sha256"]:
            raise CheckpointError(f"{vocab}: does not match the vocab_sha256 in its config")
        return tokenizer
