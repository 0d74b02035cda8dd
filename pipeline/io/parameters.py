"""Carbon parameter tables at the edge: densities (t C/ha) and annual rates (t C/ha/yr), read and checked once.

Density tables follow InVEST's carbon pool table so that InVEST users' files work as they are: a key
column (``class`` for target classes, or ``lucode`` for the product's own codes), the pool
columns ``c_above, c_below, c_soil, c_dead`` in any letter case, extra columns ignored, UTF-8 or
Latin-1. Optional ``zone`` (an id of a zone layer, for regional densities) and ``source`` columns.

Optional spread columns give each value a distribution for the ``uncertainty:`` draws: ``<value>_sd`` (a
standard deviation, same unit) or ``<value>_low`` and ``<value>_high`` (bounds of a triangular distribution
whose mode is the value itself); ``<value>`` is a pool (``c_above_sd``) or ``rate`` (``rate_sd``). InVEST's
uncertainty table (``C_ABOVE_MEAN, C_ABOVE_SD, ...``) reads as it is: ``<pool>_mean`` stands for the pool.
"""

from __future__ import annotations

import io
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, InputError, did_you_mean
from pipeline.io.tables import read_table, read_text, zone_id_text
from pipeline.io.tables import spreadsheet_rows as _rows
from pipeline.model.classes import (
    CLASS_CODES,
    NODATA,
)
from pipeline.model.inputs import (
    ENERGY_PARTS,
    POOLS,
    TERMS,
    ParameterTable,
    Scheme,
)

KEYS = ("class", "lucode")

#: Annual rates used when the config names none: seed 002's Table 2.
DATA = Path(str(resources.files("pipeline").joinpath("data")))
DEFAULT_RATES = DATA / "default_rates.csv"
#: Built-in schemes: the tables in pipeline/data/schemes/.
BUILTIN_SCHEMES = ("cnlucc", "clcd", "esa_worldcover", "globeland30", "modis_igbp", "nlcd", "corine")

#: Largest carbon density accepted in any one pool (t C/ha). The densest carbon stocks on Earth (old-growth
#: temperate rain forest, with soil) hold about 1,000-1,500 t C/ha in all pools together, so one pool above
#: this is a unit slip (kg C/ha, g C/m2 or t C/km2 are 100-1000 times larger) or a typo, never a forest.
#: The bound is per pool, not on the total: deep peat soil alone can come near it, and a per-pool bound
#: names the cell at fault.
MAX_DENSITY_TC_HA = 2000.0
#: Largest magnitude of an annual rate accepted (t C/ha/yr). Published land-use carbon rates are of order
#: 0.001-10 t C/ha/yr (sinks and sources alike); 100 is far beyond any and well below a kg-for-t slip.
MAX_RATE_TC_HA_YR = 100.0


#: Suffixes of the spread columns of a value: a standard deviation, or the bounds of a triangular distribution.
SPREAD = ("sd", "low", "high")


def read_densities(path: Path) -> ParameterTable:
    """Carbon density per class or product code (t C/ha per pool), checked: numbers, >= 0, unique keys; with
    the spread columns of the pools that have them (checked by ``_spread``)."""
    frame = read_table(path)
    # InVEST's uncertainty table names the pools <pool>_mean (C_ABOVE_MEAN); the mean is the point value.
    means = {f"{p}_mean": p for p in POOLS if p not in frame.columns and f"{p}_mean" in frame.columns}
    frame = frame.rename(columns=means)
    missing = [p for p in POOLS if p not in frame.columns]
    if missing:
        raise InputError(f"density table needs pool columns {', '.join(POOLS)} (t C/ha); missing {missing}", path)
    spread = spread_columns(frame, {p: p for p in POOLS}, path)
    table = _keyed(frame, path, [*POOLS, *spread])
    _spread(table, {p: p for p in POOLS}, path, "t C/ha", floor=0.0)
    negative = table[(table[list(POOLS)] < 0).any(axis=1)]
    if len(negative):
        raise InputError(f"negative carbon density in rows {_rows(negative)}", path)
    dense = table[(table[list(POOLS)] > MAX_DENSITY_TC_HA).any(axis=1)]
    if len(dense):
        raise InputError(
            f"carbon density above {MAX_DENSITY_TC_HA:,.0f} t C/ha in one pool in rows {_rows(dense)} (the densest "
            "forests hold about 1,500 t C/ha in all pools); give t C/ha, not kg C/ha, g C/m2 or t C/km2",
            path,
        )
    return ParameterTable(Path(path), _key_name(frame), table)


