"""Pathway codes for every (from, to) pair, written out from DESIGN.md's table, and transition codes."""

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings

from pipeline.model.inputs import ParameterTable, ZoneLayer
from pipeline.model.pathways import PATHWAY, PATHWAY_NAMES, pathway, transition
from pipeline.stages import balance, carbon, counts, transitions

from .helpers import constant_areas, row_areas
from .strategies import interval_rasters

# DESIGN.md, row by row: code -> the (from, to) pairs it names.
DESIGN = {
    1: [(f, t) for f in (1, 2, 3, 4, 8) for t in (5, 7)],
    2: [(f, 1) for f in (2, 3, 4, 8)],
    3: [(6, t) for t in (1, 2, 3, 4)],
    4: [(f, 6) for f in (1, 2, 3, 4, 8)],
    5: [(1, t) for t in (2, 3, 4)],
}


def test_every_pair_of_classes():
    expected = {(f, t): 0 if f == t else 6 for f in range(1, 9) for t in range(1, 9)}
    for code, pairs in DESIGN.items():
        for pair in pairs:
            assert expected[pair] == 6, f"{pair} listed twice"
            expected[pair] = code
    for (f, t), code in expected.items():
        assert PATHWAY[f, t] == code, (f, t)
    assert (PATHWAY[0, :] == 255).all() and (PATHWAY[:, 0] == 255).all()
    assert sorted(PATHWAY_NAMES) == list(range(7))


@pytest.mark.parametrize(
    "before, after, code, name",
    [
        (1, 5, 1, "direct: urban expansion"),  # cropland built over
        (2, 7, 1, "direct: urban expansion"),  # forest to a mine or road
        (6, 5, 6, "other change"),  # a village absorbed by the city is not expansion over land
        (2, 1, 2, "indirect: cropland displacement"),
        (5, 1, 6, "other change"),  # urban land back to cropland is not displacement
        (6, 2, 3, "potential: rural shrinkage"),
        (6, 8, 6, "other change"),
        (3, 6, 4, "rural expansion"),
        (1, 4, 5, "ecological restoration"),
        (1, 8, 6, "other change"),
        (7, 7, 0, "unchanged"),
    ],
)
def test_edges_by_hand(before, after, code, name):
    got = pathway(np.array([[before]], np.uint8), np.array([[after]], np.uint8))
    assert got[0, 0] == code and PATHWAY_NAMES[code] == name


def test_transition_codes():
    a = np.array([[1, 2, 0], [8, 5, 6]], np.uint8)
    b = np.array([[5, 2, 3], [1, 0, 6]], np.uint8)
    np.testing.assert_array_equal(transition(a, b), [[15, 22, 0], [81, 0, 66]])
    np.testing.assert_array_equal(pathway(a, b), [[1, 0, 255], [2, 255, 0]])


def test_pathways_of_every_pair_as_the_table_gives_them():
    """The flat look-up of unsigned classes against the 9 x 9 table; a class beyond it is an error as before."""
    a, b = np.meshgrid(np.arange(9, dtype=np.uint8), np.arange(9, dtype=np.uint8), indexing="ij")
    np.testing.assert_array_equal(pathway(a, b), PATHWAY[a, b])
    np.testing.assert_array_equal(pathway(a.astype(np.int64), b), PATHWAY[a, b])
    with pytest.raises(IndexError):
        pathway(np.array([9], np.uint8), np.array([0], np.uint8))


# ---- interval tables, by hand ----------------------------------------------------------------------------

# Every pathway appears: see the comments on each pixel in test_interval_tables_by_hand.
BEFORE = np.array([[1, 1, 2, 3, 4], [6, 1, 4, 8, 1], [5, 2, 2, 1, 3]], np.uint8)
AFTER = np.array([[5, 1, 1, 1, 1], [2, 7, 3, 6, 1], [6, 2, 2, 2, 3]], np.uint8)
DENSITY = {1: 50, 2: 150, 3: 40, 4: 20, 5: 10, 6: 30, 7: 5, 8: 2}  # t C/ha
RATE = {1: 0.4, 2: -0.644, 3: -0.021, 4: -0.3, 5: 2.5}  # t C/ha/yr; 6, 7, 8 have none: not counted
PX_HA = 0.09  # 30 m pixels


