"""Stage 6, trends: seed 002's indicators over a series of years. Pure numpy/pandas.

* Gibbs-Martin diversity index of land use, GM = 1 - sum(x_i^2) / (sum x_i)^2 (0: one class; towards
  1 - 1/n: n classes of equal area).
* Single land-use dynamic degree of a class, K = (U_b - U_a) / U_a / T x 100 (% per year).
* Grey relational grade of a series against a reference series (Deng's grey relational analysis,
  resolution coefficient rho = 0.5 as in seed 002 section 2.3), after dividing each series by its first
  value.
* GM(1,1) grey forecast (seed 002 section 2.4) with its posterior-error ratio C, small-error
  probability P and the usual precision grade.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import InputError

#: Precision grades of GM(1,1) by (C at most, P at least), best first (Deng's grey system theory tables).
GRADES = (("good", 0.35, 0.95), ("qualified", 0.50, 0.80), ("barely qualified", 0.65, 0.70))
#: Smallest |a| (development coefficient, per step) of a usable GM(1,1) fit. A constant series gives a = 0
#: (round-off leaves ~1e-16), where the model's curve (x0 - b/a) e^(-ak) + b/a is 0/0: the fit then showed
#: C = inf and modelled values such as 256 and 0 for a series of 100s. Below 1e-9 the difference of two
#: accumulated values loses more than half of float64's 16 digits to cancellation (error ~ 1e-16 / |a|
#: relative), so such a fit is refused; no real series that trends at all comes near (1e-9 is a change of
#: one part in a billion per step).
MIN_DEVELOPMENT_COEFFICIENT = 1e-9


def gibbs_martin(areas: np.ndarray) -> float:
    """Diversity of a set of class areas (any unit), 0 ... 1 - 1/n."""
    areas = np.asarray(areas, np.float64)
    total = areas.sum()
    return float(1 - (areas**2).sum() / total**2) if total > 0 else float("nan")


def dynamic_degree(area_a: float, area_b: float, years: float) -> float:
    """Single land-use dynamic degree (% per year) of a class from area_a to area_b over ``years``."""
    return (area_b - area_a) / area_a / years * 100 if area_a > 0 else float("nan")


def grey_relational_grades(reference: np.ndarray, series: np.ndarray, rho: float = 0.5) -> np.ndarray:
    """Grade (0-1] of each row of ``series`` against ``reference`` (same length, first values non-zero)."""
    x0 = np.asarray(reference, np.float64)
    xi = np.atleast_2d(np.asarray(series, np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.abs(xi / xi[:, :1] - x0 / x0[0])
    lo, hi = np.nanmin(diff), np.nanmax(diff)
    with np.errstate(invalid="ignore", divide="ignore"):
        coeff = (lo + rho * hi) / (diff + rho * hi)
    return np.where(hi > 0, coeff.mean(axis=1), 1.0)


@dataclass(frozen=True)
class GreyModel:
    """A fitted GM(1,1): dx1/dt + a x1 = b on the accumulated series."""

    years: np.ndarray
    values: np.ndarray
    a: float
    b: float
    step: int

    def predict(self, years) -> np.ndarray:
        """Modelled values at ``years`` (the first year returns the first observation, by construction)."""
        k = (np.asarray(years) - self.years[0]) // self.step
        x0 = self.values[0]

        def accumulated(k):
            return (x0 - self.b / self.a) * np.exp(-self.a * k) + self.b / self.a

        return np.where(k == 0, x0, accumulated(k) - accumulated(k - 1))

    @property
    def residuals(self) -> np.ndarray:
        return self.values - self.predict(self.years)

    @property
    def C(self) -> float:  # noqa: N802 - the field's name
        """Posterior-error ratio: std of the residuals / std of the series (smaller is better)."""
        m = self.values.mean()  # both over the mean: squares of values near 1e160 overflow, of 1e-160 vanish
        return float((self.residuals / m).std() / (self.values / m).std())

    @property
    def P(self) -> float:  # noqa: N802
        """Small-error probability: share of residuals within 0.6745 std of the series of their mean."""
        m = self.values.mean()
        e = self.residuals / m
        return float(np.mean(np.abs(e - e.mean()) < 0.6745 * (self.values / m).std()))

    @property
    def grade(self) -> str:
        return next((name for name, c, p in GRADES if self.C <= c and self.P >= p), "unqualified")


def gm11(years, values, source=None) -> GreyModel:
    """Fit GM(1,1) by least squares to a series at equally spaced years (at least 4 points).

    C and P count every point including the first, whose residual is 0 by construction; with seed 002's
    2005-2019 net-emission series (Table 5) this gives the paper's C = 0.3235 and P = 0.9333.
    """
    years = np.asarray(years, np.int64)
    values = np.asarray(values, np.float64)
    order = np.argsort(years)
    years, values = years[order], values[order]
    if len(years) < 4:
        raise InputError(f"GM(1,1) needs at least 4 values, got {len(years)}", source)
    steps = np.diff(years)
    if len(set(steps.tolist())) != 1 or steps[0] <= 0:
        raise InputError(f"GM(1,1) needs equally spaced years; got {years.tolist()}", source)
    if not np.isfinite(values).all():
        raise InputError("GM(1,1) needs finite values; the series holds inf or NaN", source)
    if (values <= 0).any():
        raise InputError(
            "GM(1,1) needs positive values (a series that is a net sink or crosses zero cannot "
            "be modelled; forecast sources and sinks separately)",
            source,
        )
    constant = "the series is constant: GM(1,1) cannot be fitted (its development coefficient a is 0 and C = 0/0)"
    if np.ptp(values) == 0:
        raise InputError(
            f"{constant}; a constant series needs no model: its forecast is its value, {values[0]:g}", source
        )
    # Fitted on the series over its mean (a does not depend on the unit, b scales with it): on the raw values
    # the design's two columns differ in scale by the values' magnitude, and lstsq's rank cut-off (rcond,
    # machine epsilon relative to the largest singular value) dropped the constant column from about 1e14
    # (a national GDP in yuan, an emission in g C) and the background column below about 1e-16, giving a
    # wrong a with no error, or "no trend".
    scale = values.mean()
    accumulated = np.cumsum(values / scale)
    background = 0.5 * (accumulated[1:] + accumulated[:-1])
    design = np.column_stack([-background, np.ones(len(background))])
    (a, b), *_ = np.linalg.lstsq(design, values[1:] / scale, rcond=None)
    b *= scale
    if abs(a) < MIN_DEVELOPMENT_COEFFICIENT:
        raise InputError(
            f"the series has no trend: GM(1,1) cannot be fitted (development coefficient a = {a:.2g}, below "
            f"{MIN_DEVELOPMENT_COEFFICIENT:g}); its forecast would be the mean level, about {b:g}",
            source,
        )
    return GreyModel(years, values, float(a), float(b), int(steps[0]))


FORECAST_YEARS = 10


def trend_table(classes, balance):
    """seed 002's indicators per zone from a layer's ``classes`` and ``balance`` tables (long form):
    Gibbs-Martin diversity per epoch, dynamic degree per class and consecutive epochs, grey relational
    grade of each class's area against net emission, and a GM(1,1) forecast of net emission (10 years on)
    with C, P and grade. Zones or series a method cannot use get a ``note`` instead of a value."""
    import pandas as pd

    from pipeline.model.classes import CLASS_NAMES

    # One pivot for all zones; the two per-area indicators are computed for every zone at once (a loop
    # over zones costs seconds per thousand zones).
    areas = classes.pivot_table(
        index=["zone_id", "zone_name", "year"], columns="class", values="area_ha", aggfunc="sum", sort=False
    ).sort_index(level="year", sort_remaining=False)
    zones = list(dict.fromkeys(zip(areas.index.get_level_values(0), areas.index.get_level_values(1))))
    order = {z: k for k, z in enumerate(zones)}
    keys = areas.index.to_frame(index=False)
    parts = []
    values = areas.to_numpy(np.float64)
    total = values.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        diversity = np.where(total > 0, 1 - (values**2).sum(axis=1) / total**2, np.nan)
    parts.append(
        keys.assign(
            indicator="gibbs_martin_diversity",
            value=diversity,
            unit="index 0-1",
            y1=keys["year"],
            part=0,
            seq=keys["year"],
        )
    )
    following = areas.groupby(level=["zone_id", "zone_name"], sort=False).shift(-1)
    next_year = keys.groupby(["zone_id", "zone_name"], sort=False)["year"].shift(-1)
    has_next = next_year.notna().to_numpy()
    span = (next_year - keys["year"]).to_numpy()
    for cls in areas.columns:
        a, b = areas[cls].to_numpy(np.float64), following[cls].to_numpy(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            degree = np.where(a > 0, (b - a) / a / span * 100, np.nan)
        parts.append(
            keys[has_next].assign(
                indicator="dynamic_degree",
                value=degree[has_next],
                unit="% per year",
                **{"class": cls},
                y0=keys["year"][has_next],
                y1=next_year[has_next].astype(np.int64),
                part=1,
                seq=keys["year"][has_next] * 100 + cls,
            )
        )
    rows: list[dict[str, object]] = []

    def add(zone, indicator, value, unit, cls=None, y0=None, y1=None, note=""):
        rows.append(
            {
                "zone_id": zone[0],
                "zone_name": zone[1],
                "indicator": indicator,
                "class": cls,
                "y0": y0,
                "y1": y1,
                "value": value,
                "unit": unit,
                "note": note,
                "part": 2,
                "seq": len(rows),
            }
        )

    # Per-zone work on plain arrays: pandas indexing inside this loop cost seconds per thousand zones.
    usable = balance.dropna(subset=["net_emission_tC_yr"])
    series = {
        name: usable[name].to_numpy()
        for name in ("year", "net_emission_tC_yr", "statistics", "nearest_epoch", "areas_from_epoch")
    }
    by_zone = usable.groupby("zone_id", sort=False).indices
    area_years = keys["year"].to_numpy()
    for zone, at_area in areas.groupby(level=["zone_id", "zone_name"], sort=False).indices.items():
        at = by_zone.get(zone[0], np.array([], np.int64))
        b = {name: column[at] for name, column in series.items()}
        row_of_year = dict(zip(area_years[at_area].tolist(), at_area.tolist()))
        _grey(zone, areas.columns, values, row_of_year, b, add)
        _forecast(zone, b, add)
    parts.append(pd.DataFrame(rows))
    out = pd.concat(parts, ignore_index=True)
    out["order"] = [order[z] for z in zip(out["zone_id"], out["zone_name"])]
    out = out.sort_values(["order", "part", "seq"], kind="stable").reset_index(drop=True)
    out["class_name"] = [CLASS_NAMES.get(c, "") if c == c and c is not None else "" for c in out["class"]]
    out["note"] = out["note"].fillna("")
    columns = ["zone_id", "zone_name", "indicator", "class", "class_name", "y0", "y1", "value", "unit", "note"]
    out = out[columns]
    for column in ("class", "y0", "y1"):
        out[column] = out[column].astype("Int64")
    return out


def _grey(zone, columns, values, row_of_year, balance: dict, add) -> None:
    """Each class's area (that of the epoch standing in for each balance year) against net emission.
    ``values`` holds the class areas (columns) of every zone and epoch; ``row_of_year`` this zone's rows."""
    if len(balance["year"]) < 3:
        add(zone, "grey_relational_grade", np.nan, "grade 0-1", note="fewer than 3 years with a net emission")
        return
    years, net = balance["year"], balance["net_emission_tC_yr"].astype(np.float64)
    areas = values[[row_of_year[y] for y in balance["areas_from_epoch"].tolist()]].T  # class x year
    usable = (areas[:, 0] > 0) & (net[0] != 0)
    grades = np.full(len(areas), np.nan)
    if usable.any():
        grades[usable] = grey_relational_grades(net, areas[usable])
    for cls, grade, ok in zip(columns, grades, usable):
        add(
            zone,
            "grey_relational_grade",
            grade,
            "grade 0-1",
            cls,
            int(years[0]),
            int(years[-1]),
            "" if ok else "zero area or net emission in the first year",
        )


