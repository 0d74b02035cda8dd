"""Areas on the ellipsoid: a projected grid's pixels are measured as land surveys measure, not in the plane."""

from __future__ import annotations

import logging

import dask.array as da
import numpy as np
import pandas as pd
import pyproj
import pytest
import xarray as xr
from affine import Affine
from rasterio.crs import CRS

from pipeline.io import vectors
from pipeline.model.grid import Grid, pixel_areas
from pipeline.stages import counts, zonal

from .conftest import write_config, write_raster
from .helpers import cli

# CGCS2000 3-degree Gauss-Kruger, central meridian 114 E, used over Guizhou (about 106.7 E): far from its
# central meridian, so planar areas are about 1.3 % too large there.
GK114 = 4547


def _gk_origin(lon: float, lat: float) -> tuple[float, float]:
    x, y = pyproj.Transformer.from_crs(4326, GK114, always_xy=True).transform(lon, lat)
    return round(x / 30) * 30, round(y / 30) * 30


def _areal_scale(x: float, y: float) -> float:
    """pyproj's areal scale factor of EPSG:4547 at projected (x, y): the independent reference."""
    lon, lat = pyproj.Transformer.from_crs(GK114, 4490, always_xy=True).transform(x, y)
    return float(pyproj.Proj(f"EPSG:{GK114}").get_factors(lon, lat).areal_scale)


def _guizhou_run(tmp_path, caplog, **settings) -> pd.DataFrame:
    """A 200 x 150 px forest raster of 30 m on EPSG:4547 at 106.7 E, 26.5 N (6 km x 4.5 km: one or two
    cells of the 5 km lattice); returns tables/epochs.csv."""
    x0, y0 = _gk_origin(106.7, 26.5)
    transform = Affine(30, 0, x0, 0, -30, y0)
    land = np.full((150, 200), 21, np.uint8)
    land[:10, :10] = 255  # nodata
    for name in ("a.tif", "b.tif"):
        write_raster(tmp_path / name, land, crs=f"EPSG:{GK114}", transform=transform)
    cfg = write_config(tmp_path, epochs={2000: "a.tif", 2020: "b.tif"}, **settings)
    with caplog.at_level(logging.INFO):
        assert cli("run", cfg) == 0
    return pd.read_csv(tmp_path / "out/tables/epochs.csv", encoding="utf-8-sig").set_index("year")


def test_default_areas_are_ellipsoidal_on_a_gauss_kruger_grid_far_from_its_meridian(tmp_path, caplog):
    """Valid area = pixels x 900 m² / pyproj's areal scale, per 5 km cell (167 px): the raster's columns
    0-166 and 167-199 lie in two cells, whose scales are taken at their centres."""
    epochs = _guizhou_run(tmp_path, caplog)
    x0, y0 = _gk_origin(106.7, 26.5)
    cell_rows_centre = y0 - 30 * 75  # one cell row: rows 0-149 of a 167-row cell
    left = _areal_scale(x0 + 30 * 167 / 2, cell_rows_centre)
    right = _areal_scale(x0 + 30 * (167 + 200) / 2, cell_rows_centre)
    assert 1.0125 < right < left < 1.0135  # 1.3 % larger in the plane; less so nearer 114 E, to the east
    valid_left, valid_right = 150 * 167 - 100, 150 * 33  # the 10 x 10 nodata corner lies in the left cell
    expected_ha = (valid_left * 900 / left + valid_right * 900 / right) / 1e4
    assert epochs.loc[2000, "valid_pixels"] == valid_left + valid_right
    assert epochs.loc[2000, "valid_area_ha"] == pytest.approx(expected_ha, rel=1e-9)
    assert "pixel areas on the ellipsoid" in caplog.text and "area: planar" not in caplog.text


def test_planar_areas_are_kept_on_request_with_a_warning_giving_the_error(tmp_path, caplog):
    epochs = _guizhou_run(tmp_path, caplog, area="planar")
    assert epochs.loc[2000, "valid_area_ha"] == pytest.approx((150 * 200 - 100) * 0.09, rel=1e-12)
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "planar" in r.getMessage()]
    assert len(warning) == 1 and "EPSG:4547 ranges 1.013" in warning[0] and "by +1.3" in warning[0]


def test_planar_areas_near_the_central_meridian_are_not_warned_about(tmp_path, caplog):
    """UTM 50N at its central meridian: planar areas are 0.08 % larger than ellipsoidal ones (k0 = 0.9996),
    under the 0.5 % that would be worth a warning."""
    write_raster(tmp_path / "a.tif", np.full((40, 50), 21, np.uint8))
    cfg = write_config(tmp_path, epochs={2000: "a.tif"}, area="planar")
    with caplog.at_level(logging.WARNING):
        assert cli("run", cfg) == 0
    assert "area: planar" not in caplog.text


@pytest.mark.realdata
def test_guizhou_county_areas_on_a_far_gauss_kruger_zone(real_data):
    """The 88 Guizhou counties burned on a 250 m grid of EPSG:4547 (CM 114 E, Guizhou at 103.6-109.6 E):
    against each county's geodesic polygon area, planar pixel areas made counties 0.5-2.4 % and the
    province 1.3 % too large (17.84 M ha against 17.61 M ha); ellipsoidal ones leave only the
    rasterising, which cancels over the province."""
    path = real_data / "guizhou_admin_datav/guizhou_counties_datav.geojson"
    to_gk = pyproj.Transformer.from_crs(4326, GK114, always_xy=True)
    xs, ys = to_gk.transform([103.5, 109.7, 103.5, 109.7], [24.5, 24.5, 29.3, 29.3])
    x0, x1 = np.floor(min(xs) / 250) * 250, np.ceil(max(xs) / 250) * 250
    y0, y1 = np.floor(min(ys) / 250) * 250, np.ceil(max(ys) / 250) * 250
    grid = Grid(CRS.from_epsg(GK114), Affine(250, 0, x0, 0, -250, y1), int((x1 - x0) / 250), int((y1 - y0) / 250))
    layer = vectors.read_zone_layer("county", path, "adcode", "name", grid)
    like = xr.DataArray(da.ones(grid.shape, chunks=1024, dtype=bool), dims=("y", "x"))
    zone = zonal.zone_index(layer, grid, like)
    geodesic = zonal.polygon_area_ha(layer)
    assert geodesic.sum() == pytest.approx(17.61e6, rel=1e-3)
    ratio = {}
    for method in ("ellipsoidal", "planar"):
        areas = pixel_areas(grid, method)
        frame = counts.group_counts({"zone": (zone, len(layer.ids) + 1)}, areas).compute()
        frame = frame[frame["zone"] > 0]
        ha = np.bincount(frame["zone"], weights=counts.count_area_ha(frame, areas), minlength=len(layer.ids) + 1)
        ratio[method] = (ha[1:] / geodesic - 1, ha.sum() / geodesic.sum() - 1)
    counties, province = ratio["planar"]
    assert 0.012 < province < 0.014 and counties.min() > 0.005 and counties.max() > 0.02
    counties, province = ratio["ellipsoidal"]
    assert abs(province) < 2e-4 and abs(np.median(counties)) < 2e-4
    # Rasterising at 250 m leaves a few tenths of a per cent on a county; more only where the DataV
    # polygons overlap (the pixel goes to one county).
    assert (np.abs(counties) < 3e-3).sum() >= 80
