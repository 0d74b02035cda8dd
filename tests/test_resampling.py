"""Change that resampling alone creates (``align: nearest``): the expected change of the intervals tables,
on hand-made grids worked out by hand and against the change GDAL's resampling really makes."""

from __future__ import annotations

import logging
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from affine import Affine

from pipeline.config import load_config
from pipeline.model.grid import Grid
from pipeline.runner.run import run_pipeline
from pipeline.stages import resampling

from .conftest import UTM50, array_window, write_config, write_raster

CROPLAND, FOREST = 11, 21  # CNLUCC codes of classes 1 and 2
X0, Y0, PX = 500000, 3400000, 30
T = Affine(PX, 0, X0, 0, -PX, Y0)


def grid(transform: Affine, shape: tuple[int, int]) -> Grid:
    from rasterio.crs import CRS

    return Grid(CRS.from_string(UTM50), transform, shape[1], shape[0])


def expected_pixels(before: np.ndarray, source: Affine, chunks: int) -> tuple[int, float]:
    """(valid pixels, expected change in px) of the interval whose later epoch comes from ``source``."""
    arr = xr.DataArray(da.from_array(before, chunks=chunks), dims=("y", "x"))
    target = grid(T, before.shape)
    moved = resampling.interval_displacement(target, (None, grid(source, before.shape)), arr)
    assert moved is not None
    expected = resampling.expected_change(array_window(before, 0), *moved)
    counts = resampling.change_counts(expected, arr, {}).compute()[None][1]
    return int(counts[0]), counts[1] / 2**resampling.FRACTION_BITS


@pytest.mark.parametrize("chunks", [3, 4, 6])
def test_a_square_shifted_diagonally_changes_its_symmetric_difference(chunks):
    """A 2 x 2 forest square amid 6 x 6 cropland; the later grid lies 0.3 px east and 0.2 px south. Nearest
    neighbour shows each pixel the land 0.3 px east and 0.2 px south of its centre: by hand, the square and
    the square shifted by (0.2, 0.3) px differ by 2 x (2 x 2 - 1.8 x 1.7) = 1.88 px."""
    a = np.full((6, 6), 1, np.uint8)
    a[2:4, 2:4] = 2
    valid, change = expected_pixels(a, Affine(PX, 0, X0 + 0.3 * PX, 0, -PX, Y0 - 0.2 * PX), chunks)
    assert valid == 36 and change == pytest.approx(1.88, abs=1e-5)


