"""Intensity Analysis on a worked example: three epochs, three classes, unequal intervals (5 and 10 years).

Hand values from the equations of Aldwaik & Pontius (2012); the same example was run through an
independent implementation of OpenLand's ``intensityAnalysis`` equations (see the README)."""

import numpy as np
import pandas as pd
import pytest

from pipeline.stages import intensity

M1 = [[50, 10, 5], [4, 30, 6], [1, 2, 12]]  # 2000 -> 2005, ha; rows from, columns to
M2 = [[40, 8, 7], [6, 28, 8], [2, 6, 15]]  # 2005 -> 2015; row sums = M1's column sums (55, 42, 23)


def _long(m) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"from_class": i + 1, "to_class": j + 1, "area_ha": float(v)}
            for i, row in enumerate(m)
            for j, v in enumerate(row)
            if v
        ]
    )


MATS = intensity.matrices({(2000, 2005): _long(M1), (2005, 2015): _long(M2)})


def test_interval_level():
    t = intensity.interval_level(MATS).set_index("y0")
    assert t.loc[2000, "changed_area_ha"] == 28 and t.loc[2005, "changed_area_ha"] == 37
    assert t.loc[2000, "annual_change_pct"] == pytest.approx(28 / 120 / 5 * 100)  # 4.667
    assert t.loc[2005, "annual_change_pct"] == pytest.approx(37 / 120 / 10 * 100)  # 3.083
    assert t.uniform_pct.tolist() == pytest.approx([(28 + 37) / 120 / 15 * 100] * 2)  # 3.611
    assert t.speed.tolist() == ["fast", "slow"]
    single = intensity.interval_level({(2000, 2005): MATS[(2000, 2005)]})
    assert single.speed.tolist() == ["uniform"]


def test_category_level():
    t = intensity.category_level(MATS).set_index(["y0", "class"])
    row = t.loc[(2000, 2)]
    assert row.gain_ha == 12 and row.loss_ha == 10
    assert row.gain_intensity_pct == pytest.approx(12 / 42 / 5 * 100)  # over its size in 2005
    assert row.loss_intensity_pct == pytest.approx(10 / 40 / 5 * 100)  # over its size in 2000
    assert row.gain == "active" and row.loss == "active"  # both above S_t = 4.667
    row = t.loc[(2005, 1)]
    assert row.gain_intensity_pct == pytest.approx(8 / 48 / 10 * 100) and row.gain == "dormant"
    assert row.loss_intensity_pct == pytest.approx(15 / 55 / 10 * 100)


def test_transition_level():
    t = intensity.transition_level(MATS).set_index(["y0", "kind", "class", "other_class"])
    gain = t.loc[(2000, "gain", 2, 1)]
    assert gain.area_ha == 10
    assert gain.intensity_pct == pytest.approx(10 / 65 / 5 * 100)  # R: over class 1's size in 2000
    assert gain.uniform_pct == pytest.approx(12 / (120 - 40) / 5 * 100)  # W: gain of 2 over the land not 2 in 2000
    assert gain.behaviour == "targets"
    assert t.loc[(2000, "gain", 2, 3)].behaviour == "avoids"  # 2 / 15 / 5 = 2.67 < 3.0
    loss = t.loc[(2005, "loss", 3, 2)]
    assert loss.area_ha == 6
    assert loss.intensity_pct == pytest.approx(6 / 42 / 10 * 100)  # Q: over class 2's size in 2015
    assert loss.uniform_pct == pytest.approx(8 / (120 - 30) / 10 * 100)  # V: loss of 3 over the land not 3 in 2015
    # Unequal sizes: class 2 has 40 ha in 2000 (M1 row 2) and 42 ha in 2005 (M1 column 2), so Q over the
    # size at y1 is 10 / 42 / 5 * 100 = 4.762 % a year (over the size at y0 it would be 5.0).
    loss = t.loc[(2000, "loss", 1, 2)]
    assert loss.area_ha == 10 and loss.intensity_pct == pytest.approx(4.7619047619)
    assert loss.uniform_pct == pytest.approx(15 / (120 - 55) / 5 * 100)  # V: 1 lost 15 ha; land not 1 in 2005: 65
    assert len(t) == 2 * 2 * 3 * 2  # intervals x kinds x classes x others


def test_a_class_absent_at_one_end_is_not_a_number():
    mats = intensity.matrices(
        {(2000, 2010): pd.DataFrame({"from_class": [1, 1], "to_class": [1, 5], "area_ha": [9.0, 1.0]})}
    )
    cat = intensity.category_level(mats).set_index("class")
    assert np.isnan(cat.loc[5, "loss_intensity_pct"]) and cat.loc[5, "loss"] == "n/a"
    assert cat.loc[5, "gain_intensity_pct"] == pytest.approx(10.0) and cat.loc[5, "gain"] == "active"


def test_a_region_of_one_class_has_an_empty_transition_level_table_with_its_columns():
    """Forest only, no change: no pair of classes, so no row; the table still has its columns (a run of such
    a region once stopped with KeyError 'class')."""
    one = {(2000, 2020): pd.DataFrame([[27.0]], index=[2], columns=[2])}
    t = intensity.transition_level(one)
    assert len(t) == 0
    assert list(t.columns[:8]) == [
        "y0",
        "y1",
        "years",
        "kind",
        "class",
        "class_name",
        "other_class",
        "other_class_name",
    ]
