"""The study area (``boundary:``): only pixels whose centre lies inside count, in every table; without it,
a warning when water and wetland looks like open sea. Values worked by hand on 10 x 12 px rasters of 30 m
(0.09 ha a pixel)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr
from affine import Affine

from pipeline.config import BoundaryConfig, load_config
from pipeline.errors import InputError
from pipeline.io.gcj02 import wgs84_to_gcj02
from pipeline.runner.validate import validate
from pipeline.stages import reclassify

from .conftest import read, write_config, write_raster
from .test_pipeline import cli

PX_HA = 0.09
X0, Y0 = 500000, 3400000
#: Pixel centres of rows 0-7 and columns 0-5 lie inside (48 of 120 px); edges are off the pixel edges.
BOX = shapely.box(X0 - 100, Y0 - 8 * 30 + 10, X0 + 6 * 30 - 10, Y0 + 50)
INSIDE = np.zeros((10, 12), bool)
INSIDE[:8, :6] = True


def epochs(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """2000: cropland (11) in rows 0-4 of columns 0-5, forest (21) elsewhere; nodata at (0, 0) in both
    epochs and at (5, 5) in 2020 (inside), at (9, 11) in 2000 and (1, 10) in 2020 (outside); an unknown
    code 99 at (9, 10) outside. 2020: 4 cropland pixels inside become urban (51), 6 outside too."""
    a = np.full((10, 12), 21, np.uint8)
    a[:5, :6] = 11
    a[0, 0] = a[9, 11] = 255
    a[9, 10] = 99
    b = a.copy()
    b[2:4, 2:4] = 51
    b[8:10, 0:3] = 51
    b[5, 5] = b[1, 10] = 255
    b[9, 11] = 21
    write_raster(folder / "lc2000.tif", a)
    write_raster(folder / "lc2020.tif", b)
    return a, b


def write_boundary(path: Path, geom, crs: str = "EPSG:32650") -> Path:
    gpd.GeoDataFrame({"name": ["study area"]}, geometry=[geom], crs=crs).to_file(path)
    return path


def run(folder: Path, **settings) -> Path:
    settings.setdefault("area", "planar")  # worked by hand in planar 30 m pixels of 0.09 ha
    cfg = write_config(folder, epochs={2000: "lc2000.tif", 2020: "lc2020.tif"}, **settings)
    assert cli("run", cfg) == 0
    return folder / "out"


def table(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / "tables" / f"{name}.csv", encoding="utf-8-sig")


def test_boundary_counts_only_the_pixels_inside(tmp_path):
    epochs(tmp_path)
    write_boundary(tmp_path / "area.gpkg", BOX)
    out = run(tmp_path, boundary="area.gpkg")
    ep = table(out, "epochs").set_index("year")
    # 2000: 48 px inside: 1 own nodata (0, 0), 1 excluded by 2020's nodata at (5, 5), 46 valid; 72 outside,
    # whatever they hold there (nodata, an unknown code): never also nodata or excluded.
    assert ep.valid_pixels.tolist() == [46, 46]
    assert ep.nodata_pixels.tolist() == [1, 2]
    assert ep.excluded_by_other_epochs_pixels.tolist() == [1, 0]
    assert ep.unknown_code_pixels.tolist() == [0, 0] and ep.unknown_codes.isna().all()
    assert ep.outside_boundary_pixels.tolist() == [72, 72]
    assert ep.valid_area_ha.tolist() == pytest.approx([46 * PX_HA] * 2)
    assert ep.outside_boundary_area_ha.tolist() == pytest.approx([72 * PX_HA] * 2)
    columns = list(ep.columns)
    assert columns.index("outside_boundary_pixels") == columns.index("excluded_by_other_epochs_area_ha") + 1
    classes = table(out, "classes_region").set_index(["year", "class"])
    # 2000: cropland 30 - 1 nodata = 29 px, forest 18 - 1 excluded = 17 px; 2020: 4 cropland px are urban.
    expected = {(2000, 1): 29, (2000, 2): 17, (2020, 1): 25, (2020, 2): 17, (2020, 5): 4}
    got = classes[classes.pixels > 0].pixels.to_dict()
    assert got == expected
    for key, px in expected.items():
        assert classes.loc[key, "area_ha"] == pytest.approx(px * PX_HA)
    land = read(out / "rasters/landcover_2020.tif")
    assert (land[~INSIDE] == 0).all() and (land[INSIDE] > 0).sum() == 46
    manifest = json.loads((out / "manifest.json").read_text())
    assert str(tmp_path / "area.gpkg") in {i["path"] for i in manifest["inputs"]}
    # The report's first lines name the boundary and the area outside it: 72 px x 0.09 ha = 6.48 ha.
    page = (out / "report.html").read_text(encoding="utf-8")
    first = page[: page.index("<nav>")]
    assert f"inside the boundary <code>{tmp_path / 'area.gpkg'}</code> count." in first
    assert "Outside it, not counted anywhere: 6.48 ha (72 px) in every epoch" in first
    assert "No study-area boundary" not in page


def test_tables_equal_those_of_rasters_clipped_by_hand(tmp_path):
    bounded, clipped = tmp_path / "bounded", tmp_path / "clipped"
    bounded.mkdir(), clipped.mkdir()
    a, b = epochs(bounded)
    write_boundary(bounded / "area.gpkg", BOX)
    out_b = run(bounded, boundary="area.gpkg")
    write_raster(clipped / "lc2000.tif", np.where(INSIDE, a, 255).astype(np.uint8))
    write_raster(clipped / "lc2020.tif", np.where(INSIDE, b, 255).astype(np.uint8))
    out_c = run(clipped)
    names = sorted(p.name for p in (out_c / "tables").glob("*.csv") if p.name != "epochs.csv")
    assert names == sorted(p.name for p in (out_b / "tables").glob("*.csv") if p.name != "epochs.csv")
    assert "classes_region.csv" in names and "transitions_region_2000_2020.csv" in names
    for name in names:
        assert (out_b / "tables" / name).read_bytes() == (out_c / "tables" / name).read_bytes(), name
    for raster in ("landcover_2000", "landcover_2020", "pathway_2000_2020"):
        np.testing.assert_array_equal(read(out_b / f"rasters/{raster}.tif"), read(out_c / f"rasters/{raster}.tif"))
    ep_b, ep_c = table(out_b, "epochs"), table(out_c, "epochs")
    assert ep_b.valid_pixels.tolist() == ep_c.valid_pixels.tolist()
    # By hand the area outside became nodata; with the boundary it is reported as outside.
    assert (ep_c.nodata_pixels - ep_b.nodata_pixels).tolist() == [72, 72] and (ep_c.outside_boundary_pixels == 0).all()


def test_gcj02_boundary_in_the_long_form(tmp_path):
    epochs(tmp_path)
    lonlat = gpd.GeoSeries([BOX], crs="EPSG:32650").to_crs(4326).iloc[0]
    moved = shapely.transform(lonlat, lambda xy: np.column_stack(wgs84_to_gcj02(xy[:, 0], xy[:, 1])))
    write_boundary(tmp_path / "amap.geojson", moved, crs="EPSG:4326")
    out = run(tmp_path, boundary={"path": "amap.geojson", "coordinates": "gcj02"})
    ep = table(out, "epochs")
    assert ep.valid_pixels.tolist() == [46, 46] and ep.outside_boundary_pixels.tolist() == [72, 72]


def test_config_accepts_a_path_or_a_mapping(tmp_path):
    short = load_config(write_config(tmp_path, epochs={2000: "a.tif"}, boundary="p.gpkg"))
    assert short.boundary == BoundaryConfig(path=tmp_path / "p.gpkg")
    boundary = {"path": "p.gpkg", "layer": "l", "coordinates": "gcj02"}
    long = load_config(write_config(tmp_path, epochs={2000: "a.tif"}, boundary=boundary))
    assert long.boundary is not None and (long.boundary.layer, long.boundary.coordinates) == ("l", "gcj02")
    assert load_config(write_config(tmp_path, epochs={2000: "a.tif"})).boundary is None


def test_validate_counts_the_boundary_polygons(tmp_path):
    epochs(tmp_path)
    write_boundary(tmp_path / "area.gpkg", shapely.MultiPolygon([BOX]))
    lines = validate(load_config(write_config(tmp_path, epochs={2000: "lc2000.tif"}, boundary="area.gpkg")))
    line = next(x for x in lines if x.startswith("boundary:"))
    assert "1 polygons (area.gpkg)" in line


def test_boundary_outside_the_rasters_is_one_clear_error(tmp_path, capsys):
    epochs(tmp_path)
    path = write_boundary(tmp_path / "far.gpkg", shapely.box(X0 + 50_000, Y0, X0 + 60_000, Y0 + 10_000))
    cfg = write_config(tmp_path, epochs={2000: "lc2000.tif", 2020: "lc2020.tif"}, boundary="far.gpkg")
    for command in ("run", "validate"):
        assert cli(command, cfg) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and str(path) in err[0], err
        assert "no polygon overlaps the rasters" in err[0]
    assert not (tmp_path / "out/manifest.json").exists()


def test_boundary_of_points_is_refused(tmp_path):
    epochs(tmp_path)
    gpd.GeoDataFrame(geometry=[shapely.Point(X0 + 15, Y0 - 15)], crs="EPSG:32650").to_file(tmp_path / "pts.gpkg")
    cfg = load_config(write_config(tmp_path, epochs={2000: "lc2000.tif"}, boundary="pts.gpkg"))
    with pytest.raises(InputError, match="expected polygons") as err:
        validate(cfg)
    assert str(tmp_path / "pts.gpkg") in str(err.value)


def _water_run(tmp_path: Path, caplog, water: np.ndarray, **settings) -> list[str]:
    land = np.where(water, 41, 21).astype(np.uint8)  # 41 river/lake water (class 4), 21 forest
    write_raster(tmp_path / "lc2000.tif", land)
    write_raster(tmp_path / "lc2020.tif", land)
    with caplog.at_level(logging.WARNING):
        run(tmp_path, **settings)
    return [r.getMessage() for r in caplog.records if "water and wetland (class 4)" in r.getMessage()]


def test_water_warning_for_a_sea_on_the_edge(tmp_path, caplog):
    half = np.zeros((10, 12), bool)
    half[:, 6:] = True  # right half: 60 of 120 px (50 %), 6 + 6 + 8 = 20 of the 40 edge px (50 %): not above half
    assert _water_run(tmp_path / "half", caplog, half) == []
    page = (tmp_path / "half/out/report.html").read_text(encoding="utf-8")
    assert "No study-area boundary" not in page and "Study area:" not in page
    sea = half.copy()
    sea[:, 5] = True  # 70 of 120 px (58 %), 7 + 7 + 8 = 22 of 40 edge px (55 %)
    messages = _water_run(tmp_path / "sea", caplog, sea)
    assert len(messages) == 2
    assert messages[0].startswith("epoch 2000: water and wetland (class 4) is 58 % of the valid area and 55 % of")
    assert "`boundary:`" in messages[0] and messages[1].startswith("epoch 2020")
    # The report says so in its first lines, before the navigation.
    page = (tmp_path / "sea/out/report.html").read_text(encoding="utf-8")
    first = page[: page.index("<nav>")]
    assert "No study-area boundary, and open water is counted." in first and "<code>boundary:</code>" in first


def test_water_warning_from_the_edge_alone(tmp_path, caplog):
    water = np.zeros((10, 12), bool)
    water[:2, :] = water[-2:, :] = True  # 48 of 120 px (40 %); edge 12 + 12 + 2 + 2 = 28 of 40 px (70 %)
    messages = _water_run(tmp_path, caplog, water)
    assert messages and "40 % of the valid area and 70 % of the valid pixels on the raster's edge" in messages[0]


def test_no_water_warning_for_an_inland_lake_or_with_a_boundary(tmp_path, caplog):
    lake = np.zeros((10, 12), bool)
    lake[2:8, 2:10] = True  # 48 of 120 px (40 %), not on the edge
    assert _water_run(tmp_path / "lake", caplog, lake) == []
    sea = np.zeros((10, 12), bool)
    sea[:, 3:] = True
    assert _water_run(tmp_path / "sea", caplog, sea)
    caplog.clear()
    write_boundary(tmp_path / "sea" / "area.gpkg", BOX)
    assert _water_run(tmp_path / "sea", caplog, sea, boundary="area.gpkg") == []


def test_edge_histogram_counts_each_edge_pixel_once():
    arr = np.arange(20, dtype=np.uint8).reshape(4, 5)
    hist = reclassify.edge_histogram(xr.DataArray(arr).chunk(2)).compute()
    edge = [0, 1, 2, 3, 4, 15, 16, 17, 18, 19, 5, 10, 9, 14]
    assert hist.sum() == 14 and (np.flatnonzero(hist) == sorted(edge)).all()
    one_row = reclassify.edge_histogram(xr.DataArray(arr[:1]).chunk(2)).compute()
    assert one_row.sum() == 5
    one_col = reclassify.edge_histogram(xr.DataArray(arr[:, :1]).chunk(2)).compute()
    assert one_col.sum() == 4


@pytest.mark.realdata
def test_water_warning_on_the_worldcover_tile(real_data, tmp_path, caplog):
    """The WorldCover tile N00E006 is 87 % nodata and 93 % of the rest is permanent water (80), mostly the Gulf
    of Guinea (PROVENANCE.md: 153.1 M of 164.67 M valid px). A run on the whole 36000 x 36000 px tile takes
    minutes, so the tile is read through its overviews at 1/15 of the resolution (2400 x 2400 px, about
    140 m, nearest neighbour): the warning is the same run's, on the same land and sea."""
    import rasterio
    from rasterio.enums import Resampling

    d = real_data / "esa_worldcover_N00E006"
    epochs = {}
    for year, version in ((2020, "v100"), (2021, "v200")):
        with rasterio.open(d / f"ESA_WorldCover_10m_{year}_{version}_N00E006_Map.tif") as ds:
            data = ds.read(1, out_shape=(2400, 2400), resampling=Resampling.nearest)
            transform = ds.transform @ Affine.scale(15)
        write_raster(tmp_path / f"wc{year}.tif", data, transform=transform, crs="EPSG:4326", nodata=0)
        epochs[year] = f"wc{year}.tif"
    cfg = write_config(tmp_path, epochs=epochs, scheme="esa_worldcover", dask={"chunks": 1200})
    with caplog.at_level(logging.WARNING):
        assert cli("run", cfg, "--stages", "transitions") == 0
    messages = [r.getMessage() for r in caplog.records if "water and wetland (class 4)" in r.getMessage()]
    assert [m.split(":")[0] for m in messages] == ["epoch 2020", "epoch 2021"]
    assert "is 93 % of the valid area" in messages[0] and "`boundary:`" in messages[0], messages


@pytest.mark.realdata
def test_the_readme_example_land_boundary_is_the_two_islands(real_data):
    """docs/examples/worldcover/make_land.py, the README example's boundary, on the 2020 tile: two pieces,
    São Tomé then Príncipe, 964 km2 of land in all (CIA World Factbook) plus a ring of sea under ~300 m wide
    (the outline grown by one 1/375 degree pixel): between 964 and 1,200 km2, geodesic."""
    import importlib.util

    from pyproj import Geod

    script = Path(__file__).resolve().parents[1] / "docs/examples/worldcover/make_land.py"
    spec = importlib.util.spec_from_file_location("make_land", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tile = real_data / "esa_worldcover_N00E006/ESA_WorldCover_10m_2020_v100_N00E006_Map.tif"
    islands = module.land_polygons(tile)
    km2 = [abs(Geod(ellps="WGS84").geometry_area_perimeter(g)[0]) / 1e6 for g in islands]
    assert len(islands) == 2 and km2[0] > 5 * km2[1]
    assert islands[0].centroid.y < 0.5 < 1.5 < islands[1].centroid.y  # São Tomé near 0.3 N, Príncipe near 1.6 N
    assert 964 < sum(km2) < 1200
