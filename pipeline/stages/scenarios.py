"""Scenarios: simulated futures of one year (PLUS, FLUS, CA-Markov outputs) compared with the base epoch and
with each other, from the pixel counts of each scenario's interval (base epoch -> scenario map). Pure pandas.

A scenario's counts are those of an observed interval (``group_counts`` of from class, to class, parameter
rows, zones), with ``to_class`` 0 where the scenario map is nodata (or an unknown code) on land valid in every
epoch: that land is left out of the scenario's figures, base and scenario alike, and reported. The flux of
both sides is the per-hectare rates (a simulated map has no county statistics).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from pipeline.model.classes import NODATA
from pipeline.spec import PATHWAY_STOCK_COLUMNS
from pipeline.stages import balance, transitions
from pipeline.stages.balance import CarbonParameters
from pipeline.stages.counts import count_area_ha


def without_statistics(acc: CarbonParameters) -> CarbonParameters:
    """The carbon parameters with per-hectare rates only: how both sides of a scenario are valued."""
    return replace(acc, terms={})


def split_gaps(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the counts compared: valid in the base and the scenario, the counts valid in the base epoch but
    nodata in the scenario map)."""
    base = frame["from_class"] != NODATA
    return frame[base & (frame["to_class"] != NODATA)], frame[base & (frame["to_class"] == NODATA)]


def scenario_rows(
    acc: CarbonParameters,
    frame: pd.DataFrame,
    zones: pd.DataFrame,
    layer,
    column: str | None,
    region_name: str,
    y0: int,
    y1: int,
    name: str,
    max_uncounted_share: float,
) -> pd.DataFrame:
    """One row per zone for one scenario (see ``spec`` ``scenarios``): stock, sink, source and net emission of
    the scenario (net emission NaN where more than ``max_uncounted_share`` of the land has no known flux), the
    base epoch's stock over the same land, stock and flux change, stock change per pathway (t C), and the
    pixels and hectares valid in the base but nodata in the scenario. ``acc`` should carry no statistics."""
    kept, gaps = split_gaps(frame)
    gap_number = gaps[column] if column else pd.Series(1, index=gaps.index)
    gap_pixels = gaps["pixels"].groupby(gap_number).sum()
    gap_area = pd.Series(count_area_ha(gaps, acc.areas), index=gaps.index).groupby(gap_number).sum()
    after = balance.balance_table(
        acc, {y1: transitions.epoch_counts(kept, 1)}, layer, column, region_name, False, max_uncounted_share
    )
    before = balance.balance_table(
        acc, {y0: transitions.epoch_counts(kept, 0)}, layer, column, region_name, False, max_uncounted_share
    )
    change = transitions.stock_and_flux_change(acc, kept, y0, y1)
    paths = transitions.pathway_table(change, zones, column, acc.densities is not None)
    wide = paths.pivot(index="zone_id", columns="pathway", values="stock_change_tC").reindex(columns=range(7))
    wide.columns = [PATHWAY_STOCK_COLUMNS[p][0] for p in wide.columns]
    sums = paths.groupby("zone_id", sort=False)[["stock_change_tC", "flux_change_tC_yr"]].sum(min_count=1)
    numbers = zones.set_index("zone_id")["number"]
    out = zones[["zone_id", "zone_name"]].assign(scenario=name, y0=y0, y1=y1, years=y1 - y0)
    a = after.set_index("zone_id").reindex(out["zone_id"])
    out["area_ha"] = a["area_ha"].to_numpy()
    out["scenario_nodata_pixels"] = numbers.map(gap_pixels).fillna(0).astype(np.int64).to_numpy()
    out["scenario_nodata_area_ha"] = numbers.map(gap_area).fillna(0.0).to_numpy()
    for c in ("counted_area_ha", "uncounted_area_ha", "counted_share"):
        out[c] = a[c].to_numpy()
    out["stock_y0_tC"] = before.set_index("zone_id").reindex(out["zone_id"])["stock_tC"].to_numpy()
    for c in ("stock_tC", "sink_tC_yr", "source_tC_yr", "net_emission_tC_yr"):
        out[c] = a[c].to_numpy()
    s = sums.reindex(out["zone_id"])
    out["stock_change_tC"] = s["stock_change_tC"].to_numpy()
    out["flux_change_tC_yr"] = s["flux_change_tC_yr"].to_numpy()
    w = wide.reindex(out["zone_id"])
    for c in w.columns:
        out[c] = w[c].to_numpy()
    return out.reset_index(drop=True)


def with_differences(rows: pd.DataFrame) -> pd.DataFrame:
    """stock_difference_tC and net_emission_difference_tC_yr: each scenario minus the first scenario of its
    year (the first row of the year in ``rows``' order) in the same zone."""
    first = rows.drop_duplicates(["y1", "zone_id"]).set_index(["y1", "zone_id"])
    key = pd.MultiIndex.from_frame(rows[["y1", "zone_id"]])
    out = rows.copy()
    out["stock_difference_tC"] = rows["stock_tC"].to_numpy() - first["stock_tC"].reindex(key).to_numpy()
    out["net_emission_difference_tC_yr"] = (
        rows["net_emission_tC_yr"].to_numpy() - first["net_emission_tC_yr"].reindex(key).to_numpy()
    )
    return out
