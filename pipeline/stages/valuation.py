"""Valuation of carbon as InVEST values it: the net present value of an interval's stock change.

InVEST's Carbon model (User's Guide, "Carbon Storage and Sequestration", Valuation) spreads the stock
change of the n = y1 - y0 years evenly over them and values each year's share at a price that changes
by c % a year, discounted at r % a year:

    NPV = V x (change / n) x sum_{t=0}^{n-1} 1 / ((1 + r/100)^t (1 + c/100)^t) = change x K,

with V the price per t C. K (currency per t C) is the interval's *valuation constant*; with
q = 1 / ((1 + r/100)(1 + c/100)) the sum is the geometric series (1 - q^n) / (1 - q), and n when q = 1.
Pure functions; the tables and rasters only multiply the run's stock change by K.
"""

from __future__ import annotations

import pandas as pd


def valuation_constant(
    y0: int, y1: int, discount_rate_pct: float, price_change_pct: float, price_per_tC: float
) -> float:
    """InVEST's valuation constant of the interval y0 -> y1 (currency per t C of stock change)."""
    n = y1 - y0
    if n <= 0:
        raise ValueError(f"an interval runs forward in time: {y0} -> {y1}")
    q = 1.0 / ((1.0 + discount_rate_pct / 100.0) * (1.0 + price_change_pct / 100.0))
    # The series summed term by term: n is a few decades at most, and no 1 - q cancels near q = 1.
    series = sum(q**t for t in range(n))
    return price_per_tC / n * series


def valuation_table(
    intervals: pd.DataFrame, discount_rate_pct: float, price_change_pct: float, price_per_tC: float
) -> pd.DataFrame:
    """Per zone and interval of an ``intervals_<layer>`` table: stock_change_tC, the interval's
    valuation_constant (currency per t C) and npv = stock_change_tC x valuation_constant (currency)."""
    out = intervals[["zone_id", "zone_name", "y0", "y1", "years", "stock_change_tC"]].copy()
    constants = {
        (y0, y1): valuation_constant(y0, y1, discount_rate_pct, price_change_pct, price_per_tC)
        for y0, y1 in zip(out["y0"], out["y1"])
    }
    out["valuation_constant"] = [constants[(a, b)] for a, b in zip(out["y0"], out["y1"])]
    out["npv"] = out["stock_change_tC"] * out["valuation_constant"]
    return out.reset_index(drop=True)
