"""Scenarios (PLUS / FLUS / CA-Markov futures): hand-worked stock and flux of two scenarios of a 4 x 5 region,
their pathways against the base epoch and their difference; chunk invariance; the scenario files."""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from pipeline import spec
from pipeline.config import load_config
from pipeline.runner.run import run_pipeline

from .conftest import read, write_config, write_raster
from .helpers import snapshot

# CNLUCC codes: 11 paddy (cropland, class 1), 21 forest (2), 51 urban (5); 255 nodata.
BASE_2000 = np.array(
    [
        [21, 21, 21, 21, 21],
        [21, 21, 21, 11, 11],
        [11, 11, 11, 11, 11],
        [11, 11, 11, 51, 51],
    ],
    np.uint8,
)
BASE_2020 = np.array(
    [
        [21, 21, 21, 21, 21],
        [21, 21, 11, 11, 11],
        [11, 11, 11, 11, 51],
        [11, 11, 51, 51, 51],
    ],
    np.uint8,
)
# natural 2030: forest (1,0), (1,1) -> cropland (indirect, 2 px); cropland (2,2), (2,3), (3,0) -> urban (direct, 3 px)
NATURAL = np.array(
    [
        [21, 21, 21, 21, 21],
        [11, 11, 11, 11, 11],
        [11, 11, 51, 51, 51],
        [51, 11, 51, 51, 51],
    ],
    np.uint8,
)
# ecological 2030: cropland (1,2), (1,3), (3,1) -> forest (restoration, 3 px); (0,0) left nodata by the model
ECOLOGICAL = np.array(
    [
        [255, 21, 21, 21, 21],
        [21, 21, 21, 21, 11],
        [11, 11, 11, 11, 51],
        [11, 21, 51, 51, 51],
    ],
    np.uint8,
)
# t C/ha in one pool each, so the total is the number: cropland 10, forest 100, urban 2.
DENSITIES = "class,c_above,c_below,c_soil,c_dead\n1,10,0,0,0\n2,100,0,0,0\n5,2,0,0,0\n"
# t C/ha/yr: forest takes up 1, cropland emits 0.5, urban land 3.
RATES = "class,rate_tC_ha_yr\n1,0.5\n2,-1.0\n5,3.0\n"
HA = 0.09  # a 30 m pixel, planar


