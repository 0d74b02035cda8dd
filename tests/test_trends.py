"""seed 002's trend indicators: GM(1,1) against the paper's published C and P, the rest by hand."""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import InputError
from pipeline.stages import trends

from .helpers import cli

# Seed 002 Table 5: Guizhou net land-use carbon emission 2005-2019 (10^4 t).
NET_EMISSION = [
    2076.29,
    2682.09,
    3073.00,
    2698.84,
    3054.63,
    3490.35,
    3700.12,
    4608.31,
    4260.19,
    4379.78,
    4377.37,
    4459.31,
    4727.81,
    4705.79,
    5057.62,
]


def test_gm11_gives_seed_002_published_c_and_p():
    model = trends.gm11(range(2005, 2020), NET_EMISSION)
    assert round(model.C, 4) == 0.3235 and round(model.P, 4) == 0.9333  # section 3.4 of the paper
    assert model.grade == "qualified"  # C <= 0.35 but P < 0.95
    # The paper: observed above modelled in 2007, 2011, 2012, 2013 and 2014, below in 2006, 2008, 2009 ...
    residual = dict(zip(range(2005, 2020), model.residuals))
    assert all(residual[y] > 0 for y in (2007, 2011, 2012, 2013, 2014))
    assert all(residual[y] < 0 for y in (2006, 2008, 2009, 2016, 2017, 2018, 2019))


def test_gm11_recovers_an_exact_exponential():
    years = np.arange(2000, 2021, 5)
    values = 100 * np.exp(0.3 * np.arange(5))  # x0(k) = c e^{-a k} with a = -0.3
    model = trends.gm11(years, values)
    # Least squares on the whitened equation is exact for an exponential: a = -2 (e^0.3 - 1) / (e^0.3 + 1).
    assert model.a == pytest.approx(-2 * np.tanh(0.15), rel=1e-12)
    # The time response grows by e^{-a} per step (slightly less than e^0.3: GM(1,1)'s known bias).
    modelled = model.predict(np.arange(2005, 2036, 5))
    np.testing.assert_allclose(modelled[1:] / modelled[:-1], np.exp(-model.a), rtol=1e-12)
    assert model.C < 0.05 and model.P == 1 and model.grade == "good"


@pytest.mark.parametrize(
    "years, values, message",
    [
        ([2000, 2005, 2010], [1, 2, 3], "at least 4 values"),
        ([2000, 2005, 2010, 2020], [1, 2, 3, 4], "equally spaced"),
        ([2000, 2001, 2002, 2003], [1, -2, 3, 4], "positive values"),
    ],
)
def test_gm11_refuses_what_it_cannot_model(years, values, message):
    with pytest.raises(InputError, match=message):
        trends.gm11(years, values)


def test_forecast_command(tmp_path, capsys):
    series = tmp_path / "series.csv"
    series.write_text("Year,Value\n" + "".join(f"{y},{v}\n" for y, v in zip(range(2005, 2020), NET_EMISSION)))
    assert cli("forecast", series, "--until", "2030", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"a", "b", "C", "P", "grade", "forecast"}
    assert list(out["forecast"]) == [str(y) for y in range(2020, 2031)]
    assert round(out["C"], 4) == 0.3235 and out["forecast"]["2030"] == pytest.approx(8507.51, abs=0.01)
    assert cli("forecast", series, "--until", "2022") == 0
    assert "C = 0.3235, small-error probability P = 0.9333: qualified" in capsys.readouterr().out
    (tmp_path / "bad.csv").write_text("year,emission\n2000,1\n")
    assert cli("forecast", tmp_path / "bad.csv", "--until", "2030") == 1
    err = capsys.readouterr().err
    assert "bad.csv" in err and "needs columns year,value" in err


def test_diversity_dynamic_degree_and_grey_relation_by_hand():
    assert trends.gibbs_martin([1, 1]) == 0.5 and trends.gibbs_martin([3, 1]) == pytest.approx(0.375)
    assert trends.gibbs_martin([5, 0]) == 0
    assert trends.dynamic_degree(100, 110, 5) == pytest.approx(2.0)  # % per year
    # Reference 1, 1.5, 2; series flat (differences 0, .5, 1) and close (0, 0, .5): min 0, max 1, rho 0.5.
    grades = trends.grey_relational_grades([1, 1.5, 2], [[2, 2, 2], [1, 1.5, 2.5]])
    np.testing.assert_allclose(grades, [(1 + 0.5 + 1 / 3) / 3, (1 + 1 + 0.5) / 3])


