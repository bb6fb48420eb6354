"""Model-backed labelers on Hugging Face ``transformers``: loading, preprocessing, batching.

Install with ``pip install 'tokzoo[labelers]'``. ``from_pretrained(path_or_hub_id)`` loads the model
and its image processor with the library's own classes (a local folder written by ``save_pretrained``,
or a hub id, downloaded once into the Hugging Face cache); nothing is fetched at label time.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from tokzoo.errors import CheckpointError, TokzooError

from .base import Labeler


def transformers():
    """The ``transformers`` module, or a one-line TokzooError saying how to install it."""
    try:
        import transformers as module
    except ImportError:
        raise TokzooError("model-backed labelers need transformers: pip install 'tokzoo[labelers]'") from None
    return module


class HFLabeler(Labeler):
    """A labeler around one ``transformers`` model and its image processor.

    Subclasses set ``model_class`` (a name in ``transformers``) and ``default_checkpoint`` (a hub id),
    and implement ``_predict`` with ``self.model`` / ``self.processor`` (``self.inputs(images)`` gives the
    processor's tensors on the device).
    """

    model_backed = True
    model_class: ClassVar[str]
    model_options: ClassVar[dict] = {}
    """Keyword arguments of ``model_class.from_pretrained`` (e.g. leaving out an unused, unsaved pooler)."""
    processor_class: ClassVar[str] = "AutoImageProcessor"
    default_checkpoint: ClassVar[str]

    def __init__(self, model, processor, device: str = "cpu", batch_size: int = 8, reference: str = ""):
        super().__init__(device=device, batch_size=batch_size)
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.reference = reference

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str | Path, device: str = "cpu", batch_size: int = 8, **kwargs):
        """Load from a ``save_pretrained`` folder or a hub id; CheckpointError (one line) when that fails."""
        tf = transformers()
        tf.utils.logging.disable_progress_bar()
        where = str(path_or_hub_id)
        local = Path(where).is_dir()
        if not local and (Path(where).exists() or where.startswith(("/", ".", "~"))):  # a path, not a hub id
            reason = "is a file" if Path(where).exists() else "no such folder"
            raise CheckpointError(f"{where}: {reason}; {cls.name} loads a save_pretrained folder or a hub id")
        model_class = getattr(tf, cls.model_class)
        try:
            config = tf.AutoConfig.from_pretrained(where, local_files_only=local)
            expected = getattr(getattr(model_class, "config_class", None), "model_type", None)
            if expected and config.model_type != expected:
                raise ValueError(f"it holds a {config.model_type!r} model, not {expected!r}")
            model = model_class.from_pretrained(where, config=config, local_files_only=local, **cls.model_options)
            processor = getattr(tf, cls.processor_class).from_pretrained(where, local_files_only=local)
        except (OSError, ValueError, KeyError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CheckpointError(f"{where}: cannot load a {cls.model_class} ({first})") from None
        return cls(model, processor, device=device, batch_size=batch_size, reference=where, **kwargs)

    def _label(self, chunk):
        """Runs :meth:`_predict` on each group of same-size images (processors that keep the aspect ratio
        cannot stack different sizes), results back in input order."""
        images, out = chunk["rgb"], [None] * len(chunk["rgb"])
        groups: dict[tuple, list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(np.shape(image), []).append(i)
        for indices in groups.values():
            with torch.inference_mode():
                for i, value in zip(indices, self._predict([images[i] for i in indices])):
                    out[i] = value
        return out

    def _predict(self, images: list[np.ndarray]) -> list:
        """Same-size rgb uint8 (H, W, 3) images -> one output value each."""
        raise NotImplementedError

    def inputs(self, images: list[np.ndarray], **kwargs) -> dict:
        """The processor's tensors for ``images`` (uint8 (H, W, 3) each), on the labeler's device."""
        batch = self.processor(images=[np.array(image) for image in images], return_tensors="pt", **kwargs)
        return {k: v.to(self.device) if hasattr(v, "to") else v for k, v in batch.items()}

    def describe(self) -> str:
        return f"{super().describe()} [{self.model_class} {self.reference}]"
