"""Training learned tokenizers from YAML recipes: recipe.py (schema), data.py (batches), loop.py (the loop),
checkpointing.py (safetensors + JSON checkpoints), ema.py."""

from .loop import TrainResult, learning_rate, train
from .recipe import build_tokenizer, load_recipe, tokenizer_config, validate_recipe

__all__ = [
    "TrainResult",
    "build_tokenizer",
    "learning_rate",
    "load_recipe",
    "tokenizer_config",
    "train",
    "validate_recipe",
]
