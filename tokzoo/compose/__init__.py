"""Composing frozen pretrained models with a small trainable glue: GATS, eP-ALM, MiT and baselines (see docs/ARCHITECTURE.md).

Imports tokzoo's tokenizers, datasets, text and tokzoo.fm (its encoder as a component); nothing in tokzoo imports this package.
"""

from .components import Component, Frames, Stream
from .composition import Composition, build_component, load_composition
from .encoders import TokenizerEncoder
from .fm_encoder import FMEncoder
from .language import CausalLM, load_causal_lm
from .recipe import is_compose_recipe, read_recipe, resolve_recipe
from .registry import METHODS
from .vision import VisionTransformer, load_vision_model

__all__ = [
    "METHODS",
    "CausalLM",
    "Component",
    "Composition",
    "Frames",
    "FMEncoder",
    "Stream",
    "TokenizerEncoder",
    "build_component",
    "VisionTransformer",
    "is_compose_recipe",
    "load_causal_lm",
    "load_composition",
    "load_vision_model",
    "read_recipe",
    "resolve_recipe",
]
