"""The one small exception tree. Only the CLI turns these into exit codes."""

from __future__ import annotations

from pathlib import Path


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
