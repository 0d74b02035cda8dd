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


# An exact exponential x0(k) = c r^k (k = 0, 1, ...) makes GM(1,1)'s least squares exact: with the background
# z(k) = (X(k) + X(k-1)) / 2 of the accumulated series X(k) = c (r^(k+1) - 1) / (r - 1), the whitened equation
# x0(k) = -a z(k) + b holds for every k >= 1 when a = -2 (r - 1) / (r + 1) and b = 2 c / (r + 1) (compare the
# terms in r^k and the constants). The time response then gives, for k >= 1,
# x^(k) = (c - b / a) (1 - e^a) e^(-a k) = c r / (r - 1) (1 - e^a) e^(-a k).
R = np.exp(0.3)


def _exponential_by_hand(c: float, k):
    a = -2 * (R - 1) / (R + 1)
    b = 2 * c / (R + 1)
    k = np.asarray(k)
    modelled = np.where(k == 0, c, c * R / (R - 1) * (1 - np.exp(a)) * np.exp(-a * k))
    return a, b, modelled


@pytest.mark.parametrize("c", [100.0, 3.7e15, 2e-20])
def test_gm11_fits_an_exact_exponential_by_hand_whatever_the_unit(c):
    """a, b and the modelled values by hand, for values in any unit: GM(1,1) does not depend on the unit
    (a is unchanged and b scales with the values). Fitted on the raw values, numpy's least squares dropped a
    column of the design as rank-deficient from values of about 1e14 (a wrong a of -0.10, no error) and
    below about 1e-16 ("no trend"). The years may come in any order."""
    years = np.arange(2000, 2021, 5)
    values = c * R ** np.arange(5)
    order = [3, 0, 4, 1, 2]
    model = trends.gm11(years[order], values[order])
    a, b, modelled = _exponential_by_hand(c, np.arange(8))
    assert model.step == 5 and model.years.tolist() == years.tolist()
    assert model.a == pytest.approx(a, rel=1e-12) and model.a == pytest.approx(-2 * np.tanh(0.15), rel=1e-12)
    assert model.b == pytest.approx(b, rel=1e-12)
    np.testing.assert_allclose(model.predict(np.arange(2000, 2036, 5)), modelled, rtol=1e-11)
    residuals = values - modelled[:5]  # by hand: 0 in the first year, then what GM(1,1)'s bias leaves
    np.testing.assert_allclose(model.residuals, residuals, rtol=1e-6, atol=1e-12 * c)
    assert model.C == pytest.approx(residuals.std() / values.std(), rel=1e-6)
    assert model.P == 1.0 and model.grade == "good"


def _graded(c: float, p: float) -> str:
    """The grade of a model whose C and P are given (the fit itself does not matter)."""
    fixed = type("Fixed", (trends.GreyModel,), {"C": c, "P": p})
    return fixed(np.arange(4), np.ones(4), 0.1, 1.0, 1).grade


@pytest.mark.parametrize(
    "c, p, grade",
    [
        (0.35, 0.95, "good"),
        (0.351, 0.95, "qualified"),
        (0.35, 0.949, "qualified"),
        (0.50, 0.80, "qualified"),
        (0.501, 0.80, "barely qualified"),
        (0.50, 0.799, "barely qualified"),
        (0.65, 0.70, "barely qualified"),
        (0.651, 0.70, "unqualified"),
        (0.65, 0.699, "unqualified"),
        (0.10, 0.50, "unqualified"),
    ],
)
def test_gm11_precision_grade_table(c, p, grade):
    """The posterior-error precision grades of GM(1,1) (Liu Sifeng and Lin Yi, Grey Systems: Theory and
    Applications, Springer 2010, table of accuracy grades): good C <= 0.35 and P >= 0.95, qualified
    C <= 0.50 and P >= 0.80, barely qualified C <= 0.65 and P >= 0.70, otherwise unqualified; both must hold."""
    assert _graded(c, p) == grade