def read_rates(path: Path) -> ParameterTable:
    """Annual carbon rate per class or product code (t C/ha/yr; negative = uptake, positive = emission)."""
    frame = read_table(path)
    if "rate_tc_ha_yr" not in frame.columns:
        raise InputError("rate table needs a column rate_tC_ha_yr (t C/ha/yr, negative = uptake)", path)
    spread = spread_columns(frame, {"rate_tc_ha_yr": "rate"}, path)
    table = _keyed(frame, path, ["rate_tc_ha_yr", *spread])
    _spread(table, {"rate_tc_ha_yr": "rate"}, path, "t C/ha/yr")
    large = table[table["rate_tc_ha_yr"].abs() > MAX_RATE_TC_HA_YR]
    if len(large):
        raise InputError(
            f"carbon rate beyond +-{MAX_RATE_TC_HA_YR:,.0f} t C/ha/yr in rows {_rows(large)} (published rates are "
            "of order 0.001-10 t C/ha/yr); give t C/ha/yr, not kg C/ha/yr",
            path,
        )
    return ParameterTable(Path(path), _key_name(frame), table.rename(columns={"rate_tc_ha_yr": "rate_tC_ha_yr"}))


def spread_columns(frame: pd.DataFrame, values: dict[str, str], path: Path) -> list[str]:
    """The spread columns present for ``values`` (value column -> name of its spread columns): ``<name>_sd``,
    or both ``<name>_low`` and ``<name>_high``; one kind per value."""
    found = []
    for name in values.values():
        sd, low, high = (f"{name}_{s}" for s in SPREAD)
        have = [c for c in (sd, low, high) if c in frame.columns]
        if sd in have and len(have) > 1:
            raise InputError(f"give either {sd} or {low} and {high}, not both: one distribution per value", path)
        if (low in have) != (high in have):
            raise InputError(f"{low} and {high} go together (the bounds of a triangular distribution)", path)
        found += have
    return found


def _spread(table: pd.DataFrame, values: dict[str, str], path: Path, unit: str, floor: float | None = None) -> None:
    """Spread columns that make sense: sd >= 0, low <= value <= high (the value is the triangle's mode), and
    low >= ``floor`` when given (a density bound below 0 would draw negative carbon)."""
    for value, name in values.items():
        sd, low, high = (f"{name}_{s}" for s in SPREAD)
        if sd in table.columns and len(bad := table[table[sd] < 0]):
            raise InputError(f"negative standard deviation {sd} in rows {_rows(bad)}; give sd >= 0 ({unit})", path)
        if low not in table.columns:
            continue
        if floor is not None and len(bad := table[table[low] < floor]):
            raise InputError(f"negative {low} in rows {_rows(bad)}; carbon densities are >= 0 ({unit})", path)
        if len(bad := table[table[low] > table[high]]):
            raise InputError(f"{low} above {high} in rows {_rows(bad)}; give low <= high ({unit})", path)
        outside = table[(table[value] < table[low]) | (table[value] > table[high])]
        if len(outside):
            raise InputError(
                f"{value} outside [{low}, {high}] in rows {_rows(outside)}: the value is the mode of the triangular "
                "distribution between the bounds; give low <= value <= high",
                path,
            )


def _key_name(frame: pd.DataFrame) -> str:
    return next(k for k in KEYS if k in frame.columns)


