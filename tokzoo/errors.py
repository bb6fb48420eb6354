"""Errors a user can cause. Each prints as one line that names the file (if any) and the reason.

The CLI catches :class:`TokzooError`, prints ``error: <message>`` and exits with status 2.
Anything else escaping is a bug in tokzoo and keeps its traceback.
"""

from __future__ import annotations


class TokzooError(Exception):
    """Base of every user-caused error."""


class TokzooWarning(UserWarning):
    """Something a run found and handled (a damaged shard redone, a name read under its old spelling). Library
    code warns with it instead of printing; the CLI shows each as one ``tokzoo: <message>`` line on stderr."""


class ConfigError(TokzooError):
    """A configuration or recipe is missing a field, has a wrong value, or comes from an unknown version."""


class CheckpointError(TokzooError):
    """A checkpoint directory is missing files, is corrupt, or does not match its config."""


class InputError(TokzooError):
    """A data file or value cannot be used. ``source`` names where it came from."""

    def __init__(self, source: object, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class EmptyFileError(InputError):
    """The file has zero bytes."""


class CorruptFileError(InputError):
    """The file is truncated or its bytes do not decode as the format its name claims."""


class UnsupportedFormatError(InputError):
    """The file's format or extension is not one tokzoo reads for this modality."""


class ImageTooLargeError(InputError):
    """The image has more pixels than the configured limit (decompression-bomb guard)."""


class InvalidValueError(InputError):
    """Values are out of range, non-finite where that is not allowed, or there is no valid value at all."""


class ShapeError(InputError):
    """The array has the wrong number of dimensions or a size that does not fit the model."""


class DtypeError(InputError):
    """The array has a dtype the modality does not accept (object arrays included)."""


class OutputError(TokzooError):
    """A file of an output cannot be written (full disk, permissions, ...). ``path`` names it."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnsafeOutputError(OutputError):
    """A write would leave its output folder or go through a link (or hard link) tokzoo did not create."""
