"""Stage 5, zonal: zone layers burned once onto the grid (pixel-centre rule), their geodesic areas,
overlaps and boundary loss. The counting itself is ``pipeline.stages.counts``."""

from __future__ import annotations

import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
import xarray as xr
from rasterio.features import rasterize

from pipeline.model.grid import Grid, PixelAreas
from pipeline.model.inputs import (
    ZoneLayer,
)
from pipeline.stages.counts import count_area_ha


def zone_index(layer: ZoneLayer, grid: Grid, like: xr.DataArray) -> xr.DataArray:
    """Lazy raster of zone numbers (1..n; 0 outside) in the smallest unsigned type that holds n, pixel-centre
    rule, each block burned after ``like``'s (see ``rasterize_blocks``)."""
    # A quarter of int32's bytes for up to 255 zones: the blocks the counts hold in flight are set by their types.
    dtype = np.min_scalar_type(len(layer.ids))
    values = np.arange(1, len(layer.ids) + 1, dtype=dtype)
    data = rasterize_blocks(layer.polygons.geometry.values, values, grid, like.data, dtype)
    return like.copy(data=data).rename(f"zone_{layer.name}")


def polygon_area_ha(layer: ZoneLayer) -> np.ndarray:
    """Geodesic area of each zone's polygons on the WGS84 ellipsoid (ha), whatever the layer's CRS."""
    return geodesic_area_ha(layer.polygons.geometry)


def geodesic_area_ha(geoms: gpd.GeoSeries) -> np.ndarray:
    geod = pyproj.Geod(ellps="WGS84")
    lonlat = geoms.to_crs(4326)
    return np.array(
        [abs(geod.geometry_area_perimeter(g)[0]) / 1e4 if g is not None and not g.is_empty else 0.0 for g in lonlat]
    )


def overlaps(layer: ZoneLayer) -> pd.DataFrame:
    """Pairs of zones of one layer whose polygons overlap, with the geodesic area they share (ha)."""
    geoms = layer.polygons.geometry.values
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    shared = gpd.GeoSeries(shapely.intersection(geoms[left], geoms[right]), crs=layer.polygons.crs)
    area = geodesic_area_ha(shared.apply(_polygonal_part))
    frame = pd.DataFrame(
        {
            "zone_id": np.array(layer.ids, object)[left],
            "zone_name": np.array(layer.labels, object)[left],
            "other_zone_id": np.array(layer.ids, object)[right],
            "other_zone_name": np.array(layer.labels, object)[right],
            "overlap_ha": area,
        }
    )
    return frame[frame["overlap_ha"] > 0].reset_index(drop=True)


def _polygonal_part(geom):
    """Shared edges and corners are not overlaps: keep the polygons of an intersection."""
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def zone_report(layer: ZoneLayer, counts: pd.DataFrame, column: str, areas: PixelAreas, grid: Grid) -> pd.DataFrame:
    """Per zone: geodesic polygon area; the part inside the rasters' extent, measured as the grid measures
    pixels (planar with ``area: planar``, else geodesic); the area burned onto the grid by
    the pixel-centre rule and its valid part (from an epoch's counts); the boundary difference burned -
    inside (ha; negative: area lost at the boundary); and the area shared with other zones."""
    area = pd.Series(count_area_ha(counts, areas), index=counts.index)
    burned = area.groupby(counts[column]).sum()
    valid = area.where(counts["class"] > 0, 0.0).groupby(counts[column]).sum()
    numbers = pd.RangeIndex(1, len(layer.ids) + 1)
    clipped = gpd.GeoSeries(
        shapely.intersection(layer.polygons.geometry.values, shapely.box(*grid.bounds)), crs=layer.polygons.crs
    )
    if areas.constant:  # measure as the pixels are measured, so the difference is the rasterising alone
        m2_per_unit2 = areas.flat_m2[0] / abs(grid.transform.a * grid.transform.e)
        inside = clipped.area.to_numpy() * m2_per_unit2 / 1e4
    else:
        inside = geodesic_area_ha(clipped)
    shared = overlaps(layer)
    per_zone = (
        pd.concat([shared.set_index("zone_id")["overlap_ha"], shared.set_index("other_zone_id")["overlap_ha"]])
        .groupby(level=0)
        .sum()
    )
    out = pd.DataFrame(
        {
            "zone_id": layer.ids,
            "zone_name": layer.labels,
            "polygon_area_ha": polygon_area_ha(layer),
            "inside_rasters_ha": inside,
            "burned_area_ha": burned.reindex(numbers, fill_value=0.0).to_numpy(),
            "valid_area_ha": valid.reindex(numbers, fill_value=0.0).to_numpy(),
        }
    )
    out["boundary_difference_ha"] = out["burned_area_ha"] - out["inside_rasters_ha"]
    out["overlap_ha"] = per_zone.reindex(out["zone_id"], fill_value=0.0).to_numpy()
    return out


def rasterize_blocks(geoms: np.ndarray, values: np.ndarray, grid: Grid, like: da.Array, dtype=np.int32) -> da.Array:
    """Lazy raster of ``values`` burned by ``geoms`` (pixel-centre rule), 0 elsewhere, chunked like ``like``.

    Each block only burns the geometries whose envelope meets it (an STRtree query), so the cost is
    set by the block, not by the number of polygons. A block is burned after ``like``'s block (not read):
    Dask's threaded scheduler runs a task with no input only in its turn among the roots, after every task
    the reads make ready, so the blocks that waited for a burned block were held to the end of the
    compute (on 5 x 5 blocks, every block's classes and parameter rows: 0.5 GB more). ``like`` is to be an
    array the same compute reads anyway.
    """
    tree = shapely.STRtree(geoms)

    def burn(_after: np.ndarray, block_info=None) -> np.ndarray:
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        transform = grid.window_transform(r0, c0)
        box = shapely.box(*_window_bounds(transform, r1 - r0, c1 - c0))
        hits = tree.query(box)
        out = np.zeros((r1 - r0, c1 - c0), dtype=dtype)
        if len(hits):
            shapes = ((geoms[i], values[i]) for i in sorted(hits))
            rasterize(shapes, out=out, transform=transform, all_touched=False)
        return out

    return da.map_blocks(burn, like, dtype=dtype, meta=np.array((), dtype=dtype))


def _window_bounds(transform, height: int, width: int) -> tuple[float, float, float, float]:
    x0, y0 = transform.c, transform.f
    x1, y1 = x0 + transform.a * width, y0 + transform.e * height
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
