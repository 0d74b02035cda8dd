"""Uncertainty of the carbon figures: Monte Carlo draws of the parameter tables applied to the run's counts.

Each draw gives every value of every parameter-table row that has a spread (``<value>_sd``, or
``<value>_low``/``<value>_high``; see ``io.parameters``) a value of its own, independently of the other
rows and pools; all pixels served by a row share its draw (the error of a density table is the error of
its class means, not pixel noise). Distributions:

* ``_sd``: normal with the table's value as mean; densities truncated at 0 (the normal conditioned on
  >= 0, drawn by inverting its distribution function), rates not truncated (a rate may change sign);
* ``_low``/``_high``: triangular between the bounds with the table's value as mode.

A value with sd 0 (or low = high) is its point value in every draw. Draws are made by inverting each
distribution at uniform numbers from NumPy's PCG64 seeded with ``uncertainty.seed``, in a fixed order
(pools c_above, c_below, c_soil, c_dead, then the rate; table rows in key order), so the same seed gives the
same draws. They are applied to the run's integer counts grouped by zone and parameter row, never to
pixels: no pass over the rasters, and the result does not depend on the chunking or the scheduler. The
cost is draws x groups, in batches of bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from pipeline.model.classes import NODATA
from pipeline.model.inputs import POOLS, ParameterTable
from pipeline.model.pathways import PATHWAY, PATHWAY_NAMES
from pipeline.stages import carbon
from pipeline.stages.balance import CarbonParameters, natural_order, nearest_epoch
from pipeline.stages.counts import count_area_ha

#: Percentiles reported (of the draws) and the suffixes of their columns.
PERCENTILES = (5.0, 50.0, 95.0)
SUFFIXES = ("p05", "p50", "p95")
#: Largest number of values (draws x groups) held at once.
_BATCH_VALUES = 1 << 22


@dataclass(frozen=True)
class Draws:
    """Per draw, the value of every row of the density (total of the pools, t C/ha) and rate (t C/ha/yr) tables
    as ``Lookup.value_of`` indexes them: shape (draws, rows + 1), column 0 NaN (no row). None: no densities."""

    density: np.ndarray | None
    rate: np.ndarray

    @property
    def n(self) -> int:
        return self.rate.shape[0]


def spread_columns(table: ParameterTable | None) -> list[str]:
    """The spread columns of a parameter table (none for None)."""
    if table is None:
        return []
    return [c for c in table.frame.columns if c.endswith(("_sd", "_low", "_high"))]


def _uniforms(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Uniform numbers in the open interval (0, 1), so that no inverse distribution function is infinite."""
    return (rng.integers(0, 1 << 53, size=shape) + 0.5) / float(1 << 53)


def value_draws(frame: pd.DataFrame, value: str, name: str, u: np.ndarray, truncate: bool) -> np.ndarray:
    """Draws (shape of ``u``: draws x rows of ``frame``) of column ``value`` with the spread columns of ``name``.

    ``u`` are uniform numbers in (0, 1), one per draw and row. Rows without a spread keep their value."""
    point = frame[value].to_numpy(np.float64)
    out = np.broadcast_to(point, u.shape).copy()
    sd_column, low_column, high_column = (f"{name}_{s}" for s in ("sd", "low", "high"))
    if sd_column in frame.columns:
        sd = frame[sd_column].to_numpy(np.float64)
        some = sd > 0
        mean, sd = point[some], sd[some]
        # Truncated at 0: invert the normal's distribution function over its part above 0.
        lower = ndtr(-mean / sd) if truncate else np.zeros_like(mean)
        q = lower + u[:, some] * (1.0 - lower)
        drawn = mean + sd * ndtri(q)
        out[:, some] = np.maximum(drawn, 0.0) if truncate else drawn
    if low_column in frame.columns:
        low, high = frame[low_column].to_numpy(np.float64), frame[high_column].to_numpy(np.float64)
        some = high > low
        a, c, b = low[some], point[some], high[some]
        w = u[:, some]
        mode_at = (c - a) / (b - a)
        out[:, some] = np.where(
            w < mode_at, a + np.sqrt(w * (b - a) * (c - a)), b - np.sqrt((1.0 - w) * (b - a) * (b - c))
        )
    return out


