"""The real rasters in ../shared/real_data ingest and reclassify correctly (skipped when absent).

Figures checked against ../shared/real_data/PROVENANCE.md where it gives them.
"""

from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.windows import Window

from pipeline.config import load_config
from pipeline.errors import GridMismatchError
from pipeline.io import vectors
from pipeline.runner.plan import build_landcover
from pipeline.runner.validate import validate
from pipeline.stages import counts

from .conftest import read, write_config
from .helpers import ESA_WORLDCOVER, NLCD, class_lut, cli

pytestmark = pytest.mark.realdata

DATA = Path(__file__).parent / "data"


def lut_of(scheme_name: str) -> np.ndarray:
    """The hand-written mapping of a built-in scheme (tests/helpers.py), not the package's table."""
    return class_lut({"nlcd": NLCD, "esa_worldcover": ESA_WORLDCOVER}[scheme_name])


def test_nlcd_four_epochs_sub_pixel_shift(real_data, tmp_path):
    d = real_data / "nlcd_cedar_creek"
    epochs = {y: str(d / f"nlcd_cedar_{y}.tif") for y in (2006, 2011, 2016, 2021)}
    with pytest.raises(GridMismatchError, match=r"epoch 2021 .*shift of \+0.01478, \+0.02921 pixels"):
        validate(load_config(write_config(tmp_path, epochs=epochs, scheme="nlcd")))
    cfg = write_config(tmp_path, epochs=epochs, scheme="nlcd", align="nearest", dask={"chunks": 512})
    assert cli("run", cfg) == 0
    table = pd.read_csv(tmp_path / "out/tables/epochs.csv", encoding="utf-8-sig")
    assert table.valid_pixels.tolist() == [775_408] * 4  # PROVENANCE: 775,408 valid pixels in every year
    classes = pd.read_csv(tmp_path / "out/tables/classes_region.csv", encoding="utf-8-sig")
    raw = read(d / "nlcd_cedar_2006.tif")
    expected = np.bincount(lut_of("nlcd")[raw[raw != 255]], minlength=9)[1:]
    assert classes[classes.year == 2006].pixels.tolist() == expected.tolist()
    assert_matrices_agree_with_class_areas(tmp_path / "out/tables", [2006, 2011, 2016, 2021])


def test_wuhan_mixed_dtypes_and_mcplus_demands(real_data, tmp_path):
    d = real_data / "wuhan_lulc_mcplus"
    epochs = {y: str(d / f"wh{y}_refy.tif") for y in (2003, 2005, 2010, 2013)}
    cfg = write_config(tmp_path, epochs=epochs, scheme=str(DATA / "wuhan_scheme.csv"), dask={"chunks": 1024})
    assert cli("run", cfg) == 0
    table = pd.read_csv(tmp_path / "out/tables/epochs.csv", encoding="utf-8-sig").set_index("year")
    assert table.loc[2003, "source_dtype"] == "uint8" and table.loc[2005, "source_dtype"] == "int8"
    assert table.loc[2003, "source_nodata"] == 15 and table.loc[2013, "source_nodata"] == -128
    classes = pd.read_csv(tmp_path / "out/tables/classes_region.csv", encoding="utf-8-sig")
    got = classes[classes.year == 2013].set_index("class").pixels
    # mcPLUS land demands = the 2013 pixel counts of codes 1..7 (PROVENANCE): 5,326,069 pixels with data in 2013,
    # of which 794 lack data in another epoch and leave the common mask.
    demand = dict(zip(range(1, 8), (44394, 231113, 2477356, 929417, 39413, 1453586, 150790)))
    assert table.loc[2013, "valid_pixels"] + table.loc[2013, "excluded_by_other_epochs_pixels"] == sum(demand.values())
    mapped_demand = {1: demand[3], 2: demand[2], 3: demand[1], 4: demand[6] + demand[7], 5: demand[4], 8: demand[5]}
    shortfall = {k: mapped_demand[k] - got[k] for k in mapped_demand}
    assert (
        all(v >= 0 for v in shortfall.values())
        and sum(shortfall.values()) == table.loc[2013, "excluded_by_other_epochs_pixels"]
    )
    assert table.valid_pixels.iloc[0] == sum(got)
    assert_matrices_agree_with_class_areas(tmp_path / "out/tables", [2003, 2005, 2010, 2013])


