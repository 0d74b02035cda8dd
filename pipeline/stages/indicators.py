"""Continuous indicator series (NDVI, fractional vegetation cover, NPP, ...) per zone: the area-weighted
mean of every year, the zone's Theil-Sen slope with the Mann-Kendall test, and the share of its land
greening or browning significantly pixel by pixel (seed 004: key ecological function zones are judged by
vegetation growth as well as by land use).

Values are quantised to integers (multiples of ``precision`` in the indicator's unit; for an integer
product with ``scale`` and no offset, its raw values) before anything is summed, so zone sums are exact
integers per pixel-area cell and do not depend on the chunking. Per pixel, over the years:

* Sen's slope: the median of (v_j - v_i) / (t_j - t_i) over every pair of years i < j (Sen 1968), as
  ``scipy.stats.theilslopes``;
* Mann-Kendall: S = sum of sign(v_j - v_i), Var(S) = [n(n-1)(2n+5) - sum_t t(t-1)(2t+5)] / 18 over the
  groups of t tied values, Z = S / sqrt(Var(S)), p = 2 (1 - Phi(|Z|)) (Kendall 1975), without continuity
  correction: ``scipy.stats.kendalltau(years, values, method="asymptotic")`` gives the same p. A constant
  series has S = 0 and p = 1.

A pixel greens (browns) significantly where p < ``alpha`` and S > 0 (S < 0). Only pixels valid in every
land-cover epoch and with a value in every year of the series count.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats
from scipy.special import ndtr

#: Per-pixel trend class (0: not valid land).
MISSING, STABLE, GREENING, BROWNING = 1, 2, 3, 4
NCLASSES = 5
#: Quantised value of a pixel without data.
NO_VALUE = np.iinfo(np.int64).min
#: Pixels whose pairwise slopes are held at once (memory: pairs x this x 8 bytes).
_STRIP = 1 << 15


def quantise(stored: xr.DataArray, scale: float, offset: float, precision: float, nodata: float | None) -> xr.DataArray:
    """Lazy int64 value / ``precision`` (rounded) of value = stored x ``scale`` + ``offset``; ``NO_VALUE``
    where the stored value is ``nodata`` or not finite."""

    def block(raw: np.ndarray) -> np.ndarray:
        x = raw.astype(np.float64)
        bad = ~np.isfinite(x) if nodata is None else (~np.isfinite(x)) | (x == nodata)
        q = np.rint(np.where(bad, 0.0, x * scale + offset) / precision).astype(np.int64)
        q[bad] = NO_VALUE
        return q

    return stored.copy(data=stored.data.map_blocks(block, dtype=np.int64))


def series_trend(values: np.ndarray, years: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Sen slope per year, Mann-Kendall two-sided p, S) of each column of ``values`` (n years x m series,
    complete) over ``years`` (n distinct, increasing), all float64 of length m."""
    n, m = values.shape
    t = np.asarray(years, np.float64)
    i, j = np.triu_indices(n, 1)
    dt = (t[j] - t[i])[:, None]
    slope, s = np.empty(m), np.empty(m)
    for start in range(0, m, _STRIP):
        part = values[:, start : start + _STRIP]
        d = part[j] - part[i]
        slope[start : start + _STRIP] = np.median(d / dt, axis=0) if len(i) else np.nan
        s[start : start + _STRIP] = np.sign(d).sum(axis=0)
    ordered = np.sort(values, axis=0)
    ties, run = np.zeros(m), np.ones(m)
    for k in range(1, n):
        same = ordered[k] == ordered[k - 1]
        ties += np.where(same, 0.0, run * (run - 1) * (2 * run + 5))
        run = np.where(same, run + 1, 1.0)
    ties += run * (run - 1) * (2 * run + 5)
    var = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    z = np.divide(s, np.sqrt(var), out=np.zeros(m), where=var > 0)
    p = np.where(var > 0, 2 * ndtr(-np.abs(z)), 1.0)
    return slope, p, s


def pixel_trends(quantised: list[xr.DataArray], years: list[int], precision: float) -> xr.DataArray:
    """Lazy float64 (3, y, x): Sen slope per year (indicator unit/yr), Mann-Kendall p and S per pixel; NaN
    where a year has no value."""
    first = quantised[0]

    def block(*qs: np.ndarray) -> np.ndarray:
        stack = np.stack([q.ravel() for q in qs])
        complete = (stack != NO_VALUE).all(axis=0)
        out = np.full((3, stack.shape[1]), np.nan)
        if complete.any():
            out[:, complete] = series_trend(stack[:, complete] * precision, np.asarray(years))
        return out.reshape(3, *qs[0].shape)

    data = da.map_blocks(
        block, *(q.data for q in quantised), new_axis=0, chunks=((3,), *first.data.chunks), dtype=np.float64
    )
    return xr.DataArray(data, dims=("band", *first.dims), coords=first.coords)


