"""Seed 002's statistics terms by hand, their checks, and how they replace per-hectare terms in a run."""

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from pipeline.io.parameters import read_coefficients, read_statistics
from pipeline.stages.balance import nearest_epoch
from pipeline.stages.statistics import terms

from .conftest import UTM50, read, write_config, write_raster
from .helpers import cli

AGRI = {
    "fertiliser_t": 10,
    "sown_area_hm2": 100,
    "machinery_kW": 1000,
    "irrigated_area_hm2": 50,
    "plastic_film_kg": 100,
}
ENERGY = {"energy_intensity_tce_per_10k_yuan": 2, "gdp_secondary_10k_yuan": 300, "gdp_tertiary_10k_yuan": 200}
CROPS = ["rice", "wheat", "maize", "soybean", "tubers", "rapeseed", "peanut", "sugarcane", "tobacco"]
# By hand from seed 002 Table 1 (kg C per unit / 1000), K = 0.7476 and Table 3:
E_F = 10 * 0.8956 + 100 * 0.01647 + 1000 * 0.00018 + 50 * 0.26648 + 100 * 0.00518  # 24.625 t C/yr
E_C = 2 * (300 + 200) * 0.7476  # 747.6 t C/yr
C_F = 2 * 0.4709 / 0.4 + 700 * 0.45 / 0.7  # 2 t rice, 700 t tubers: 2.3545 + 450 t C/yr


def _stats_csv(path, rows):
    yields = {f"yield_{c}_t": 0 for c in CROPS} | {"yield_rice_t": 2, "yield_tubers_t": 700}
    pd.DataFrame([{**AGRI, **ENERGY, **yields, **r} for r in rows]).to_csv(path, index=False)
    return path


def test_terms_by_hand(tmp_path):
    coefficients = read_coefficients()
    stats = read_statistics(_stats_csv(tmp_path / "s.csv", [{"zone_id": 420101, "year": 2005}]), coefficients)
    got = terms(stats, coefficients).iloc[0]
    assert got["zone_id"] == "420101"
    assert got["source_agricultural_tC_yr"] == pytest.approx(E_F, rel=1e-12) and E_F == pytest.approx(24.625)
    assert got["source_construction_tC_yr"] == pytest.approx(E_C, rel=1e-12) and E_C == pytest.approx(747.6)
    assert got["sink_cropland_tC_yr"] == pytest.approx(C_F, rel=1e-12)


def test_total_energy_may_replace_intensity_times_gdp(tmp_path):
    coefficients = read_coefficients()
    path = tmp_path / "s.csv"
    pd.DataFrame([{"zone_id": "a", "year": 2000, "energy_tce": 1000}]).to_csv(path, index=False)
    got = terms(read_statistics(path, coefficients), coefficients).iloc[0]
    assert got["source_construction_tC_yr"] == pytest.approx(747.6)
    assert np.isnan(got["source_agricultural_tC_yr"]) and np.isnan(got["sink_cropland_tC_yr"])


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"zone_id": 1, "year": 2000, "fertiliser_t": 1}], "agricultural_source needs all of"),
        ([{"zone_id": 1, "year": 2000, "fertilizer_t": 1}], "fertilizer_t (did you mean 'fertiliser_t'?)"),
        ([{"zone_id": 1, "year": 2000, "energy_tce": 1}, {"zone_id": 1, "year": 2000, "energy_tce": 2}], "repeated"),
        ([{"zone_id": 1, "year": 2000, "energy_tce": -1}], "negative values in rows 2"),
        ([{"zone_id": 1, "year": 2000, "energy_tce": "n/a"}], "non-numeric"),
        ([{"zone_id": 1, "year": 2000, "note": "x"}], "no complete term"),
        ([{"zone": 1, "year": 2000, "energy_tce": 1}], "need columns zone_id and year"),
    ],
)
def test_bad_statistics_name_the_file_and_problem(tmp_path, rows, message):
    from pipeline.errors import InputError

    path = tmp_path / "s.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    with pytest.raises(InputError) as err:
        read_statistics(path, read_coefficients())
    assert message in str(err.value) and str(path) in str(err.value)


# Two 90 m wide counties side by side over a 4 x 6 raster of 30 m pixels (0.09 ha each).
CODES = np.array(
    [[11, 11, 21, 11, 21, 51], [11, 51, 52, 11, 11, 21], [21, 21, 11, 51, 21, 255], [11, 21, 21, 21, 11, 11]], np.uint8
)
RATES = "class,rate_tC_ha_yr,source\n1,0.5,user\n2,-0.644,seed 002\n"
DENSITIES = (
    "class,zone,c_above,c_below,c_soil,c_dead\n1,,5,1,90,1\n2,,40,10,130,5\n2,101,50,15,130,5\n"
    "5,,0.5,0.1,40,0\n6,,2,0.5,60,0\n"
)


