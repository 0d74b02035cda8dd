"""Stage 4, transitions: what each pixel became between two epochs, through which pathway, and what
that did to its carbon; and the interval tables built from the run's pixel counts.

Pathway codes (DESIGN.md, after seed 003's direct / indirect / potential framework) are a 9 x 9
lookup on (from class, to class), so a pixel's pathway costs one gather. Stock change is the
stock-difference method, (D_to - D_from) x area (t C); flux change is the annual carbon gained or
lost from then on, (F_to - F_from) x area (t C/yr, + more emission or less uptake). Tables come from
integer counts per (from class, to class, parameter rows, zones) of ``zonal.group_counts``; carbon
is multiplied in afterwards, as in ``balance``.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.model.classes import (
    CLASS_NAMES,
    CONSTRUCTION,
    CROPLAND,
    FOREST,
    GRASSLAND,
    NODATA,
    UNUSED,
    WATER,
)
from pipeline.model.pathways import PATHWAY, PATHWAY_NAMES, pathway, transition
from pipeline.stages import carbon
from pipeline.stages.balance import CarbonParameters

#: Consolidation rule of seed 000 (notice NZF [2019] 194): new cropland >= 5 % of the original cropland.
NEW_CROPLAND_MIN_SHARE = 0.05


def intervals(years: list[int]) -> list[tuple[int, int]]:
    """Consecutive epoch pairs, and first -> last when that is not already one of them."""
    years = sorted(years)
    pairs = list(pairwise(years))
    return [*pairs, (years[0], years[-1])] if len(years) > 2 else pairs


def transition_raster(before: xr.DataArray, after: xr.DataArray) -> xr.DataArray:
    """Lazy uint8 from x 10 + to (0 = nodata)."""
    return before.copy(data=before.data.map_blocks(transition, after.data, dtype=np.uint8)).rename("transition")


def pathway_raster(before: xr.DataArray, after: xr.DataArray) -> xr.DataArray:
    """Lazy uint8 pathway code (255 = nodata)."""
    return before.copy(data=before.data.map_blocks(pathway, after.data, dtype=np.uint8)).rename("pathway")


#: Largest (rows + 1)^2 for which ``value_change`` looks up pairs of rows in one table.
_PAIR_TABLE_LIMIT = 1 << 22


def value_change(lookup: carbon.Lookup, before: xr.DataArray, after: xr.DataArray, scale: float = 1.0) -> xr.DataArray:
    """Lazy float32 change of a table's value per pixel (after - before) times ``scale`` from two row-index
    rasters (``carbon.row_index``); NaN where either has no row. Differences are taken in float64 (and scaled
    before the rounding to float32, so the npv raster is the stock change times the constant to float32)."""
    values = np.concatenate([[np.nan], lookup.values])
    n = len(values)
    if n * n > _PAIR_TABLE_LIMIT:
        data = before.data.map_blocks(
            lambda a, b: ((values[b] - values[a]) * scale).astype(np.float32), after.data, dtype=np.float32
        )
        return before.copy(data=data)
    # Every (before, after) pair of rows looked up at once: a third of the time of two float64 gathers.
    change = ((values[None, :] - values[:, None]) * scale).astype(np.float32).ravel()
    # The pair's number in the smallest type that holds n * n: an intp index cost a third more than np.take of it.
    kind = np.uint16 if n * n <= 1 << 16 else np.uint32

    def pair_change(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        pair = a.astype(kind)
        pair *= kind(n)
        pair += b
        return np.take(change, pair)

    return before.copy(data=before.data.map_blocks(pair_change, after.data, dtype=np.float32))


# ---- tables from the counts of an interval -------------------------------------------------------------


def epoch_counts(frame: pd.DataFrame, side: int) -> pd.DataFrame:
    """The counts of one epoch (class, zones, density, rate, and the interval's cells or its folded area, as
    ``counts.fold_cells``) from the counts of an interval it ends (``side`` 0: its first epoch, 1: its second)."""
    renamed = frame.rename(
        columns={("from_class", "to_class")[side]: "class", f"density{side}": "density", f"rate{side}": "rate"}
    )
    keys = ["class", *zone_columns(frame), *[k for k in ("density", "rate", "cell") if k in renamed.columns]]
    sums = [c for c in ("pixels", "area_ha") if c in renamed.columns]
    return renamed.groupby(keys, sort=True)[sums].sum().reset_index()


def zone_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c == "czone" or c.startswith("zone_")]


def stock_and_flux_change(acc: CarbonParameters, frame: pd.DataFrame, y0: int, y1: int) -> pd.DataFrame:
    """Carbon of each counted group of an interval (``balance.CarbonParameters`` ``acc``): adds pathway,
    area_ha, stock_change_tC and flux_change_tC_yr (NaN where either epoch's flux is not counted)."""
    frame = frame[frame["from_class"] != NODATA]  # the valid mask is common: to_class is nodata there too
    ends = []
    for side, year in ((0, y0), (1, y1)):
        own = frame.rename(
            columns={("from_class", "to_class")[side]: "class", f"density{side}": "density", f"rate{side}": "rate"}
        )
        ends.append(acc.stock_and_flux(own, year))
    before, after = ends
    out = frame.copy()
    out["pathway"] = PATHWAY[out["from_class"].to_numpy(), out["to_class"].to_numpy()]
    out["area_ha"] = before["area_ha"]
    out["stock_change_tC"] = after["stock_tC"] - before["stock_tC"]
    out["flux_change_tC_yr"] = (after["source_tC_yr"] - after["sink_tC_yr"]) - (
        before["source_tC_yr"] - before["sink_tC_yr"]
    )
    return out


_SUMS = ["pixels", "area_ha", "stock_change_tC", "flux_change_tC_yr", "flux_uncounted_area_ha"]


def _numbered(acct: pd.DataFrame, column: str | None) -> pd.DataFrame:
    return acct.assign(
        number=acct[column] if column else 1,
        flux_uncounted_area_ha=acct["area_ha"].where(acct["flux_change_tC_yr"].isna(), 0.0),
    )


def _named(table: pd.DataFrame, zones: pd.DataFrame) -> pd.DataFrame:
    return zones.merge(table, on="number").drop(columns="number")


def transition_table(acct: pd.DataFrame, zones: pd.DataFrame, column: str | None) -> pd.DataFrame:
    """Long-form transition matrix per zone: from_class, to_class (with names and pathway), pixels,
    area_ha, stock_change_tC, flux_change_tC_yr, flux_uncounted_area_ha; pairs present only."""
    sums = _numbered(acct, column).groupby(["number", "from_class", "to_class"])[_SUMS].sum(min_count=1).reset_index()
    sums["pixels"] = sums["pixels"].astype(np.int64)
    sums.insert(2, "from_class_name", sums["from_class"].map(CLASS_NAMES))
    sums.insert(4, "to_class_name", sums["to_class"].map(CLASS_NAMES))
    sums.insert(5, "pathway", PATHWAY[sums["from_class"], sums["to_class"]])
    return _named(sums, zones)


def pathway_table(acct: pd.DataFrame, zones: pd.DataFrame, column: str | None, stock: bool) -> pd.DataFrame:
    """Per zone and pathway (all seven, zeros included): area, stock change split into what was lost and
    gained (t C) with each pathway's share of the zone's loss and gain, flux change, and the from -> to
    pairs inside the pathway (largest first)."""
    frame = _numbered(acct, column)
    frame["stock_lost_tC"] = -frame["stock_change_tC"].clip(upper=0)
    frame["stock_gained_tC"] = frame["stock_change_tC"].clip(lower=0)
    columns = [*_SUMS[1:3], "stock_lost_tC", "stock_gained_tC", *_SUMS[3:]]
    sums = frame.groupby(["number", "pathway"])[columns].sum(min_count=1)
    full = pd.MultiIndex.from_product([zones["number"], sorted(PATHWAY_NAMES)], names=["number", "pathway"])
    sums = sums.reindex(full)
    empty = sums["area_ha"].isna()
    zero = ["area_ha", "flux_change_tC_yr", "flux_uncounted_area_ha"]
    zero += ["stock_change_tC", "stock_lost_tC", "stock_gained_tC"] if stock else []
    sums.loc[empty, zero] = 0.0
    for kind in ("lost", "gained"):
        total = sums[f"stock_{kind}_tC"].groupby("number").transform("sum")
        sums[f"share_of_stock_{kind}"] = sums[f"stock_{kind}_tC"] / total.where(total > 0)
    pairs = transition_table(acct, zones.assign(zone_id=zones["number"]), column)
    pairs = pairs.sort_values(["area_ha", "from_class", "to_class"], ascending=[False, True, True])
    pairs["text"] = [
        f"{f} → {t} {a:,.2f} ha" for f, t, a in zip(pairs["from_class_name"], pairs["to_class_name"], pairs["area_ha"])
    ]
    listing = pairs.groupby(["zone_id", "pathway"])["text"].agg("; ".join).astype(object)
    sums["transitions"] = listing.reindex(sums.index).fillna("")
    sums = sums.reset_index()
    sums.insert(2, "pathway_name", sums["pathway"].map(PATHWAY_NAMES))
    order = [
        "number",
        "pathway",
        "pathway_name",
        "area_ha",
        "stock_change_tC",
        "stock_lost_tC",
        "stock_gained_tC",
        "share_of_stock_lost",
        "share_of_stock_gained",
        "flux_change_tC_yr",
        "flux_uncounted_area_ha",
        "transitions",
    ]
    return _named(sums[order], zones)


def interval_summary(matrix: pd.DataFrame, zones: pd.DataFrame, y0: int, y1: int) -> pd.DataFrame:
    """Per zone of a ``transition_table``: changed area, carbon change, seed 003's displacement ratio
    area(2,3,4,8 -> 1) / area(1 -> 5,6,7), and seed 000's two consolidation checks (new cropland at
    least 5 % of the cropland at y0; construction land 5+6+7 not increased)."""
    m = matrix
    f, t, a = m["from_class"], m["to_class"], m["area_ha"]

    def total(rows: pd.Series, values: pd.Series = a) -> pd.Series:
        return values.where(rows, 0.0).groupby(m["zone_id"], sort=False).sum(min_count=0)

    out = pd.DataFrame(
        {
            "zone_name": m.groupby("zone_id", sort=False)["zone_name"].first(),
            "area_ha": total(f > 0),
            "changed_area_ha": total(f != t),
            "stock_change_tC": m.groupby("zone_id", sort=False)["stock_change_tC"].sum(min_count=1),
            "flux_change_tC_yr": m.groupby("zone_id", sort=False)["flux_change_tC_yr"].sum(min_count=1),
            "displaced_to_cropland_ha": total(f.isin([FOREST, GRASSLAND, WATER, UNUSED]) & (t == CROPLAND)),
            "cropland_to_construction_ha": total((f == CROPLAND) & t.isin(CONSTRUCTION)),
        }
    )
    out["displacement_ratio"] = out["displaced_to_cropland_ha"] / out["cropland_to_construction_ha"].where(
        out["cropland_to_construction_ha"] > 0
    )
    out["cropland_y0_ha"] = total(f == CROPLAND)
    out["cropland_y1_ha"] = total(t == CROPLAND)
    out["new_cropland_ha"] = total((t == CROPLAND) & (f != CROPLAND))
    out["new_cropland_share"] = out["new_cropland_ha"] / out["cropland_y0_ha"].where(out["cropland_y0_ha"] > 0)
    out["new_cropland_check"] = np.where(
        out["new_cropland_share"] >= NEW_CROPLAND_MIN_SHARE,
        "pass",
        np.where(out["new_cropland_share"].isna(), "n/a", "fail"),
    )
    out["construction_y0_ha"] = total(f.isin(CONSTRUCTION))
    out["construction_y1_ha"] = total(t.isin(CONSTRUCTION))
    # Gains minus losses over the changed pairs only, so persistent land cancels exactly.
    out["construction_change_ha"] = total(t.isin(CONSTRUCTION) & ~f.isin(CONSTRUCTION)) - total(
        f.isin(CONSTRUCTION) & ~t.isin(CONSTRUCTION)
    )
    out["construction_check"] = np.where(out["construction_change_ha"] <= 0, "pass", "fail")
    out = out.drop(columns="zone_name").rename_axis("zone_id").reset_index()
    head = zones[["zone_id", "zone_name"]].assign(y0=y0, y1=y1, years=y1 - y0)
    return head.merge(out, on="zone_id", how="left")
