"""Urban / rural split of construction land for products that have none (part of stage 2).

Two rules: an urban-extent polygon layer, or patch size (connected construction patches of at
least N ha are urban construction, smaller ones rural settlements). Other construction (7) is
left alone: industry, mining and transport are neither city nor village.
"""

from __future__ import annotations

import dask
import numpy as np
import xarray as xr
from dask.delayed import Delayed

from pipeline.model.classes import RURAL, URBAN
from pipeline.model.grid import Grid
from pipeline.stages.patches import edge_labels, join_blocks, label_block
from pipeline.stages.zonal import rasterize_blocks


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

    Lazy in one graph. Every block waits for the patch sizes of the whole raster, so computing it in
    one go holds the raster in memory; ``run`` instead writes the classes first and applies
    ``patch_flags`` to what it reads back.
    """
    return apply_patch_flags(classes, patch_flags(classes, grid, min_area_ha))


def patch_flags(classes: xr.DataArray, grid: Grid, min_area_ha: float) -> Delayed:
    """Delayed, per block, a boolean per local patch label: is its patch at least ``min_area_ha``?

    Patches are labelled across chunk edges (``pipeline.patches``) and their sizes summed over the
    joined patches. On projected grids the test is on integer pixel counts, so it does not depend on
    the chunking.
    """
    built = ((classes == URBAN) | (classes == RURAL)).data
    row_area_ha = grid.row_area_m2() / 1e4
    row_starts = np.cumsum((0, *built.chunks[0][:-1]))
    blocks = built.to_delayed(optimize_graph=False)  # share the read tasks of the run
    summaries = [
        [
            dask.delayed(_block_summary)(
                blocks[i, j], None if grid.constant_pixel_area else row_area_ha[row_starts[i] : row_starts[i] + h]
            )
            for j in range(blocks.shape[1])
        ]
        for i, h in enumerate(built.chunks[0])
    ]
    threshold = int(np.ceil(min_area_ha / row_area_ha[0] - 1e-9)) if grid.constant_pixel_area else min_area_ha
    return dask.delayed(_urban_flags)(summaries, threshold)


def apply_patch_flags(classes: xr.DataArray, flags) -> xr.DataArray:
    """Construction pixels -> urban or rural by their patch's flag (``flags`` from ``patch_flags``,
    delayed or computed, for the same chunking)."""

    def assign(cls: np.ndarray, flags: list, block_info=None) -> np.ndarray:
        i, j = block_info[0]["chunk-location"]
        local, _ = label_block((cls == URBAN) | (cls == RURAL))
        out = cls.copy()
        inside = local > 0
        out[inside] = np.where(flags[i][j][local[inside]], URBAN, RURAL)
        return out

    split = classes.data.map_blocks(assign, flags=flags, dtype=np.uint8, meta=np.array((), np.uint8))
    return classes.copy(data=split)


def _block_summary(built: np.ndarray, row_area_ha: np.ndarray | None) -> dict:
    """Sizes of the block's own patches and the labels along its four edges (all small)."""
    local, n = label_block(built)
    if row_area_ha is None:
        sizes = np.bincount(local.ravel(), minlength=n + 1).astype(np.int64)
    else:
        sizes = np.bincount(
            local.ravel(), weights=np.broadcast_to(row_area_ha[:, None], local.shape).ravel(), minlength=n + 1
        )
    return {"n": n, "sizes": sizes, "edges": edge_labels(local)}


def _urban_flags(summaries: list[list[dict]], threshold: float) -> list[list[np.ndarray]]:
    """Per block, a boolean per local label (0 included): is its (possibly multi-block) patch large enough?"""
    first, component = join_blocks(
        [[s["n"] for s in row] for row in summaries], [[s["edges"] for s in row] for row in summaries]
    )
    sizes = np.concatenate([s["sizes"][1:] for row in summaries for s in row])
    # Integer pixel counts sum exactly; row-weighted areas are added in a fixed (block, label) order.
    patch_size = np.zeros(component.max(initial=-1) + 1, dtype=sizes.dtype)
    np.add.at(patch_size, component, sizes)
    urban = patch_size[component] >= threshold
    return [
        [np.concatenate([[False], urban[first[i, j] : first[i, j] + s["n"]]]) for j, s in enumerate(row)]
        for i, row in enumerate(summaries)
    ]