@pytest.fixture
def counties(tmp_path):
    x0, y0 = 500000, 3400000
    gpd.GeoDataFrame(
        {"code": [101, 102], "name": ["西县", "东县"]},
        geometry=[shapely.box(x0, y0 - 120, x0 + 90, y0), shapely.box(x0 + 90, y0 - 120, x0 + 180, y0)],
        crs=UTM50,
    ).to_file(tmp_path / "counties.gpkg")
    write_raster(tmp_path / "a.tif", CODES)
    write_raster(tmp_path / "b.tif", CODES)
    (tmp_path / "r.csv").write_text(RATES)
    (tmp_path / "d.csv").write_text(DENSITIES)
    fertiliser_2003 = {"zone_id": 101, "year": 2003, "fertiliser_t": 20}
    _stats_csv(tmp_path / "stats.csv", [{"zone_id": 101, "year": 2000}, fertiliser_2003])
    return write_config(
        tmp_path,
        epochs={2000: "a.tif", 2010: "b.tif"},
        zones=[{"name": "county", "path": "counties.gpkg", "id": "code", "label": "name"}],
        carbon={"densities": "d.csv", "rates": "r.csv", "statistics": "stats.csv", "co2": True},
        dask={"chunks": 64},
        area="planar",  # worked by hand in planar 30 m pixels of 0.09 ha
    )


def test_statistics_replace_per_hectare_terms_and_are_spread_over_the_map(counties, caplog):
    out = counties.parent / "out"
    assert cli("run", counties) == 0
    crop_a, built_a = 5 * 0.09, 2 * 0.09  # county 101: 5 cropland, 1 urban + 1 rural pixels
    flux = read(out / "rasters/flux_2000.tif")
    np.testing.assert_allclose(
        flux[:, :3],
        [
            [(E_F - C_F) / crop_a] * 2 + [-0.644],
            [(E_F - C_F) / crop_a, E_C / built_a, E_C / built_a],
            [-0.644, -0.644, (E_F - C_F) / crop_a],
            [(E_F - C_F) / crop_a, -0.644, -0.644],
        ],
        rtol=1e-6,
    )
    # County 102 has no statistics: per-hectare rates, and no rate at all for urban land.
    np.testing.assert_allclose(
        flux[:, 3:],
        [[0.5, -0.644, np.nan], [0.5, 0.5, -0.644], [np.nan, -0.644, np.nan], [-0.644, 0.5, 0.5]],
        rtol=1e-6,
    )
    # 2010 has no statistics: cropland is back to its per-hectare rate in both counties.
    assert read(out / "rasters/flux_2010.tif")[0, 0] == pytest.approx(0.5)

    classes = pd.read_csv(out / "tables/classes_region.csv", encoding="utf-8-sig").set_index(["year", "class"])
    assert classes.loc[(2000, 1), "source_tC_yr"] == pytest.approx(E_F + 5 * 0.09 * 0.5)
    assert classes.loc[(2000, 1), "sink_tC_yr"] == pytest.approx(C_F)
    assert classes.loc[(2000, 5), "source_tC_yr"] == pytest.approx(E_C / 2)
    assert classes.loc[(2000, 5), "uncounted_area_ha"] == pytest.approx(2 * 0.09)  # county 102's urban land
    assert classes.loc[(2010, 5), "source_tC_yr"] != classes.loc[(2010, 5), "source_tC_yr"]  # NaN: nothing counted
    assert classes.loc[(2000, 1), "source_tCO2_yr"] == pytest.approx((E_F + 0.225) * 44 / 12)
    assert "no annual rate or statistics for class 5 urban construction (up to 0.27 ha" in caplog.text

    balance = pd.read_csv(out / "tables/balance_county.csv", encoding="utf-8-sig", dtype={"zone_id": str})
    b = balance.set_index(["zone_id", "year"])
    assert list(b.index) == [("101", 2000), ("101", 2003), ("101", 2010), ("102", 2000), ("102", 2003), ("102", 2010)]
    forest_a = 5 * 0.09 * 0.644
    assert b.loc[("101", 2000), "source_tC_yr"] == pytest.approx(E_F + E_C)
    assert b.loc[("101", 2000), "sink_tC_yr"] == pytest.approx(C_F + forest_a)
    assert b.loc[("101", 2000), "net_emission_tC_yr"] == pytest.approx(E_F + E_C - C_F - forest_a)
    assert b.loc[("101", 2003), "source_tC_yr"] == pytest.approx(E_F + 10 * 0.8956 + E_C)
    assert b.loc[("101", 2003), ["areas_from_epoch", "nearest_epoch", "statistics"]].tolist() == [2000, True, True]
    assert b.loc[("102", 2003), ["nearest_epoch", "statistics"]].tolist() == [True, False]
    assert b.loc[("101", 2000), "source_agricultural_tC_yr"] == pytest.approx(E_F)
    assert b.loc[("101", 2000), "stock_tCO2"] == pytest.approx(b.loc[("101", 2000), "stock_tC"] * 44 / 12)
    # County tables add up to the region's.
    region = pd.read_csv(out / "tables/balance_region.csv", encoding="utf-8-sig").set_index("year")
    sums = balance.groupby("year")[["stock_tC", "sink_tC_yr", "source_tC_yr"]].sum()
    np.testing.assert_allclose(sums.to_numpy(), region.loc[sums.index, sums.columns].to_numpy(), rtol=1e-12)


