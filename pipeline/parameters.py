"""Carbon parameter tables at the edge: densities (t C/ha) and annual rates (t C/ha/yr), read and checked once.

Density tables follow InVEST's carbon pool table so that InVEST users' files work as they are: a key
column (``class`` for DESIGN.md target classes, or ``lucode`` for the product's own codes), the pool
columns ``c_above, c_below, c_soil, c_dead`` in any letter case, extra columns ignored, UTF-8 or
Latin-1. Optional ``zone`` (an id of a zone layer, for regional densities) and ``source`` columns.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import InputError

POOLS = ("c_above", "c_below", "c_soil", "c_dead")
KEYS = ("class", "lucode")
#: InVEST 2 / early 3.x tables call the code column LULC.
ALIASES = {"lulc": "lucode"}
#: Annual rates used when the config names none: seed 002's Table 2.
DEFAULT_RATES = Path(str(resources.files("pipeline.defaults").joinpath("rates_seed002.csv")))


@dataclass(frozen=True)
class ParameterTable:
    """A checked table: ``key`` says what ``frame.key`` holds (target ``class`` or product ``lucode``)."""

    path: Path
    key: str
    frame: pd.DataFrame  # columns: key, [zone], value columns, source

    def keys(self) -> set[int]:
        return set(self.frame["key"].tolist())

    def missing(self, present: set[int]) -> list[int]:
        """Codes or classes present in the rasters that have no row."""
        return sorted(present - self.keys())


def read_text(path: Path) -> str:
    """A table file's text: UTF-8 (with or without BOM), else Latin-1 (as older InVEST tables are)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError("table not found", path) from None
    except OSError as e:
        raise InputError(f"cannot read table: {e.strerror}", path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_table(path: Path) -> pd.DataFrame:
    """A CSV as text (callers convert numbers, so zone ids keep leading zeros), with lower-case,
    stripped column names (``LULC`` read as ``lucode``)."""
    text = read_text(path)
    try:
        frame = pd.read_csv(io.StringIO(text), comment="#", skipinitialspace=True, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise InputError(f"not a readable CSV: {e}", path) from None
    frame.columns = [ALIASES.get(str(c).strip().lower(), str(c).strip().lower()) for c in frame.columns]
    return frame


def read_densities(path: Path) -> ParameterTable:
    """Carbon density per class or product code (t C/ha per pool), checked: numbers, >= 0, unique keys."""
    frame = read_table(path)
    missing = [p for p in POOLS if p not in frame.columns]
    if missing:
        raise InputError(f"density table needs pool columns {', '.join(POOLS)} (t C/ha); missing {missing}", path)
    table = _keyed(frame, path, list(POOLS))
    negative = table[(table[list(POOLS)] < 0).any(axis=1)]
    if len(negative):
        raise InputError(f"negative carbon density in rows {_rows(negative)}", path)
    return ParameterTable(Path(path), _key_name(frame), table)


def read_rates(path: Path) -> ParameterTable:
    """Annual carbon rate per class or product code (t C/ha/yr; negative = uptake, positive = emission)."""
    frame = read_table(path)
    if "rate_tc_ha_yr" not in frame.columns:
        raise InputError("rate table needs a column rate_tC_ha_yr (t C/ha/yr, negative = uptake)", path)
    table = _keyed(frame, path, ["rate_tc_ha_yr"])
    return ParameterTable(Path(path), _key_name(frame), table.rename(columns={"rate_tc_ha_yr": "rate_tC_ha_yr"}))


def zone_id_text(values: pd.Series) -> list[str]:
    """Zone ids as text, so that 420101, 420101.0 and '420101' name the same county ('' when blank)."""
    def one(v) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        text = str(v).strip()
        return text[: text.index(".")] if re.fullmatch(r"-?\d+\.0+", text) else text
    return [one(v) for v in values]


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
    numbers = frame[[key, *values]].apply(pd.to_numeric, errors="coerce")
    bad = frame[numbers.isna().any(axis=1) | (numbers[key] % 1 != 0)]
    if len(bad):
        raise InputError(f"empty or non-numeric values in rows {_rows(bad)} (columns {key}, {', '.join(values)})", path)
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


def _rows(frame: pd.DataFrame) -> str:
    # +2: the header line and 1-based numbering, as a spreadsheet shows them.
    return ", ".join(str(i + 2) for i in frame.index[:10]) + (" ..." if len(frame) > 10 else "")
