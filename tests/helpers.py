"""Shared test shapes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.errors import PipelineError


def assert_file_error(
    path: Path, text: str, read: Callable[[Path], object], error: type[PipelineError], message: str
) -> PipelineError:
    """Write ``text`` to ``path``, read it with ``read`` and check it fails with ``error``: the message contains
    ``message`` (as written, not a pattern) and the error names the file."""
    path.write_text(text)
    with pytest.raises(error) as err:
        read(path)
    assert message in str(err.value)
    assert err.value.path == str(path) and str(path) in str(err.value)
    return err.value
