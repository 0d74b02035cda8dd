"""Polygon layers at the edge: reading, checking and rasterising onto the grid block by block."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import dask.array as da
import geopandas as gpd
import numpy as np
import shapely
from pyogrio.errors import DataLayerError, DataSourceError
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize

from pipeline import gcj02 as gcj02_module
from pipeline.errors import InputError
from pipeline.grid import Grid

log = logging.getLogger(__name__)

# rasterize builds an in-memory dataset and reads its transform before setting it; rasterio hides the
# resulting warning with catch_warnings, which is not thread-safe, so under Dask threads it leaks out.
warnings.filterwarnings("ignore", "Dataset has no geotransform", NotGeoreferencedWarning, "rasterio")


def read_polygons(path: Path, grid: Grid, layer: str | None = None, gcj02: bool = False,
                  name_field: str | None = None) -> gpd.GeoDataFrame:
    """A polygon layer in the grid's CRS: GCJ-02 coordinates moved to WGS84 if declared, invalid
    geometries repaired (a warning names them by ``name_field``, else by row), checked to overlap."""
    if not Path(path).exists():
        raise InputError("polygon file not found", path)
    try:
        gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
    except (DataSourceError, DataLayerError, ValueError) as e:
        raise InputError(f"cannot read polygons: {e}", path) from None
    if gdf.empty:
        raise InputError("the polygon layer is empty", path)
    if gdf.crs is None:
        raise InputError("the polygon layer has no CRS; define one (e.g. in QGIS 'Set layer CRS') and save", path)
    kinds = set(gdf.geom_type.dropna())
    if not kinds <= {"Polygon", "MultiPolygon"}:
        raise InputError(f"expected polygons, found {sorted(kinds)}", path)
    if gcj02:
        if not gdf.crs.is_geographic:
            raise InputError(f"coordinates: gcj02 needs longitude/latitude, but the layer's CRS is {gdf.crs.name}",
                             path)
        gdf["geometry"] = gcj02_module.geometries_to_wgs84(gdf.geometry.values)
        gdf = gdf.set_crs(4326, allow_override=True)
    invalid = ~gdf.geometry.is_valid
    if invalid.any():
        names = gdf.loc[invalid, name_field].astype(str).tolist() if name_field in gdf.columns else \
            [f"row {i}" for i in gdf.index[invalid]]
        log.warning("%s: %d invalid geometries repaired with make_valid: %s", path, invalid.sum(), ", ".join(names))
        gdf.loc[invalid, "geometry"] = shapely.make_valid(gdf.geometry[invalid].values)
        # make_valid may return collections holding lines; keep the polygonal part.
        gdf["geometry"] = [_polygonal(g) for g in gdf.geometry]
    gdf = gdf.to_crs(grid.crs)
    left, bottom, right, top = grid.bounds
    if not gdf.intersects(shapely.box(left, bottom, right, top)).any():
        raise InputError("no polygon overlaps the rasters (check the CRS and the extent)", path)
    return gdf


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    if geom is None or geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def rasterize_blocks(geoms: np.ndarray, values: np.ndarray, grid: Grid, chunks: tuple, dtype=np.int32) -> da.Array:
    """Lazy raster of ``values`` burned by ``geoms`` (pixel-centre rule), 0 elsewhere, chunked like ``chunks``.

    Each block only burns the geometries whose envelope meets it (an STRtree query), so the cost is
    set by the block, not by the number of polygons.
    """
    tree = shapely.STRtree(geoms)

    def burn(block_info=None) -> np.ndarray:
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        transform = grid.window_transform(r0, c0)
        box = shapely.box(*_window_bounds(transform, r1 - r0, c1 - c0))
        hits = tree.query(box)
        out = np.zeros((r1 - r0, c1 - c0), dtype=dtype)
        if len(hits):
            shapes = ((geoms[i], values[i]) for i in sorted(hits))
            rasterize(shapes, out=out, transform=transform, all_touched=False)
        return out

    return da.map_blocks(burn, chunks=chunks, dtype=dtype, meta=np.array((), dtype=dtype))


def _window_bounds(transform, height: int, width: int) -> tuple[float, float, float, float]:
    x0, y0 = transform.c, transform.f
    x1, y1 = x0 + transform.a * width, y0 + transform.e * height
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