def _lazy(a: np.ndarray, chunks) -> xr.DataArray:
    return xr.DataArray(da.from_array(a, chunks=chunks), dims=("y", "x"))


def _lookups(density: dict, rate: dict) -> tuple[carbon.Lookup, carbon.Lookup]:
    d = pd.DataFrame(
        {
            "key": list(density),
            "c_above": list(density.values()),
            "c_below": 0.0,
            "c_soil": 0.0,
            "c_dead": 0.0,
            "source": "",
        }
    )
    r = pd.DataFrame({"key": list(rate), "rate_tC_ha_yr": list(rate.values()), "source": ""})
    return (
        carbon.density_lookup(ParameterTable(None, "class", d)),
        carbon.rate_lookup(ParameterTable(None, "class", r)),
    )


def _interval(before, after, zone, chunks, densities, rates, areas=None):
    """The run's interval count for two class rasters and one zone raster (no zone-keyed tables)."""
    b, a, z = _lazy(before, chunks), _lazy(after, chunks), _lazy(zone, chunks)
    idx = {k: [carbon.row_index(lk, c, c, None) for c in (b, a)] for k, lk in (("density", densities), ("rate", rates))}
    keys = {
        "from_class": (b, 9),
        "to_class": (a, 9),
        "zone_z": (z, int(zone.max()) + 1),
        "density0": (idx["density"][0], densities.size),
        "density1": (idx["density"][1], densities.size),
        "rate0": (idx["rate"][0], rates.size),
        "rate1": (idx["rate"][1], rates.size),
    }
    epoch = {
        y: counts.group_counts(
            {
                "class": (c, 9),
                "zone_z": keys["zone_z"],
                "density": (idx["density"][i], densities.size),
                "rate": (idx["rate"][i], rates.size),
            },
            areas,
        )
        for i, (y, c) in enumerate(((2000, b), (2020, a)))
    }
    return counts.group_counts(keys, areas).compute(), {y: f.compute() for y, f in epoch.items()}


