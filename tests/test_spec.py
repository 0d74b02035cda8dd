"""The output specification against what runs write: every file declared, every declared file written,
every table column with a unit, every raster band with the spec's description and unit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import rasterio

from pipeline import spec
from pipeline.config import load_config
from pipeline.runner.run import run_pipeline

from .conftest import write_config

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
ALL_STAGES = frozenset(["ingest", "reclassify", "carbon", "transitions", "zonal", "trends", "redline", "report"])
ALL_RASTERS = frozenset(["landcover", "stock", "flux", "transition", "pathway", "stock_change", "flux_change", "npv"])


def written(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sample")
    shutil.copytree(SAMPLE, folder / "sample_data")
    run_pipeline(load_config(folder / "sample_data" / "config.yaml"), folder / "out", progress=False)
    return folder / "out"


def test_the_sample_writes_exactly_what_the_spec_declares(sample_run):
    # Written out by hand from the sample's config: five epochs, two zone layers, statistics for 2000-2020
    # only at epochs, red lines in 2020 with coverage of the ecozones, uncertainty, valuation, two scenarios.
    years = (2000, 2005, 2010, 2015, 2020)
    context = spec.RunContext(
        years=years,
        intervals=((2000, 2005), (2005, 2010), (2010, 2015), (2015, 2020), (2000, 2020)),
        layers=("county", "ecozone"),
        stages=ALL_STAGES,
        rasters=ALL_RASTERS,
        stock=True,
        balance_years=years,
        redline_year=2020,
        coverage=True,
        indicators=("ndvi",),
        uncertainty=True,
        valuation=True,
        scenarios=((2020, 2030, "natural"), (2020, 2030, "ecological")),
    )
    files = written(sample_run)
    assert [f for f in files if spec.find(f) is None] == []
    assert files == spec.expected(context)
    # 5 epochs x 3 rasters + 5 intervals x 5 rasters + Gi* + NDVI slope and p + 2 scenarios x (3 + 4) rasters,
    # and a QGIS style beside each class-like raster
    assert sum(f.endswith(".tif") for f in files) == 57 and sum(f.endswith(".qml") for f in files) == 21
    assert "rasters/pathway_2020_2030_natural.tif" in files and "tables/scenarios_county.csv" in files
    assert "maps/scenarios_ecozone_2030.png" in files and "tables/transitions_region_2020_2030_ecological.csv" in files
    assert "rasters/npv_2000_2020.tif" in files and "tables/stock_change_uncertainty_county.csv" in files
    assert "tables/uncertainty_ecozone.csv" in files and "tables/valuation_region.csv" in files
    assert "maps/balance_county_2015.png" in files and "tables/pathways_ecozone_2000_2020.csv" in files
    assert "tables/indicators_ecozone.csv" in files and "maps/indicators_ecozone_ndvi.png" in files


def test_every_table_column_has_a_unit_and_the_declared_order(sample_run):
    for relative in written(sample_run):
        if not relative.endswith(".csv"):
            continue
        output, _ = spec.find(relative)
        header = list(pd.read_csv(sample_run / relative, nrows=0, encoding="utf-8-sig").columns)
        assert [c for c in header if spec.column_unit(c) is None] == [], relative
        declared = [c for c in output.columns if "{" not in c]
        assert [c for c in header if c in declared] == declared, relative
    assert spec.column_unit("stock_tCO2") == (
        "t CO2",
        "carbon stock, c_above + c_below + c_soil + c_dead times area, in CO2 (x 44/12)",
    )
    assert spec.column_unit("county_share")[0] == "fraction 0-1"
    assert spec.column_unit("net_emission_tC_yr_2015")[0] == "t C/yr"
    assert spec.column_unit("made_up_column") is None


def test_raster_bands_carry_the_spec_meaning(sample_run):
    for relative in written(sample_run):
        if relative.endswith(".tif"):
            output, _ = spec.find(relative)
            with rasterio.open(sample_run / relative) as ds:
                assert (ds.descriptions[0], ds.units[0]) == output.band, relative
                assert ds.dtypes[0] == output.dtype
                assert "DESIGN" not in ds.descriptions[0]


def test_a_partial_run_writes_what_the_spec_says(two_epochs):
    out = two_epochs.parent / "out"
    config = load_config(
        write_config(
            two_epochs.parent,
            epochs={2000: "lc2000/*.tif", 2020: "lc2020.tif"},
            rasters=["landcover", "flux", "pathway"],
        )
    )
    run_pipeline(config, out, progress=False, stages=["transitions"])
    context = spec.RunContext(
        years=(2000, 2020),
        intervals=((2000, 2020),),
        layers=(),
        stages=frozenset(["ingest", "reclassify", "carbon", "transitions"]),
        rasters=frozenset(["landcover", "flux", "pathway"]),
        stock=False,
        balance_years=(2000, 2020),
    )
    assert written(out) == spec.expected(context)
    assert "rasters/pathway_2000_2020.tif" in written(out) and "maps/sankey.png" not in written(out)


def test_patterns_match_only_their_files():
    assert spec.find("rasters/stock_change_2000_2020.tif")[0].key == "stock_change"
    assert spec.find("rasters/stock_2000.tif") == (spec.BY_KEY["stock"], {"year": "2000"})
    assert spec.find("tables/pathways_my_zones_2000_2020.parquet") == (
        spec.BY_KEY["pathways"],
        {"layer": "my_zones", "y0": "2000", "y1": "2020"},
    )
    assert spec.find("rasters/landcover_2000.qml")[0].key == "landcover"
    assert spec.find("rasters/stock_2000.qml") is None  # float rasters have no style
    assert spec.find("tables/notes.txt") is None
    assert spec.find("tables/uncertainty_county.csv")[0].key == "uncertainty"
    assert spec.find("tables/stock_change_uncertainty_county.csv")[0].key == "stock_change_uncertainty"
    assert spec.find("rasters/npv_2000_2020.tif")[0].key == "npv"
    assert len({o.key for o in spec.OUTPUTS}) == len(spec.OUTPUTS)


def test_tiled_rasters_are_declared_as_a_vrt_over_their_tiles():
    context = spec.RunContext(
        years=(2000,),
        intervals=(),
        layers=(),
        stages=frozenset(["ingest", "reclassify", "carbon"]),
        rasters=frozenset(["landcover", "stock"]),
        stock=True,
        balance_years=(2000,),
        tiles=(2, 3),
    )
    rasters = [f for f in spec.expected(context) if f.startswith("rasters/")]
    tiles = [f"r00{i}_c00{j}" for i in range(2) for j in range(3)]
    assert rasters == sorted(
        ["rasters/landcover_2000.vrt", "rasters/landcover_2000.qml", "rasters/stock_2000.vrt"]
        + [f"rasters/landcover_2000/landcover_2000_{t}.tif" for t in tiles]
        + [f"rasters/stock_2000/stock_2000_{t}.tif" for t in tiles]
    )
    assert spec.raster_path("stock", context, year=2000) == "rasters/stock_2000.vrt"
    untiled = spec.RunContext(**{**context.__dict__, "tiles": None})
    assert spec.raster_path("stock", untiled, year=2000) == "rasters/stock_2000.tif"
    assert [f for f in spec.expected(untiled) if f.startswith("rasters/")] == [
        "rasters/landcover_2000.qml",
        "rasters/landcover_2000.tif",
        "rasters/stock_2000.tif",
    ]


def test_tile_patterns_match_only_their_files():
    assert spec.find("rasters/stock_2000/stock_2000_r012_c003.tif") == (
        spec.BY_KEY["stock"],
        {"year": "2000", "row": "012", "col": "003"},
    )
    assert spec.find("rasters/stock_change_2000_2020.vrt") == (
        spec.BY_KEY["stock_change"],
        {"y0": "2000", "y1": "2020"},
    )
    assert spec.find("rasters/pathway_2020_2030_natural/pathway_2020_2030_natural_r000_c001.tif")[0].key == (
        "scenario_pathway"
    )
    assert spec.find("rasters/stock_2000/stock_2005_r000_c000.tif") is None  # another raster's name
    assert spec.find("rasters/stock_2000/stock_2000_r00_c000.tif") is None  # three digits at least
    assert spec.find("rasters/stock_2000/.stock_2000_r000_c000.1f2e.tif") is None  # a temporary
    assert spec.find("rasters/stock_2000.vrt.d/0_0.tif") is None  # a staged part
    assert spec.find("tables/balance_region.vrt") is None  # only rasters have the tiled form
