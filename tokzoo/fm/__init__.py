"""A thin 4M-style any-to-any model trained on tokzoo token datasets (docs/ARCHITECTURE.md, "Multimodal trainer").

One concept per module (modalities as the model sees them: :mod:`tokzoo.tokens.spec`): :mod:`.masking` (4M input/target
budgets), :mod:`.spans` (sentinel span corruption of sequences), :mod:`.stream` (mixed datasets, each process
reading its rows), :mod:`.blocks` and :mod:`.model` (the encoder-decoder), :mod:`.recipe` (YAML schema),
:mod:`.train` (the loop), :mod:`.checkpoint` (safetensors + JSON), :mod:`.generate` (any-to-any decoding),
:mod:`.evaluate` (held-out metrics). Imports tokzoo.tokens and the tokenizers; nothing in tokzoo imports it.
"""

from .masking import MaskedBatch, Masker, MaskingConfig, MixtureComponent, flatten_batch
from .model import PRESETS, FMConfig, FourM, model_config

__all__ = [
    "MaskedBatch",
    "Masker",
    "MaskingConfig",
    "MixtureComponent",
    "flatten_batch",
    "PRESETS",
    "FMConfig",
    "FourM",
    "model_config",
]