def region(tmp: Path, rates: str = RATES, **settings) -> Path:
    write_raster(tmp / "lc2000.tif", BASE_2000)
    write_raster(tmp / "lc2020.tif", BASE_2020)
    write_raster(tmp / "nd2030.tif", NATURAL)
    write_raster(tmp / "ep2030.tif", ECOLOGICAL)
    (tmp / "d.csv").write_text(DENSITIES)
    (tmp / "r.csv").write_text(rates)
    # zone a: columns 0-2, zone b: columns 3-4
    boxes = [shapely.box(500000, 3399880, 500090, 3400000), shapely.box(500090, 3399880, 500150, 3400000)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        gpd.GeoDataFrame({"code": ["a", "b"]}, geometry=boxes, crs="EPSG:32650").to_file(tmp / "z.gpkg")
    return write_config(
        tmp,
        epochs={2000: "lc2000.tif", 2020: "lc2020.tif"},
        scenarios={2030: {"natural": "nd2030.tif", "ecological": "ep2030.tif"}},
        carbon={"densities": "d.csv", "rates": "r.csv"},
        zones=[{"name": "county", "path": "z.gpkg", "id": "code"}],
        area="planar",
        **settings,
    )


def table(out: Path, relative: str) -> pd.DataFrame:
    return pd.read_csv(out / relative, encoding="utf-8-sig", dtype={"zone_id": str})


@pytest.fixture(scope="module")
def hand_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("scenarios")
    run_pipeline(load_config(region(tmp)), tmp / "out", progress=False)
    return tmp / "out"


def test_stock_flux_and_difference_of_two_scenarios_by_hand(hand_run):
    rows = table(hand_run, "tables/scenarios_region.csv").set_index("scenario")
    assert list(rows.index) == ["ecological", "natural"]  # the config's order (write_config sorts the keys)
    assert (rows["y0"] == 2020).all() and (rows["y1"] == 2030).all() and (rows["years"] == 10).all()
    nat, eco = rows.loc["natural"], rows.loc["ecological"]
    # natural: 5 forest, 8 cropland, 7 urban px
    assert nat["area_ha"] == pytest.approx(20 * HA)
    assert nat["stock_tC"] == pytest.approx((5 * 100 + 8 * 10 + 7 * 2) * HA)  # 53.46
    assert nat["stock_y0_tC"] == pytest.approx((7 * 100 + 9 * 10 + 4 * 2) * HA)  # 71.82
    assert nat["stock_change_tC"] == pytest.approx(-18.36)
    assert nat["stock_change_indirect_tC"] == pytest.approx(2 * (10 - 100) * HA)  # -16.2
    assert nat["stock_change_direct_tC"] == pytest.approx(3 * (2 - 10) * HA)  # -2.16
    assert nat["stock_change_unchanged_tC"] == 0 and nat["stock_change_restoration_tC"] == 0
    assert nat["sink_tC_yr"] == pytest.approx(5 * 1.0 * HA)  # 0.45
    assert nat["source_tC_yr"] == pytest.approx((8 * 0.5 + 7 * 3.0) * HA)  # 2.25
    assert nat["net_emission_tC_yr"] == pytest.approx(1.8)
    assert nat["scenario_nodata_pixels"] == 0
    # ecological: (0,0), forest in 2020, is nodata in the scenario: left out of both sides
    assert eco["scenario_nodata_pixels"] == 1 and eco["scenario_nodata_area_ha"] == pytest.approx(HA)
    assert eco["area_ha"] == pytest.approx(19 * HA)
    assert eco["stock_tC"] == pytest.approx((9 * 100 + 6 * 10 + 4 * 2) * HA)  # 87.12
    assert eco["stock_y0_tC"] == pytest.approx((6 * 100 + 9 * 10 + 4 * 2) * HA)  # 62.82
    assert eco["stock_change_restoration_tC"] == pytest.approx(3 * 90 * HA)  # 24.3
    assert eco["stock_change_tC"] == pytest.approx(24.3)
    assert eco["net_emission_tC_yr"] == pytest.approx((6 * 0.5 + 4 * 3.0 - 9 * 1.0) * HA)  # 0.54
    # the difference to the first scenario of the year, ecological
    assert eco["stock_difference_tC"] == 0 and eco["net_emission_difference_tC_yr"] == 0
    assert nat["stock_difference_tC"] == pytest.approx(53.46 - 87.12)  # -33.66
    assert nat["net_emission_difference_tC_yr"] == pytest.approx(1.8 - 0.54)
    assert eco["flux_change_tC_yr"] == pytest.approx(3 * (-1.0 - 0.5) * HA)  # cropland -> forest


def test_per_zone_rows_add_up_to_the_region(hand_run):
    zones = table(hand_run, "tables/scenarios_county.csv")
    nat = zones[zones["scenario"] == "natural"].set_index("zone_id")
    assert nat.loc["a", "stock_change_indirect_tC"] == pytest.approx(-16.2)
    assert nat.loc["a", "stock_change_direct_tC"] == pytest.approx(2 * -8 * HA)  # (2,2) and (3,0)
    assert nat.loc["b", "stock_change_direct_tC"] == pytest.approx(-8 * HA)  # (2,3)
    eco = zones[zones["scenario"] == "ecological"].set_index("zone_id")
    assert eco.loc["a", "scenario_nodata_pixels"] == 1 and eco.loc["b", "scenario_nodata_pixels"] == 0


def test_every_interval_output_of_a_scenario(hand_run):
    matrix = table(hand_run, "tables/transitions_region_2020_2030_natural.csv")
    pairs = {(r.from_class, r.to_class): r.pixels for r in matrix.itertuples()}
    assert pairs == {(1, 1): 6, (1, 5): 3, (2, 1): 2, (2, 2): 5, (5, 5): 4}
    eco = table(hand_run, "tables/transitions_region_2020_2030_ecological.csv")
    assert eco["pixels"].sum() == 19  # the scenario's nodata is not a transition
    pathway = read(hand_run / "rasters/pathway_2020_2030_ecological.tif")
    assert pathway[0, 0] == 255 and pathway[1, 2] == 5 and pathway[0, 1] == 0
    change = read(hand_run / "rasters/stock_change_2020_2030_natural.tif")
    assert change[1, 0] == pytest.approx(-90) and change[2, 2] == pytest.approx(-8) and change[0, 0] == 0
    assert read(hand_run / "rasters/landcover_2030_natural.tif")[3, 0] == 5
    # the observed interval keeps its name and its figures
    observed = table(hand_run, "tables/transitions_region_2000_2020.csv")
    assert observed["pixels"].sum() == 20
    assert "maps/scenarios_county_2030.png" in snapshot(hand_run)


def test_net_emission_is_not_given_where_too_much_land_has_no_rate(tmp_path):
    cfg = region(tmp_path, rates="class,rate_tC_ha_yr\n1,0.5\n5,3.0\n")  # forest has no rate
    run_pipeline(load_config(cfg), tmp_path / "out", progress=False, stages=["transitions"])
    rows = table(tmp_path / "out", "tables/scenarios_region.csv").set_index("scenario")
    assert rows["net_emission_tC_yr"].isna().all() and rows["net_emission_difference_tC_yr"].isna().all()
    assert rows.loc["natural", "uncounted_area_ha"] == pytest.approx(5 * HA)
    assert rows.loc["natural", "stock_tC"] == pytest.approx(53.46)


def test_scenario_tables_do_not_depend_on_the_chunks(tmp_path):
    rng = np.random.default_rng(11)
    codes = np.array([11, 12, 21, 31, 41, 51, 52, 53], np.uint8)
    for name in ("a", "b", "s1", "s2"):
        write_raster(tmp_path / f"{name}.tif", codes[rng.integers(0, len(codes), (150, 170))])
    (tmp_path / "d.csv").write_text(
        "class,c_above,c_below,c_soil,c_dead\n" + "".join(f"{c},{3.7 * c},0.1,{11.3 + c},0\n" for c in range(1, 9))
    )
    results = []
    for chunks in (64, 128):
        folder = tmp_path / f"c{chunks}"
        folder.mkdir()
        cfg = write_config(
            folder,
            epochs={2000: "../a.tif", 2020: "../b.tif"},
            scenarios={2035: {"one": "../s1.tif", "two": "../s2.tif"}},
            carbon={"densities": "../d.csv"},
            dask={"chunks": chunks, "scheduler": "threads" if chunks == 64 else "synchronous"},
        )
        run_pipeline(load_config(cfg), folder / "out", progress=False, stages=["transitions"])
        results.append(
            {
                k: v
                for k, v in snapshot(folder / "out").items()
                if k.startswith("tables/") or k.startswith("rasters/stock_change_2020_2035")
            }
        )
    assert results[0] == results[1] and "tables/scenarios_region.csv" in results[0]


def test_a_run_with_scenarios_writes_what_the_spec_declares(hand_run):
    files = sorted(snapshot(hand_run))
    context = spec.RunContext(
        years=(2000, 2020),
        intervals=((2000, 2020),),
        layers=("county",),
        stages=frozenset(["ingest", "reclassify", "carbon", "transitions", "zonal", "trends", "report"]),
        rasters=frozenset(
            ["landcover", "stock", "flux", "transition", "pathway", "stock_change", "flux_change", "npv"]
        ),
        stock=True,
        balance_years=(2000, 2020),
        scenarios=((2020, 2030, "natural"), (2020, 2030, "ecological")),
    )
    assert [f for f in files if spec.find(f) is None] == []
    assert files == spec.expected(context)
    assert spec.find("tables/pathways_county_2020_2030_natural.csv") == (
        spec.BY_KEY["scenario_pathways"],
        {"layer": "county", "y0": "2020", "y1": "2030", "scenario": "natural"},
    )
    assert spec.find("rasters/pathway_2000_2020.tif")[0].key == "pathway"
