"""Stock and flux by hand, seed 002's own arithmetic, and InVEST's table on its own rasters."""

from pathlib import Path

import dask.array
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline.model.classes import NODATA
from pipeline.model.inputs import ParameterTable, ZoneLayer
from pipeline.stages.carbon import by_class, rate_lookup, row_index, stock_and_flux

from .conftest import read, write_config, write_raster
from .helpers import cli, constant_areas

DENSITIES = (
    "class,c_above,c_below,c_soil,c_dead,source\n"
    "1,5,1,90,1,a\n2,40,10,130,5,b\n3,3,8,95,1,c\n5,0.5,0.1,40,0,d\n6,2,0.5,60,0,e\n"
)
RATES = "class,rate_tC_ha_yr,source\n1,0.5,user\n2,-0.644,seed 002\n3,-0.021,seed 002\n"


def test_stock_and_flux_by_hand(tmp_path):
    a = np.array([[11, 21, 21, 255], [31, 51, 52, 12]], np.uint8)  # 30 m pixels: 0.09 ha
    b = np.array([[51, 21, 31, 11], [31, 51, 51, 12]], np.uint8)
    write_raster(tmp_path / "a.tif", a)
    write_raster(tmp_path / "b.tif", b)
    (tmp_path / "d.csv").write_text(DENSITIES)
    (tmp_path / "r.csv").write_text(RATES)
    cfg = write_config(
        tmp_path, epochs={2000: "a.tif", 2020: "b.tif"}, carbon={"densities": "d.csv", "rates": "r.csv"}, area="planar"
    )
    assert cli("run", cfg) == 0
    stock = read(tmp_path / "out/rasters/stock_2000.tif")
    np.testing.assert_allclose(stock, [[97, 185, 185, np.nan], [107, 40.6, 62.5, 97]])
    with rasterio.open(tmp_path / "out/rasters/stock_2000.tif") as ds:
        assert ds.units == ("t C/ha",) and "carbon stock density" in ds.descriptions[0]
    with rasterio.open(tmp_path / "out/rasters/flux_2020.tif") as ds:
        assert ds.units == ("t C/ha/yr",) and ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    flux = read(tmp_path / "out/rasters/flux_2020.tif")
    np.testing.assert_allclose(flux, [[np.nan, -0.644, -0.021, np.nan], [-0.021, np.nan, np.nan, 0.5]])
    table = pd.read_csv(tmp_path / "out/tables/classes_region.csv", encoding="utf-8-sig").set_index(["year", "class"])
    # 2000 over the valid mask (the nodata corner of 2000 is excluded from 2020 too):
    assert table.loc[(2000, 2), "stock_tC"] == pytest.approx(2 * 0.09 * 185)
    assert table.loc[(2000, 1), "stock_tC"] == pytest.approx(2 * 0.09 * 97)
    assert table.loc[(2000, 2), "sink_tC_yr"] == pytest.approx(2 * 0.09 * 0.644)
    assert table.loc[(2000, 1), "source_tC_yr"] == pytest.approx(2 * 0.09 * 0.5)
    assert table.loc[(2020, 3), "sink_tC_yr"] == pytest.approx(2 * 0.09 * 0.021)
    assert np.isnan(table.loc[(2020, 5), "sink_tC_yr"])  # urban has area but no rate: not counted
    assert table.loc[(2020, 8), "sink_tC_yr"] == 0  # no unused land, nothing to count


def test_missing_density_row_stops_the_run_naming_the_table(tmp_path, capsys):
    write_raster(tmp_path / "a.tif", np.array([[11, 41]], np.uint8))
    (tmp_path / "d.csv").write_text(DENSITIES)
    cfg = write_config(tmp_path, epochs={2000: "a.tif"}, carbon={"densities": "d.csv"})
    assert cli("run", cfg) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "d.csv") in err and "no carbon density for class 4 (1 px)" in err
    assert not (tmp_path / "out/manifest.json").exists()


def test_single_epoch_has_stock_but_no_change(tmp_path):
    write_raster(tmp_path / "a.tif", np.array([[11, 41, 21], [23, 11, 255]], np.uint8))
    (tmp_path / "d.csv").write_text(DENSITIES + "4,1,1,1,1,f\n")
    assert cli("run", write_config(tmp_path, epochs={2000: "a.tif"}, carbon={"densities": "d.csv"}, area="planar")) == 0
    classes = pd.read_csv(tmp_path / "out/tables/classes_region.csv", encoding="utf-8-sig").set_index("class")
    assert classes.pixels.sum() == 5 and classes.loc[4, "stock_tC"] == pytest.approx(4 * 0.09)
    assert not list((tmp_path / "out").rglob("*transition*")) and not (tmp_path / "out/maps").exists()


