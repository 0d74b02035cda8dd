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
import shapely
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
                    layer: str | None = None, gcj02: bool = False) -> ZoneLayer:
    """A zone layer checked once: fields exist, ids unique and present, polygons overlap the grid."""
    gdf = read_polygons(path, grid, layer, gcj02, label_field or id_field)
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
    return geodesic_area_ha(layer.polygons.geometry)


def geodesic_area_ha(geoms: gpd.GeoSeries) -> np.ndarray:
    geod = pyproj.Geod(ellps="WGS84")
    lonlat = geoms.to_crs(4326)
    return np.array([abs(geod.geometry_area_perimeter(g)[0]) / 1e4 if g is not None and not g.is_empty else 0.0
                     for g in lonlat])


def overlaps(layer: ZoneLayer) -> pd.DataFrame:
    """Pairs of zones of one layer whose polygons overlap, with the geodesic area they share (ha)."""
    geoms = layer.polygons.geometry.values
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    shared = gpd.GeoSeries(shapely.intersection(geoms[left], geoms[right]), crs=layer.polygons.crs)
    area = geodesic_area_ha(shared.apply(_polygonal_part))
    frame = pd.DataFrame({"zone_id": np.array(layer.ids, object)[left], "zone_name": np.array(layer.labels, object)[left],
                          "other_zone_id": np.array(layer.ids, object)[right],
                          "other_zone_name": np.array(layer.labels, object)[right], "overlap_ha": area})
    return frame[frame["overlap_ha"] > 0].reset_index(drop=True)


def _polygonal_part(geom):
    """Shared edges and corners are not overlaps: keep the polygons of an intersection."""
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def zone_report(layer: ZoneLayer, counts: pd.DataFrame, column: str, row_area_m2: np.ndarray, grid: Grid) -> pd.DataFrame:
    """Per zone: geodesic polygon area; the part inside the rasters' extent, measured as the grid measures
    pixels (planar on a projected grid, geodesic on a geographic one); the area burned onto the grid by
    the pixel-centre rule and its valid part (from an epoch's counts); the boundary difference burned -
    inside (ha; negative: area lost at the boundary); and the area shared with other zones."""
    area = counts["pixels"] * row_area_m2[counts["row"].to_numpy()] / 1e4
    burned = area.groupby(counts[column]).sum()
    valid = area.where(counts["class"] > 0, 0.0).groupby(counts[column]).sum()
    numbers = pd.RangeIndex(1, len(layer.ids) + 1)
    clipped = gpd.GeoSeries(shapely.intersection(layer.polygons.geometry.values, shapely.box(*grid.bounds)),
                            crs=layer.polygons.crs)
    if grid.constant_pixel_area:  # measure as the pixels are measured, so the difference is the rasterising alone
        m2_per_unit2 = row_area_m2[0] / abs(grid.transform.a * grid.transform.e)
        inside = clipped.area.to_numpy() * m2_per_unit2 / 1e4
    else:
        inside = geodesic_area_ha(clipped)
    shared = overlaps(layer)
    per_zone = pd.concat([shared.set_index("zone_id")["overlap_ha"],
                          shared.set_index("other_zone_id")["overlap_ha"]]).groupby(level=0).sum()
    out = pd.DataFrame({"zone_id": layer.ids, "zone_name": layer.labels, "polygon_area_ha": polygon_area_ha(layer),
                        "inside_rasters_ha": inside,
                        "burned_area_ha": burned.reindex(numbers, fill_value=0.0).to_numpy(),
                        "valid_area_ha": valid.reindex(numbers, fill_value=0.0).to_numpy()})
    out["boundary_difference_ha"] = out["burned_area_ha"] - out["inside_rasters_ha"]
    out["overlap_ha"] = per_zone.reindex(out["zone_id"], fill_value=0.0).to_numpy()
    return out
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
    total = int(np.prod(sizes))
    # Half the memory traffic of int64 when the combinations fit: this loop is most of the counting time.
    dtype = np.uint32 if total <= np.iinfo(np.uint32).max else np.int64
    key = blocks[0].astype(dtype)
    for block, size in zip(blocks[1:], sizes[1:]):
        key *= dtype(size)
        np.add(key, block, out=key, casting="unsafe")  # block values lie in 0..size-1
    key = key.ravel()
    if row0 is None and total <= _DENSE_LIMIT:
        counts = np.bincount(key, minlength=total)
        present = np.flatnonzero(counts)
        return present, np.zeros(len(present), np.int64), counts[present]
    present, local = _compact(key, total)
    if row0 is None:
        pixels = np.bincount(local, minlength=len(present))
        return present, np.zeros(len(present), np.int64), pixels
    h = blocks[0].shape[0]
    combo, where = _compact(local * h + np.repeat(np.arange(h), blocks[0].shape[1]), len(present) * h)
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