def test_a_half_pixel_shift_of_stripes_changes_half_a_pixel_per_boundary():
    """Stripes 4 px wide across 64 columns (15 boundaries a row) shifted by 0.5 px: 7.5 px a row, the area
    between each boundary and its copy half a pixel away. Nodata (0) is no change, nor the raster edge."""
    a = np.where((np.arange(64) // 4) % 2 == 0, 1, 2).astype(np.uint8)[None, :].repeat(5, axis=0)
    valid, change = expected_pixels(a, Affine(PX, 0, X0 + 0.5 * PX, 0, -PX, Y0), 16)
    assert (valid, change) == (320, pytest.approx(5 * 7.5, abs=1e-4))
    a[:, 3] = 0  # the first boundary pixel is nodata: 14 boundaries with a valid pixel on each side
    valid, change = expected_pixels(a, Affine(PX, 0, X0 + 0.5 * PX, 0, -PX, Y0), 16)
    assert (valid, change) == (315, pytest.approx(5 * 7.0, abs=1e-4))


def test_no_resampling_or_one_source_grid_moves_nothing():
    target = grid(T, (10, 10))
    like = xr.DataArray(da.zeros((10, 10), chunks=5), dims=("y", "x"))
    shifted = grid(Affine(PX, 0, X0 + 0.4 * PX, 0, -PX, Y0), (10, 10))
    assert resampling.interval_displacement(target, (None, None), like) is None
    assert resampling.interval_displacement(target, (target, target), like) is None
    assert resampling.interval_displacement(target, (shifted, shifted), like) is None  # both from one grid
    assert resampling.interval_displacement(target, (None, shifted), like) is not None
    cols = resampling.resampling_columns(None, np.array([1, 2]))
    assert cols.to_numpy().tolist() == [[0.0, 0.0], [0.0, 0.0]]


ROWS, COLS, SHIFT = 8, 84, 0.3


def drawn_stripes(offset_px: float) -> np.ndarray:
    """Cropland and forest stripes whose 20 boundaries lie at 4k + 0.5 + f px (k = 1..20), f running through
    0.05, 0.15, ..., 0.95 twice: sub-pixel positions spread evenly. Drawn on a grid whose pixel centres lie at
    i + 0.5 + offset_px, as a product on its own grid samples the land at its pixel centres."""
    bounds = [4 * k + 0.5 + (0.05 + 0.1 * ((k - 1) % 10)) for k in range(1, 21)]
    centres = np.arange(COLS) + 0.5 + offset_px
    stripe = np.searchsorted(bounds, centres, side="right") % 2
    return np.where(stripe == 0, CROPLAND, FOREST).astype(np.uint8)[None, :].repeat(ROWS, axis=0)


def run_stripes(folder: Path, chunks: int, stages: tuple[str, ...] = ("transitions",)) -> pd.DataFrame:
    a, b = drawn_stripes(0.0), drawn_stripes(SHIFT)
    write_raster(folder / "a.tif", a, transform=T)
    write_raster(folder / "b.tif", b, transform=Affine(PX, 0, X0 + SHIFT * PX, 0, -PX, Y0))
    cfg = write_config(folder, epochs={2000: "a.tif", 2010: "b.tif"}, align="nearest", dask={"chunks": chunks})
    run_pipeline(load_config(cfg), folder / "out", progress=False, stages=list(stages))
    return pd.read_csv(folder / "out/tables/intervals_region.csv", encoding="utf-8-sig", keep_default_na=False)


def test_run_reports_what_resampling_really_changed(tmp_path, caplog):
    """The same land drawn on a grid 0.3 px east: resampled, a pixel west of a boundary flips when the boundary
    lies within 0.3 px east of its centre, 6 of the 20 a row (f = 0.05, 0.15, 0.25 twice): 48 px really
    change. The expected change, 0.3 px a boundary, is 20 x 0.3 x 8 = 48.0 px, 48 / 672 of the valid pixels."""
    caplog.set_level(logging.WARNING)
    tables = [run_stripes(tmp_path / f"c{c}", c) for c in (64, 256)]
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert (tmp_path / "c64/out/tables/intervals_region.csv").read_bytes() == (
        tmp_path / "c256/out/tables/intervals_region.csv"
    ).read_bytes()
    row = tables[0].iloc[0]
    assert row.changed_pixels == 48
    assert row.resampling_changed_pixels == 48.0
    assert row.resampling_changed_share == pytest.approx(48 / (ROWS * COLS), abs=1e-6)
    assert row.registration_check == "n/a"  # under 100 changed pixels: the misregistration check says nothing
    warned = [r.getMessage() for r in caplog.records if "resampling alone" in r.getMessage()]
    assert len(warned) == 2  # one per run
    assert "interval 2000-2010: epoch 2010 was resampled with nearest neighbour" in warned[0]
    assert "7.14 % of the valid pixels (48.0 of 672 px), against 7.14 % (48 px) changed" in warned[0]


def test_the_report_says_what_resampling_alone_changed(tmp_path):
    run_stripes(tmp_path, 64, ("transitions", "report"))
    page = (tmp_path / "out/report.html").read_text(encoding="utf-8")
    checks = page[page.index('id="checks"') :]
    assert "Change made by resampling." in checks
    # 48 of 672 px of 0.09 ha: 7.14 % of the area; 48.0 px expected from resampling alone
    assert (
        "Interval 2000-2010: 7.14 % of the area changed (48 px); resampling alone is expected to change 7.14 % "
        "of the valid pixels (48.0 px)." in checks
    )
    assert "resampling_changed_share" in checks  # the column, in the intervals table shown
