import numpy as np
import pytest
from affine import Affine
from pyproj import Geod
from rasterio.crs import CRS

from pipeline.model.grid import Grid

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
    expected = [geodesic_pixel_area(lat_top - i * DEG, DEG, DEG) for i in range(3)]
    np.testing.assert_allclose(grid.row_area_m2(), expected, rtol=1e-9)
    # Equator pixel of 1/12000 degree is about 9.28 m x 9.22 m (WGS84 a = 6378137 m; b/a ratio at the pole side).
    if lat_top == DEG:
        assert 85.4 < grid.row_area_m2()[0] < 85.7


def test_projected_area_is_constant_and_in_square_metres():
    grid = Grid(CRS.from_epsg(32650), Affine(30, 0, 500000, 0, -30, 3400000), 4, 5)
    assert grid.row_area_m2().tolist() == [900.0] * 5
    feet = Grid(CRS.from_epsg(2263), Affine(10, 0, 1e6, 0, -10, 2e5), 2, 2)  # NY State Plane, US feet
    np.testing.assert_allclose(feet.row_area_m2(), 100 * 0.3048006096**2, rtol=1e-9)


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