def _forecast(zone, balance: dict, add) -> None:
    """GM(1,1) of net emission over the first usable series: the statistics years, the epochs, all years."""
    statistics, nearest = balance["statistics"].astype(bool), balance["nearest_epoch"].astype(bool)
    model, reasons, tried = None, [], set()
    series = (("statistics years", statistics), ("epochs", ~nearest), ("all years", np.ones(len(statistics), bool)))
    for name, keep in series:
        years = tuple(balance["year"][keep].tolist())
        if not years or years in tried:  # an empty series, or one already tried, says nothing new
            continue
        tried.add(years)
        try:
            model = gm11(balance["year"][keep], balance["net_emission_tC_yr"][keep].astype(np.float64))
            break
        except InputError as e:
            reasons.append(f"{name} {list(years)}: {e.message}")
    if model is None:
        note = "; ".join(reasons) or "no year with a net emission"
        add(zone, "net_emission_forecast", np.nan, "t C/yr", note=note)
        return
    first, last = int(model.years[0]), int(model.years[-1])
    fit = f"GM(1,1) on {first}-{last}: a={model.a:.6g}, b={model.b:.6g}, grade {model.grade}"
    add(zone, "gm11_C", model.C, "ratio", y0=first, y1=last, note=fit)
    add(zone, "gm11_P", model.P, "probability", y0=first, y1=last, note=fit)
    future = np.arange(last + model.step, last + FORECAST_YEARS + 1, model.step)
    with np.errstate(over="ignore", invalid="ignore"):
        modelled = model.predict(future)
    if not np.isfinite(modelled).all():  # |a| so large that 10 years overflow float64: no number, a note
        add(zone, "net_emission_forecast", np.nan, "t C/yr", y0=last, note=f"{fit}: the forecast overflows")
        return
    for year, value in zip(future, modelled):
        add(zone, "net_emission_forecast", value, "t C/yr", y0=last, y1=int(year), note=fit)