def _keyed(frame: pd.DataFrame, path: Path, values: list[str]) -> pd.DataFrame:
    present = [k for k in KEYS if k in frame.columns]
    if len(present) != 1:
        raise InputError(
            "the table needs exactly one key column: 'class' (DESIGN.md classes 1-8) or 'lucode' "
            f"(the product's own codes, as InVEST; LULC also accepted); found {present or 'neither'}",
            path,
        )
    key = present[0]
    numbers = _numbers(frame[[key, *values]])
    bad = frame[numbers.isna().any(axis=1) | (numbers[key] % 1 != 0)]
    if len(bad):
        raise InputError(f"empty or non-numeric values in rows {_rows(bad)} (columns {key}, {', '.join(values)})", path)
    infinite = frame[~np.isfinite(numbers[values]).all(axis=1)]
    if len(infinite):
        raise InputError(
            f"non-finite values (inf) in rows {_rows(infinite)} (columns {', '.join(values)}); give finite numbers",
            path,
        )
    table = numbers.astype({key: "int64", **dict.fromkeys(values, "float64")}).rename(columns={key: "key"})
    if "zone" in frame.columns:
        table.insert(1, "zone", zone_id_text(frame["zone"]))
    ident = ["zone", "key"] if "zone" in table.columns else ["key"]
    dup = table[table.duplicated(ident, keep=False)]
    if len(dup):
        listed = sorted({tuple(r) if len(ident) > 1 else r[0] for r in dup[ident].itertuples(index=False)})
        raise InputError(f"keys listed more than once ({', '.join(ident)}): {listed[:10]}", path)
    table["source"] = frame["source"].fillna("").astype(str) if "source" in frame.columns else ""
    return table


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as a number, NaN where it is not one ('inf' and '1e400' read as inf). The empty text columns
    of a table with a header and no rows become float64 (pd.to_numeric leaves them text); other columns keep
    the type pd.to_numeric gives them (whole numbers stay int64)."""
    numbers = frame.apply(pd.to_numeric, errors="coerce")
    text = [c for c in numbers.columns if not pd.api.types.is_numeric_dtype(numbers[c])]
    return numbers.astype(dict.fromkeys(text, "float64"))


def load_scheme(name_or_path: str) -> Scheme:
    """A built-in scheme by name, or a user CSV (``source_code,target_class[,name]``)."""
    if name_or_path in BUILTIN_SCHEMES:
        text = (DATA / "schemes" / f"{name_or_path}.csv").read_text(encoding="utf-8")
        return _parse_scheme(text, name_or_path, name_or_path)
    path = Path(name_or_path)
    text = read_text(path)
    return _parse_scheme(text, path.stem, path)


def _parse_scheme(text: str, name: str, origin: str | Path) -> Scheme:
    meta = {}
    for line in text.splitlines():
        # Header lines "# key: value" with a one-word key; other comments (with a colon or not) are comments.
        found = re.match(r"#\s*([A-Za-z_]+):\s*(.*)$", line)
        if found:
            meta[found.group(1)] = found.group(2).strip()
    try:
        table = pd.read_csv(io.StringIO(text), comment="#", skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ConfigError(f"scheme table is not a CSV: {e}", origin) from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = {"source_code", "target_class"} - set(table.columns)
    if missing:
        raise ConfigError(
            f"scheme table needs columns source_code,target_class[,name]; missing {sorted(missing)}", origin
        )
    codes = pd.to_numeric(table["source_code"], errors="coerce")
    targets = pd.to_numeric(table["target_class"], errors="coerce")
    bad = table[codes.isna() | targets.isna() | (codes % 1 != 0) | (targets % 1 != 0)]
    if len(bad):
        raise ConfigError(f"non-integer codes in rows {_rows(bad)}", origin)
    out_of_range = table[~targets.isin([NODATA, *CLASS_CODES])]
    if len(out_of_range):
        raise ConfigError(
            f"target_class must be 0 (nodata) or 1-8 (DESIGN.md classes); rows {_rows(out_of_range)}", origin
        )
    dup = sorted(set(codes[codes.duplicated()].astype(int)))
    if dup:
        raise ConfigError(f"source codes listed more than once: {dup}", origin)
    order = np.argsort(codes.to_numpy())
    labels = table["name"].astype(str).tolist() if "name" in table else [""] * len(table)
    return Scheme(
        name=name,
        codes=codes.to_numpy().astype(np.int64)[order],
        targets=targets.to_numpy().astype(np.uint8)[order],
        labels=tuple(labels[i] for i in order),
        meta=meta,
    )


DESCRIPTIVE = {"zone_name", "name", "label", "note", "source"}


def default_coefficients() -> Path:
    return DATA / "default_coefficients.csv"


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
    frame[["t_C_per_unit", "economic_coefficient"]] = _numbers(frame[["t_C_per_unit", "economic_coefficient"]])
    crops = frame["term"] == "cropland_sink"
    bad = frame[
        ~np.isfinite(frame["t_C_per_unit"])
        | (frame["t_C_per_unit"] < 0)
        | np.isinf(frame["economic_coefficient"])
        | (crops & ~(frame["economic_coefficient"] > 0))
    ]
    if len(bad):
        raise InputError(
            f"missing, non-finite, negative or zero coefficients in rows {_rows(bad)} "
            "(cropland_sink rows need an economic_coefficient > 0)",
            path,
        )
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
        hints = [f"{c} ({hint.rstrip()})" if (hint := did_you_mean(c, known)) else c for c in unknown]
        raise InputError(f"unknown statistics columns: {', '.join(hints)}; known: {', '.join(sorted(known))}", path)
    values = [c for c in frame.columns if c in known]
    numbers = _numbers(frame[["year", *values]])
    bad = frame[~np.isfinite(numbers).all(axis=1) | (numbers[values] < 0).any(axis=1) | (numbers["year"] % 1 != 0)]
    if len(bad):
        raise InputError(f"empty, non-numeric, non-finite or negative values in rows {_rows(bad)}", path)
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
