"""A balance is never shown as complete when it is not: counted and uncounted areas, net emission withheld
above carbon.max_uncounted_share, the report's first lines, and the warning about Chinese default rates
abroad. Values worked by hand on small rasters (30 m pixels: 0.09 ha)."""

import logging

import numpy as np
import pandas as pd
import pytest
from affine import Affine

from .conftest import write_config, write_raster
from .helpers import cli

PX = 0.09  # ha
FOREST_RATE = -0.644
# Three forest pixels (CNLUCC 21) and one cropland pixel (11): forest has a rate, cropland none.
LAND = np.array([[21, 21], [21, 11]], np.uint8)


def _run(tmp_path, caplog, threshold=None, rates=True, crs="EPSG:32650", transform=None):
    write_raster(tmp_path / "a.tif", LAND, crs=crs, transform=transform)
    write_raster(tmp_path / "b.tif", LAND, crs=crs, transform=transform)
    carbon: dict = {}
    if rates:
        (tmp_path / "r.csv").write_text(f"class,rate_tC_ha_yr,source\n2,{FOREST_RATE},test\n")
        carbon["rates"] = "r.csv"
    if threshold is not None:
        carbon["max_uncounted_share"] = threshold
    # Worked by hand in planar 30 m pixels of 0.09 ha.
    cfg = write_config(tmp_path, epochs={2000: "a.tif", 2020: "b.tif"}, carbon=carbon, area="planar")
    with caplog.at_level(logging.WARNING):
        assert cli("run", cfg) == 0
    return pd.read_csv(tmp_path / "out/tables/balance_region.csv", encoding="utf-8-sig").set_index("year")


def test_uncounted_land_withholds_net_emission_above_the_threshold(tmp_path, caplog):
    b = _run(tmp_path, caplog)  # default threshold 0.01; 25 % of the land has no rate
    row = b.loc[2000]
    assert row["area_ha"] == pytest.approx(4 * PX)
    assert row["counted_area_ha"] == pytest.approx(3 * PX)
    assert row["uncounted_area_ha"] == pytest.approx(1 * PX)
    assert row["counted_share"] == pytest.approx(0.75)
    # Sink and source: sums over the counted land only (forest), the counted area beside them.
    assert row["sink_tC_yr"] == pytest.approx(3 * PX * 0.644)
    assert row["source_tC_yr"] == 0
    # Not the partial sum -0.17388: unknown.
    assert np.isnan(row["net_emission_tC_yr"]) and np.isnan(b.loc[2020, "net_emission_tC_yr"])
    # The region's columns are in the spec's order.
    columns = list(b.reset_index().columns)
    assert columns[columns.index("area_ha") :][:5] == [
        "area_ha",
        "counted_area_ha",
        "uncounted_area_ha",
        "counted_share",
        "stock_tC",
    ]
    # The report says so in its first lines, and how to supply what is missing.
    page = (tmp_path / "out/report.html").read_text(encoding="utf-8")
    head = page[: page.index("<nav>")]
    assert "Incomplete carbon balance" in head and "1 cropland (up to 0.09 ha, 25% of the land)" in head
    assert "not given</strong> for 2000, 2020" in head
    assert "add rows for these classes to the rates table" in head and "county statistics" in head
    assert "not counted: flux of 25% of the land unknown" in page
    # Trends: no net emission year is usable, so no forecast is made from the partial sums.
    trends = pd.read_csv(tmp_path / "out/tables/trends_region.csv", encoding="utf-8-sig")
    forecast = trends[trends["indicator"] == "net_emission_forecast"]
    assert forecast["value"].isna().all()


def test_net_emission_is_given_when_the_uncounted_share_is_allowed(tmp_path, caplog):
    b = _run(tmp_path, caplog, threshold=0.3)  # 25 % uncounted <= 30 %: given, over the counted land
    assert b.loc[2000, "net_emission_tC_yr"] == pytest.approx(-3 * PX * 0.644)
    assert b.loc[2000, "counted_share"] == pytest.approx(0.75)
    head = (tmp_path / "out/report.html").read_text(encoding="utf-8").split("<nav>")[0]
    assert "Incomplete carbon balance" in head and "net emission is given" in head


def test_threshold_is_a_strict_bound(tmp_path, caplog):
    b = _run(tmp_path, caplog, threshold=0.25)  # exactly 25 % uncounted: allowed
    assert b.loc[2000, "net_emission_tC_yr"] == pytest.approx(-3 * PX * 0.644)


def test_max_uncounted_share_is_a_fraction(tmp_path):
    write_raster(tmp_path / "a.tif", LAND)
    cfg = write_config(tmp_path, epochs={2000: "a.tif"}, carbon={"max_uncounted_share": 5})
    assert cli("validate", cfg) != 0


def test_default_rates_outside_china_are_warned_about(tmp_path, caplog):
    # UTM zone 32N near Zurich (8.5 E, 47 N).
    europe = Affine(30, 0, 460000, 0, -30, 5250000)
    _run(tmp_path, caplog, rates=False, crs="EPSG:32632", transform=europe)
    assert "outside China" in caplog.text and "carbon.rates" in caplog.text
    assert "Chinese national averages" in caplog.text


def test_default_rates_inside_china_or_given_rates_are_not_warned_about(tmp_path, caplog):
    _run(tmp_path / "china", caplog, rates=False)  # UTM 50N, 117 E 30.7 N
    europe = Affine(30, 0, 460000, 0, -30, 5250000)
    _run(tmp_path / "own", caplog, rates=True, crs="EPSG:32632", transform=europe)
    assert "outside China" not in caplog.text


def test_zones_without_land_are_listed_and_left_off_the_maps_and_report(tmp_path, caplog):
    import geopandas as gpd
    import shapely

    from pipeline.io.tables import read_table

    # Two zones on the 2 x 2 px raster and one 100 km away (a national layer over a county's rasters).
    boxes = [
        shapely.box(500000, 3399940, 500030, 3400000),
        shapely.box(500030, 3399940, 500060, 3400000),
        shapely.box(600000, 3300000, 601000, 3301000),
    ]
    gpd.GeoDataFrame({"code": ["1", "2", "3"]}, geometry=boxes, crs="EPSG:32650").to_file(tmp_path / "z.gpkg")
    write_raster(tmp_path / "a.tif", LAND)
    write_raster(tmp_path / "b.tif", LAND)
    (tmp_path / "r.csv").write_text(f"class,rate_tC_ha_yr\n1,0.5\n2,{FOREST_RATE}\n")
    zones = [{"name": "z", "path": "z.gpkg", "id": "code"}]
    cfg = write_config(
        tmp_path, epochs={2000: "a.tif", 2020: "b.tif"}, carbon={"rates": "r.csv"}, zones=zones, area="planar"
    )
    with caplog.at_level(logging.WARNING):
        assert cli("run", cfg) == 0
    assert "1 of 3 zones have no valid pixel" in caplog.text
    listed = read_table(tmp_path / "out/tables/zones_z.csv").set_index("zone_id")
    assert float(listed.loc["3", "valid_area_ha"]) == 0 and float(listed.loc["1", "valid_area_ha"]) == 2 * PX
    page = (tmp_path / "out/report.html").read_text(encoding="utf-8")
    zones_section = page[page.index('id="zones"') : page.index('id="pathways"')]
    assert "<td>1</td>" in zones_section and "<td>3</td>" not in zones_section