@pytest.mark.parametrize(
    "years, values, message",
    [
        ([2000, 2000, 2000, 2000], [1, 2, 3, 4], "equally spaced"),
        ([2000, 2005, 2010, 2015], [1, 2, np.nan, 4], "finite values"),
        ([2000, 2005, 2010, 2015], [1, 2, np.inf, 4], "finite values"),
        ([2000, 2005, 2010, 2015], [1, 2, 0, 4], "positive values"),
        ([2000, 2005, 2010, 2015], [5, 5, 5, 5], "constant: GM(1,1) cannot be fitted"),
        ([2000, 2005, 2010, 2015], [5, 5, 5, 5], "its forecast is its value, 5"),
        ([2000, 2005, 2010, 2015], [5, 5, 5, 5.000000001], "no trend"),
        ([2000, 2005, 2010, 2015], [5, 5, 5, 5.000000001], "the mean level, about 5"),
    ],
)
def test_gm11_refusals_name_the_problem_and_the_file(years, values, message):
    with pytest.raises(InputError) as err:
        trends.gm11(years, values, "series.csv")
    assert message in err.value.message and err.value.path == "series.csv"


def test_gm11_fits_four_values_and_a_slight_trend():
    """Four values are enough; a change of 2 parts in a million per step is a trend (a well above 1e-9)."""
    model = trends.gm11([2000, 2005, 2010, 2015], [5, 5, 5, 5.00001])
    assert 1e-9 < abs(model.a) < 1e-5


@pytest.mark.filterwarnings("error::RuntimeWarning")  # 0/0 and overflow are expected, and silenced
def test_diversity_dynamic_degree_and_grey_relation_edge_cases_by_hand():
    assert trends.gibbs_martin([2, 2, 2, 2]) == pytest.approx(0.75)  # n equal classes: 1 - 1/n
    # Areas as integers (m²) whose squares pass 2^63: still 1 - 1/2.
    assert trends.gibbs_martin(np.array([4_000_000_000, 4_000_000_000])) == pytest.approx(0.5)
    assert np.isnan(trends.gibbs_martin([0, 0]))  # no area: no diversity
    assert trends.dynamic_degree(0.5, 1.0, 2) == pytest.approx(50.0)  # (1 - 0.5) / 0.5 / 2 years x 100
    assert np.isnan(trends.dynamic_degree(0, 5, 1))  # from nothing: no rate
    # A series proportional to the reference is fully related (no difference at all): grade 1.
    np.testing.assert_array_equal(trends.grey_relational_grades([1, 2, 4], [[3, 6, 12], [0.5, 1, 2]]), [1.0, 1.0])
    # rho = 0.25 on the hand example above: coefficient = (0 + 0.25 x 1) / (d + 0.25 x 1).
    grades = trends.grey_relational_grades([1, 1.5, 2], [[2, 2, 2], [1, 1.5, 2.5]], rho=0.25)
    np.testing.assert_allclose(grades, [(1 + 1 / 3 + 0.2) / 3, (1 + 1 + 1 / 3) / 3])
    # One series (1-D) against the reference: 1, 1, 1 against 1, 2, 4: differences 0, 1, 3, max 3, rho x max 1.5.
    np.testing.assert_allclose(trends.grey_relational_grades([1, 2, 4], [5, 5, 5]), [(1 + 1.5 / 2.5 + 1.5 / 4.5) / 3])


def _classes(rows):
    return pd.DataFrame(rows, columns=["zone_id", "zone_name", "year", "class", "area_ha"])


