import numpy as np
import pyproj
import pytest
from affine import Affine
from pyproj import Geod
from rasterio.crs import CRS

from pipeline.errors import ConfigError
from pipeline.model.grid import Grid, PixelAreas, pixel_areas

DEG = 1 / 12000  # ESA WorldCover pixel


def geodesic_pixel_area(lat_top: float, dlon: float, dlat: float) -> float:
    """Independent reference: pyproj's geodesic polygon area of one pixel on WGS84 (m²)."""
    lons = [0, dlon, dlon, 0]
    lats = [lat_top, lat_top, lat_top - dlat, lat_top - dlat]
    area, _ = Geod(ellps="WGS84").polygon_area_perimeter(lons, lats)
    return abs(area)


@pytest.mark.parametrize("lat_top", [DEG, 60.0, -45.0 + DEG])
def test_geographic_row_area_matches_pyproj_geodesic(lat_top):
    grid = Grid(CRS.from_epsg(4326), Affine(DEG, 0, 6.0, 0, -DEG, lat_top), 10, 3)
    areas = pixel_areas(grid)
    expected = [geodesic_pixel_area(lat_top - i * DEG, DEG, DEG) for i in range(3)]
    assert areas.cell_shape == (1, 10)  # exact per row
    np.testing.assert_allclose(areas.window_m2(0, 4, 3, 1)[:, 0], expected, rtol=1e-9)
    # Equator pixel of 1/12000 degree is about 9.28 m x 9.22 m (WGS84 a = 6378137 m; b/a ratio at the pole side).
    if lat_top == DEG:
        assert 85.4 < areas.flat_m2[0] < 85.7
    with pytest.raises(ConfigError, match="`area: planar` needs a projected grid"):
        pixel_areas(grid, "planar")


def test_planar_area_is_constant_and_in_square_metres():
    grid = Grid(CRS.from_epsg(32650), Affine(30, 0, 500000, 0, -30, 3400000), 4, 5)
    planar = pixel_areas(grid, "planar")
    assert planar.constant and planar.flat_m2.tolist() == [900.0] and planar.total_m2() == 20 * 900.0
    feet = Grid(CRS.from_epsg(2263), Affine(10, 0, 1e6, 0, -10, 2e5), 2, 2)  # NY State Plane, US feet
    np.testing.assert_allclose(pixel_areas(feet, "planar").flat_m2, 100 * 0.3048006096**2, rtol=1e-9)


def geodesic_area_of(crs: CRS, xs, ys) -> float:
    """Independent reference: the polygon with these projected vertices, taken to longitude and latitude
    and measured by pyproj's geodesic area on the CRS's own ellipsoid (m²)."""
    own = pyproj.CRS(crs.to_wkt())
    lon, lat = pyproj.Transformer.from_crs(own, own.geodetic_crs, always_xy=True).transform(xs, ys)
    return abs(own.get_geod().polygon_area_perimeter(lon, lat)[0])


# (EPSG, longitude, latitude, largest relative error of one 30 m pixel's area): CGCS2000 3-degree
# Gauss-Kruger CM 114 E over Guizhou (7.3 degrees west of it: areal scale 1.013) and near its CM; UTM 50N
# (k0 0.9996) at its central meridian and 2.7 degrees east of it.
PROJECTED = [
    (4547, 106.7, 26.5, 2e-4),
    (4547, 114.1, 26.0, 1e-5),
    (32650, 117.0, 30.0, 1e-5),
    (32650, 114.3, 30.0, 1e-4),
]


@pytest.mark.parametrize(("epsg", "lon", "lat", "pixel_rtol"), PROJECTED)
def test_projected_pixel_areas_match_pyproj_geodesic_areas(epsg, lon, lat, pixel_rtol):
    """600 x 600 pixels of 30 m (18 km): each pixel's area against the geodesic area of its four corners,
    and the grid's total against the geodesic area of its densified outline (to 1e-6: the lattice's
    centre values are exact for whole cells to second order)."""
    crs = CRS.from_epsg(epsg)
    x, y = pyproj.Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    x0, y0 = round(x / 30) * 30, round(y / 30) * 30
    areas = pixel_areas(Grid(crs, Affine(30, 0, x0, 0, -30, y0), 600, 600))
    assert areas.cell_shape == (167, 167) and areas.area_m2.shape == (4, 4)  # cells of 5 km
    rng = np.random.default_rng(7)
    for r, c in [(0, 0), (599, 599), (166, 167), *rng.integers(0, 600, (30, 2)).tolist()]:
        xs, ys = [x0 + 30 * c, x0 + 30 * (c + 1)] * 2, [y0 - 30 * r] * 2 + [y0 - 30 * (r + 1)] * 2
        xs[2:] = xs[2:][::-1]
        assert areas.window_m2(r, c, 1, 1)[0, 0] == pytest.approx(geodesic_area_of(crs, xs, ys), rel=pixel_rtol)
    t = np.linspace(0, 18000, 200, endpoint=False)
    xs = np.r_[x0 + t, np.full(200, x0 + 18000), x0 + 18000 - t, np.full(200, x0)]
    ys = np.r_[np.full(200, y0), y0 - t, np.full(200, y0 - 18000), y0 - 18000 + t]
    assert areas.total_m2() == pytest.approx(geodesic_area_of(crs, xs, ys), rel=1e-6)
    planar = pixel_areas(Grid(crs, Affine(30, 0, x0, 0, -30, y0), 600, 600), "planar")
    assert planar.total_m2() == 600 * 600 * 900.0