def test_zone_specific_densities(counties):
    assert cli("run", counties) == 0
    stock = read(counties.parent / "out/rasters/stock_2000.tif")
    assert stock[0, 2] == pytest.approx(200) and stock[0, 4] == pytest.approx(185)  # forest in 101, in 102
    classes = pd.read_csv(counties.parent / "out/tables/classes_county.csv", encoding="utf-8-sig")
    forest = classes[(classes["class"] == 2) & (classes.year == 2000)].set_index("zone_id")["stock_tC"]
    assert forest[101] == pytest.approx(5 * 0.09 * 200) and forest[102] == pytest.approx(4 * 0.09 * 185)


def test_statistics_for_an_unknown_county(counties, capsys):
    path = counties.parent / "stats.csv"
    _stats_csv(path, [{"zone_id": 999, "year": 2000}])
    assert cli("run", counties) == 1
    err = capsys.readouterr().err
    assert "statistics zone_id ['999'] are not ids of zone layer 'county'" in err and str(path) in err
    assert not list((counties.parent / "out").rglob("*.*"))


def test_validate_reads_statistics_and_zone_densities(counties, capsys):
    assert cli("validate", counties) == 0
    out = capsys.readouterr().out
    assert "zones 'county': 2 polygons" in out
    assert (
        "carbon statistics: 2 rows for 1 zones of 'county', years [2000, 2003] ([2003] use the nearest epoch's land)"
        in out
    )
    (counties.parent / "d.csv").write_text(DENSITIES.replace("2,101,", "2,103,"))
    assert cli("validate", counties) == 1
    assert "zone ids ['103'] are not ids of zone layer 'county'" in capsys.readouterr().err


def test_a_statistics_year_halfway_between_two_epochs_takes_the_earlier():
    """The docs: a statistics year stands on the nearest epoch's land, the earlier one on a tie."""
    assert nearest_epoch(2005, [2000, 2010]) == 2000
    assert nearest_epoch(2005, [2010, 2000]) == 2000  # whatever the order given
    assert nearest_epoch(2006, [2000, 2010]) == 2010 and nearest_epoch(2004, [2000, 2010]) == 2000


# The Guizhou land-use carbon emission study 2005-2019, written out from the paper and not read from the package:
# Table 1 (kg C per unit, / 1000 here), section 2.2 (K, t C per t standard coal) and Table 3 (crop carbon
# absorption rate Cd and economic coefficient H: rice 0.4709 / 0.4, wheat 0.4853 / 0.4, maize 0.4709 / 0.4,
# soybean 0.45 / 0.34, tubers 0.45 / 0.7, rapeseed 0.45 / 0.25, peanut 0.45 / 0.43, sugarcane 0.45 / 0.5,
# flue-cured tobacco 0.45 / 0.55; checked against the paper's Table 3).
PUBLISHED = {
    ("agricultural_source", "fertiliser_t"): (0.8956, None),  # A: 895.6 kg C/t
    ("agricultural_source", "sown_area_hm2"): (0.01647, None),  # B: 16.47 kg C/hm2
    ("agricultural_source", "machinery_kW"): (0.00018, None),  # C: 0.18 kg C/kW
    ("agricultural_source", "irrigated_area_hm2"): (0.26648, None),  # D: 266.48 kg C/hm2
    ("agricultural_source", "plastic_film_kg"): (0.00518, None),  # E: 5.18 kg C/kg
    ("construction_source", "energy_tce"): (0.7476, None),  # K
    ("cropland_sink", "yield_rice_t"): (0.4709, 0.4),
    ("cropland_sink", "yield_wheat_t"): (0.4853, 0.4),
    ("cropland_sink", "yield_maize_t"): (0.4709, 0.4),
    ("cropland_sink", "yield_soybean_t"): (0.45, 0.34),
    ("cropland_sink", "yield_tubers_t"): (0.45, 0.7),
    ("cropland_sink", "yield_rapeseed_t"): (0.45, 0.25),
    ("cropland_sink", "yield_peanut_t"): (0.45, 0.43),
    ("cropland_sink", "yield_sugarcane_t"): (0.45, 0.5),
    ("cropland_sink", "yield_tobacco_t"): (0.45, 0.55),
}