def test_interval_tables_by_hand():
    densities, rates = _lookups(DENSITY, RATE)
    frame, _ = _interval(BEFORE, AFTER, np.ones_like(BEFORE, np.int32), (2, 3), densities, rates)
    acc = balance.CarbonParameters(densities, rates, constant_areas(900.0))
    acct = transitions.stock_and_flux_change(acc, frame, 2000, 2020)
    zones = balance.zone_frame(None, "test")
    paths = transitions.pathway_table(acct, zones, None, stock=True).set_index("pathway")
    # pathway: (pixels, stock change t C/ha summed over its pixels, flux change t C/ha/yr summed, uncounted px)
    hand = {
        0: (5, 0, 0, 0),  # 1->1 twice, 2->2 twice, 3->3
        1: (2, (10 - 50) + (5 - 50), 2.5 - 0.4, 1),  # 1->5; 1->7 (no rate for 7)
        2: (3, (50 - 150) + (50 - 40) + (50 - 20), (0.4 + 0.644) + (0.4 + 0.021) + (0.4 + 0.3), 0),  # 2,3,4 -> 1
        3: (1, 150 - 30, np.nan, 1),  # 6->2: none of it counted, so NaN rather than 0
        4: (1, 30 - 2, np.nan, 1),  # 8->6
        5: (1, 150 - 50, -0.644 - 0.4, 0),  # 1->2
        6: (2, (40 - 20) + (30 - 10), -0.021 + 0.3, 1),  # 4->3; 5->6
    }
    for code, (px, stock, flux, uncounted) in hand.items():
        row = paths.loc[code]
        assert row.area_ha == pytest.approx(px * PX_HA, rel=1e-12), code
        assert row.stock_change_tC == pytest.approx(stock * PX_HA, rel=1e-12, abs=1e-12), code
        assert row.flux_change_tC_yr == pytest.approx(flux * PX_HA, rel=1e-12, abs=1e-12, nan_ok=True), code
        assert row.flux_uncounted_area_ha == pytest.approx(uncounted * PX_HA), code
    # Lost and gained per transition: 1->5 (-40), 1->7 (-45) and 2->1 (-100) lose; the rest gain.
    lost, gained = (40 + 45 + 100) * PX_HA, (10 + 30 + 120 + 28 + 100 + 20 + 20) * PX_HA
    assert paths.stock_lost_tC.sum() == pytest.approx(lost) and paths.stock_gained_tC.sum() == pytest.approx(gained)
    assert paths.loc[1, "share_of_stock_lost"] == pytest.approx(85 / 185)
    assert paths.loc[2, "share_of_stock_lost"] == pytest.approx(100 / 185)
    assert paths.loc[2, "share_of_stock_gained"] == pytest.approx(40 / 328)
    assert paths.loc[2, "transitions"] == (
        "forest → cropland 0.09 ha; grassland → cropland 0.09 ha; water and wetland → cropland 0.09 ha"
    )
    stock_before = sum(DENSITY[c] for c in BEFORE.ravel()) * PX_HA
    stock_after = sum(DENSITY[c] for c in AFTER.ravel()) * PX_HA
    assert paths.stock_change_tC.sum() == pytest.approx(stock_after - stock_before, rel=1e-12)

    matrix = transitions.transition_table(acct, zones, None)
    summary = transitions.interval_summary(matrix, zones, 2000, 2020).iloc[0]
    assert summary.years == 20 and summary.changed_area_ha == pytest.approx(10 * PX_HA)
    assert summary.displaced_to_cropland_ha == pytest.approx(3 * PX_HA)  # 2, 3, 4 -> 1
    assert summary.cropland_to_construction_ha == pytest.approx(2 * PX_HA)  # 1 -> 5, 1 -> 7
    assert summary.displacement_ratio == pytest.approx(1.5)
    assert summary.cropland_y0_ha == pytest.approx(5 * PX_HA) and summary.new_cropland_ha == pytest.approx(3 * PX_HA)
    assert summary.new_cropland_share == pytest.approx(0.6) and summary.new_cropland_check == "pass"
    assert summary.construction_change_ha == pytest.approx(2 * PX_HA) and summary.construction_check == "fail"


def test_change_rasters_by_hand():
    densities, rates = _lookups(DENSITY, RATE)
    b, a = _lazy(BEFORE, (2, 2)), _lazy(AFTER, (2, 2))
    index = [carbon.row_index(densities, c, c, None) for c in (b, a)]
    got = transitions.value_change(densities, *index).values
    np.testing.assert_array_equal(got, np.vectorize(DENSITY.get)(AFTER) - np.vectorize(DENSITY.get)(BEFORE))
    flux = transitions.value_change(rates, *[carbon.row_index(rates, c, c, None) for c in (b, a)]).values
    assert np.isnan(flux[1, 1]) and np.isnan(flux[1, 0])  # 1 -> 7 and 6 -> 2: one end has no rate
    assert flux[0, 0] == pytest.approx(2.1) and flux.dtype == np.float32
    np.testing.assert_array_equal(transitions.pathway_raster(b, a).values, PATHWAY[BEFORE, AFTER])
    assert transitions.transition_raster(b, a).values[2, 3] == 12


def test_change_rasters_the_same_without_the_pair_table(monkeypatch):
    """Large tables take two look-ups per pixel instead of one in a table of row pairs: same float32 values."""
    densities, rates = _lookups(DENSITY, RATE)
    b, a = _lazy(BEFORE, (2, 3)), _lazy(AFTER, (2, 3))

    def by_hand(table: dict) -> np.ndarray:
        """after - before pixel by pixel from the hand tables, NaN where either end has no value."""
        value = np.vectorize(lambda c: table.get(int(c), np.nan))
        return (value(AFTER) - value(BEFORE)).astype(np.float32)

    expected = {"density": by_hand(DENSITY), "rate": by_hand(RATE)}
    assert expected["rate"][0, 0] == np.float32(2.5 - 0.4) and np.isnan(expected["rate"][1, 0])  # 1->5; 6->2
    for limit in (1 << 22, 0):
        monkeypatch.setattr(transitions, "_PAIR_TABLE_LIMIT", limit)
        for name, lookup in (("density", densities), ("rate", rates)):
            got = transitions.value_change(lookup, *[carbon.row_index(lookup, c, c, None) for c in (b, a)]).values
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, expected.setdefault(name, got))


