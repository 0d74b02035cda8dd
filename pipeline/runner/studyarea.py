"""The study area: the ``boundary:`` polygons burned into the common valid mask, and, without them, a
warning when water and wetland look like open sea (a tile's ocean counted as the region's sink)."""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr

from pipeline.config import BoundaryConfig
from pipeline.io import vectors
from pipeline.model.classes import WATER
from pipeline.model.grid import Grid, PixelAreas
from pipeline.stages.counts import count_area_ha
from pipeline.stages.zonal import rasterize_blocks

log = logging.getLogger(__name__)

#: Above this share of an epoch's valid area, or of the valid pixels on the raster's edge, water and
#: wetland is warned about (without a boundary).
WATER_SHARE_LIMIT = 0.5
#: Words of the open-water warning the report looks for among the run's warnings.
OPEN_WATER_WARNING = "open sea or a large lake beyond the region is counted as its land and sink"


def read_boundary(boundary: BoundaryConfig, grid: Grid) -> gpd.GeoDataFrame:
    """The study-area polygons in the grid's CRS (read, repaired and checked to overlap the rasters)."""
    return vectors.read_polygons(boundary.path, grid, boundary.layer, boundary.coordinates == "gcj02")


def boundary_mask(boundary: BoundaryConfig, grid: Grid, like: xr.DataArray) -> xr.DataArray:
    """Lazy boolean raster: True where the pixel's centre lies inside the study area, chunked like ``like``."""
    geoms = read_boundary(boundary, grid).geometry.values
    burned = rasterize_blocks(geoms, np.ones(len(geoms), np.uint8), grid, like.data, dtype=np.uint8)
    return like.copy(data=burned.astype(bool)).rename("boundary")


def water_shares(counts: pd.DataFrame, edge: np.ndarray, areas: PixelAreas) -> tuple[float, float]:
    """(share of the valid area that is water and wetland, share of the edge's valid pixels that are)."""
    area = count_area_ha(counts, areas)
    classes = counts["class"].to_numpy()
    valid = area[classes > 0].sum()
    on_edge = edge[1:].sum()  # class 0 is nodata or outside the common mask
    return (
        float(area[classes == WATER].sum() / valid) if valid > 0 else 0.0,
        float(edge[WATER] / on_edge) if on_edge > 0 else 0.0,
    )


def warn_open_water(counts: dict[int, pd.DataFrame], edges: dict[int, np.ndarray], areas: PixelAreas) -> None:
    """Without a boundary: warn, per epoch, when water and wetland is more than half of the valid area or of
    the valid pixels on the raster's edge (a tile's open sea is class 4 and would be counted as sink)."""
    for year, frame in counts.items():
        area_share, edge_share = water_shares(frame, edges[year], areas)
        if area_share > WATER_SHARE_LIMIT or edge_share > WATER_SHARE_LIMIT:
            log.warning(
                "epoch %d: water and wetland (class 4) is %.0f %% of the valid area and %.0f %% of the valid "
                "pixels on the raster's edge: %s; set `boundary:` in the config to the region's polygons so only "
                "pixels inside count",
                year,
                100 * area_share,
                100 * edge_share,
                OPEN_WATER_WARNING,
            )
