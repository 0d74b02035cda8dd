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
from dask.delayed import Delayed

from pipeline.model.classes import RURAL, URBAN
from pipeline.model.grid import Grid, PixelAreas
from pipeline.stages.patches import edge_labels, join_blocks, label_block
from pipeline.stages.zonal import rasterize_blocks


def split_by_extent(classes: xr.DataArray, inside: xr.DataArray) -> xr.DataArray:
    """Urban (5) where a construction pixel's centre is inside the urban extent, rural (6) outside."""
    built = (classes == URBAN) | (classes == RURAL)
    split = xr.where(inside, np.uint8(URBAN), np.uint8(RURAL))
    return xr.where(built, split, classes).astype(np.uint8).rename(classes.name)


def extent_mask(geoms: np.ndarray, grid: Grid, like: xr.DataArray) -> xr.DataArray:
    """Lazy boolean raster of the urban-extent polygons on the grid (pixel-centre rule)."""
    burned = rasterize_blocks(geoms, np.ones(len(geoms), np.uint8), grid, like.data, dtype=np.uint8)
    return like.copy(data=burned.astype(bool)).rename("urban_extent")


def split_by_patches(classes: xr.DataArray, areas: PixelAreas, min_area_ha: float) -> xr.DataArray:
    """Urban (5) for construction pixels in connected patches of >= ``min_area_ha``, rural (6) otherwise.

    Lazy in one graph. Every block waits for the patch sizes of the whole raster, so computing it in
    one go holds the raster in memory; ``run`` instead writes the classes first and applies
    ``patch_flags`` to what it reads back.
    """
    return apply_patch_flags(classes, patch_flags(classes, areas, min_area_ha))


def patch_flags(classes: xr.DataArray, areas: PixelAreas, min_area_ha: float) -> Delayed:
    """Delayed, per block, a boolean per local patch label: is its patch at least ``min_area_ha``?

    Patches are labelled across chunk edges (``pipeline.patches``) and their pixels counted per
    pixel-area cell, in integers, over the joined patches; areas are multiplied in afterwards, so the
    test does not depend on the chunking.
    """
    built = ((classes == URBAN) | (classes == RURAL)).data
    row_starts = np.cumsum((0, *built.chunks[0][:-1]))
    col_starts = np.cumsum((0, *built.chunks[1][:-1]))
    blocks = built.to_delayed(optimize_graph=False)  # share the read tasks of the run
    summaries = [
        [
            dask.delayed(_block_summary)(blocks[i, j], areas, (int(row_starts[i]), int(col_starts[j])))
            for j in range(blocks.shape[1])
        ]
        for i in range(blocks.shape[0])
    ]
    return dask.delayed(_urban_flags)(summaries, areas, min_area_ha)


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


def _block_summary(built: np.ndarray, areas: PixelAreas, origin: tuple[int, int]) -> dict:
    """The block's own patches (pixels per local label and pixel-area cell, integers) and the labels
    along its four edges (all small)."""
    local, n = label_block(built)
    if areas.constant:
        pixels = np.bincount(local.ravel(), minlength=n + 1)[1:]
        label, cell = np.arange(1, n + 1), np.zeros(n, np.int64)
    else:
        cells = areas.cells(*origin, *local.shape).ravel()
        first = int(cells.min(initial=0))
        span = int(cells.max(initial=0)) - first + 1
        key = local.ravel().astype(np.int64) * span + (cells - first)
        present, pixels = np.unique(key[key >= span], return_counts=True)  # label 0 is not a patch
        label, cell = present // span, present % span + first
    return {"n": n, "label": label, "cell": cell, "pixels": pixels.astype(np.int64), "edges": edge_labels(local)}


def _urban_flags(summaries: list[list[dict]], areas: PixelAreas, min_area_ha: float) -> list[list[np.ndarray]]:
    """Per block, a boolean per local label (0 included): is its (possibly multi-block) patch large enough?"""
    first, component = join_blocks(
        [[s["n"] for s in row] for row in summaries], [[s["edges"] for s in row] for row in summaries]
    )
    flat = [(s, first[i, j]) for i, row in enumerate(summaries) for j, s in enumerate(row)]
    pieces = pd.DataFrame(
        {
            "patch": np.concatenate([component[f + s["label"] - 1] for s, f in flat]).astype(np.int64),
            "cell": np.concatenate([s["cell"] for s, _ in flat]).astype(np.int64),
            "pixels": np.concatenate([s["pixels"] for s, _ in flat]).astype(np.int64),
        }
    )
    # Integer pixels per (patch, cell) are exact in any block order; their areas are then added in a
    # fixed (patch, cell) order.
    per_cell = pieces.groupby(["patch", "cell"], sort=True)["pixels"].sum().reset_index()
    if areas.constant:  # an integer threshold: no float edge at the limit
        size = per_cell.groupby("patch")["pixels"].sum()
        threshold: float = int(np.ceil(min_area_ha / (areas.flat_m2[0] / 1e4) - 1e-9))
    else:
        per_cell["area_ha"] = per_cell["pixels"].to_numpy() * areas.flat_m2[per_cell["cell"].to_numpy()] / 1e4
        size, threshold = per_cell.groupby("patch")["area_ha"].sum(), min_area_ha
    patch_size = size.reindex(np.arange(component.max(initial=-1) + 1), fill_value=0).to_numpy()
    urban = patch_size[component] >= threshold
    return [
        [np.concatenate([[False], urban[first[i, j] : first[i, j] + s["n"]]]) for j, s in enumerate(row)]
        for i, row in enumerate(summaries)
    ]