def test_rows_set_by_the_class_looked_up_in_the_counts_give_the_counted_frame():
    """Parameter rows of a table keyed by class are looked up in the counts, not counted: the same frame, row for
    row, as counting the row index rasters (a rate row counted between them keeps its place)."""
    rng = np.random.default_rng(4)
    a, b = (rng.integers(0, 9, (19, 23)).astype(np.uint8) for _ in range(2))
    zone = rng.integers(0, 4, (19, 23)).astype(np.int32)
    densities, rates = _lookups(DENSITY, RATE)
    lazy = [_lazy(x, (8, 10)) for x in (a, b, zone)]
    index = [{n: carbon.row_index(t, c, c, None) for n, t in (("d", densities), ("r", rates))} for c in lazy[:2]]
    keys = {"from_class": (lazy[0], 9), "to_class": (lazy[1], 9), "zone": (lazy[2], 4)}
    every = {"d0": (index[0]["d"], densities.size), "r0": (index[0]["r"], rates.size)}
    every |= {"d1": (index[1]["d"], densities.size), "r1": (index[1]["r"], rates.size)}
    areas = row_areas(np.linspace(1.0, 2.0, 19), 23)
    counted = counts.group_counts({**keys, **every}, areas).compute()
    rows_d, rows_r = carbon.class_rows(densities), carbon.class_rows(rates)
    assert rows_d is not None and rows_r is not None
    looked_up = {"d0": ("from_class", rows_d), "d1": ("to_class", rows_d), "r1": ("to_class", rows_r)}
    partly = counts.group_counts({**keys, "r0": every["r0"]}, areas)
    got = counts.with_looked_up(partly, looked_up, [*keys, *every]).compute()
    pd.testing.assert_frame_equal(got, counted)


def test_change_rasters_of_a_table_of_more_than_256_rows():
    """Pairs of rows numbered in uint32 once n x n passes 65536: the change of each pixel's own rows."""
    n = 300
    frame = pd.DataFrame({"key": np.arange(1, n + 1), "rate_tC_ha_yr": np.linspace(-3, 7, n), "source": ""})
    lookup = carbon.rate_lookup(ParameterTable(None, "lucode", frame))
    rows = np.random.default_rng(2).integers(0, n + 1, (2, 7, 9)).astype(np.uint16)  # 0: no row
    got = transitions.value_change(lookup, *[_lazy(r, (4, 5)) for r in rows], 0.5).values
    values = np.concatenate([[np.nan], lookup.values])
    np.testing.assert_array_equal(got, ((values[rows[1]] - values[rows[0]]) * 0.5).astype(np.float32))


def test_displacement_and_consolidation_checks_at_their_boundaries():
    """Seed 003's displacement ratio counts only forest, grassland, water and unused land turned to cropland
    (not a rural settlement given back to farming); seed 000's checks pass at exactly 5 % new cropland and at
    exactly no change of construction land. Hectares by hand:
    1->1 98, 1->5 2 (cropland y0 = 100; cropland -> construction 2);
    2->1 1 (displaced), 6->1 4 (rural settlement -> cropland, not displaced): new cropland 5 = 5 % of 100;
    3->7 2: construction gains 2 + 2, loses 4 (6->1): change 0; 2->2 50 and 6->6 10 persist.
    Displacement ratio 1 / 2 = 0.5 (2.5 if 6->1 were counted)."""
    zones = balance.zone_frame(None, "test")
    pairs = [(1, 1, 98.0), (1, 5, 2.0), (2, 1, 1.0), (6, 1, 4.0), (3, 7, 2.0), (2, 2, 50.0), (6, 6, 10.0)]
    matrix = pd.DataFrame(
        {
            "zone_id": "1",
            "zone_name": "test",
            "from_class": [f for f, _, _ in pairs],
            "to_class": [t for _, t, _ in pairs],
            "area_ha": [a for _, _, a in pairs],
            "stock_change_tC": 0.0,
            "flux_change_tC_yr": 0.0,
        }
    )
    row = transitions.interval_summary(matrix, zones, 2000, 2010).iloc[0]
    assert row.displaced_to_cropland_ha == 1.0 and row.cropland_to_construction_ha == 2.0
    assert row.displacement_ratio == 0.5
    assert row.cropland_y0_ha == 100.0 and row.new_cropland_ha == 5.0 and row.new_cropland_share == 0.05
    assert row.new_cropland_check == "pass"  # at least 5 %: exactly 5 % passes
    assert row.construction_y0_ha == 14.0 and row.construction_y1_ha == 14.0  # 6->1 + 6->6; 1->5 + 3->7 + 6->6
    assert row.construction_change_ha == 0.0 and row.construction_check == "pass"  # not increased: 0 passes
    assert row.changed_area_ha == 9.0 and row.area_ha == 167.0