def test_cells_are_tied_to_the_grid_not_the_window():
    """Cell numbers are a function of a pixel's place in the grid: a window's cells are the grid's."""
    i, j = np.meshgrid(np.arange(4), np.arange(3), indexing="ij")
    areas = PixelAreas((7, 8), (2, 3), 100.0 * (1 + i * 3 + j), "ellipsoidal")
    assert areas.cells(0, 0, 7, 8)[6].tolist() == [9, 9, 9, 10, 10, 10, 11, 11]
    assert areas.cells(5, 2, 2, 3).tolist() == [[6, 7, 7], [9, 10, 10]]
    assert areas.window_m2(5, 2, 1, 2).tolist() == [[700.0, 800.0]]
    # Edge cells are cut: rows 6 (one row) and columns 6-7 (two columns).
    assert areas.pixels_per_cell()[3].tolist() == [3, 3, 2] and areas.pixels_per_cell().sum() == 56
    assert areas.total_m2() == pytest.approx(sum(areas.window_m2(0, 0, 7, 8).ravel()))


def test_differences_name_origin_resolution_and_crs():
    base = Grid(CRS.from_epsg(32650), Affine(30, 0, 500000, 0, -30, 3400000), 10, 10)
    assert base.differences(base) == []
    tiny = Grid(base.crs, Affine(30, 0, 500000 + 1e-8, 0, -30, 3400000), 10, 10)
    assert base.differences(tiny) == []
    shifted = Grid(base.crs, Affine(30, 0, 500012, 0, -30, 3400000), 10, 10)
    assert "shift of +0.4" in base.differences(shifted)[0]
    coarse = Grid(base.crs, Affine(100, 0, 500000, 0, -100, 3400000), 3, 3)
    assert any("resolution 100 x 100 instead of 30 x 30" in d for d in base.differences(coarse))
    other = Grid(CRS.from_epsg(4326), base.transform, 10, 10)
    assert base.differences(other) == ["CRS EPSG:4326 instead of EPSG:32650"]


def test_alignment_tolerance_is_one_millionth_of_a_pixel():
    """Grids match when origins and resolutions agree to 1e-6 of a pixel (30 m: 30 micrometres): 0.5e-6 px
    passes, 2e-6 px is a difference, in x, in y and in the resolution."""
    base = Grid(CRS.from_epsg(32650), Affine(30, 0, 500000, 0, -30, 3400000), 10, 10)

    def grid(a=30.0, c=500000.0, e=-30.0, f=3400000.0):
        return Grid(base.crs, Affine(a, 0, c, 0, e, f), 10, 10)

    within, beyond = 0.5e-6 * 30, 2e-6 * 30  # metres
    assert base.differences(grid(c=500000 + within)) == [] and base.differences(grid(f=3400000 - within)) == []
    assert base.differences(grid(a=30 + within)) == [] and base.differences(grid(e=-30 - within)) == []
    (x,) = base.differences(grid(c=500000 + beyond))
    assert "origin" in x and "shift of +2e-06, " in x
    (y,) = base.differences(grid(f=3400000 - beyond))
    assert ", +2e-06 pixels" in y
    assert any(d.startswith("resolution") for d in base.differences(grid(a=30 + beyond)))
    assert any(d.startswith("resolution") for d in base.differences(grid(e=-30 - beyond)))


@pytest.mark.parametrize(
    ("left", "top", "width", "height", "expected"),
    [
        (5, 5, 2, 2, True),  # inside
        (9, 5, 4, 2, True),  # across the right edge by one pixel
        (10, 5, 4, 2, False),  # touching the right edge only
        (-3, 5, 3, 2, False),  # touching the left edge only
        (5, 14, 2, 4, True),  # across the bottom edge (rows grow downwards)
        (5, 15, 2, 4, False),  # touching the bottom edge only
        (5, -2, 2, 2, False),  # touching the top edge only
        (12, 20, 3, 3, False),  # beyond a corner
        (-1, -1, 12, 17, True),  # around it
    ],
)
def test_grids_overlap_when_their_extents_share_area(left, top, width, height, expected):
    """A 10 x 15 px grid of 30 m against grids placed in whole pixels around it (worked on paper): sharing
    an edge or a corner is not an overlap."""
    crs = CRS.from_epsg(32650)
    grid = Grid(crs, Affine(30, 0, 500000, 0, -30, 3000000), 10, 15)
    other = Grid(crs, Affine(30, 0, 500000 + 30 * left, 0, -30, 3000000 - 30 * top), width, height)
    assert grid.overlaps(other) is expected
    assert other.overlaps(grid) is expected