def assert_matrices_agree_with_class_areas(tables: Path, years: list[int]) -> None:
    """Every interval's transition matrix: rows sum to the first epoch's class pixels and areas, columns
    to the second's."""
    classes = pd.read_csv(tables / "classes_region.csv", encoding="utf-8-sig").set_index(["year", "class"])
    pairs = [*pairwise(years), (years[0], years[-1])]
    for y0, y1 in pairs:
        matrix = pd.read_csv(tables / f"transitions_region_{y0}_{y1}.csv", encoding="utf-8-sig")
        assert matrix.from_class.ne(matrix.to_class).any()  # real change, not only persistence
        for key, year in (("from_class", y0), ("to_class", y1)):
            sums = matrix.groupby(key)[["pixels", "area_ha"]].sum()
            expected = classes.loc[year].loc[sums.index]
            assert sums.pixels.tolist() == expected.pixels.tolist()
            np.testing.assert_allclose(sums.area_ha, expected.area_ha, rtol=1e-9)  # 10 digits in the CSV
            assert expected.pixels.sum() == classes.loc[year].pixels.sum()  # no class left out of the matrix


def test_corine_pair_on_different_grids(real_data, tmp_path):
    d = real_data / "corine_vaud_pylandstats"
    epochs = {2006: str(d / "ls100_06.tif"), 2012: str(d / "ls100_12.tif")}
    with pytest.raises(GridMismatchError, match=r"resolution 99.99245896 x 99.99245896 instead of 100.0051243"):
        validate(load_config(write_config(tmp_path, epochs=epochs, scheme="corine")))
    assert cli("run", write_config(tmp_path, epochs=epochs, scheme="corine", align="nearest")) == 0
    a, b = read(tmp_path / "out/rasters/landcover_2006.tif"), read(tmp_path / "out/rasters/landcover_2012.tif")
    assert ((a > 0) == (b > 0)).all() and 70_000 < (a > 0).sum() < 78_000  # about 77.3 k valid pixels
    assert (a == b)[a > 0].mean() > 0.85  # six years of change plus resampling, most land unchanged
    aligned = {2006: str(d / "ls250_06.tif"), 2012: str(d / "ls250_12.tif")}
    assert cli("run", write_config(tmp_path, epochs=aligned, scheme="corine", output="out250")) == 0
    t = pd.read_csv(tmp_path / "out250/tables/epochs.csv", encoding="utf-8-sig")
    raw = read(d / "ls250_06.tif")
    assert t.valid_pixels.iloc[0] <= (raw != 255).sum() == 12_298


def test_willamette_arcinfo_grid_equals_geotiff(real_data, tmp_path):
    d = real_data / "invest_willamette_legacy"
    scheme = str(DATA / "willamette_scheme.csv")
    (tmp_path / "aig").mkdir(), (tmp_path / "tif").mkdir()
    grid_cfg = write_config(
        tmp_path / "aig",
        epochs={1990: str(d / "lulc_samp_cur"), 2050: str(d / "lulc_samp_fut")},
        scheme=scheme,
        dask={"chunks": 512},
    )
    tif_cfg = write_config(
        tmp_path / "tif",
        epochs={1990: str(d / "lulc_samp_cur.tif"), 2050: str(d / "lulc_samp_fut.tif")},
        scheme=scheme,
        dask={"chunks": 300},
    )
    assert cli("run", grid_cfg) == 0 and cli("run", tif_cfg) == 0
    for y in (1990, 2050):
        np.testing.assert_array_equal(
            read(tmp_path / f"aig/out/rasters/landcover_{y}.tif"), read(tmp_path / f"tif/out/rasters/landcover_{y}.tif")
        )
    assert (tmp_path / "aig/out/tables/classes_region.csv").read_bytes() == (
        tmp_path / "tif/out/tables/classes_region.csv"
    ).read_bytes()
    table = pd.read_csv(tmp_path / "tif/out/tables/epochs.csv", encoding="utf-8-sig")
    assert table.valid_pixels.tolist() == [1_641_621, 1_641_621]  # PROVENANCE


def test_willamette_half_pixel_baseline_is_detected(real_data, tmp_path):
    d = real_data / "invest_willamette_legacy"
    epochs = {1990: str(d / "lc_samp_cur_b.tif"), 2000: str(d / "lc_samp_bse_b.tif")}
    with pytest.raises(GridMismatchError, match="origin"):
        validate(load_config(write_config(tmp_path, epochs=epochs, scheme=str(DATA / "willamette_scheme.csv"))))


