"""Seed 002's statistics-based carbon terms per zone and year (t C/yr), read and checked at the edge.

* agricultural source   E_f = sum_i G_i x coefficient_i   (fertiliser, sown area, machinery, irrigation, film)
* construction source   E_C = H x (GDP2 + GDP3) x K       (H in t standard coal per 10^4 yuan, GDP in 10^4 yuan)
* cropland sink         C_f = sum_i Cd_i x Y_i / H_i      (Y economic yield, H harvest index, Cd carbon fraction)

The coefficients come from a table (seed 002's by default) so that every figure carries its source.
Seed 002 lost the image of its crop formula; its text names Cd, Yw and Hi, so the sink is the crop's
whole dry biomass (yield / harvest index) times its carbon absorption rate, with no moisture term.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.model.inputs import ENERGY_PARTS, TERMS


def terms(statistics: pd.DataFrame, coefficients: pd.DataFrame) -> pd.DataFrame:
    """Per zone_id and year: source_agricultural_tC_yr, source_construction_tC_yr, sink_cropland_tC_yr
    (NaN where the statistics do not give that term)."""
    stats = statistics.copy()
    if "energy_tce" not in stats.columns and set(ENERGY_PARTS) <= set(stats.columns):
        h, gdp2, gdp3 = (stats[c] for c in ENERGY_PARTS)
        stats["energy_tce"] = h * (gdp2 + gdp3)  # tce/10^4 yuan x 10^4 yuan = tce
    out = stats[["zone_id", "year"]].copy()
    for term, column in TERMS.items():
        rows = coefficients[coefficients["term"] == term]
        if not set(rows["column"]) <= set(stats.columns):
            out[column] = np.nan
            continue
        weight = rows["t_C_per_unit"].to_numpy()
        if term == "cropland_sink":
            weight = weight / rows["economic_coefficient"].to_numpy()
        out[column] = stats[list(rows["column"])].to_numpy() @ weight
    return out