def make_draws(densities: carbon.Lookup | None, rates: carbon.Lookup, draws: int, seed: int) -> Draws:
    """``draws`` draws of both tables from ``seed``: the density pools first (in ``POOLS`` order), then the rate."""
    rng = np.random.default_rng(seed)

    def table(lookup: carbon.Lookup, values: dict[str, str], truncate: bool) -> np.ndarray:
        assert lookup.order is not None
        frame = lookup.table.frame.iloc[lookup.order].reset_index(drop=True)  # rows in the lookup's key order
        total = np.zeros((draws, len(frame)))
        for value, name in values.items():
            total = total + value_draws(frame, value, name, _uniforms(rng, (draws, len(frame))), truncate)
        return np.concatenate([np.full((draws, 1), np.nan), total], axis=1)

    density = None if densities is None else table(densities, {p: p for p in POOLS}, truncate=True)
    return Draws(density, table(rates, {"rate_tC_ha_yr": "rate"}, truncate=False))


def _segments(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start of each run of equal values, the value) of a sorted key array."""
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if len(keys) else np.array([], int)
    return starts, keys[starts]


def _summed(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sums over the groups (columns) of each segment, per draw (rows); NaN counts as 0."""
    if not values.shape[1]:
        return np.zeros((values.shape[0], 0))
    return np.add.reduceat(np.nan_to_num(values, nan=0.0), starts, axis=1)


def _percentiles(values: np.ndarray) -> np.ndarray:
    """(3, columns): the 5th, 50th and 95th percentiles over the draws (rows), linear interpolation."""
    return np.percentile(values, PERCENTILES, axis=0)