def test_consolidation_check_with_no_cropland_and_less_construction():
    zones = balance.zone_frame(None, "test")
    matrix = pd.DataFrame(
        {
            "zone_id": "1",
            "zone_name": "test",
            "from_class": [5, 2],
            "to_class": [2, 2],
            "area_ha": [1.0, 3.0],
            "stock_change_tC": [4.0, 0.0],
            "flux_change_tC_yr": [0.0, 0.0],
        }
    )
    row = transitions.interval_summary(matrix, zones, 2000, 2010).iloc[0]
    assert row.new_cropland_check == "n/a" and np.isnan(row.displacement_ratio)
    assert row.construction_change_ha == -1.0 and row.construction_check == "pass"


def test_intervals():
    assert transitions.intervals([2020, 2000]) == [(2000, 2020)]
    assert transitions.intervals([2000, 2010, 2020]) == [(2000, 2010), (2010, 2020), (2000, 2020)]
    assert transitions.intervals([2000]) == []


# ---- invariants over random rasters and chunkings ----------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(interval_rasters())
def test_matrix_and_pathway_invariants(data):
    before, after, zone, (c1, c2), row_area = data
    densities, rates = _lookups({k: 7.3 * k + (k % 3) * 11.1 for k in range(1, 9)}, RATE)
    areas = row_areas(row_area, before.shape[1])
    frame, epochs = _interval(before, after, zone, c1, densities, rates, areas)
    other, _ = _interval(before, after, zone, c2, densities, rates, areas)
    pd.testing.assert_frame_equal(frame, other)  # exact counts whatever the chunking
    for side, year in ((0, 2000), (1, 2020)):  # each epoch's counts are sums of the interval's
        pd.testing.assert_frame_equal(transitions.epoch_counts(frame, side), epochs[year])
    acc = balance.CarbonParameters(densities, rates, areas)
    acct = transitions.stock_and_flux_change(acc, frame, 2000, 2020)
    layer = ZoneLayer("z", None, ["a", "b", "c"], ["A", "B", "C"], None)
    for lay, column in ((None, None), (layer, "zone_z")):
        zones = balance.zone_frame(lay, "r")
        classes = balance.class_table(acc, epochs, lay, column, "r").set_index(["zone_id", "year", "class"])
        matrix = transitions.transition_table(acct, zones, column)
        for key, year in (("from_class", 2000), ("to_class", 2020)):
            sums = matrix.groupby(["zone_id", key])["area_ha"].sum()
            for (z, k), area in sums.items():
                assert area == pytest.approx(classes.loc[(z, year, k), "area_ha"], rel=1e-12)
            inside = (before > 0) & (zone > 0) if lay else before > 0  # zone 0 lies outside every zone
            assert matrix["pixels"].sum() == inside.sum()
        paths = transitions.pathway_table(acct, zones, column, stock=True).set_index("zone_id")
        stock = classes.groupby(["zone_id", "year"])["stock_tC"].sum().unstack("year")
        for z, change in paths.groupby("zone_id")["stock_change_tC"].sum().items():
            assert change == pytest.approx(stock.loc[z, 2020] - stock.loc[z, 2000], rel=1e-9, abs=1e-6)
