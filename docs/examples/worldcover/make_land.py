"""The study-area boundary of the WorldCover example: the land of São Tomé and Príncipe, derived from the
2020 map itself, because no coastline polygon of the islands ships with the data.

    python docs/examples/worldcover/make_land.py   # writes docs/examples/worldcover/land.gpkg

The 2020 tile is read through its internal overview at 1/32 of the resolution (1125 x 1125 px of 1/375 degree,
about 300 m). Land is every valid pixel that is not permanent water (80); holes (inland lakes, reservoirs)
are filled, pieces under 1 km2 (stray pixels, boats, surf) are dropped, and the outline is grown by one
coarse pixel so that no coastal land pixel is cut off: a ring of sea up to ~300 m wide lies inside the
boundary. An official coastline (e.g. a national or GADM boundary) is better; this one shows how `boundary:`
keeps the open sea of a tile out of the accounting.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.enums import Resampling
from rasterio.features import shapes
from scipy import ndimage

HERE = Path(__file__).resolve().parent
TILE = HERE / "tiles" / "ESA_WorldCover_10m_2020_v100_N00E006_Map.tif"
FACTOR = 32
MIN_KM2 = 1.0


def land_polygons(tile: Path = TILE) -> list[shapely.Polygon]:
    """The islands' outlines, largest first."""
    with rasterio.open(tile) as ds:
        codes = ds.read(1, out_shape=(ds.height // FACTOR, ds.width // FACTOR), resampling=Resampling.nearest)
        transform = ds.transform @ Affine.scale(ds.width / codes.shape[1], ds.height / codes.shape[0])
    land = ndimage.binary_fill_holes((codes != 0) & (codes != 80))
    labels, n = ndimage.label(land)
    px_km2 = (abs(transform.a) * 111.32) ** 2  # near the equator a degree is ~111.32 km both ways
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = np.isin(labels, np.flatnonzero(sizes * px_km2 >= MIN_KM2)[1:])
    parts = [shapely.geometry.shape(g) for g, v in shapes(keep.astype(np.uint8), mask=keep, transform=transform)]
    grown = shapely.unary_union(parts).buffer(abs(transform.a), join_style="mitre")
    return sorted(getattr(grown, "geoms", [grown]), key=lambda g: -g.area)


if __name__ == "__main__":
    islands = land_polygons()
    assert len(islands) == 2, f"expected São Tomé and Príncipe, found {len(islands)} pieces"
    out = HERE / "land.gpkg"
    out.unlink(missing_ok=True)
    frame = gpd.GeoDataFrame({"id": [1, 2], "name": ["São Tomé", "Príncipe"]}, geometry=islands, crs="EPSG:4326")
    frame.to_file(out, layer="land", driver="GPKG")  # one layer: the study area and the zones of the example
    for name, g in zip(frame["name"], islands):
        print(f"{name}: {g.area * 111.32**2:,.0f} km2 (approx., with the ~300 m ring of sea)")
