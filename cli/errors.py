"""Turning user-caused errors into one line and exit status 2."""

from __future__ import annotations

import click

from tokzoo.errors import TokzooError


class UserError(click.ClickException):
    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class TokzooGroup(click.Group):
    """A click group whose commands report TokzooError as ``error: <one line>`` with exit status 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TokzooError as error:
            raise UserError(str(error)) from None
