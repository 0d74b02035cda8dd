"""Seed 002's statistics-based carbon terms per zone and year (t C/yr), read and checked at the edge.

* agricultural source   E_f = sum_i G_i x coefficient_i   (fertiliser, sown area, machinery, irrigation, film)
* construction source   E_C = H x (GDP2 + GDP3) x K       (H in t standard coal per 10^4 yuan, GDP in 10^4 yuan)
* cropland sink         C_f = sum_i Cd_i x Y_i / H_i      (Y economic yield, H harvest index, Cd carbon fraction)

The coefficients come from a table (seed 002's by default) so that every figure carries its source.
Seed 002 lost the image of its crop formula; its text names Cd, Yw and Hi, so the sink is the crop's
whole dry biomass (yield / harvest index) times its carbon absorption rate, with no moisture term.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import InputError
from pipeline.parameters import read_table, zone_id_text

TERMS = {
    "agricultural_source": "source_agricultural_tC_yr",
    "construction_source": "source_construction_tC_yr",
    "cropland_sink": "sink_cropland_tC_yr",
}
#: E_C's inputs when total energy use (energy_tce) is not given directly.
ENERGY_PARTS = ("energy_intensity_tce_per_10k_yuan", "gdp_secondary_10k_yuan", "gdp_tertiary_10k_yuan")
DESCRIPTIVE = {"zone_name", "name", "label", "note", "source"}


def default_coefficients() -> Path:
    return Path(str(resources.files("pipeline.defaults").joinpath("coefficients_seed002.csv")))


def read_coefficients(path: Path | None = None) -> pd.DataFrame:
    """term, column, t_C_per_unit, economic_coefficient, source; checked for numbers and known terms."""
    path = Path(path or default_coefficients())
    frame = read_table(path)
    need = ["term", "column", "t_c_per_unit"]
    if missing := [c for c in need if c not in frame.columns]:
        raise InputError(f"coefficient table needs columns term, column, t_C_per_unit; missing {missing}", path)
    frame = frame.rename(columns={"t_c_per_unit": "t_C_per_unit"})
    frame["term"] = frame["term"].astype(str).str.strip()
    frame["column"] = frame["column"].astype(str).str.strip().str.lower()
    if bad := sorted(set(frame["term"]) - set(TERMS)):
        raise InputError(f"unknown terms {bad}; use {', '.join(TERMS)}", path)
    if "economic_coefficient" not in frame.columns:
        frame["economic_coefficient"] = np.nan
    frame[["t_C_per_unit", "economic_coefficient"]] = frame[["t_C_per_unit", "economic_coefficient"]].apply(
        pd.to_numeric, errors="coerce")
    crops = frame["term"] == "cropland_sink"
    bad = frame[frame["t_C_per_unit"].isna() | (frame["t_C_per_unit"] < 0)
                | (crops & ~(frame["economic_coefficient"] > 0))]
    if len(bad):
        raise InputError(f"missing, negative or zero coefficients in rows {', '.join(str(i + 2) for i in bad.index)} "
                         "(cropland_sink rows need an economic_coefficient > 0)", path)
    if dup := sorted(frame.loc[frame["column"].duplicated(), "column"]):
        raise InputError(f"columns listed more than once: {dup}", path)
    if "source" not in frame.columns:
        frame["source"] = ""
    frame.attrs["path"] = path
    return frame[["term", "column", "t_C_per_unit", "economic_coefficient", "source"]]


def read_statistics(path: Path, coefficients: pd.DataFrame) -> pd.DataFrame:
    """One row per zone_id and year with the columns of whole terms; numbers >= 0, no duplicates."""
    frame = read_table(path)
    if missing := [c for c in ("zone_id", "year") if c not in frame.columns]:
        raise InputError(f"statistics need columns zone_id and year; missing {missing}", path)
    known = set(coefficients["column"]) | set(ENERGY_PARTS)
    unknown = [c for c in frame.columns if c not in known | DESCRIPTIVE | {"zone_id", "year"}]
    if unknown:
        hints = [f"{c} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(c, known, n=1)) else c
                 for c in unknown]
        raise InputError(f"unknown statistics columns: {', '.join(hints)}; known: {', '.join(sorted(known))}", path)
    values = [c for c in frame.columns if c in known]
    numbers = frame[["year", *values]].apply(pd.to_numeric, errors="coerce")
    bad = frame[numbers.isna().any(axis=1) | (numbers[values] < 0).any(axis=1) | (numbers["year"] % 1 != 0)]
    if len(bad):
        raise InputError(f"empty, non-numeric or negative values in rows {', '.join(str(i + 2) for i in bad.index[:10])}",
                         path)
    out = numbers.astype({"year": "int64"})
    out.insert(0, "zone_id", zone_id_text(frame["zone_id"]))
    dup = out[out.duplicated(["zone_id", "year"], keep=False)]
    if len(dup):
        raise InputError(f"zone_id and year repeated: {sorted(set(zip(dup.zone_id, dup.year)))[:10]}", path)
    _whole_terms(set(values), coefficients, path)
    out.attrs["path"] = Path(path)
    return out


def _whole_terms(columns: set[str], coefficients: pd.DataFrame, path: Path) -> None:
    """Each term is either fully given or absent: half a term would be a silent underestimate."""
    found = []
    for term, group in coefficients.groupby("term"):
        need = set(group["column"])
        if term == "construction_source" and "energy_tce" not in columns:
            need = set(ENERGY_PARTS)
        have = need & columns
        if have and have != need:
            raise InputError(f"{term} needs all of {sorted(need)}; missing {sorted(need - have)}", path)
        found += [term] if have else []
    if not found:
        raise InputError(f"no complete term in the statistics; give the columns of one of {', '.join(TERMS)}", path)


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
