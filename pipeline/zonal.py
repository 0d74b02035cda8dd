"""Stage 5 core: zone layers rasterised once onto the grid, and exact grouped pixel counts.

Every table of a run comes from ``group_counts``: one pass over the blocks counting pixels per
combination of per-pixel keys (zone of each layer, class, parameter row, ...). Counts are integers,
so they do not depend on the chunking or the scheduler; areas and carbon are multiplied in afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import xarray as xr

from pipeline.errors import InputError
from pipeline.grid import Grid
from pipeline.parameters import zone_id_text
from pipeline.vector import rasterize_blocks, read_polygons

#: Above this many key combinations a block's keys are found by hashing instead of a dense bincount.
_DENSE_LIMIT = 1 << 22


@dataclass(frozen=True)
class ZoneLayer:
    """A polygon layer whose zone ``i`` (0-based) is burned as ``i + 1``; 0 is outside every zone."""

    name: str
    path: Path
    ids: list[str]
    labels: list[str]
    polygons: gpd.GeoDataFrame

    def index_of(self) -> dict[str, int]:
        return {z: i + 1 for i, z in enumerate(self.ids)}


def read_zone_layer(name: str, path: Path, id_field: str, label_field: str | None, grid: Grid,
                    layer: str | None = None) -> ZoneLayer:
    """A zone layer checked once: fields exist, ids unique and present, polygons overlap the grid."""
    gdf = read_polygons(path, grid, layer)
    for column in filter(None, (id_field, label_field)):
        if column not in gdf.columns:
            fields = ", ".join(c for c in gdf.columns if c != gdf.geometry.name)
            raise InputError(f"zone layer '{name}' has no field '{column}'; fields: {fields}", path)
    if gdf[id_field].isna().any():
        raise InputError(f"zone layer '{name}': {int(gdf[id_field].isna().sum())} features have no id in '{id_field}'", path)
    ids = zone_id_text(gdf[id_field])
    dup = sorted({z for z in ids if ids.count(z) > 1})
    if dup:
        raise InputError(f"zone layer '{name}': duplicate ids in '{id_field}': {dup[:10]}", path)
    labels = [str(v) for v in gdf[label_field]] if label_field else ids
    return ZoneLayer(name, Path(path), ids, labels, gdf)


def polygon_area_ha(layer: ZoneLayer) -> np.ndarray:
    """Geodesic area of each zone's polygons on the WGS84 ellipsoid (ha), whatever the layer's CRS."""
    geod = pyproj.Geod(ellps="WGS84")
    lonlat = layer.polygons.geometry.to_crs(4326)
    return np.array([abs(geod.geometry_area_perimeter(g)[0]) / 1e4 if g is not None else 0.0 for g in lonlat])


def zone_index(layer: ZoneLayer, grid: Grid, like: xr.DataArray) -> xr.DataArray:
    """Lazy int32 raster of zone numbers (1..n; 0 outside), pixel-centre rule, chunked like ``like``."""
    values = np.arange(1, len(layer.ids) + 1, dtype=np.int32)
    data = rasterize_blocks(layer.polygons.geometry.values, values, grid, like.data.chunks)
    return like.copy(data=data).rename(f"zone_{layer.name}")


def group_counts(keys: dict[str, tuple[xr.DataArray, int]], per_row: bool) -> dask.delayed:
    """Delayed DataFrame of pixel counts per combination of keys present (and per image row if ``per_row``).

    ``keys`` maps a column name to (an integer raster with values in 0..size-1, size). The result has
    one column per key, ``row`` (0 unless ``per_row``) and ``pixels`` (int64), sorted by the keys and row.
    """
    names = list(keys)
    sizes = [int(n) for _, n in keys.values()]
    arrays = [a.data for a, _ in keys.values()]
    if np.prod(sizes, dtype=float) >= 2.0**62:
        raise ValueError(f"too many key combinations to count: {sizes}")
    row_starts = np.concatenate([[0], np.cumsum(arrays[0].chunks[0])[:-1]])
    ncols = len(arrays[0].chunks[1])
    # optimize_graph=False keeps the block keys of the run's graph, so the reads are shared.
    blocks = [a.to_delayed(optimize_graph=False).ravel() for a in arrays]
    parts = [
        dask.delayed(_block_counts)(sizes, int(row_starts[i // ncols]) if per_row else None, *(b[i] for b in blocks))
        for i in range(len(blocks[0]))
    ]
    return dask.delayed(_merge)(parts, names, sizes)


def _compact(values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, index of each value among them): a dense bincount when ``size`` is small,
    else a hash table (pandas.factorize is linear where sorting is not)."""
    if size <= _DENSE_LIMIT:
        present = np.flatnonzero(np.bincount(values, minlength=size))
        lookup = np.zeros(size, np.int64)
        lookup[present] = np.arange(len(present))
        return present, lookup[values]
    index, present = pd.factorize(values, sort=False)
    return np.asarray(present, np.int64), index.astype(np.int64)


def _block_counts(sizes: list[int], row0: int | None, *blocks: np.ndarray) -> tuple[np.ndarray, ...]:
    """(combined key, global row, pixels) of one block; rows are all 0 unless ``row0`` is given."""
    key = np.zeros(blocks[0].shape, np.int64)
    for block, size in zip(blocks, sizes):
        key *= size
        key += block
    present, local = _compact(key.ravel(), int(np.prod(sizes)))
    if row0 is None:
        pixels = np.bincount(local, minlength=len(present))
        return present, np.zeros(len(present), np.int64), pixels
    h = key.shape[0]
    combo, where = _compact(local * h + np.repeat(np.arange(h), key.shape[1]), len(present) * h)
    pixels = np.bincount(where, minlength=len(combo))
    return present[combo // h], combo % h + row0, pixels


def _merge(parts: list, names: list[str], sizes: list[int]) -> pd.DataFrame:
    frame = pd.DataFrame({name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(["key", "row", "pixels"])})
    # Integer sums: exact, and the same in any order of the blocks.
    frame = frame.groupby(["key", "row"], sort=True)["pixels"].sum().reset_index()
    out = pd.DataFrame({n: c.astype(np.int64) for n, c in zip(names, np.unravel_index(frame["key"].to_numpy(), sizes))})
    out["row"] = frame["row"].to_numpy(np.int64)
    out["pixels"] = frame["pixels"].to_numpy(np.int64)
    return out
