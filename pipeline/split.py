"""Urban / rural split of construction land for products that have none (part of stage 2).

Two rules: an urban-extent polygon layer, or patch size (connected construction patches of at
least N ha are urban construction, smaller ones rural settlements). Other construction (7) is
left alone: industry, mining and transport are neither city nor village.
"""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import xarray as xr
from dask_image.ndmeasure import label
from scipy import ndimage

from pipeline.classes import RURAL, URBAN
from pipeline.grid import Grid
from pipeline.vector import rasterize_blocks

#: Queen (8-neighbour) connectivity, FRAGSTATS' default for patches.
EIGHT_NEIGHBOURS = ndimage.generate_binary_structure(2, 2)


def split_by_extent(classes: xr.DataArray, inside: xr.DataArray) -> xr.DataArray:
    """Urban (5) where a construction pixel's centre is inside the urban extent, rural (6) outside."""
    built = (classes == URBAN) | (classes == RURAL)
    split = xr.where(inside, np.uint8(URBAN), np.uint8(RURAL))
    return xr.where(built, split, classes).astype(np.uint8).rename(classes.name)


def extent_mask(geoms: np.ndarray, grid: Grid, like: xr.DataArray) -> xr.DataArray:
    """Lazy boolean raster of the urban-extent polygons on the grid (pixel-centre rule)."""
    burned = rasterize_blocks(geoms, np.ones(len(geoms), np.uint8), grid, like.data.chunks, dtype=np.uint8)
    return like.copy(data=burned.astype(bool)).rename("urban_extent")


def split_by_patches(classes: xr.DataArray, grid: Grid, min_area_ha: float) -> xr.DataArray:
    """Urban (5) for construction pixels in connected patches of >= ``min_area_ha``, rural (6) otherwise.

    Patches are labelled across chunk edges (dask-image merges labels at block faces), so a town
    cut by a chunk boundary is still one patch. On projected grids the test is on integer pixel
    counts, so it does not depend on the chunking.
    """
    built = ((classes == URBAN) | (classes == RURAL)).data
    labels, _ = label(built, structure=EIGHT_NEIGHBOURS)
    row_area_ha = grid.row_area_m2() / 1e4
    if grid.constant_pixel_area:
        min_pixels = int(np.ceil(min_area_ha / row_area_ha[0] - 1e-9))
        sizes = _patch_sizes(labels, None)
        is_urban = dask.delayed(lambda s: s >= min_pixels)(sizes)
    else:
        sizes = _patch_sizes(labels, row_area_ha)
        is_urban = dask.delayed(lambda s: s >= min_area_ha)(sizes)

    def assign(cls: np.ndarray, lab: np.ndarray, is_urban: np.ndarray) -> np.ndarray:
        out = cls.copy()
        built = lab > 0
        out[built] = np.where(is_urban[lab[built]], URBAN, RURAL)
        return out

    split = classes.data.map_blocks(assign, labels, is_urban=is_urban, dtype=np.uint8, meta=np.array((), np.uint8))
    return classes.copy(data=split)


def _patch_sizes(labels, row_area_ha: np.ndarray | None) -> dask.delayed:
    """Delayed array indexed by label: pixel count (row_area_ha None) or area in ha of each patch."""
    row_starts = np.cumsum((0,) + labels.chunks[0][:-1])
    parts = []
    for (i, j), block in np.ndenumerate(np.array(labels.to_delayed(), dtype=object)):
        weights = None if row_area_ha is None else row_area_ha[row_starts[i]: row_starts[i] + labels.chunks[0][i]]
        parts.append(dask.delayed(_block_sizes)(block, weights))
    return dask.delayed(_combine_sizes)(parts, labels.max())


def _block_sizes(lab: np.ndarray, row_weights: np.ndarray | None) -> pd.Series:
    built = lab > 0
    if row_weights is None:
        values, counts = np.unique(lab[built], return_counts=True)
        return pd.Series(counts, index=values)
    weights = np.broadcast_to(row_weights[:, None], lab.shape)[built]
    return pd.Series(weights).groupby(lab[built]).sum()


def _combine_sizes(parts: list[pd.Series], max_label: int) -> np.ndarray:
    sizes = np.zeros(int(max_label) + 1, dtype=np.float64)
    total = pd.concat(parts).groupby(level=0).sum() if parts else pd.Series(dtype=float)
    sizes[total.index.to_numpy(dtype=np.int64)] = total.to_numpy()
    return sizes
