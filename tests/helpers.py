"""Shared test helpers: the CLI run in-process, folder snapshots, file-error checks."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.errors import PipelineError
from pipeline.model.grid import PixelAreas


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


# Source code -> DESIGN.md class (1 cropland, 2 forest, 3 grassland, 4 water and wetland, 5 urban, 6 rural
# settlement, 7 other construction, 8 unused; 0 outside land accounting), written out by hand so that the
# tests do not trust the package's own tables. CNLUCC: Liu et al. 2014 (J. Geogr. Sci. 24(2):195-210), with
# DESIGN.md's choices: 24 other woodland -> forest, 44 glacier and snow -> unused, 45/46 tidal flat and
# floodplain and 64 marsh -> water and wetland, 99 sea -> 0.
CNLUCC = {
    **dict.fromkeys((11, 12, 111, 112, 113, 114, 121, 122, 123, 124), 1),
    **dict.fromkeys((21, 22, 23, 24), 2),
    **dict.fromkeys((31, 32, 33), 3),
    **dict.fromkeys((41, 42, 43, 45, 46, 64), 4),
    44: 8,
    51: 5,
    52: 6,
    53: 7,
    **dict.fromkeys((61, 62, 63, 65, 66, 67), 8),
    99: 0,
}
# NLCD (MRLC legend): developed 21-24 all urban (NLCD does not split settlements), 81 pasture/hay grassland.
NLCD = {
    0: 0,
    11: 4,
    12: 8,
    **dict.fromkeys((21, 22, 23, 24), 5),
    31: 8,
    **dict.fromkeys((41, 42, 43, 51, 52), 2),
    **dict.fromkeys((71, 72, 73, 74, 81), 3),
    82: 1,
    90: 4,
    95: 4,
}
# ESA WorldCover 10 m (v100/v200 legend).
ESA_WORLDCOVER = {10: 2, 20: 2, 30: 3, 40: 1, 50: 5, 60: 8, 70: 8, 80: 4, 90: 4, 95: 2, 100: 3}


def class_lut(mapping: dict[int, int]) -> np.ndarray:
    """256-entry look-up table of a hand mapping (0 for codes it does not name)."""
    lut = np.zeros(256, np.uint8)
    for code, target in mapping.items():
        lut[code] = target
    return lut


def expected_classes(codes: np.ndarray, mapping: dict[int, int] = CNLUCC) -> np.ndarray:
    """The classes of uint8 ``codes`` by a hand mapping."""
    return class_lut(mapping)[codes]


def row_areas(row_area_m2, width: int) -> PixelAreas:
    """Pixel areas that change by image row only, as on a geographic grid: each row is its own cell."""
    rows = np.asarray(row_area_m2, float)
    return PixelAreas((len(rows), width), (1, width), rows[:, None], "ellipsoidal")


def constant_areas(m2: float = 900.0, shape: tuple[int, int] = (1, 1)) -> PixelAreas:
    """One area for every pixel, as with ``area: planar`` (900 m²: 30 m pixels)."""
    return PixelAreas(shape, shape, np.full((1, 1), float(m2)), "planar")


def per_row_histogram(values, nbins: int) -> np.ndarray:
    """Pixels of each value 0..nbins-1 per image row (shape (height, nbins)), from ``group_counts`` per row."""
    from pipeline.stages.counts import group_counts

    h, w = values.shape
    frame = group_counts({"value": (values, nbins)}, row_areas(np.ones(h), w)).compute()
    out = np.zeros((h, nbins), np.int64)
    np.add.at(out, (frame["cell"].to_numpy(), frame["value"].to_numpy()), frame["pixels"].to_numpy())
    return out
