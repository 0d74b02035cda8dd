"""InVEST's valuation of carbon, reproduced: its own test values, a table by hand, and a run whose npv raster and
tables are worked out by hand (with the uncertainty tables beside them)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.stages.valuation import valuation_constant, valuation_table

from .conftest import read, write_config, write_raster
from .helpers import cli


def test_invest_own_test_values():
    # natcap/invest, tests/test_carbon.py: "test_carbon_valuation_constant" and the NPV of
    # "test_carbon_full": price 43 per t C, price change 2.8 %/yr, discount -7.1 %/yr, 2016 -> 2030,
    # pools 86 -> 28 t C/ha: valuation constant 59.00136, NPV -3422.079 per ha.
    constant = valuation_constant(2016, 2030, -7.1, 2.8, 43)
    assert constant == pytest.approx(59.00136, abs=1e-5)
    assert (28 - 86) * constant == pytest.approx(-3422.079, abs=1e-3)
    # natcap/invest, tests/test_carbon.py: _calculate_valuation_constant(2010, 2012, 50, 5, 50) = 40.87302
    # (arguments: current year, future year, discount rate %, rate change %, price).
    assert valuation_constant(2010, 2012, 50, 5, 50) == pytest.approx(40.87302, abs=1e-5)


def test_constant_by_hand():
    # No discounting, no price change: every year's share is worth the price, K = price.
    assert valuation_constant(2000, 2010, 0, 0, 10) == pytest.approx(10)
    # Two years at 10 % discount: K = 100 / 2 x (1 + 1/1.1) = 95.4545...
    assert valuation_constant(2000, 2002, 10, 0, 100) == pytest.approx(50 * (1 + 1 / 1.1))
    # A discount offset by an equal price change is not no discounting: 1/(1.1 x 1.1) per year.
    assert valuation_constant(2000, 2002, 10, 10, 100) == pytest.approx(50 * (1 + 1 / 1.21))


def test_table_by_hand():
    intervals = pd.DataFrame(
        {
            "zone_id": ["1", "1"],
            "zone_name": ["r", "r"],
            "y0": [2000, 2000],
            "y1": [2002, 2010],
            "years": [2, 10],
            "stock_change_tC": [-10.0, 4.0],
        }
    )
    table = valuation_table(intervals, 10, 0, 100)
    assert list(table.columns) == [*intervals.columns, "valuation_constant", "npv"]
    assert table["npv"].tolist() == pytest.approx([-10 * 50 * (1 + 1 / 1.1), 4 * 10 * sum(1.1**-t for t in range(10))])


def test_a_run_values_the_stock_change_per_pixel_and_per_zone(tmp_path):
    # 30 m pixels (0.09 ha); CNLUCC 21 forest, 31 grassland, 51 urban. Densities (t C/ha): forest 200, grassland
    # 60, urban 10; soil sd 10 % of each pool.
    a = np.array([[21, 21, 31, 31], [21, 31, 31, 51]], np.uint8)
    b = np.array([[51, 21, 21, 31], [31, 31, 51, 51]], np.uint8)
    write_raster(tmp_path / "a.tif", a)
    write_raster(tmp_path / "b.tif", b)
    (tmp_path / "d.csv").write_text(
        "class,c_above,c_below,c_soil,c_dead,c_soil_sd\n2,100,40,50,10,5\n3,5,10,45,0,4.5\n5,0,0,10,0,1\n"
    )
    (tmp_path / "r.csv").write_text("class,rate_tC_ha_yr\n2,-0.644\n3,-0.021\n5,2.5\n")
    cfg = write_config(
        tmp_path,
        epochs={2000: "a.tif", 2010: "b.tif"},
        carbon={"densities": "d.csv", "rates": "r.csv"},
        uncertainty={"draws": 200, "seed": 1},
        valuation={"price_per_tC": 43, "discount_rate_pct": 7, "price_change_pct": 0},
        area="planar",  # worked by hand in planar 30 m pixels of 0.09 ha
    )
    assert cli("run", cfg) == 0
    # K = 43 / 10 x sum_{t=0}^{9} 1.07^-t = 4.3 x 7.515232 = 32.315499 per t C.
    k = 4.3 * sum(1.07**-t for t in range(10))
    assert k == pytest.approx(32.3155, abs=1e-4)
    dens = {21: 200.0, 31: 60.0, 51: 10.0}
    change = np.vectorize(dens.get)(b) - np.vectorize(dens.get)(a)
    np.testing.assert_array_equal(read(tmp_path / "out/rasters/npv_2000_2010.tif"), (change * k).astype(np.float32))
    table = pd.read_csv(tmp_path / "out/tables/valuation_region.csv", encoding="utf-8-sig")
    # Stock change: forest -> urban -190, grassland -> forest +140, forest -> grassland -140, grassland -> urban -50:
    # (-190 + 140 - 140 - 50) t C/ha x 0.09 ha = -21.6 t C.
    assert table["stock_change_tC"].tolist() == pytest.approx([-21.6])
    assert table["valuation_constant"].tolist() == pytest.approx([k])
    assert table["npv"].tolist() == pytest.approx([-21.6 * k])
    spread = pd.read_csv(tmp_path / "out/tables/uncertainty_region.csv", encoding="utf-8-sig").set_index("year")
    # 2000: forest 3 px, grassland 4 px, urban 1 px: 0.27 x 200 + 0.36 x 60 + 0.09 x 10 = 76.5 t C
    assert spread.loc[2000, "stock_tC_p05"] < 76.5 < spread.loc[2000, "stock_tC_p95"]
    report = (tmp_path / "out/report.html").read_text(encoding="utf-8")
    assert "Uncertainty and value of the carbon figures" in report and "tables/valuation_region.csv" in report