def test_default_coefficients_are_the_published_ones():
    table = read_coefficients()
    got = {
        (r.term, r.column): (r.t_C_per_unit, None if pd.isna(r.economic_coefficient) else r.economic_coefficient)
        for r in table.itertuples()
    }
    assert {(t, c.lower()) for t, c in PUBLISHED} == set(got)
    for (term, column), (value, h) in PUBLISHED.items():
        assert got[(term, column.lower())] == (value, h), column


def test_cropland_sink_with_every_crop_by_hand(tmp_path):
    """Yields 10, 20, ... 90 t for the nine crops in Table 3's order: C_f = sum Cd x Y / H =
    0.4709/0.4*10 + 0.4853/0.4*20 + 0.4709/0.4*30 + 0.45/0.34*40 + 0.45/0.7*50 + 0.45/0.25*60
    + 0.45/0.43*70 + 0.45/0.5*80 + 0.45/0.55*90
    = 11.7725 + 24.265 + 35.3175 + 52.941176 + 32.142857 + 108 + 73.255814 + 72 + 73.636364 = 483.331211 t C/yr."""
    coefficients = read_coefficients()
    path = tmp_path / "s.csv"
    yields = {f"yield_{c}_t": 10 * (i + 1) for i, c in enumerate(CROPS)}
    pd.DataFrame([{"zone_id": "a", "year": 2000, **yields}]).to_csv(path, index=False)
    got = terms(read_statistics(path, coefficients), coefficients).iloc[0]
    assert got["sink_cropland_tC_yr"] == pytest.approx(483.331211, abs=1e-6)
    # One crop at a time: each crop's own Cd / H (a swap of two crops' coefficients changes these).
    for crop in CROPS:
        one = {f"yield_{c}_t": 0 for c in CROPS} | {f"yield_{crop}_t": 1}
        pd.DataFrame([{"zone_id": "a", "year": 2000, **one}]).to_csv(path, index=False)
        cd, h = PUBLISHED[("cropland_sink", f"yield_{crop}_t")]
        alone = terms(read_statistics(path, coefficients), coefficients).iloc[0]["sink_cropland_tC_yr"]
        assert alone == pytest.approx(cd / h, rel=1e-12), crop


def test_statistics_that_have_no_land_to_go_to_are_named_in_one_warning_per_zone(caplog):
    """Zone a has cropland and construction: nothing to warn. Zone b has statistics of cropland terms and of
    construction but neither land: one warning naming both. Zone c (not in the counts at all) has only a
    construction source: its warning names that alone. Zone d has no land either but all-zero terms."""
    from pipeline.model.classes import CROPLAND, FOREST, RURAL
    from pipeline.model.inputs import ZoneLayer
    from pipeline.stages.balance import _warn_unplaced

    layer = ZoneLayer("county", None, ["a", "b", "c", "d"], ["A", "B", "C", "D"], None)
    sums = pd.DataFrame(
        {"area_ha": [5.0, 2.0, 7.0, 0.0]},
        index=pd.MultiIndex.from_tuples(
            [(1, CROPLAND), (1, RURAL), (2, FOREST), (4, CROPLAND)], names=["czone", "class"]
        ),
    )
    columns = ["zone_id", "source_agricultural_tC_yr", "sink_cropland_tC_yr", "source_construction_tC_yr"]
    terms = pd.DataFrame(
        [["a", 3.0, 1.0, 2.0], ["b", 0.0, 1.5, 4.0], ["c", 0.0, 0.0, 0.5], ["d", 0.0, 0.0, 0.0]],
        index=[1, 2, 3, 4],
        columns=columns,
    )
    with caplog.at_level("WARNING", logger="pipeline"):
        _warn_unplaced(layer, terms, sums, 2015)
    assert [r.getMessage() for r in caplog.records] == [
        "county: zone b has statistics for 2015 but no cropland or construction pixels inside the rasters; "
        "cropland terms and the construction source not placed",
        "county: zone c has statistics for 2015 but no cropland or construction pixels inside the rasters; "
        "the construction source not placed",
    ]
