"""Uncertainty draws of the parameter tables, applied to pixel counts: hand examples against analytic intervals,
sd 0 against the point values, and the same numbers whatever the chunking."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings

from pipeline.io.parameters import read_densities, read_rates
from pipeline.model.inputs import ZoneLayer
from pipeline.stages import balance, carbon, counts, uncertainty

from .conftest import write_config
from .helpers import cli, constant_areas, row_areas
from .strategies import interval_rasters

Z95 = 1.6448536269514722  # standard normal 95th percentile (tables: 1.645)
PX_HA = 0.09  # 30 m pixels


def _tables(tmp: Path, densities: str, rates: str) -> tuple[carbon.Lookup, carbon.Lookup]:
    (tmp / "d.csv").write_text(densities)
    (tmp / "r.csv").write_text(rates)
    return carbon.density_lookup(read_densities(tmp / "d.csv")), carbon.rate_lookup(read_rates(tmp / "r.csv"))


def _lazy(a: np.ndarray, chunks) -> xr.DataArray:
    return xr.DataArray(da.from_array(a, chunks=chunks), dims=("y", "x"))


def _counts(before, after, zone, chunks, densities, rates, areas=None):
    """The run's interval counts and each epoch's (as compute._pass_tasks makes them)."""
    b, a, z = _lazy(before, chunks), _lazy(after, chunks), _lazy(zone, chunks)
    idx = {k: [carbon.row_index(lk, c, c, None) for c in (b, a)] for k, lk in (("density", densities), ("rate", rates))}
    keys = {"from_class": (b, 9), "to_class": (a, 9), "zone_z": (z, 4)}
    for name, lookup in (("density", densities), ("rate", rates)):
        keys |= {f"{name}0": (idx[name][0], lookup.size), f"{name}1": (idx[name][1], lookup.size)}
    epochs = {}
    for i, (year, cls) in enumerate(((2000, b), (2020, a))):
        epoch = {"class": (cls, 9), "zone_z": (z, 4)}
        epoch |= {name: (idx[name][i], lk.size) for name, lk in (("density", densities), ("rate", rates))}
        epochs[year] = counts.group_counts(epoch, areas).compute()
    return {(2000, 2020): counts.group_counts(keys, areas).compute()}, epochs


def _run(acc, draws, intervals, epochs, layer=None, column=None):
    zones = balance.zone_frame(layer, "r")
    point = balance.balance_table(acc, epochs, layer, column, "r")
    table = uncertainty.balance_percentiles(acc, draws, epochs, point, zones, column)
    change = uncertainty.stock_change_percentiles(acc, draws, intervals, zones, column)
    return table.set_index(["zone_id", "year"]), change.set_index(["zone_id", "pathway"]), point


# Two classes: 100 px of forest (9 ha), 300 px of grassland (27 ha); 40 forest pixels (3.6 ha) become grassland.
BEFORE = np.array([2] * 100 + [3] * 300, np.uint8).reshape(20, 20)
AFTER = BEFORE.copy()
AFTER.ravel()[:40] = 3
ONE_ZONE = np.ones((20, 20), np.int32)


def test_with_sd_zero_every_percentile_is_the_point_value(tmp_path):
    densities, rates = _tables(
        tmp_path,
        "class,c_above,c_below,c_soil,c_dead,c_above_sd,c_soil_sd\n2,100,20,80,5,0,0\n3,3,8,50,1,0,0\n",
        "class,rate_tC_ha_yr,rate_sd\n2,-0.644,0\n3,-0.021,0\n",
    )
    intervals, epochs = _counts(BEFORE, AFTER, ONE_ZONE, (7, 9), densities, rates)
    acc = balance.CarbonParameters(densities, rates, constant_areas(900.0))
    draws = uncertainty.make_draws(densities, rates, 50, seed=1)
    table, change, _ = _run(acc, draws, intervals, epochs)
    # By hand: forest 205 t C/ha, grassland 62 t C/ha.
    stock = {2000: 9 * 205 + 27 * 62, 2020: 5.4 * 205 + 30.6 * 62}
    sink = {2000: 9 * 0.644 + 27 * 0.021, 2020: 5.4 * 0.644 + 30.6 * 0.021}
    for year in (2000, 2020):
        for suffix in uncertainty.SUFFIXES:
            row = table.loc[("1", year)]
            assert row[f"stock_tC_{suffix}"] == pytest.approx(stock[year], rel=1e-12)
            assert row[f"sink_tC_yr_{suffix}"] == pytest.approx(sink[year], rel=1e-12)
            assert row[f"source_tC_yr_{suffix}"] == 0
            assert row[f"net_emission_tC_yr_{suffix}"] == pytest.approx(-sink[year], rel=1e-12)
    for suffix in uncertainty.SUFFIXES:
        assert change.loc[("1", 6), f"stock_change_tC_{suffix}"] == pytest.approx(3.6 * (62 - 205), rel=1e-12)
        assert change.loc[("1", 0), f"stock_change_tC_{suffix}"] == 0
    assert sorted(change.index.get_level_values("pathway")) == list(range(7))


def test_two_classes_against_the_analytic_normal_interval(tmp_path):
    # Forest c_above 100 +- 10, grassland c_soil 50 +- 5 (t C/ha), other pools 0; forest rate -0.644 +- 0.1.
    # Truncation at 0 is 10 sd away: the interval is the normal one. Stock 2000 = 9 ha x D_f + 27 ha x D_g:
    # mean 9 x 100 + 27 x 50 = 2250 t C, sd sqrt((9 x 10)^2 + (27 x 5)^2) = sqrt(26325) = 162.25 t C,
    # so p05, p95 = 2250 -+ 1.645 x 162.25 = 1983.1, 2516.9 t C.
    densities, rates = _tables(
        tmp_path,
        "class,c_above,c_below,c_soil,c_dead,c_above_sd,c_soil_sd\n2,100,0,0,0,10,0\n3,0,0,50,0,0,5\n",
        "class,rate_tC_ha_yr,rate_sd\n2,-0.644,0.1\n3,-0.021,0\n",
    )
    intervals, epochs = _counts(BEFORE, AFTER, ONE_ZONE, (20, 20), densities, rates)
    acc = balance.CarbonParameters(densities, rates, constant_areas(900.0))
    draws = uncertainty.make_draws(densities, rates, 40_000, seed=1)
    table, change, _ = _run(acc, draws, intervals, epochs)
    row = table.loc[("1", 2000)]
    sd = np.sqrt(26325)
    # Sampling error of a 5 % quantile over 40,000 draws is about 0.01 sd: 0.05 sd is a wide margin.
    assert row["stock_tC_p05"] == pytest.approx(2250 - Z95 * sd, abs=0.05 * sd)
    assert row["stock_tC_p50"] == pytest.approx(2250, abs=0.05 * sd)
    assert row["stock_tC_p95"] == pytest.approx(2250 + Z95 * sd, abs=0.05 * sd)
    # Sink 2000: 9 ha x 0.644 + 27 ha x 0.021 = 6.363 t C/yr, sd 9 ha x 0.1 = 0.9 t C/yr; net = -sink.
    assert row["sink_tC_yr_p05"] == pytest.approx(6.363 - Z95 * 0.9, abs=0.05 * 0.9)
    assert row["sink_tC_yr_p95"] == pytest.approx(6.363 + Z95 * 0.9, abs=0.05 * 0.9)
    assert row["net_emission_tC_yr_p05"] == pytest.approx(-(6.363 + Z95 * 0.9), abs=0.05 * 0.9)
    # Stock change of the 3.6 ha of forest turned grassland: 3.6 x (D_g - D_f), mean -180 t C,
    # sd 3.6 x sqrt(10^2 + 5^2) = 40.25 t C.
    sd_change = 3.6 * np.sqrt(125)
    other = change.loc[("1", 6)]
    assert other["stock_change_tC_p05"] == pytest.approx(-180 - Z95 * sd_change, abs=0.05 * sd_change)
    assert other["stock_change_tC_p95"] == pytest.approx(-180 + Z95 * sd_change, abs=0.05 * sd_change)
    # Same seed, same numbers; another seed, other numbers.
    again, _, _ = _run(acc, uncertainty.make_draws(densities, rates, 40_000, seed=1), intervals, epochs)
    pd.testing.assert_frame_equal(table, again, check_exact=True)
    other_seed, _, _ = _run(acc, uncertainty.make_draws(densities, rates, 40_000, seed=2), intervals, epochs)
    assert other_seed.loc[("1", 2000), "stock_tC_p05"] != row["stock_tC_p05"]


def test_truncated_normal_and_triangular_by_hand(tmp_path):
    # Soil 1 +- 2 t C/ha truncated at 0: the median solves Phi((x - 1) / 2) = Phi(-0.5) + 0.5 (1 - Phi(-0.5)),
    # Phi(-0.5) = 0.308538, so Phi(z) = 0.654269, z = 0.396967 and x = 1.793934 t C/ha; no draw below 0.
    # Class 3: c_above triangular between 0 and 100 with mode 50: F(x) = x^2 / 5000 below the mode, so the
    # 5th percentile is sqrt(0.05 x 5000) = 15.811 t C/ha.
    densities, rates = _tables(
        tmp_path,
        "class,c_above,c_below,c_soil,c_dead,c_soil_sd,c_above_low,c_above_high\n2,0,0,1,0,2,0,0\n3,50,0,0,0,0,0,100\n",
        "class,rate_tC_ha_yr\n2,-0.644\n",
    )
    draws = uncertainty.make_draws(densities, rates, 200_000, seed=7)
    forest = draws.density[:, 1 + list(densities.keys).index(2)]
    grass = draws.density[:, 1 + list(densities.keys).index(3)]
    assert forest.min() >= 0 and np.median(forest) == pytest.approx(1.793934, abs=0.02)
    assert np.percentile(grass, 5) == pytest.approx(15.811, abs=0.3)
    assert grass.min() >= 0 and grass.max() <= 100
    assert (draws.rate[:, 1:] == -0.644).all()  # no spread given: the point value in every draw


def test_invest_uncertainty_table_reads_as_it_is(real_data):
    # InVEST 2.5's own uncertainty table (Willamette sample): C_ABOVE_MEAN, C_ABOVE_SD, ..., LULC.
    table = read_densities(real_data / "invest_willamette_legacy" / "carbon_pools_samp_uncertain.csv")
    assert table.key == "lucode"
    row = table.frame.set_index("key").loc[60]  # Forest closed conifer 81-200 yrs
    assert (row["c_above"], row["c_below"], row["c_soil"], row["c_dead"]) == (300, 200, 135, 85)
    assert (row["c_above_sd"], row["c_below_sd"], row["c_soil_sd"], row["c_dead_sd"]) == (60, 40, 27, 17)
    densities = carbon.density_lookup(table)
    rates = carbon.rate_lookup(read_rates(Path(__file__).resolve().parents[1] / "pipeline/data/default_rates.csv"))
    draws = uncertainty.make_draws(densities, rates, 20_000, seed=3)
    total = draws.density[:, 1 + list(densities.keys).index(60)]
    # 720 t C/ha, sd sqrt(60^2 + 40^2 + 27^2 + 17^2) = 79.70 (truncation 9 sd away on every pool).
    assert total.mean() == pytest.approx(720, abs=2.0)
    assert total.std() == pytest.approx(np.sqrt(60**2 + 40**2 + 27**2 + 17**2), rel=0.03)


@settings(max_examples=25, deadline=None)
@given(interval_rasters())
def test_draws_are_the_same_on_any_chunking(tmp_path_factory, data):
    before, after, zone, (c1, c2), row_area = data
    tmp = tmp_path_factory.mktemp("u")
    body = "".join(f"{k},{3 * k},{k},{10 * k},1,{0.5 * k},{0.1 * k},{k},0.2\n" for k in range(1, 9))
    densities, rates = _tables(
        tmp,
        "class,c_above,c_below,c_soil,c_dead,c_above_sd,c_below_sd,c_soil_sd,c_dead_sd\n" + body,
        "class,rate_tC_ha_yr,rate_sd\n1,0.4,0.1\n2,-0.644,0.2\n3,-0.021,0.01\n4,-0.3,0.05\n5,2.5,0.5\n",
    )
    draws = uncertainty.make_draws(densities, rates, 200, seed=11)
    acc = balance.CarbonParameters(densities, rates, row_areas(row_area, before.shape[1]))
    layer = ZoneLayer("z", None, ["a", "b", "c"], ["A", "B", "C"], None)
    results = []
    for chunks in (c1, c2):
        intervals, epochs = _counts(before, after, zone, chunks, densities, rates, acc.areas)
        results.append(
            [_run(acc, draws, intervals, epochs, lay, col)[:2] for lay, col in ((None, None), (layer, "zone_z"))]
        )
    for (table_a, change_a), (table_b, change_b) in zip(*results):
        pd.testing.assert_frame_equal(table_a, table_b, check_exact=True)
        pd.testing.assert_frame_equal(change_a, change_b, check_exact=True)


def test_with_statistics_and_sd_zero_the_percentiles_are_the_balance(two_epochs):
    # County statistics replace cropland's and construction's per-hectare terms in two zones (2000, and 2010
    # which has no epoch): those terms are the same in every draw, the rest is drawn with sd 0, so every
    # percentile is the balance table's own figure, zone by zone and year by year (empty net emission included).
    from .test_pipeline import zones_and_statistics

    tmp = two_epochs.parent
    settings = zones_and_statistics(tmp)
    (tmp / "r.csv").write_text("class,rate_tC_ha_yr,rate_sd\n1,0.3,0\n2,-0.644,0\n3,-0.021,0\n5,1.5,0\n8,-0.005,0\n")
    write_config(tmp, epochs={2000: "lc2000/*.tif", 2020: "lc2020.tif"}, uncertainty={"draws": 30}, **settings)
    assert cli("run", two_epochs) == 0
    for layer in ("region", "zone"):
        point = pd.read_csv(tmp / f"out/tables/balance_{layer}.csv", encoding="utf-8-sig", dtype={"zone_id": str})
        drawn = pd.read_csv(tmp / f"out/tables/uncertainty_{layer}.csv", encoding="utf-8-sig", dtype={"zone_id": str})
        assert len(point) == len(drawn) and sorted(set(drawn["year"])) == [2000, 2010, 2020]
        merged = point.merge(drawn, on=["zone_id", "year"])
        assert merged["statistics"].any() and merged["net_emission_tC_yr"].isna().any()
        for value in ("stock_tC", "sink_tC_yr", "source_tC_yr", "net_emission_tC_yr"):
            for suffix in uncertainty.SUFFIXES:
                np.testing.assert_allclose(merged[f"{value}_{suffix}"], merged[value], rtol=1e-12, err_msg=value)
