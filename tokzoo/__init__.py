"""tokzoo: modality tokenizers, pseudo-labelers and webdataset sharding for any-to-any multimodal models."""

__version__ = "0.1.0"

from .tokenizer import Tokenizer  # noqa: E402
from . import learned, structured, text  # noqa: E402,F401  (register the architectures)
from .zoo import load_tokenizer  # noqa: E402

__all__ = ["Tokenizer", "load_tokenizer", "__version__"]