def test_trend_table_of_a_zone():
    classes = pd.DataFrame(
        {
            "zone_id": "z",
            "zone_name": "Z",
            "year": [2000, 2000, 2010, 2010, 2020, 2020],
            "class": [1, 2] * 3,
            "area_ha": [60.0, 40, 50, 50, 45, 55],
        }
    )
    balance = pd.DataFrame(
        {
            "zone_id": "z",
            "year": [2000, 2010, 2020, 2030],
            "areas_from_epoch": [2000, 2010, 2020, 2020],
            "nearest_epoch": [False, False, False, True],
            "statistics": False,
            "net_emission_tC_yr": [10.0, 12, 15, 19],
        }
    )
    t = trends.trend_table(classes, balance)
    dd = t[t.indicator == "dynamic_degree"].set_index(["class", "y0"])["value"]
    assert dd[(1, 2000)] == pytest.approx(-10 / 60 / 10 * 100) and dd[(2, 2010)] == pytest.approx(5 / 50 / 10 * 100)
    gm = t[t.indicator == "gibbs_martin_diversity"].set_index("y1")["value"]
    assert gm[2000] == pytest.approx(1 - (0.36 + 0.16)) and gm[2010] == 0.5
    grey = t[t.indicator == "grey_relational_grade"].set_index("class")["value"]
    # By hand (Deng's grade, rho 0.5), 2030 using the 2020 land: each series over its first value.
    # Emission 10, 12, 15, 19 -> 1, 1.2, 1.5, 1.9; class 1 60, 50, 45, 45 -> 1, 5/6, 3/4, 3/4;
    # class 2 40, 50, 55, 55 -> 1, 5/4, 11/8, 11/8. |differences|: class 1 0, 11/30, 3/4, 23/20;
    # class 2 0, 1/20, 1/8, 21/40. Min 0, max 23/20: coefficient = (0 + 0.5 * 1.15) / (d + 0.5 * 1.15).
    coefficient = [
        [0.575 / (d + 0.575) for d in row] for row in ([0, 11 / 30, 3 / 4, 23 / 20], [0, 1 / 20, 1 / 8, 21 / 40])
    ]
    hand = [sum(row) / 4 for row in coefficient]  # 0.594479, 0.816039
    assert hand == pytest.approx([0.594479, 0.816039], abs=1e-6)
    np.testing.assert_allclose(grey.to_numpy(), hand)
    # Three epochs are too few for GM(1,1); the four balance years (one standing on 2020's land) are used.
    forecast = t[t.indicator == "net_emission_forecast"]
    assert forecast.y1.tolist() == [2040] and "GM(1,1) on 2000-2030" in forecast.note.iloc[0]


def test_a_forecast_note_names_the_series_and_why_it_cannot_be_modelled():
    from pipeline.stages.trends import _forecast

    notes: list = []

    def add(zone, indicator, value, unit, cls=None, y0=None, y1=None, note=""):
        notes.append((indicator, note))

    years = np.array([2000, 2005, 2010, 2015])
    none = np.zeros(4, bool)
    sink = {
        "year": years,
        "net_emission_tC_yr": np.array([-5.0, -6, -7, -8]),
        "statistics": none,
        "nearest_epoch": none,
    }
    _forecast(("z", "z"), sink, add)
    # Four epochs, no statistics: the note is about the epochs' values, not "got 0 values".
    assert notes == [
        (
            "net_emission_forecast",
            "epochs [2000, 2005, 2010, 2015]: GM(1,1) needs positive values "
            "(a series that is a net sink or crosses zero cannot be modelled; forecast sources and sinks "
            "separately)",
        )
    ]
    notes.clear()
    uneven = dict(sink, year=np.array([2000, 2005, 2010, 2020]), net_emission_tC_yr=np.array([5.0, 6, 7, 8]))
    _forecast(("z", "z"), uneven, add)
    assert notes[0][1].startswith("epochs [2000, 2005, 2010, 2020]: GM(1,1) needs equally spaced years")


def test_forecast_prefers_the_statistics_years_over_the_epochs():
    """Four epochs (2000-2015, every 5 years) and four statistics years (2016-2019, on the 2015 land):
    both are series GM(1,1) can fit; the statistics years are used (the docs: statistics, then epochs)."""
    classes = pd.DataFrame(
        {
            "zone_id": "z",
            "zone_name": "Z",
            "year": [y for y in (2000, 2005, 2010, 2015) for _ in (1, 2)],
            "class": [1, 2] * 4,
            "area_ha": [60.0, 40, 55, 45, 50, 50, 45, 55],
        }
    )
    years = [2000, 2005, 2010, 2015, 2016, 2017, 2018, 2019]
    balance = pd.DataFrame(
        {
            "zone_id": "z",
            "year": years,
            "areas_from_epoch": [2000, 2005, 2010, 2015, 2015, 2015, 2015, 2015],
            "nearest_epoch": [False] * 4 + [True] * 4,
            "statistics": [False] * 4 + [True] * 4,
            "net_emission_tC_yr": [10.0, 12, 15, 19, 20, 21, 22, 23],
        }
    )
    t = trends.trend_table(classes, balance)
    forecast = t[t.indicator == "net_emission_forecast"]
    assert "GM(1,1) on 2016-2019" in forecast.note.iloc[0]
    assert forecast.y1.tolist() == list(range(2020, 2030)) and (forecast.y0 == 2019).all()
