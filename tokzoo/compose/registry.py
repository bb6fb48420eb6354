"""The glue methods by name: one file per method, registered by one ``@register_method("name")`` line.

The glue protocol (a method is an ``nn.Module`` subclass of :class:`Glue`):

- ``build(components, lm_name, settings)`` (classmethod): the glue for these components (name -> Component,
  exactly one of them the LM ``lm_name``) from the recipe's ``settings``; the default calls
  ``cls(lm, encoder, **settings)`` for a method that joins one LM and one encoder;
- ``forward(components, inputs, lm_name, prompt_len, select)``: ``inputs`` name -> that component's input (the
  LM's: ids (B, T); ``prompt_len`` (B,) the prompt's length, so the image belongs to the text after it); returns
  the LM's logits (B, T, vocab), or (n, vocab) at the True positions of ``select`` (B, T);
- ``settings()``: the settings that rebuild it (stored in ``compose.json``);
- ``first_layer(name)`` (optional): the layer of encoder ``name`` before which the glue neither reads nor writes
  it, so a frozen encoder's states there are computed once per image (0: from its input).

Trainable tensors are the glue's parameters; the components are frozen by :class:`.composition.Composition`.
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError

METHODS: dict[str, type] = {}


def register_method(name: str):
    """Class decorator: make a :class:`Glue` subclass available as ``compose.method: name``."""

    def register(cls):
        if name in METHODS:
            raise ValueError(f"compose method {name!r} registered twice")
        cls.method = name
        METHODS[name] = cls
        return cls

    return register


class Glue(nn.Module):
    """Base of the methods (see the module docstring for the protocol)."""

    method = ""
    takes_frames = False
    """True when ``forward`` accepts an encoder input of several frames (:class:`.components.Frames`)."""

    @classmethod
    def build(cls, components: dict, lm_name: str, settings: dict) -> "Glue":
        encoders = [c for n, c in components.items() if n != lm_name]
        if len(encoders) != 1:
            raise ConfigError(f"compose: {cls.method} joins one LM and one encoder, got {len(encoders)} encoders")
        return cls(components[lm_name], encoders[0], **settings)

    def settings(self) -> dict:
        return {}


def build_glue(method: str, components: dict, lm_name: str, settings: dict) -> Glue:
    """The registered method ``method`` for ``components``; unknown methods and settings are one-line ConfigErrors."""
    if method not in METHODS:
        raise ConfigError(f"compose: unknown method {method!r}; valid: {', '.join(sorted(METHODS))}")
    try:
        return METHODS[method].build(components, lm_name, settings)
    except TypeError as error:  # an unknown or missing setting
        raise ConfigError(f"compose: {method} settings {sorted(settings)}: {error}") from None