def _balance_draws(
    acc: CarbonParameters, draws: Draws, counts: pd.DataFrame, year: int, column: str | None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(zone numbers, {stock_tC, sink_tC_yr, source_tC_yr: draws x zones}) of one year's counts."""
    acct = acc.stock_and_flux(counts, year)
    fixed = carbon.term_rows(acct, acc.terms.get(year))
    groups = pd.DataFrame(
        {
            "number": acct[column].to_numpy() if column else 1,
            "density": acct["density"].to_numpy() if "density" in acct.columns else 0,
            "rate": acct["rate"].to_numpy(),
            "sink_fixed": fixed["sink_tC_yr"].to_numpy(),
            "source_fixed": fixed["source_tC_yr"].to_numpy(),
            "construction": fixed["construction"].to_numpy(),
            "area_ha": acct["area_ha"].to_numpy(),
            # The statistics' shares of a zone's term: the same in every draw.
            "sink_tC_yr": acct["sink_tC_yr"].where(fixed["sink_tC_yr"]).to_numpy(),
            "source_tC_yr": acct["source_tC_yr"].where(fixed["source_tC_yr"]).to_numpy(),
        }
    )
    keys = ["number", "density", "rate", "sink_fixed", "source_fixed", "construction"]
    g = groups.groupby(keys, sort=True)[["area_ha", "sink_tC_yr", "source_tC_yr"]].sum(min_count=1).reset_index()
    starts, numbers = _segments(g["number"].to_numpy())
    if not len(g):  # no valid pixel
        return numbers, {k: np.zeros((draws.n, 0)) for k in ("stock_tC", "sink_tC_yr", "source_tC_yr")}
    area = g["area_ha"].to_numpy()
    out = {k: np.empty((draws.n, len(numbers))) for k in ("stock_tC", "sink_tC_yr", "source_tC_yr")}
    if draws.density is None:
        out["stock_tC"][:] = np.nan
    known: dict[str, np.ndarray] = {}
    step = max(1, _BATCH_VALUES // max(1, len(g)))
    for first in range(0, draws.n, step):
        batch = slice(first, first + step)
        if draws.density is not None:
            out["stock_tC"][batch] = _summed(draws.density[batch][:, g["density"].to_numpy()] * area, starts)
        rate = draws.rate[batch][:, g["rate"].to_numpy()]
        sink = area * np.where(rate < 0, -rate, np.where(np.isnan(rate), np.nan, 0.0))
        source = area * np.where(rate > 0, rate, np.where(np.isnan(rate), np.nan, 0.0))
        sink = np.where(g["sink_fixed"].to_numpy(), g["sink_tC_yr"].to_numpy(), sink)
        source = np.where(g["source_fixed"].to_numpy(), g["source_tC_yr"].to_numpy(), source)
        sink = np.where(g["construction"].to_numpy() & np.isnan(sink), 0.0, sink)
        for key, values in (("sink_tC_yr", sink), ("source_tC_yr", source)):
            out[key][batch] = _summed(values, starts)
            # Which land has a known flux does not change from draw to draw: the first draw says.
            known.setdefault(key, ~np.isnan(values[0]))
    # Where none of a zone's land has a known flux the sum is unknown, not 0 (as in the balance tables).
    for key, rows in known.items():
        any_known = np.add.reduceat(rows.astype(np.int64), starts) > 0
        out[key][:, ~any_known] = np.nan
    return numbers, out


def balance_percentiles(
    acc: CarbonParameters,
    draws: Draws,
    counts: dict[int, pd.DataFrame],
    balance: pd.DataFrame,
    layer_zones: pd.DataFrame,
    column: str | None,
) -> pd.DataFrame:
    """Per zone and year of a ``balance_table`` (``balance``): the 5th, 50th and 95th percentiles over the
    draws of stock_tC, sink_tC_yr, source_tC_yr and net_emission_tC_yr (NaN where the balance's net emission
    is not given). ``layer_zones`` is the layer's ``balance.zone_frame``."""
    epochs = sorted(counts)
    parts = []
    for year in sorted(set(epochs) | set(acc.terms)):
        epoch = year if year in counts else nearest_epoch(year, epochs)
        numbers, sums = _balance_draws(acc, draws, counts[epoch], year, column)
        sums["net_emission_tC_yr"] = sums["source_tC_yr"] - sums["sink_tC_yr"]
        frame = pd.DataFrame({"number": numbers, "year": year})
        for key, values in sums.items():
            for suffix, row in zip(SUFFIXES, _percentiles(values)):
                frame[f"{key}_{suffix}"] = row
        full = layer_zones[["number"]].assign(year=year).merge(frame, on=["number", "year"], how="left")
        parts.append(full)
    table = layer_zones.merge(pd.concat(parts, ignore_index=True), on="number").drop(columns="number")
    point = balance.set_index(["zone_id", "year"])["net_emission_tC_yr"]
    withheld = point.reindex(pd.MultiIndex.from_frame(table[["zone_id", "year"]])).isna().to_numpy()
    table.loc[withheld, [f"net_emission_tC_yr_{s}" for s in SUFFIXES]] = np.nan
    return table.sort_values(["zone_id", "year"], key=natural_order, kind="stable").reset_index(drop=True)


def stock_change_percentiles(
    acc: CarbonParameters,
    draws: Draws,
    interval_counts: dict[tuple[int, int], pd.DataFrame],
    layer_zones: pd.DataFrame,
    column: str | None,
) -> pd.DataFrame:
    """Per zone, interval and pathway (all seven): the 5th, 50th and 95th percentiles over the draws of the
    stock change (t C), (D_to - D_from) x area with each draw's densities."""
    parts = []
    for (y0, y1), frame in interval_counts.items():
        frame = frame[frame["from_class"] != NODATA]
        groups = pd.DataFrame(
            {
                "number": frame[column].to_numpy() if column else 1,
                "pathway": PATHWAY[frame["from_class"].to_numpy(), frame["to_class"].to_numpy()],
                "density0": frame["density0"].to_numpy() if "density0" in frame.columns else 0,
                "density1": frame["density1"].to_numpy() if "density1" in frame.columns else 0,
                "area_ha": count_area_ha(frame, acc.areas),
            }
        )
        g = groups.groupby(["number", "pathway", "density0", "density1"], sort=True)["area_ha"].sum().reset_index()
        starts, _ = _segments((g["number"] * 8 + g["pathway"]).to_numpy())
        cells = g.iloc[starts][["number", "pathway"]].reset_index(drop=True)
        change = np.full((draws.n, len(cells)), np.nan)
        if draws.density is not None:
            area = g["area_ha"].to_numpy()
            d0, d1 = g["density0"].to_numpy(), g["density1"].to_numpy()
            step = max(1, _BATCH_VALUES // max(1, len(g)))
            for first in range(0, draws.n, step):
                dens = draws.density[first : first + step]
                change[first : first + step] = _summed((dens[:, d1] - dens[:, d0]) * area, starts)
        for suffix, row in zip(SUFFIXES, _percentiles(change)):
            cells[f"stock_change_tC_{suffix}"] = row
        full = pd.MultiIndex.from_product([layer_zones["number"], sorted(PATHWAY_NAMES)], names=["number", "pathway"])
        cells = cells.set_index(["number", "pathway"]).reindex(full)
        if draws.density is not None:
            cells = cells.fillna(0.0)  # a pathway a zone does not have changes no stock
        parts.append(cells.reset_index().assign(y0=y0, y1=y1))
    if not parts:
        return pd.DataFrame(columns=_CHANGE_COLUMNS)
    table = layer_zones.merge(pd.concat(parts, ignore_index=True), on="number").drop(columns="number")
    table["pathway_name"] = table["pathway"].map(PATHWAY_NAMES)
    table = table[_CHANGE_COLUMNS]
    return table.sort_values(["zone_id", "y0", "y1", "pathway"], key=natural_order, kind="stable").reset_index(
        drop=True
    )


_CHANGE_COLUMNS = [
    "zone_id",
    "zone_name",
    "y0",
    "y1",
    "pathway",
    "pathway_name",
    *(f"stock_change_tC_{s}" for s in SUFFIXES),
]
