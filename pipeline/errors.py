"""The one small exception tree. Only the CLI turns these into exit codes."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


def did_you_mean(word: str, options: Iterable[str], cutoff: float = 0.6) -> str:
    """ "did you mean 'x'? " for the option closest to ``word`` (difflib, ``cutoff``), or "" if none is close."""
    close = difflib.get_close_matches(word, options, n=1, cutoff=cutoff)
    return f"did you mean '{close[0]}'? " if close else ""


class PipelineError(Exception):
    """An error the user can fix. ``path`` names the file at fault (if any)."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class ConfigError(PipelineError):
    """The configuration file is malformed or refers to something that cannot be."""


class InputError(PipelineError):
    """An input file is missing, unreadable, corrupt or inconsistent."""


class GridMismatchError(InputError):
    """Epoch rasters are not on one grid and ``align: exact`` was asked for."""


class UnknownCodesError(InputError):
    """Raster codes that the scheme does not map (``unknown_codes: error``)."""


class OutputError(PipelineError):
    """The output folder cannot be written."""
