"""Grouped pixel counts: exact, whatever the chunking; zone tables add up to the region's."""

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS

from pipeline.model import inputs
from pipeline.model.grid import PixelAreas, pixel_areas
from pipeline.model.inputs import ParameterTable
from pipeline.stages import balance, carbon, counts, zonal

from .helpers import constant_areas, row_areas
from .strategies import zone_class_rasters


def _lazy(a: np.ndarray, chunks: tuple[int, int]) -> xr.DataArray:
    return xr.DataArray(da.from_array(a, chunks=chunks), dims=("y", "x"))


@settings(max_examples=60, deadline=None)
@given(zone_class_rasters(), st.sampled_from(["none", "rows", "cells"]), st.sampled_from([4, 1 << 25, 1 << 40]))
def test_group_counts_are_exact_for_any_chunking(data, lattice, zone_size):
    """Counts per combination and pixel-area cell: none (one area), per row (geographic) or per cell of
    2 x 3 pixels (ellipsoidal on a projected grid). Declared sizes of 2**25 and 2**40 zones take the
    hashing path instead of the dense bincount, with 32-bit and 64-bit combined keys."""
    zone, cls, (c1, c2) = data
    h, w = zone.shape
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ncols = -(-w // 3)
    areas, cell = {
        "none": (None, np.zeros((h, w), int)),
        "rows": (row_areas(np.ones(h), w), rows),
        "cells": (
            PixelAreas((h, w), (2, 3), np.ones((-(-h // 2), ncols)), "ellipsoidal"),
            rows // 2 * ncols + cols // 3,
        ),
    }[lattice]
    frames = [
        counts.group_counts({"zone": (_lazy(zone, c), zone_size), "class": (_lazy(cls, c), 9)}, areas).compute()
        for c in (c1, c2)
    ]
    pd.testing.assert_frame_equal(frames[0], frames[1])
    f = frames[0]
    assert f["pixels"].sum() == zone.size and (f["pixels"] > 0).all()
    for (z, k, c), n in f.set_index(["zone", "class", "cell"])["pixels"].items():
        assert n == ((zone == z) & (cls == k) & (cell == c)).sum()


def test_group_counts_by_strips_of_rows_are_the_block_at_once(monkeypatch):
    """Blocks counted a few rows at a time (a combination in several strips, a last strip cut short, pixel-area
    cells that change down the rows): the same frame as each block at once."""
    rng = np.random.default_rng(3)
    zone, cls = rng.integers(0, 4, (23, 19)), rng.integers(0, 9, (23, 19))
    areas = row_areas(np.linspace(1.0, 2.0, 23), 19)

    def frame():
        keys = {"zone": (_lazy(zone, (11, 8)), 4), "class": (_lazy(cls, (11, 8)), 9)}
        return counts.group_counts(keys, areas).compute()

    whole = frame()
    for rows in (1, 3):
        monkeypatch.setattr(counts, "_STRIP_ROWS", rows)
        pd.testing.assert_frame_equal(frame(), whole)


@pytest.mark.parametrize("chunks", [(1, 1), (2, 2), (3, 4), (4, 4)])
def test_folded_cells_give_each_key_its_pixels_and_hectares(chunks):
    """Cells of 2 x 2 px with areas 100, 200, 300 and 400 m²: each key's area is its pixels in each cell times
    that cell's pixel area, added up by hand; one row per key, the same on every chunking."""
    zone = np.array([[1, 1, 2, 2], [1, 2, 2, 2], [1, 1, 1, 2], [2, 1, 1, 1]])
    cls = np.array([[3, 3, 3, 5], [5, 5, 3, 3], [3, 3, 5, 5], [3, 3, 3, 3]])
    areas = PixelAreas((4, 4), (2, 2), np.array([[100.0, 200.0], [300.0, 400.0]]), "ellipsoidal")
    keys = {"zone": (_lazy(zone, chunks), 3), "class": (_lazy(cls, chunks), 6)}
    folded = counts.fold_cells(counts.group_counts(keys, areas).compute(), areas)
    # (zone, class): pixels in the cells of 100 / 200 / 300 / 400 m²
    by_hand = {(1, 3): (2, 0, 3, 2), (1, 5): (1, 0, 0, 1), (2, 3): (0, 3, 1, 0), (2, 5): (1, 1, 0, 1)}
    assert list(folded.columns) == ["zone", "class", "pixels", "area_ha"]
    assert [tuple(k) for k in folded[["zone", "class"]].to_numpy()] == sorted(by_hand)
    for z, k, px, ha in folded.itertuples(index=False):
        n = by_hand[(z, k)]
        assert px == sum(n)
        assert ha == pytest.approx((100 * n[0] + 200 * n[1] + 300 * n[2] + 400 * n[3]) / 1e4, rel=1e-15)
    assert counts.count_area_ha(folded, areas).tolist() == folded["area_ha"].tolist()
    assert folded["area_ha"].sum() == pytest.approx(float(areas.window_m2(0, 0, 4, 4).sum()) / 1e4, rel=1e-15)


def test_group_counts_take_the_same_counts_by_every_path(monkeypatch):
    """Keys and pixel-area cells counted densely at once, keys compacted first (densely or by hashing), and the
    (key, cell) pairs compacted by hashing: one frame, and each pixel counted once."""
    rng = np.random.default_rng(5)
    zone, cls = rng.integers(0, 6, (37, 29)), rng.integers(0, 9, (37, 29))
    areas = PixelAreas((37, 29), (4, 5), np.ones((10, 6)), "ellipsoidal")

    def frame():
        keys = {"zone": (_lazy(zone, (16, 13)), 6), "class": (_lazy(cls, (16, 13)), 9)}
        return counts.group_counts(keys, areas).compute()

    whole = frame()
    assert whole["pixels"].sum() == zone.size
    cell = np.arange(37)[:, None] // 4 * 6 + np.arange(29)[None, :] // 5
    for (z, k, c), n in whole.set_index(["zone", "class", "cell"])["pixels"].items():
        assert n == ((zone == z) & (cls == k) & (cell == c)).sum()
    # Rasters the counts only wait for are not counted.
    along = [_lazy(rng.integers(0, 300, (37, 29)), (16, 13))]
    keys = {"zone": (_lazy(zone, (16, 13)), 6), "class": (_lazy(cls, (16, 13)), 9)}
    pd.testing.assert_frame_equal(counts.group_counts(keys, areas, along).compute(), whole)
    # 54 combinations; a strip of one row spans up to 4 cells and holds up to 13 combinations, a block up to 22.
    for rows, limit in ((1, 60), (1, 30), (512, 60), (512, 20)):
        monkeypatch.setattr(counts, "_STRIP_ROWS", rows)
        monkeypatch.setattr(counts, "_DENSE_LIMIT", limit)
        pd.testing.assert_frame_equal(frame(), whole)


def _rates() -> carbon.Lookup:
    frame = pd.DataFrame({"key": [1, 2, 5], "rate_tC_ha_yr": [0.4, -0.644, 2.5], "source": ""})
    return carbon.rate_lookup(ParameterTable(None, "class", frame))


def _densities() -> carbon.Lookup:
    frame = pd.DataFrame(
        {
            "key": list(range(1, 9)),
            "c_above": np.arange(1, 9) * 3.3,
            "c_below": 1.0,
            "c_soil": 40.0,
            "c_dead": 0.5,
            "source": "",
        }
    )
    return carbon.density_lookup(ParameterTable(None, "class", frame))


@settings(max_examples=40, deadline=None)
@given(zone_class_rasters())
def test_zone_tables_add_up_to_the_region_and_do_not_depend_on_chunks(data):
    zone, cls, (c1, c2) = data
    zone = np.where(zone == 0, 1, zone)  # zones 1..3 tile the raster
    layer = inputs.ZoneLayer("zone", None, ["a", "b", "c"], ["A", "B", "C"], None)
    dens, rates = _densities(), _rates()
    row_area = 900.0 + np.arange(zone.shape[0]) * 0.37  # rows of different area, as on a geographic grid
    acc = balance.CarbonParameters(dens, rates, row_areas(row_area, zone.shape[1]))
    tables = []
    for c in (c1, c2):
        classes = _lazy(cls, c)
        keys = {
            "zone_zone": (_lazy(zone, c), 4),
            "class": (classes, 9),
            "density": (carbon.row_index(dens, classes, classes, None), dens.size),
            "rate": (carbon.row_index(rates, classes, classes, None), rates.size),
        }
        by_year = {2000: counts.group_counts(keys, acc.areas).compute()}
        tables.append(
            [balance.balance_table(acc, by_year, lay, col, "r") for lay, col in ((None, None), (layer, "zone_zone"))]
        )
    for a, b in zip(*tables):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    region, zones = tables[0]
    for column in ("area_ha", "stock_tC", "sink_tC_yr", "source_tC_yr"):
        assert zones[column].sum() == pytest.approx(region[column].sum(), rel=1e-12, nan_ok=True)
    expected_stock = sum(
        row_area[r] / 1e4 * dens.values[cls[r, x] - 1]
        for r in range(cls.shape[0])
        for x in range(cls.shape[1])
        if cls[r, x]
    )
    assert region["stock_tC"].sum() == pytest.approx(expected_stock, rel=1e-12)


def test_polygon_area_is_geodesic():
    import geopandas as gpd
    import shapely

    box = shapely.box(500000, 3400000, 501000, 3401000)  # 1 km square on UTM 50N near its central meridian
    layer = inputs.ZoneLayer("z", None, ["1"], ["1"], gpd.GeoDataFrame(geometry=[box], crs="EPSG:32650"))
    # UTM's scale factor 0.9996 at the central meridian: the ground is (1/0.9996)^2 larger than the grid square.
    assert zonal.polygon_area_ha(layer)[0] == pytest.approx(100 / 0.9996**2, rel=2e-5)


def _layer(boxes: dict, crs: str) -> inputs.ZoneLayer:
    import geopandas as gpd

    frame = gpd.GeoDataFrame({"id": list(boxes)}, geometry=list(boxes.values()), crs=crs)
    return inputs.ZoneLayer("z", None, list(boxes), [f"zone {k}" for k in boxes], frame)


def _counts(cells: list[tuple[int, int, int, int]]) -> pd.DataFrame:
    """A ``group_counts`` frame by hand: (zone, class, pixel-area cell, pixels)."""
    return pd.DataFrame(cells, columns=["zone_z", "class", "cell", "pixels"])


def test_zone_report_by_hand_on_a_projected_grid():
    """30 m UTM pixels, 6 columns x 4 rows (x 500000-500180). Zone A spans x 499970-500102 (3.4 px inside the
    grid), zone B x 500090-500180 (3 px): they share 12 m x 120 m. Pixel centres: A burns columns 0-2 (12 px),
    B columns 3-5 (12 px); two of A's pixels are nodata (class 0)."""
    import shapely

    from pipeline.model.grid import Grid

    grid = Grid(CRS.from_epsg(32650), Affine(30, 0, 500000, 0, -30, 3400000), 6, 4)
    layer = _layer(
        {
            "A": shapely.box(499970, 3399880, 500102, 3400000),
            "B": shapely.box(500090, 3399880, 500180, 3400000),
        },
        "EPSG:32650",
    )
    counts = _counts([(1, 0, 0, 2), (1, 3, 0, 10), (2, 2, 0, 12)])
    got = zonal.zone_report(layer, counts, "zone_z", constant_areas(900.0), grid).set_index("zone_id")
    assert got.loc["A", "inside_rasters_ha"] == pytest.approx(102 * 120 / 1e4)  # 1.224 ha, planar like the pixels
    assert got.loc["B", "inside_rasters_ha"] == pytest.approx(90 * 120 / 1e4)  # 1.08
    assert got.loc["A", "burned_area_ha"] == pytest.approx(1.08) and got.loc["B", "burned_area_ha"] == 1.08
    assert got.loc["A", "valid_area_ha"] == pytest.approx(0.9)  # 10 px: nodata is not valid
    assert got.loc["A", "boundary_difference_ha"] == pytest.approx(1.08 - 1.224)  # -0.144: lost at the boundary
    assert got.loc["B", "boundary_difference_ha"] == pytest.approx(0.0, abs=1e-12)
    # The shared 1440 m2 is credited to both zones; geodesic, so larger by UTM's scale factor (0.9996 here).
    assert got.loc["A", "overlap_ha"] == pytest.approx(0.144 / 0.9996**2, rel=2e-5)
    assert got.loc["B", "overlap_ha"] == pytest.approx(0.144 / 0.9996**2, rel=2e-5)
    assert got.loc["A", "polygon_area_ha"] == pytest.approx(132 * 120 / 1e4 / 0.9996**2, rel=2e-5)


def test_zone_report_by_hand_on_a_geographic_grid():
    """0.01 degree pixels, 4 columns x 3 rows from 106 E, 27 N. Zone A spans 105.99-106.024 E (2.4 columns
    inside), zone B 106.02-106.04 E; both the full 0.03 degrees of latitude. Areas in hectares from pyproj's
    geodesic polygon areas (independent of the package): about 2.4 x 0.99 km x 3 x 1.11 km = 790 ha for A."""
    import shapely
    from pyproj import Geod

    from pipeline.model.grid import Grid

    def ha(lon0, lon1, lat0=26.97, lat1=27.0):
        area, _ = Geod(ellps="WGS84").polygon_area_perimeter([lon0, lon1, lon1, lon0], [lat1, lat1, lat0, lat0])
        return abs(area) / 1e4

    grid = Grid(CRS.from_epsg(4326), Affine(0.01, 0, 106.0, 0, -0.01, 27.0), 4, 3)
    layer = _layer(
        {"A": shapely.box(105.99, 26.97, 106.024, 27.0), "B": shapely.box(106.02, 26.97, 106.04, 27.0)}, "EPSG:4326"
    )
    # A burns columns 0-1 of every row, B columns 2-3; A's row-2 pixels are nodata.
    counts = _counts([(1, 1, 0, 2), (1, 1, 1, 2), (1, 0, 2, 2), (2, 2, 0, 2), (2, 2, 1, 2), (2, 2, 2, 2)])
    got = zonal.zone_report(layer, counts, "zone_z", pixel_areas(grid), grid).set_index("zone_id")
    inside_a = ha(106.0, 106.024)
    assert 780 < inside_a < 800
    assert got.loc["A", "inside_rasters_ha"] == pytest.approx(inside_a, rel=1e-6)
    assert got.loc["B", "inside_rasters_ha"] == pytest.approx(ha(106.02, 106.04), rel=1e-6)
    row_ha = [ha(106.0, 106.02, 26.99 - 0.01 * r, 27.0 - 0.01 * r) for r in range(3)]  # two pixels of each row
    assert got.loc["A", "burned_area_ha"] == pytest.approx(sum(row_ha), rel=1e-6)
    assert got.loc["A", "valid_area_ha"] == pytest.approx(row_ha[0] + row_ha[1], rel=1e-6)
    assert got.loc["A", "boundary_difference_ha"] == pytest.approx(sum(row_ha) - inside_a, rel=1e-5)
    assert got.loc["A", "boundary_difference_ha"] < 0  # 0.4 of a column lost
    shared = ha(106.02, 106.024)
    assert got.loc["A", "overlap_ha"] == pytest.approx(shared, rel=1e-6)
    assert got.loc["B", "overlap_ha"] == pytest.approx(shared, rel=1e-6)


def test_overlaps_count_shared_area_not_shared_edges():
    """Four 1 km squares (UTM 50N near its central meridian): A and B overlap by 200 m x 1 km; C touches A
    along an edge and D touches B at a corner only: one pair, 20 ha on the grid, 20 / 0.9996^2 ha geodesic."""
    import shapely

    layer = _layer(
        {
            "A": shapely.box(500000, 3400000, 501000, 3401000),
            "B": shapely.box(500800, 3400000, 501800, 3401000),
            "C": shapely.box(499000, 3400000, 500000, 3401000),
            "D": shapely.box(501800, 3401000, 502800, 3402000),
        },
        "EPSG:32650",
    )
    got = zonal.overlaps(layer)
    assert got[["zone_id", "other_zone_id"]].values.tolist() == [["A", "B"]]
    assert got["zone_name"].tolist() == ["zone A"] and got["other_zone_name"].tolist() == ["zone B"]
    assert got["overlap_ha"].iloc[0] == pytest.approx(20 / 0.9996**2, rel=2e-5)


# Hand-drawn burns for ``rasterize_blocks``: 30 m UTM pixels, 6 columns x 4 rows from (500000, 3400000); pixel
# centres at x = 500015 + 30 c, y = 3399985 - 30 r. No polygon edge passes through a centre.
_BURN_SHAPES = [
    # Columns 0-2 (centres 500015-500075 < 500080), rows 0-1 (3399985, 3399955 > 3399935).
    ("box", (499990, 3399935, 500080, 3399995)),
    # Columns 4-5, row 3 only; its top edge (3399920) runs through row 2's pixels but below their centres
    # (3399925): all_touched would burn row 2 too.
    ("box", (500130, 3399890, 500170, 3399920)),
    # Columns 2-3 of row 1: over the first polygon's pixel (1, 2), which the later polygon takes.
    ("box", (500062, 3399940, 500110, 3399970)),
    # Outside the grid.
    ("box", (600000, 3400000, 600100, 3400100)),
]
_BURNED = np.array(
    [
        [7, 7, 7, 0, 0, 0],
        [7, 7, 13, 13, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 11, 11],
    ]
)


def _utm_grid_6x4():
    from pipeline.model.grid import Grid

    return Grid(CRS.from_epsg(32650), Affine(30, 0, 500000, 0, -30, 3400000), 6, 4)


@pytest.mark.parametrize(
    "chunks", [((4,), (6,)), ((2, 2), (3, 3)), ((1, 3), (4, 2)), ((3, 1), (2, 2, 2)), ((1, 1, 1, 1), (5, 1))]
)
def test_rasterize_blocks_burns_pixel_centres_by_hand(chunks):
    """Each block burns the polygons that meet it at its own place on the grid: the result is the hand-drawn
    raster for any chunking, the later polygon wins where two cover a centre, and the dtype is kept."""
    import shapely

    geoms = np.array([shapely.box(*b) for _, b in _BURN_SHAPES])
    values = np.array([7, 11, 13, 17])
    like = da.zeros((4, 6), np.uint8, chunks=chunks)
    got = zonal.rasterize_blocks(geoms, values, _utm_grid_6x4(), like)
    assert got.chunks == chunks and got.dtype == np.int32
    computed = got.compute()
    assert computed.dtype == np.int32
    np.testing.assert_array_equal(computed, _BURNED)
    small = zonal.rasterize_blocks(geoms, values, _utm_grid_6x4(), like, dtype=np.uint8).compute()
    assert small.dtype == np.uint8
    np.testing.assert_array_equal(small, _BURNED)


def test_rasterize_blocks_on_a_south_up_grid():
    """A grid whose rows run northwards (positive y resolution): row r's centres at y = 3399895 + 30 r, so
    the hand-drawn raster comes out upside down; each block's window still finds its polygons."""
    import shapely

    from pipeline.model.grid import Grid

    grid = Grid(CRS.from_epsg(32650), Affine(30, 0, 500000, 0, 30, 3399880), 6, 4)
    geoms = np.array([shapely.box(*b) for _, b in _BURN_SHAPES])
    for chunks in (((4,), (6,)), ((2, 2), (3, 3)), ((3, 1), (2, 4))):
        like = da.zeros((4, 6), np.uint8, chunks=chunks)
        got = zonal.rasterize_blocks(geoms, np.array([7, 11, 13, 17]), grid, like).compute()
        np.testing.assert_array_equal(got, _BURNED[::-1])


def test_zone_index_numbers_zones_from_one_in_layer_order():
    """Zone i of the layer (0-based) burns as i + 1, 0 outside every zone; the raster keeps the template's
    coordinates and chunks and is named after the layer."""
    import geopandas as gpd
    import shapely

    frame = gpd.GeoDataFrame(geometry=[shapely.box(*b) for _, b in _BURN_SHAPES[:3]], crs="EPSG:32650")
    layer = inputs.ZoneLayer("county", None, ["c1", "c2", "c3"], ["one", "two", "three"], frame)
    x, y = 500015 + 30 * np.arange(6), 3399985 - 30 * np.arange(4)
    like = xr.DataArray(da.zeros((4, 6), np.uint8, chunks=(2, 3)), dims=("y", "x"), coords={"y": y, "x": x})
    got = zonal.zone_index(layer, _utm_grid_6x4(), like)
    assert got.name == "zone_county" and got.dtype == np.uint8 and got.data.chunks == ((2, 2), (3, 3))
    np.testing.assert_array_equal(got["x"], x)
    np.testing.assert_array_equal(got["y"], y)
    np.testing.assert_array_equal(got.values, np.select([_BURNED == v for v in (7, 11, 13)], [1, 2, 3], 0))


def test_zone_index_of_more_zones_than_a_byte_holds_keeps_every_number():
    """300 zones: numbers up to 300 need two bytes; the last zones must not wrap around to 44 (300 - 256)."""
    import geopandas as gpd
    import shapely

    # 300 zones of which only the last 24 (one a pixel, pixel centres at 500015 + 30 i) touch the 6 x 4 grid.
    boxes = [shapely.box(0, 0, 1, 1)] * 276
    boxes += [
        shapely.box(500000 + 30 * c, 3400000 - 30 * (r + 1), 500030 + 30 * c, 3400000 - 30 * r)
        for r in range(4)
        for c in range(6)
    ]
    frame = gpd.GeoDataFrame(geometry=boxes, crs="EPSG:32650")
    ids = [f"z{i}" for i in range(300)]
    layer = inputs.ZoneLayer("county", None, ids, ids, frame)
    like = xr.DataArray(da.zeros((4, 6), np.uint8, chunks=(2, 3)), dims=("y", "x"))
    got = zonal.zone_index(layer, _utm_grid_6x4(), like)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got.values, np.arange(277, 301).reshape(4, 6))


def test_geodesic_area_of_empty_missing_and_clockwise_polygons():
    """A missing or empty geometry has no area; a clockwise ring has the same (positive) area as the
    counter-clockwise one. Reference: pyproj's geodesic polygon area of the corners of a 0.01 degree cell at
    27 N (about 0.99 km x 1.11 km = 110 ha)."""
    import geopandas as gpd
    import shapely
    from pyproj import Geod

    expected, _ = Geod(ellps="WGS84").polygon_area_perimeter([106.0, 106.01, 106.01, 106.0], [27.0, 27.0, 27.01, 27.01])
    expected = abs(expected) / 1e4
    assert 109 < expected < 111
    cell = (106.0, 27.0, 106.01, 27.01)
    geoms = gpd.GeoSeries([shapely.box(*cell), shapely.box(*cell, ccw=False), shapely.Polygon(), None], crs=4326)
    np.testing.assert_allclose(zonal.geodesic_area_ha(geoms), [expected, expected, 0, 0], rtol=1e-9)


# US survey foot (1200/3937 m, NIST) squared, in m².
_FT2_M2 = (1200 / 3937) ** 2


def test_zone_report_by_hand_on_a_grid_in_feet():
    """NY State Plane Long Island (EPSG:2263, US survey feet) with ``area: planar``: 100 ft pixels (929.03 m²),
    4 columns x 2 rows from (1000000, 200000). The planar area inside the rasters is in ft² and converted as
    the pixels are; overlaps and polygon areas are geodesic (planar / the projection's areal scale factor,
    0.9999953 here). Zone A (x 999900-1000160) burns columns 0-1; B (x 1000155-1000400) columns 2-3; C lies
    outside the grid; D (x 1000100-1000200, y 199880-199940) covers no pixel centre but overlaps A and B."""
    import pyproj
    import shapely

    from pipeline.model.grid import Grid

    grid = Grid(CRS.from_epsg(2263), Affine(100, 0, 1000000, 0, -100, 200000), 4, 2)
    boxes = {
        "A": (999900, 199800, 1000160, 200000),
        "B": (1000155, 199800, 1000400, 200000),
        "C": (1100000, 199800, 1100100, 200000),
        "D": (1000100, 199880, 1000200, 199940),
    }
    layer = _layer({k: shapely.box(*b) for k, b in boxes.items()}, "EPSG:2263")
    counts = _counts([(1, 1, 0, 3), (1, 0, 0, 1), (2, 5, 0, 4)])  # A: 3 valid pixels and 1 nodata; B: 4
    counts.index = [7, 3, 5]  # rows picked out of a larger frame keep their labels
    pixel_m2 = 100 * 100 * _FT2_M2
    got = zonal.zone_report(layer, counts, "zone_z", constant_areas(pixel_m2), grid).set_index("zone_id")
    assert got.index.tolist() == ["A", "B", "C", "D"]
    assert got["zone_name"].tolist() == ["zone A", "zone B", "zone C", "zone D"]
    ha = _FT2_M2 / 1e4  # hectares per ft²
    np.testing.assert_allclose(got["inside_rasters_ha"], np.array([160 * 200, 245 * 200, 0, 100 * 60]) * ha)
    np.testing.assert_allclose(got["burned_area_ha"], np.array([40000, 40000, 0, 0]) * ha)
    np.testing.assert_allclose(got["valid_area_ha"], np.array([30000, 40000, 0, 0]) * ha)
    np.testing.assert_allclose(
        got["boundary_difference_ha"], np.array([8000, -9000, 0, -6000]) * ha, rtol=1e-9, atol=1e-12
    )
    lon, lat = pyproj.Transformer.from_crs(2263, 4326, always_xy=True).transform(1000150, 199900)
    scale = pyproj.Proj("EPSG:2263").get_factors(lon, lat).areal_scale
    assert abs(scale - 1) > 1e-6  # geodesic and planar areas differ by more than the tolerance below
    ab, ad, bd = 5 * 200, 60 * 60, 45 * 60  # shared ft²; A, B and D share 5 x 60 ft, counted in each pair
    np.testing.assert_allclose(
        got["overlap_ha"], np.array([ab + ad, ab + bd, 0, ad + bd]) * ha / scale, rtol=1e-7, atol=1e-12
    )
    np.testing.assert_allclose(
        got["polygon_area_ha"], np.array([260 * 200, 245 * 200, 100 * 200, 100 * 60]) * ha / scale, rtol=1e-6
    )
    pairs = zonal.overlaps(layer)
    assert list(pairs.columns) == ["zone_id", "zone_name", "other_zone_id", "other_zone_name", "overlap_ha"]
    assert pairs[["zone_id", "other_zone_id"]].values.tolist() == [["A", "B"], ["A", "D"], ["B", "D"]]
    assert pairs.index.tolist() == [0, 1, 2]
    np.testing.assert_allclose(pairs["overlap_ha"], np.array([ab, ad, bd]) * ha / scale, rtol=1e-7)
