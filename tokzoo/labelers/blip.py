"""Image captions from BLIP (``BlipForConditionalGeneration`` + its ``BlipProcessor``): greedy decoding.

Output: one ``str`` per image (special tokens removed, stripped); ``tokzoo pseudo-label -m captions`` writes it
as ``<key>.captions.txt``, which the ``captions`` zoo tokenizer (:mod:`tokzoo.tokenizers.text`) turns into tokens.
"""

from __future__ import annotations

from tokzoo.errors import ConfigError

from .base import register_labeler
from .hf import HFLabeler


@register_labeler
class BlipCaptions(HFLabeler):
    """rgb -> caption str, at most ``max_new_tokens`` tokens, greedy (deterministic)."""

    name = "blip_captions"
    modality = "captions"
    model_class = "BlipForConditionalGeneration"
    processor_class = "AutoProcessor"
    default_checkpoint = "Salesforce/blip-image-captioning-base"

    def __init__(self, model, processor, max_new_tokens: int = 30, **kwargs):
        super().__init__(model, processor, **kwargs)
        if max_new_tokens < 1:
            raise ConfigError(f"{self.name}: max_new_tokens must be >= 1, got {max_new_tokens}")
        self.max_new_tokens = max_new_tokens

    def _predict(self, images):
        ids = self.model.generate(
            pixel_values=self.inputs(images)["pixel_values"],
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            num_beams=1,
        )
        return [text.strip() for text in self.processor.batch_decode(ids, skip_special_tokens=True)]