def trend_class(trends: xr.DataArray, valid: xr.DataArray, alpha: float) -> xr.DataArray:
    """Lazy uint8 class per pixel: 0 not valid land, ``MISSING`` (a year without value), ``GREENING`` /
    ``BROWNING`` (p < ``alpha``, S > 0 / S < 0), ``STABLE`` otherwise."""
    slope, p, s = trends[0], trends[1], trends[2]
    significant = p < alpha
    cls = xr.where(
        np.isnan(slope),
        MISSING,
        xr.where(significant & (s > 0), GREENING, xr.where(significant & (s < 0), BROWNING, STABLE)),
    )
    return xr.where(valid, cls, 0).astype(np.uint8).rename("indicator_trend_class")


def summed(quantised: xr.DataArray, cls: xr.DataArray) -> xr.DataArray:
    """The quantised values where the pixel counts (a value every year, valid land), 0 elsewhere."""
    return xr.where(cls >= STABLE, quantised, 0).astype(np.int64)


def zone_table(
    frame: pd.DataFrame,
    column: str | None,
    zones: pd.DataFrame,
    years: list[int],
    precision: float,
    name: str,
    unit: str,
) -> pd.DataFrame:
    """tables/indicators_<layer>.csv rows of one series: per zone (``zones``: number, zone_id, zone_name)
    the land and indicator areas, the mean of every year, the zone's Theil-Sen slope with its 95 % interval
    and Mann-Kendall test over the yearly means, and the shares greening and browning significantly.

    ``frame`` is a ``group_sums`` result with a ``trend`` key and one ``sum_<year>`` column per year, its cells
    folded (``counts.fold_cells`` with the sums weighted: ``area_ha`` and ``sum_<year>_m2``); ``column`` is the
    zone key (None: the region, zone number 1)."""
    number = frame[column].to_numpy() if column is not None else np.ones(len(frame), np.int64)
    data = pd.DataFrame({"number": number, "trend": frame["trend"].to_numpy(), "area": frame["area_ha"].to_numpy()})
    counted = frame["trend"].to_numpy() >= STABLE
    for year in years:
        data[year] = np.where(counted, frame[f"sum_{year}_m2"].to_numpy(), 0.0)
    by_class = data.pivot_table(index="number", columns="trend", values="area", aggfunc="sum", fill_value=0.0)
    by_class = by_class.reindex(columns=range(NCLASSES), fill_value=0.0)
    weighted = data[data["trend"] >= STABLE].groupby("number")[years].sum()
    rows = []
    for _, zone in zones.iterrows():
        k = zone["number"]
        got = by_class.loc[k] if k in by_class.index else pd.Series(0.0, index=range(NCLASSES))
        land = float(got[MISSING:].sum())
        with_values = float(got[STABLE:].sum())
        means = np.full(len(years), np.nan)
        if with_values > 0 and k in weighted.index:
            means = weighted.loc[k, years].to_numpy(np.float64) * precision / (with_values * 1e4)
        slope, low, high, tau, p = _zone_trend(means, years)

        def share(a: float, whole: float = with_values) -> float:
            return a / whole if whole > 0 else np.nan

        rows.append(
            {
                "zone_id": zone["zone_id"],
                "zone_name": zone["zone_name"],
                "series": name,
                "series_unit": unit,
                "y0": years[0],
                "y1": years[-1],
                "area_ha": land,
                "indicator_area_ha": with_values,
                "indicator_missing_ha": float(got[MISSING]),
                **{f"mean_{y}": v for y, v in zip(years, means)},
                "sen_slope_per_yr": slope,
                "sen_slope_low_per_yr": low,
                "sen_slope_high_per_yr": high,
                "mk_tau": tau,
                "mk_p": p,
                "greening_ha": float(got[GREENING]),
                "browning_ha": float(got[BROWNING]),
                "greening_share": share(float(got[GREENING])),
                "browning_share": share(float(got[BROWNING])),
                "net_greening_share": share(float(got[GREENING]) - float(got[BROWNING])),
            }
        )
    return pd.DataFrame(rows)


def _zone_trend(means: np.ndarray, years: list[int]) -> tuple[float, float, float, float, float]:
    """(Sen slope, its 95 % low and high, Kendall tau, Mann-Kendall p) of a zone's yearly means, by scipy."""
    if np.isnan(means).any():
        return (np.nan,) * 5
    slope, _, low, high = stats.theilslopes(means, np.asarray(years, np.float64), alpha=0.95)
    if np.ptp(means) == 0:
        return float(slope), float(low), float(high), np.nan, 1.0
    tau = stats.kendalltau(np.asarray(years, np.float64), means, method="asymptotic")
    return float(slope), float(low), float(high), float(tau.statistic), float(tau.pvalue)