@pytest.mark.filterwarnings("error::RuntimeWarning")  # 0/0 and overflow are expected, and silenced
def test_trend_table_rows_by_hand_for_zones_in_input_order():
    """Zones in the order the classes table gives them (z2 before z1), whatever the order of its years
    (2010 first). Epochs 2000, 2010 and 2015 (spans of 10 and 5 years), classes 1 (cropland) and 5 (urban).
    z2: cropland 80, 70, 60; urban 20, 30, 40; net emission 10, 20, 40 (three years: a grey grade but no
    GM(1,1)). z1: cropland 0, 10, 20 (nothing to grow from in 2000); urban 50, 50, 55; no net emission.
    z3: one epoch without area (no diversity) and no balance rows."""
    rows = []
    for year, z2, z1 in ((2010, (70, 30), (10, 50)), (2000, (80, 20), (0, 50)), (2015, (60, 40), (20, 55))):
        rows += [("z2", "Beta", year, 1, z2[0]), ("z2", "Beta", year, 5, z2[1])]
        rows += [("z1", "Alpha", year, 1, z1[0]), ("z1", "Alpha", year, 5, z1[1])]
    rows += [("z3", "Gamma", 2000, 1, 0.0), ("z3", "Gamma", 2000, 5, 0.0)]
    balance = pd.DataFrame(
        {
            "zone_id": ["z2"] * 3 + ["z1"] * 3,
            "year": [2000, 2010, 2015] * 2,
            "areas_from_epoch": [2000, 2010, 2015] * 2,
            "nearest_epoch": False,
            "statistics": False,
            "net_emission_tC_yr": [10.0, 20, 40, np.nan, np.nan, np.nan],
        }
    )
    t = trends.trend_table(_classes(rows), balance)
    assert t.columns.tolist() == [
        "zone_id", "zone_name", "indicator", "class", "class_name", "y0", "y1", "value", "unit", "note",
    ]  # fmt: skip
    for column in ("class", "y0", "y1"):
        assert t[column].dtype == "Int64"
    na = None
    # Grey grades of z2 by hand: emission 1, 2, 4 (over 10); cropland 1, 7/8, 3/4; urban 1, 3/2, 2;
    # |differences| cropland 0, 9/8, 13/4, urban 0, 1/2, 2: min 0, max 13/4, rho x max = 13/8.
    h = 13 / 8
    grey_crop = (1 + h / (9 / 8 + h) + h / (13 / 4 + h)) / 3
    grey_urban = (1 + h / (1 / 2 + h) + h / (2 + h)) / 3
    nan = float("nan")
    expected = [
        ("z2", "Beta", "gibbs_martin_diversity", na, "", na, 2000, 1 - (0.8**2 + 0.2**2), "index 0-1", ""),
        ("z2", "Beta", "gibbs_martin_diversity", na, "", na, 2010, 1 - (0.7**2 + 0.3**2), "index 0-1", ""),
        ("z2", "Beta", "gibbs_martin_diversity", na, "", na, 2015, 1 - (0.6**2 + 0.4**2), "index 0-1", ""),
        ("z2", "Beta", "dynamic_degree", 1, "cropland", 2000, 2010, -10 / 80 / 10 * 100, "% per year", ""),
        ("z2", "Beta", "dynamic_degree", 5, "urban construction", 2000, 2010, 10 / 20 / 10 * 100, "% per year", ""),
        ("z2", "Beta", "dynamic_degree", 1, "cropland", 2010, 2015, -10 / 70 / 5 * 100, "% per year", ""),
        ("z2", "Beta", "dynamic_degree", 5, "urban construction", 2010, 2015, 10 / 30 / 5 * 100, "% per year", ""),
        ("z2", "Beta", "grey_relational_grade", 1, "cropland", 2000, 2015, grey_crop, "grade 0-1", ""),
        ("z2", "Beta", "grey_relational_grade", 5, "urban construction", 2000, 2015, grey_urban, "grade 0-1", ""),
        ("z2", "Beta", "net_emission_forecast", na, "", na, na, nan, "t C/yr",
         "epochs [2000, 2010, 2015]: GM(1,1) needs at least 4 values, got 3"),
        ("z1", "Alpha", "gibbs_martin_diversity", na, "", na, 2000, 0.0, "index 0-1", ""),
        ("z1", "Alpha", "gibbs_martin_diversity", na, "", na, 2010, 1 - (10**2 + 50**2) / 60**2, "index 0-1", ""),
        ("z1", "Alpha", "gibbs_martin_diversity", na, "", na, 2015, 1 - (20**2 + 55**2) / 75**2, "index 0-1", ""),
        ("z1", "Alpha", "dynamic_degree", 1, "cropland", 2000, 2010, nan, "% per year", ""),
        ("z1", "Alpha", "dynamic_degree", 5, "urban construction", 2000, 2010, 0.0, "% per year", ""),
        ("z1", "Alpha", "dynamic_degree", 1, "cropland", 2010, 2015, 10 / 10 / 5 * 100, "% per year", ""),
        ("z1", "Alpha", "dynamic_degree", 5, "urban construction", 2010, 2015, 5 / 50 / 5 * 100, "% per year", ""),
        ("z1", "Alpha", "grey_relational_grade", na, "", na, na, nan, "grade 0-1",
         "fewer than 3 years with a net emission"),
        ("z1", "Alpha", "net_emission_forecast", na, "", na, na, nan, "t C/yr", "no year with a net emission"),
        ("z3", "Gamma", "gibbs_martin_diversity", na, "", na, 2000, nan, "index 0-1", ""),
        ("z3", "Gamma", "grey_relational_grade", na, "", na, na, nan, "grade 0-1",
         "fewer than 3 years with a net emission"),
        ("z3", "Gamma", "net_emission_forecast", na, "", na, na, nan, "t C/yr", "no year with a net emission"),
    ]  # fmt: skip
    got = t.astype(dict.fromkeys(("class", "y0", "y1"), object)).replace({pd.NA: None})
    assert len(got) == len(expected)
    for row, want in zip(got.itertuples(index=False), expected):
        *keys, value, unit, note = want
        assert list(row[:7]) == keys and row.unit == unit and row.note == note, (row, want)
        assert row.value == pytest.approx(value, nan_ok=True, rel=1e-12), (row, want)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # 0/0 and overflow are expected, and silenced
