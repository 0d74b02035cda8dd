"""Continuous indicator rasters (NDVI, vegetation cover, NPP, ...) read lazily onto the run's grid:
resampled bilinearly by GDAL, window by window, where a raster is not on that grid."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rioxarray
import xarray as xr
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds

from pipeline.config import IndicatorConfig
from pipeline.errors import InputError
from pipeline.io.rasters import grid_coords
from pipeline.model.grid import Grid

log = logging.getLogger(__name__)

#: The raster's extent may fall short of the grid's by this share of a pixel (rounding of the corners).
_EDGE_TOLERANCE = 0.01


@dataclass
class IndicatorSeries:
    """One series on the run's grid: stored values per year (lazy), and how to turn them into values."""

    name: str
    config: IndicatorConfig
    stored: dict[int, xr.DataArray]
    files: dict[int, Path]
    nodata: dict[int, float | None]
    #: Step the values are summed at (indicator unit).
    precision: float

    @property
    def years(self) -> list[int]:
        return list(self.stored)


def open_series(name: str, config: IndicatorConfig, grid: Grid, chunks: int) -> IndicatorSeries:
    """Check every raster of the series (readable, a CRS, covering the grid) and open it lazily on ``grid``."""
    stored, nodata, integer, resampled = {}, {}, True, {}
    for year, path in config.years.items():
        stored[year], nodata[year], is_integer, diffs = _open(name, year, path, config, grid, chunks)
        integer &= is_integer
        if diffs:
            resampled[year] = "; ".join(diffs)
    if resampled:
        log.warning(
            "indicators.%s: %s resampled bilinearly onto the land cover's grid (%s)",
            name,
            ", ".join(f"{y} ({config.years[y].name})" for y in resampled),
            "; ".join(dict.fromkeys(resampled.values())),
        )
    precision = config.precision or (config.scale if integer else config.scale * 1e-4)
    return IndicatorSeries(name, config, stored, dict(config.years), nodata, precision)


def _open(
    name: str, year: int, path: Path, config: IndicatorConfig, grid: Grid, chunks: int
) -> tuple[xr.DataArray, float | None, bool, list[str]]:
    if not path.exists():
        raise InputError(f"indicators.{name} {year}: file not found", path)
    try:
        ds = rasterio.open(path)
    except RasterioError as e:
        raise InputError(f"indicators.{name} {year}: not a readable raster: {e}", path) from None
    if ds.crs is None:
        raise InputError(
            f"indicators.{name} {year}: raster has no CRS; assign one (e.g. `gdal_edit.py -a_srs EPSG:4326 FILE`)",
            path,
        )
    dtype = ds.dtypes[0]
    nodata = config.nodata if config.nodata is not None else ds.nodata
    own = Grid(ds.crs, ds.transform, ds.width, ds.height)
    _check_covers(name, year, path, own, grid)
    diffs = grid.differences(own)
    opened: object = path
    if not diffs:
        ds.close()
    else:
        # A tiny error threshold (0 is refused by GDAL): the approximate transformer stays within 1e-6 px, so a
        # pixel's value does not depend on the window Dask reads.
        opened = WarpedVRT(
            ds,
            crs=grid.crs,
            transform=grid.transform,
            width=grid.width,
            height=grid.height,
            resampling=Resampling.bilinear,
            nodata=nodata,
            src_nodata=nodata,
            tolerance=1e-6,
        )
    try:
        arr = rioxarray.open_rasterio(opened, chunks={"band": 1, "y": chunks, "x": chunks}, lock=False, masked=False)
    except RasterioError as e:
        raise InputError(f"indicators.{name} {year}: not a readable raster: {e}", path) from None
    if not isinstance(arr, xr.DataArray):
        raise InputError(f"indicators.{name} {year}: has subdatasets, not one raster band: give one of them", path)
    data = xr.DataArray(
        arr.isel(band=0, drop=True).data, dims=("y", "x"), coords=grid_coords(grid), name=f"{name}_{year}"
    )
    return data, nodata, np.issubdtype(np.dtype(dtype), np.integer), diffs


def _check_covers(name: str, year: int, path: Path, own: Grid, grid: Grid) -> None:
    """A raster must cover the whole grid: a zone mean over part of a zone would be silently biased."""
    if own.crs == grid.crs:
        left, bottom, right, top = own.bounds
    else:
        left, bottom, right, top = transform_bounds(own.crs, grid.crs, *own.bounds, densify_pts=21)
    g = grid.bounds
    px = abs(grid.transform.a) * _EDGE_TOLERANCE
    if left <= g[0] + px and bottom <= g[1] + px and right >= g[2] - px and top >= g[3] - px:
        return
    width = max(0.0, min(right, g[2]) - max(left, g[0]))
    height = max(0.0, min(top, g[3]) - max(bottom, g[1]))
    share = width * height / ((g[2] - g[0]) * (g[3] - g[1]))
    raise InputError(
        f"indicators.{name} {year}: the raster ({own.width} x {own.height} px) covers {share:.0%} of the land "
        "cover's grid; give a raster covering the whole grid (nodata where there is no value)",
        path,
    )
