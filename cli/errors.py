"""Turning user-caused errors into one line and exit status 2."""

from __future__ import annotations

import sys
import warnings

import click


class UserError(click.ClickException):
    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


RESUME_HINTS = {
    "tokenize": "finished shards are kept; rerun the same command to resume",
    "pseudo-label": "finished shards are kept; rerun the same command to resume",
    "train": "checkpoints are kept; pass --resume RUN_DIR to go on from the latest",
}


class Interrupted(UserError):
    exit_code = 130  # 128 + SIGINT, as a shell reports Ctrl-C


class TokzooGroup(click.Group):
    """A click group whose commands report user errors as ``error: <one line>`` with exit status 2: TokzooError,
    click's usage errors (missing file, bad option value) and OSErrors on a named file (permission denied, no
    such folder for an output)."""

    def invoke(self, ctx):
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except KeyboardInterrupt:
            hint = RESUME_HINTS.get(ctx.invoked_subcommand or "")
            raise Interrupted("interrupted" + (f"; {hint}" if hint else "")) from None
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as error:
            where = f" ({error.ctx.command_path} --help)" if error.ctx is not None else ""
            raise UserError(f"{error.format_message()}{where}") from None
        except Exception as error:
            if _is_tokzoo_error(error):
                raise UserError(str(error)) from None
            if not isinstance(error, OSError) or error.filename is None:
                raise
            reason = error.strerror or str(error)
            if isinstance(error, (FileExistsError, NotADirectoryError)):  # a file where a folder must go
                reason = "is a file, not a folder"
            raise UserError(f"{error.filename}: {reason}") from None


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """tokzoo's own warnings as one ``tokzoo: <message>`` line on stderr; others as Python shows them."""
    errors = sys.modules.get("tokzoo.errors")
    if errors is not None and issubclass(category, errors.TokzooWarning):
        click.echo(f"tokzoo: {message}", err=True)
    else:
        click.echo(warnings.formatwarning(message, category, filename, lineno, line).rstrip("\n"), err=True)


def _is_tokzoo_error(error: Exception) -> bool:
    """Whether ``error`` is a TokzooError, without importing tokzoo (and torch) when nothing has."""
    errors = sys.modules.get("tokzoo.errors")  # not imported yet: nothing can have raised one
    return errors is not None and isinstance(error, errors.TokzooError)