def _table(rows: dict[int, float]) -> ParameterTable:
    frame = pd.DataFrame({"key": list(rows), "rate_tC_ha_yr": list(rows.values()), "source": ""})
    return ParameterTable(None, "class", frame)


def test_seed_002_arithmetic():
    """Guizhou 2005-2019 study, Table 5: 790.73e4 ha forest x 0.644 = 509.23e4 t C (2009); 160.64e4 ha grassland
    x 0.021 = 3.37e4 t C (2005)."""
    lookup = rate_lookup(_table({2: -0.644, 3: -0.021}))
    # Pixels of 1 ha (1e4 m2), so counts are hectares; rate index 1 is class 2's row, 2 is class 3's.
    counts = pd.DataFrame({"class": [2, 3], "rate": [1, 2], "cell": [0, 0], "pixels": [7_907_300, 1_606_400]})
    totals = by_class(stock_and_flux(counts, constant_areas(1e4), None, lookup), []).set_index("class")
    assert round(totals.loc[2, "sink_tC_yr"] / 1e4, 2) == 509.23
    assert round(totals.loc[3, "sink_tC_yr"] / 1e4, 2) == 3.37
    assert (totals["source_tC_yr"] == 0).all()


@pytest.mark.realdata
def test_invest_table_on_its_own_rasters(real_data, tmp_path):
    """Willamette current/future LULC with InVEST's pool table keyed by LULC code: totals equal a direct sum."""
    d = real_data / "invest_willamette_legacy"
    scheme = str(__import__("pathlib").Path(__file__).parent / "data" / "willamette_scheme.csv")
    cfg = write_config(
        tmp_path,
        epochs={1990: str(d / "lulc_samp_cur.tif"), 2050: str(d / "lulc_samp_fut.tif")},
        scheme=scheme,
        carbon={"densities": str(d / "carbon_pools_samp.csv")},
        dask={"chunks": 256},
        area="planar",  # InVEST measures pixels in their plane: 0.09 ha
    )
    assert cli("run", cfg) == 0
    pools = pd.read_csv(d / "carbon_pools_willamette.csv").set_index("lucode")
    total = pools[["C_above", "C_below", "C_soil", "C_dead"]].sum(axis=1)
    table = pd.read_csv(tmp_path / "out/tables/classes_region.csv", encoding="utf-8-sig")
    with rasterio.open(d / "lulc_samp_cur.tif") as cur, rasterio.open(d / "lulc_samp_fut.tif") as fut:
        a, b = cur.read(1), fut.read(1)
    valid = (a != 255) & (b != 255)
    for year, lulc in ((1990, a), (2050, b)):
        codes, n = np.unique(lulc[valid], return_counts=True)
        expected = sum(c * total[k] * 0.09 for k, c in zip(codes.tolist(), n.tolist()))
        assert table[table.year == year].stock_tC.sum() == pytest.approx(expected, rel=1e-9)
        stock = read(tmp_path / f"out/rasters/stock_{year}.tif")
        np.testing.assert_allclose(stock[valid], total.reindex(lulc[valid]).to_numpy(), rtol=1e-6)
    # Stock change by pathway, against the pixels: with lucode densities a pixel can keep its class and
    # still change stock (another lucode of the same class), which DESIGN.md puts under pathway 0.
    from pipeline.model.pathways import PATHWAY

    table = pd.read_csv(scheme, comment="#")  # the test's own scheme file, read without the package
    lut = np.zeros(256, np.uint8)
    lut[table["source_code"].to_numpy()] = table["target_class"].to_numpy()
    change = (total.reindex(b[valid]).to_numpy() - total.reindex(a[valid]).to_numpy()) * 0.09
    pathway = PATHWAY[lut[a[valid]], lut[b[valid]]]
    paths = pd.read_csv(tmp_path / "out/tables/pathways_region_1990_2050.csv", encoding="utf-8-sig").set_index(
        "pathway"
    )
    for code in range(7):
        assert paths.loc[code, "stock_change_tC"] == pytest.approx(change[pathway == code].sum(), rel=1e-9, abs=1e-6)
    assert paths.loc[0, "stock_change_tC"] != 0 and (paths.loc[0, "stock_lost_tC"] > 0)
    assert paths.stock_change_tC.sum() == pytest.approx(change.sum(), rel=1e-9)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_row_index_follows_the_zone_then_general_rule(data):
    """Each pixel gets its zone's row for its class if the table has one, else the row without a zone,
    else 0; nodata pixels get 0. Checked pixel by pixel against that rule, over random chunkings."""
    shape = (data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12)))
    cls = data.draw(arrays(np.uint8, shape, elements=st.sampled_from([0, 1, 2, 3, 5, 8, NODATA])))
    zone = data.draw(arrays(np.int32, shape, elements=st.integers(0, 3)))
    general = data.draw(st.sets(st.integers(0, 8), max_size=6))
    own = data.draw(st.sets(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 8)), max_size=6))
    rows = [("", k) for k in sorted(general)] + sorted(own)
    frame = pd.DataFrame(
        {
            "key": [k for _, k in rows],
            "zone": [z for z, _ in rows],
            "rate_tC_ha_yr": np.arange(len(rows), dtype=float),
            "source": "t",
        }
    )
    layer = ZoneLayer("z", Path("z.gpkg"), ["a", "b", "c"], ["a", "b", "c"], gpd.GeoDataFrame())
    lookup = rate_lookup(ParameterTable(Path("r.csv"), "class", frame), layer)
    chunks = (data.draw(st.integers(1, shape[0])), data.draw(st.integers(1, shape[1])))
    lazy = [xr.DataArray(dask.array.from_array(a, chunks=chunks), dims=("y", "x")) for a in (cls, zone)]
    got = row_index(lookup, lazy[0], lazy[0], lazy[1] if rows else None).values
    value = np.concatenate([[np.nan], lookup.values])[got]
    names = {1: "a", 2: "b", 3: "c"}
    for (i, j), c in np.ndenumerate(cls):
        z = names.get(int(zone[i, j]))
        want = next((n for n, r in enumerate(rows) if r == (z, c)), None)
        if want is None:
            want = next((n for n, r in enumerate(rows) if r == ("", c)), None)
        if c == NODATA or want is None:
            assert got[i, j] == 0
        else:
            assert value[i, j] == want  # rate column holds the row's position in `rows`


