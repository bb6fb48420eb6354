"""Options whose old spellings still work but no longer show in ``--help`` (one flag vocabulary across commands)."""

from __future__ import annotations

import click


class AliasOption(click.Option):
    """A click option; the names in ``aliases`` (old spellings: ``--out``, ``--n``, ``-q``) parse as usual but are
    left out of its help line."""

    def __init__(self, *args, aliases: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.aliases = tuple(aliases)

    def get_help_record(self, ctx):
        opts, secondary = self.opts, self.secondary_opts
        self.opts = [o for o in opts if o not in self.aliases]
        self.secondary_opts = [o for o in secondary if o not in self.aliases]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts, self.secondary_opts = opts, secondary


def output_option(dest: str, help: str, **kwargs):
    """``-o/--output`` (old spelling ``--out`` kept) into parameter ``dest``."""
    return click.option("-o", "--output", "--out", dest, cls=AliasOption, aliases=("--out",), help=help, **kwargs)


def count_option(dest: str, help: str, old: str = "--n", name: str = "--count", **kwargs):
    """``--count`` (old spelling ``--n`` kept) into parameter ``dest``."""
    return click.option(name, old, dest, cls=AliasOption, aliases=(old,), help=help, **kwargs)


def progress_option(command):
    """``--progress/--no-progress`` (``-q`` / ``--quiet`` kept for --no-progress)."""
    return click.option(
        "--progress/--no-progress",
        " /-q",
        " /--quiet",
        "progress",
        cls=AliasOption,
        aliases=("-q", "--quiet"),
        default=True,
        help="Show progress bars on stderr.",
    )(command)
