"""Shared test helpers: the CLI run in-process, folder snapshots, file-error checks."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.cli import main
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


def cli(*args: str) -> int:
    """Run ``carbon-pipeline -q ARGS`` in-process; its exit code."""
    old = sys.argv
    sys.argv = ["carbon-pipeline", "-q", *map(str, args)]
    try:
        main()
    except SystemExit as e:
        return e.code
    finally:
        sys.argv = old


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its SHA-256 (empty when the folder does not exist)."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