def test_worldcover_tile_lazily_on_a_window(real_data, tmp_path):
    """36000 x 36000 px in EPSG:4326: validated from headers, then a window reclassified lazily."""
    d = real_data / "esa_worldcover_N00E006"
    files = {
        2020: str(d / "ESA_WorldCover_10m_2020_v100_N00E006_Map.tif"),
        2021: str(d / "ESA_WorldCover_10m_2021_v200_N00E006_Map.tif"),
    }
    cfg = load_config(write_config(tmp_path, epochs=files, scheme="esa_worldcover", dask={"chunks": 2048}))
    report = validate(cfg)
    assert "36000 x 36000 px" in report[1] and "EPSG:4326" in report[1]
    lc = build_landcover(cfg, tmp_path / "work")
    assert lc.classes[2020].data.numblocks == (18, 18)  # lazy: nothing read yet
    window = Window(col_off=5500, row_off=32000, width=3000, height=3000)  # Sao Tome island, about 6.6 E 0.2 N
    got = lc.classes[2021][window.row_off : window.row_off + 3000, window.col_off : window.col_off + 3000].values
    with rasterio.open(files[2020]) as a, rasterio.open(files[2021]) as b:
        ra, rb = a.read(1, window=window), b.read(1, window=window)
    lut = lut_of("esa_worldcover")
    expected = np.where((ra != 0) & (rb != 0), lut[rb], 0)
    np.testing.assert_array_equal(got, expected)
    assert (expected == 2).sum() > 1_000_000  # mostly tree cover


def test_worldcover_valid_area_against_an_independent_geodesic_sum(real_data, tmp_path):
    """The whole 1.3 Gpx tile: the pipeline's valid area (Dask, per-row ellipsoid bands) equals
    numpy counts per row x pyproj's geodesic area of one pixel of that row."""
    from pyproj import Geod

    from pipeline.stages import reclassify

    d = real_data / "esa_worldcover_N00E006"
    files = [d / "ESA_WorldCover_10m_2020_v100_N00E006_Map.tif", d / "ESA_WorldCover_10m_2021_v200_N00E006_Map.tif"]
    cfg = load_config(
        write_config(
            tmp_path, epochs={2020: str(files[0]), 2021: str(files[1])}, scheme="esa_worldcover", dask={"chunks": 4096}
        )
    )
    lc = build_landcover(cfg, tmp_path / "work")
    status = {"status": (reclassify.pixel_status(lc.mapped[2021], lc.valid), reclassify.NSTATUS)}
    frame = counts.group_counts(status, lc.areas).compute()
    valid = frame[frame["status"] == reclassify.VALID]
    got_ha = counts.count_area_ha(valid, lc.areas).sum()

    per_row = np.zeros(36000, np.int64)
    with rasterio.open(files[0]) as a, rasterio.open(files[1]) as b:
        for r in range(0, 36000, 3000):
            w = Window(0, r, 36000, 3000)
            per_row[r : r + 3000] = ((a.read(1, window=w) != 0) & (b.read(1, window=w) != 0)).sum(axis=1)
    geod, deg = Geod(ellps="WGS84"), 1 / 12000
    rows = np.flatnonzero(per_row)
    pixel_m2 = [
        abs(geod.polygon_area_perimeter([6, 6 + deg, 6 + deg, 6], [3 - i * deg] * 2 + [3 - (i + 1) * deg] * 2)[0])
        for i in rows
    ]
    expected_ha = float(np.dot(per_row[rows], pixel_m2)) / 1e4
    assert per_row.sum() == valid["pixels"].sum() == 164_668_639  # PROVENANCE.md: 164.67 M valid px
    assert got_ha == pytest.approx(expected_ha, rel=1e-9)
    assert round(got_ha, 1) == 1_407_260.8


def test_guizhou_datav_counties_repaired_overlaps_and_gcj02(real_data, caplog):
    """PROVENANCE: 88 counties, 8 invalid geometries (named), about 10 km2 of sliver overlaps, GCJ-02
    coordinates offset by about 300-600 m."""
    import pyproj
    import shapely
    from affine import Affine
    from rasterio.crs import CRS

    from pipeline.model.grid import Grid
    from pipeline.stages import zonal

    path = real_data / "guizhou_admin_datav/guizhou_counties_datav.geojson"
    grid = Grid(CRS.from_epsg(4326), Affine(0.01, 0, 103.5, 0, -0.01, 29.3), 620, 480)
    as_given = vectors.read_zone_layer("county", path, "adcode", "name", grid)
    names = "乌当区, 观山湖区, 水城县, 西秀区, 金沙县, 石阡县, 施秉县, 天柱县"
    assert f"8 invalid geometries repaired with make_valid: {names}" in caplog.text
    assert len(as_given.ids) == 88 and as_given.polygons.geometry.is_valid.all()
    shared = zonal.overlaps(as_given)
    assert 900 < shared.overlap_ha.sum() < 1100  # about 10 km2
    moved = vectors.read_zone_layer("county", path, "adcode", "name", grid, gcj02=True)
    a, b = shapely.centroid(as_given.polygons.geometry.values), shapely.centroid(moved.polygons.geometry.values)
    shift = pyproj.Geod(ellps="WGS84").inv(shapely.get_x(a), shapely.get_y(a), shapely.get_x(b), shapely.get_y(b))[2]
    assert 300 < shift.min() and shift.max() < 600
