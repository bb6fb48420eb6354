"""The plug-ins that fill the core's hooks, listed in this one place (docs/ARCHITECTURE.md, "Plug-ins").

A plug-in is a package with a ``plugin`` module whose ``register()`` fills hooks
(:func:`tokzoo.tokenizers.loaders.register_loader`, :func:`tokzoo.tokens.foreign.register_layout`) without
importing anything heavy. ``tokzoo/__init__.py`` calls :func:`load` on ``import tokzoo``, so the hooks are
filled before any core module runs. Core modules never import this module or a plug-in
(tests/test_architecture.py); the CLI may import a plug-in's modules for its own commands.
"""

from .fourm import plugin as fourm

PLUGINS = (fourm,)


def load() -> None:
    """Register every plug-in's hooks (idempotent: registering again replaces the same entries)."""
    for plugin in PLUGINS:
        plugin.register()
