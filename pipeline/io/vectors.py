"""Polygon layers at the edge: reading, repairing, GCJ-02 coordinates, zone layers checked once."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import geopandas as gpd
import shapely
from pyogrio.errors import DataLayerError, DataSourceError
from rasterio.errors import NotGeoreferencedWarning
from shapely.geometry.base import BaseGeometry

from pipeline.errors import InputError
from pipeline.io import gcj02 as gcj02_module
from pipeline.io.tables import zone_id_text
from pipeline.model.grid import Grid
from pipeline.model.inputs import (
    ZoneLayer,
)

# rasterize builds an in-memory dataset and reads its transform before setting it; rasterio hides the
# resulting warning with catch_warnings, which is not thread-safe, so under Dask threads it leaks out.
warnings.filterwarnings("ignore", "Dataset has no geotransform", NotGeoreferencedWarning, "rasterio")
log = logging.getLogger(__name__)


def read_polygons(
    path: Path, grid: Grid, layer: str | None = None, gcj02: bool = False, name_field: str | None = None
) -> gpd.GeoDataFrame:
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
            raise InputError(
                f"coordinates: gcj02 needs longitude/latitude, but the layer's CRS is {gdf.crs.name}", path
            )
        gdf["geometry"] = gcj02_module.geometries_to_wgs84(gdf.geometry.values)
        log.info("%s: %d features moved from GCJ-02 to WGS84 coordinates (coordinates: gcj02)", path, len(gdf))
        gdf = gdf.set_crs(4326, allow_override=True)
    invalid = ~gdf.geometry.is_valid
    if invalid.any():
        names = (
            gdf.loc[invalid, name_field].astype(str).tolist()
            if name_field in gdf.columns
            else [f"row {i}" for i in gdf.index[invalid]]
        )
        log.warning("%s: %d invalid geometries repaired with make_valid: %s", path, invalid.sum(), ", ".join(names))
        gdf.loc[invalid, "geometry"] = shapely.make_valid(gdf.geometry[invalid].values)
        # make_valid may return collections holding lines; keep the polygonal part.
        gdf["geometry"] = [_polygonal(g) for g in gdf.geometry]
    gdf = gdf.to_crs(grid.crs)
    left, bottom, right, top = grid.bounds
    if not gdf.intersects(shapely.box(left, bottom, right, top)).any():
        raise InputError("no polygon overlaps the rasters (check the CRS and the extent)", path)
    return gdf


def _polygonal(geom: BaseGeometry | None) -> BaseGeometry | None:
    if geom is None or geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def read_zone_layer(
    name: str,
    path: Path,
    id_field: str,
    label_field: str | None,
    grid: Grid,
    layer: str | None = None,
    gcj02: bool = False,
) -> ZoneLayer:
    """A zone layer checked once: fields exist, ids unique and present, polygons overlap the grid."""
    gdf = read_polygons(path, grid, layer, gcj02, label_field or id_field)
    for column in filter(None, (id_field, label_field)):
        if column not in gdf.columns:
            fields = ", ".join(c for c in gdf.columns if c != gdf.geometry.name)
            raise InputError(f"zone layer '{name}' has no field '{column}'; fields: {fields}", path)
    if gdf[id_field].isna().any():
        raise InputError(
            f"zone layer '{name}': {int(gdf[id_field].isna().sum())} features have no id in '{id_field}'", path
        )
    ids = zone_id_text(gdf[id_field])
    dup = sorted({z for z in ids if ids.count(z) > 1})
    if dup:
        raise InputError(f"zone layer '{name}': duplicate ids in '{id_field}': {dup[:10]}", path)
    labels = [str(v) for v in gdf[label_field]] if label_field else ids
    return ZoneLayer(name, Path(path), ids, labels, gdf)