def test_trend_table_grey_grade_of_a_class_absent_in_the_first_year():
    """A class with no area in the first balance year has no grade (a note says why); the others are graded
    among themselves. Three balance years, the least the grade needs: emission 10, 20, 40 -> 1, 2, 4;
    forest 0, 0, 10 (no grade; no dynamic degree from 0 to 0 either); cropland 80, 70, 60 -> 1, 7/8, 3/4:
    differences 0, 9/8, 13/4."""
    rows = []
    for year, crop, forest in ((2000, 80, 0), (2010, 70, 0), (2020, 60, 10)):
        rows += [("z", "Z", year, 1, crop), ("z", "Z", year, 2, forest)]
    balance = pd.DataFrame(
        {
            "zone_id": "z",
            "year": [2000, 2010, 2020],
            "areas_from_epoch": [2000, 2010, 2020],
            "nearest_epoch": False,
            "statistics": False,
            "net_emission_tC_yr": [10.0, 20, 40],
        }
    )
    t = trends.trend_table(_classes(rows), balance)
    grey = t[t.indicator == "grey_relational_grade"].set_index("class")
    h = 13 / 8  # rho x max difference
    assert grey.loc[1, "value"] == pytest.approx((1 + h / (9 / 8 + h) + h / (13 / 4 + h)) / 3, rel=1e-12)
    assert grey.loc[1, "note"] == "" and grey.loc[1, "y0"] == 2000 and grey.loc[1, "y1"] == 2020
    assert np.isnan(grey.loc[2, "value"]) and grey.loc[2, "note"] == "zero area or net emission in the first year"
    forest = t[(t.indicator == "dynamic_degree") & (t["class"] == 2)].set_index("y0")["value"]
    assert np.isnan(forest[2000]) and np.isnan(forest[2010])  # from no area: no rate


def test_trend_table_forecast_of_an_exact_exponential_by_hand():
    """Five epochs 2000-2020 whose net emission grows as 100 e^(0.3 k): GM(1,1)'s a, b, C, P and the forecast
    ten years on (2025 and 2030, steps 5 and 6) by hand (see ``_exponential_by_hand``)."""
    years = list(range(2000, 2021, 5))
    rows = [("z", "Z", y, 1, 10.0 + i) for i, y in enumerate(years)]
    net = 100 * R ** np.arange(5)
    balance = pd.DataFrame(
        {
            "zone_id": "z",
            "year": years,
            "areas_from_epoch": years,
            "nearest_epoch": False,
            "statistics": False,
            "net_emission_tC_yr": net,
            # Other columns may be empty in a year that has a net emission (the statistical terms outside the
            # statistics years): only a missing net emission drops a year.
            "source_agricultural_tC_yr": np.nan,
        }
    )
    t = trends.trend_table(_classes(rows), balance).set_index("indicator")
    a, b, modelled = _exponential_by_hand(100.0, np.arange(7))
    residuals = net - modelled[:5]
    fit = f"GM(1,1) on 2000-2020: a={a:.6g}, b={b:.6g}, grade good"
    assert t.loc["gm11_C", "value"] == pytest.approx(residuals.std() / net.std(), rel=1e-6)
    assert t.loc["gm11_P", "value"] == 1.0
    for name, unit in (("gm11_C", "ratio"), ("gm11_P", "probability")):
        row = t.loc[name]
        assert (row["unit"], row["y0"], row["y1"], row["note"]) == (unit, 2000, 2020, fit)
    forecast = t.loc[["net_emission_forecast"]]
    assert forecast["y1"].tolist() == [2025, 2030] and (forecast["y0"] == 2020).all()
    assert (forecast["unit"] == "t C/yr").all() and (forecast["note"] == fit).all()
    np.testing.assert_allclose(forecast["value"].to_numpy(float), modelled[5:], rtol=1e-11)