@pytest.mark.parametrize("dtype", [np.int16, np.uint16])
def test_a_lucode_table_is_looked_up_by_product_code_not_by_class(dtype):
    """InVEST-style table keyed by the product's codes (lucode 52 and 53 are both class 5 here, with their
    own rows). Rows are in key order: 11 -> 1, 52 -> 2, 53 -> 3. Codes without a row (31) or beyond the
    table (300; -5 where the codes are signed) get 0, and so does a pixel outside the valid mask (class 0)."""
    frame = pd.DataFrame({"key": [53, 11, 52], "rate_tC_ha_yr": [2.5, 0.3, 1.7], "source": ""})
    lookup = rate_lookup(ParameterTable(None, "lucode", frame))
    codes = np.array([[11, 52, 53, 31], [300, 52, 11, -5 if dtype is np.int16 else 11]], dtype)
    classes = np.array([[1, 5, 5, 3], [2, 5, 0, 1]], np.uint8)  # (1, 2): valid code, but outside the mask
    lazy = {
        n: xr.DataArray(dask.array.from_array(a, chunks=(1, 2)), dims=("y", "x"))
        for n, a in (("c", codes), ("k", classes))
    }
    got = row_index(lookup, lazy["k"], lazy["c"], None).values
    expected = [[1, 2, 3, 0], [0, 2, 0, 0 if dtype is np.int16 else 1]]
    np.testing.assert_array_equal(got, expected)
    rates = lookup.value_of(got)[0]  # the code's own rate, not its class's; NaN without a row
    assert rates[:3].tolist() == [0.3, 1.7, 2.5] and np.isnan(rates[3])


@pytest.mark.parametrize("key", ["lucode", "class"])
def test_byte_keys_are_looked_up_as_wider_ones(key):
    """uint8 classes or codes take a 256-entry look-up: the rows of the same keys held in uint16, keys beyond the
    table and pixels outside the valid mask (class 0) included."""
    frame = pd.DataFrame({"key": [5, 1, 3], "rate_tC_ha_yr": [2.5, 0.3, 1.7], "source": ""})
    lookup = rate_lookup(ParameterTable(None, key, frame))
    codes = np.array([[1, 3, 5, 2], [255, 3, 1, 9]], np.uint8)
    classes = np.array([[1, 3, 5, 2], [0, 3, 0, 8]], np.uint8)

    def index(codes: np.ndarray, classes: np.ndarray) -> np.ndarray:
        lazy = [xr.DataArray(dask.array.from_array(a, chunks=(1, 2)), dims=("y", "x")) for a in (classes, codes)]
        return row_index(lookup, *lazy, None).values

    got = index(codes, classes)
    np.testing.assert_array_equal(got, index(codes.astype(np.uint16), classes.astype(np.uint16)))
    np.testing.assert_array_equal(got, [[1, 2, 3, 0], [0, 2, 0, 0]])  # rows in key order: 1, 3, 5
