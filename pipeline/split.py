"""Urban / rural split of construction land for products that have none (part of stage 2).

Two rules: an urban-extent polygon layer, or patch size (connected construction patches of at
least N ha are urban construction, smaller ones rural settlements). Other construction (7) is
left alone: industry, mining and transport are neither city nor village.
"""

from __future__ import annotations

import dask
import numpy as np
import xarray as xr
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

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

    Lazy in one graph. Every block waits for the patch sizes of the whole raster, so computing it in
    one go holds the raster in memory; ``run`` instead writes the classes first and applies
    ``patch_flags`` to what it reads back.
    """
    return apply_patch_flags(classes, patch_flags(classes, grid, min_area_ha))


def patch_flags(classes: xr.DataArray, grid: Grid, min_area_ha: float) -> dask.delayed:
    """Delayed, per block, a boolean per local patch label: is its patch at least ``min_area_ha``?

    Patches are labelled across chunk edges: each block is labelled with scipy.ndimage, the labels
    that touch across block faces (8-neighbour, corners included) are joined with
    scipy.sparse.csgraph, and patch sizes are summed over the joined graph. On projected grids the
    test is on integer pixel counts, so it does not depend on the chunking.
    """
    built = ((classes == URBAN) | (classes == RURAL)).data
    row_area_ha = grid.row_area_m2() / 1e4
    row_starts = np.cumsum((0,) + built.chunks[0][:-1])
    blocks = built.to_delayed(optimize_graph=False)  # share the read tasks of the run
    summaries = [
        [
            dask.delayed(_block_summary)(
                blocks[i, j], None if grid.constant_pixel_area else row_area_ha[row_starts[i]: row_starts[i] + h]
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
        local, _ = ndimage.label((cls == URBAN) | (cls == RURAL), EIGHT_NEIGHBOURS)
        out = cls.copy()
        inside = local > 0
        out[inside] = np.where(flags[i][j][local[inside]], URBAN, RURAL)
        return out

    split = classes.data.map_blocks(assign, flags=flags, dtype=np.uint8, meta=np.array((), np.uint8))
    return classes.copy(data=split)


def _block_summary(built: np.ndarray, row_area_ha: np.ndarray | None) -> dict:
    """Sizes of the block's own patches and the labels along its four edges (all small)."""
    local, n = ndimage.label(built, EIGHT_NEIGHBOURS)
    if row_area_ha is None:
        sizes = np.bincount(local.ravel(), minlength=n + 1).astype(np.int64)
    else:
        sizes = np.bincount(local.ravel(), weights=np.broadcast_to(row_area_ha[:, None], local.shape).ravel(),
                            minlength=n + 1)
    # Copies, not views: a view would keep the whole label block alive until every block is summarised.
    edges = {"top": local[0].copy(), "bottom": local[-1].copy(), "left": local[:, 0].copy(), "right": local[:, -1].copy()}
    return {"n": n, "sizes": sizes, **edges}


def _face_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Label pairs that touch across a face: a[k] with b[k-1], b[k], b[k+1] (8-neighbour)."""
    pairs = []
    for d in (-1, 0, 1):
        x = a[max(0, -d): len(a) - max(0, d)]
        y = b[max(0, d): len(b) - max(0, -d)]
        keep = (x > 0) & (y > 0)
        pairs.append(np.stack([x[keep], y[keep]], axis=1))
    return np.concatenate(pairs)


def _urban_flags(summaries: list[list[dict]], threshold: float) -> list[list[np.ndarray]]:
    """Per block, a boolean per local label: is its (possibly multi-block) patch large enough?"""
    rows, cols = len(summaries), len(summaries[0])
    offsets = np.zeros((rows, cols), dtype=np.int64)
    total = 0
    for i in range(rows):
        for j in range(cols):
            offsets[i, j] = total
            total += summaries[i][j]["n"] + 1  # local label 0 (background) keeps a slot
    edges = []

    def join(i0, j0, i1, j1, pairs):
        if len(pairs):
            edges.append(np.stack([pairs[:, 0] + offsets[i0, j0], pairs[:, 1] + offsets[i1, j1]], axis=1))

    for i in range(rows):
        for j in range(cols):
            s = summaries[i][j]
            if j + 1 < cols:
                join(i, j, i, j + 1, _face_pairs(s["right"], summaries[i][j + 1]["left"]))
            if i + 1 < rows:
                join(i, j, i + 1, j, _face_pairs(s["bottom"], summaries[i + 1][j]["top"]))
                if j + 1 < cols and s["bottom"][-1] and summaries[i + 1][j + 1]["top"][0]:
                    join(i, j, i + 1, j + 1, np.array([[s["bottom"][-1], summaries[i + 1][j + 1]["top"][0]]]))
                if j > 0 and s["bottom"][0] and summaries[i + 1][j - 1]["top"][-1]:
                    join(i, j, i + 1, j - 1, np.array([[s["bottom"][0], summaries[i + 1][j - 1]["top"][-1]]]))
    pairs = np.concatenate(edges) if edges else np.zeros((0, 2), dtype=np.int64)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(total, total))
    _, component = connected_components(graph, directed=False)
    sizes = np.concatenate([summaries[i][j]["sizes"] for i in range(rows) for j in range(cols)])
    # Integer pixel counts sum exactly; row-weighted areas are added in a fixed (block, label) order.
    patch_size = np.zeros(component.max() + 1, dtype=sizes.dtype)
    np.add.at(patch_size, component, sizes)
    urban = patch_size[component] >= threshold
    return [[urban[offsets[i, j]: offsets[i, j] + summaries[i][j]["n"] + 1] for j in range(cols)] for i in range(rows)]