def test_trend_table_diversity_of_a_zone_under_one_hectare():
    """A zone of 0.3 + 0.2 ha still has a diversity: 1 - (0.09 + 0.04) / 0.25 = 0.48."""
    classes = _classes([("z", "Z", 2000, 1, 0.3), ("z", "Z", 2000, 2, 0.2)])
    balance = pd.DataFrame(
        columns=["zone_id", "year", "areas_from_epoch", "nearest_epoch", "statistics", "net_emission_tC_yr"]
    )
    t = trends.trend_table(classes, balance)
    assert t.loc[t.indicator == "gibbs_martin_diversity", "value"].tolist() == [pytest.approx(0.48)]


def _forecast_rows(years, net, statistics, nearest):
    rows: list = []

    def add(zone, indicator, value, unit, cls=None, y0=None, y1=None, note=""):
        rows.append({"indicator": indicator, "value": value, "unit": unit, "y0": y0, "y1": y1, "note": note})

    balance = {
        "year": np.array(years),
        "net_emission_tC_yr": np.array(net, float),
        "statistics": np.array(statistics),
        "nearest_epoch": np.array(nearest),
    }
    trends._forecast(("z", "Z"), balance, add)
    return rows


def test_a_forecast_note_names_every_series_tried():
    """Statistics for 2016 and 2017 (two values), epochs 2000, 2005, 2010 (three), all five years unevenly
    spaced: no series can be modelled and the note says why for each, in the order they are tried."""
    years = [2000, 2005, 2010, 2016, 2017]
    flags = [False, False, False, True, True]
    rows = _forecast_rows(years, [5.0, 6, 7, 8, 9], flags, flags)
    assert len(rows) == 1 and rows[0]["indicator"] == "net_emission_forecast" and np.isnan(rows[0]["value"])
    assert rows[0]["unit"] == "t C/yr"
    assert rows[0]["note"] == (
        "statistics years [2016, 2017]: GM(1,1) needs at least 4 values, got 2; "
        "epochs [2000, 2005, 2010]: GM(1,1) needs at least 4 values, got 3; "
        "all years [2000, 2005, 2010, 2016, 2017]: GM(1,1) needs equally spaced years; "
        "got [2000, 2005, 2010, 2016, 2017]"
    )


@pytest.mark.filterwarnings("error::RuntimeWarning")  # 0/0 and overflow are expected, and silenced
def test_a_forecast_beyond_the_largest_float_is_a_note():
    """Net emission 1e300 x 7^k over 2000-2003: a = -2 (7 - 1) / (7 + 1) = -1.5 and b = 2 x 1e300 / 8 (the
    exponential rule above), so ten years on the model reaches about 3.4e302 x e^15 > 1.8e308: no number, a
    note (C and P are given)."""
    none = [False] * 4
    rows = _forecast_rows([2000, 2001, 2002, 2003], 1e300 * 7.0 ** np.arange(4), none, none)
    assert [r["indicator"] for r in rows] == ["gm11_C", "gm11_P", "net_emission_forecast"]
    fit = "GM(1,1) on 2000-2003: a=-1.5, b=2.5e+299, grade "
    assert all(r["note"].startswith(fit) for r in rows)
    last = rows[-1]
    assert np.isnan(last["value"]) and last["unit"] == "t C/yr" and last["y0"] == 2003
    assert last["note"].endswith(": the forecast overflows")
