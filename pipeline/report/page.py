"""report.html (stage 8): one self-contained page with the maps (embedded PNG), the key tables, the
parameters with their sources, the run's warnings and its manifest. No scripts, no network."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from pipeline import spec
from pipeline.errors import OutputError
from pipeline.io.tables import read_table
from pipeline.runner.studyarea import OPEN_WATER_WARNING

_STYLE = """
body{font-family:"DejaVu Sans","Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:2em auto;max-width:1200px;
color:#222;line-height:1.4}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;font-size:.82em;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:2px 6px}td{text-align:right}th{background:#f3f3f3}
td:nth-child(-n+2){text-align:left}
.maps{display:flex;flex-wrap:wrap;gap:12px}.maps figure{margin:0;width:48%}.maps img{width:100%}
figcaption{font-size:.8em;color:#555}.warn{background:#fff4e0;border-left:4px solid #e69500;padding:.3em .8em}
pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:.75em}nav a{margin-right:1em}
"""


def write_report(
    folder: Path, context: spec.RunContext, manifest: dict, maps: list[Path], parameters: dict[str, Path]
) -> None:
    """Write report.html into the run's ``folder`` (tables already written) from its ``maps`` and
    ``manifest``; ``context`` says which tables the run wrote (the output specification's).

    ``parameters`` maps a title to a parameter table file, shown whole with its ``source`` column. The
    manifest shown lists the outputs written before the report; the manifest file itself also lists
    the report.
    """

    def table(key: str, **fields: object) -> Path:
        return folder / spec.path(key, **fields)

    region = ("zone_id", "zone_name")
    parts = [
        _header(manifest)
        + _study_area(manifest, table("epochs"))
        + _completeness(table("classes", layer="region"), table("balance", layer="region"))
    ]
    parts.append(_section("warnings", "Warnings", _warnings(manifest["warnings"])))
    parts.append(
        _section(
            "balance",
            "Carbon balance of the region",
            _frame(_balance_frame(_read(table("balance", layer="region")), drop=region)),
        )
    )
    parts.append(_section("maps", "Maps", _figures(folder, maps)))
    parts.append(
        _section(
            "zones",
            "Balance by zone, last year",
            _zone_balances({name: table("balance", layer=name) for name in context.layers}),
        )
    )
    first_last = (context.years[0], context.years[-1])
    pathways = table("pathways", layer="region", y0=first_last[0], y1=first_last[1]) if context.intervals else None
    parts.append(_section("pathways", "Pathways of change, first to last epoch", _pathways(folder, pathways)))
    parts.append(
        _section(
            "checks",
            "Displacement and consolidation checks",
            _resampling(table("intervals", layer="region")) + _table(table("intervals", layer="region"), drop=region),
        )
    )
    if context.scenarios:
        parts.append(_section("scenarios", "Scenarios", _scenarios(folder, context, table)))
    if context.uncertainty or context.valuation:
        parts.append(
            _section(
                "uncertainty",
                "Uncertainty and value of the carbon figures",
                _uncertainty(folder, context, table) + _valuation(folder, context, table),
            )
        )
    if "redline" in context.stages:
        parts.append(
            _section(
                "redline",
                "Ecological protection red-line candidates",
                _redline(table("candidates"), table("coverage") if context.coverage else None),
            )
        )
    parts.append(_section("trends", "Trends and GM(1,1) forecast", _trends(table("trends", layer="region"))))
    if context.indicators and "trends" in context.stages:
        parts.append(
            _section(
                "indicators",
                "Vegetation and other indicator series by zone",
                _indicators({name: table("indicators", layer=name) for name in context.all_layers}),
            )
        )
    parts.append(
        _section(
            "parameters",
            "Parameters and their sources",
            "".join(
                f"<h3>{html.escape(title)}</h3><p><code>{html.escape(str(file))}</code></p>" + _frame(read_table(file))
                for title, file in parameters.items()
            ),
        )
    )
    parts.append(
        _section(
            "manifest",
            "Run manifest",
            "<details><summary>inputs, versions, timings, outputs"
            "</summary><pre>" + html.escape(json.dumps(manifest, indent=2, ensure_ascii=False)) + "</pre></details>",
        )
    )
    nav = "<nav>" + "".join(f'<a href="#{k}">{t}</a>' for k, t in _NAV) + "</nav>"
    body = parts[0] + nav + "".join(parts[1:])
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(manifest["name"])}'
        f" carbon report</title><style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )
    path = folder / spec.path("report")
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as e:  # disk full, folder gone
        raise OutputError(f"cannot write the report: {e.strerror or e}", path) from None


_NAV = [
    ("warnings", "Warnings"),
    ("balance", "Balance"),
    ("maps", "Maps"),
    ("zones", "Zones"),
    ("pathways", "Pathways"),
    ("checks", "Checks"),
    ("scenarios", "Scenarios"),
    ("uncertainty", "Uncertainty and value"),
    ("redline", "Red lines"),
    ("trends", "Trends"),
    ("indicators", "Indicators"),
    ("parameters", "Parameters"),
    ("manifest", "Manifest"),
]


def _header(manifest: dict) -> str:
    grid = manifest["grid"]
    years = ", ".join(str(y) for y in manifest["config"]["epochs"])
    return (
        f"<h1>{html.escape(manifest['name'])}: land-use carbon balance</h1>"
        f"<p>carbon-pipeline {manifest['pipeline_version']}, finished {manifest['finished_utc']}. "
        f"Epochs {years}; grid {grid['width']} × {grid['height']} pixels, {html.escape(grid['crs'])}. "
        "Stock in t C; sink, source and net emission in t C/yr (+ emission, − uptake).</p>"
    )


def _study_area(manifest: dict, epochs_file: Path) -> str:
    """The report's first lines on the study area: the ``boundary:`` file and the area outside it (from
    tables/epochs.csv), or, without one, that water looked like open sea counted as the region."""
    boundary = manifest["config"].get("boundary")
    if boundary is None:
        if not any(OPEN_WATER_WARNING in m for m in manifest["warnings"]):
            return ""
        return (
            '<p class="warn"><strong>No study-area boundary, and open water is counted.</strong> Without '
            "<code>boundary:</code> every valid pixel of the rasters counts; here water and wetland is more than "
            "half of the valid area or of the raster's edge, so open sea or a large lake beyond the region is "
            "counted as its land and sink (see the warnings). Set <code>boundary:</code> to the region's polygons.</p>"
        )
    where = html.escape(str(boundary["path"]))
    if boundary.get("layer"):
        where += f", layer {html.escape(str(boundary['layer']))}"
    if boundary.get("coordinates") == "gcj02":
        where += ", GCJ-02 coordinates moved to WGS84"
    epochs = _read(epochs_file)
    outside = ""
    if epochs is not None and "outside_boundary_area_ha" in epochs.columns:
        rows = [
            f"{int(r.year)}: {r.outside_boundary_area_ha:,.2f} ha ({int(r.outside_boundary_pixels):,} px)"
            for r in epochs.itertuples()
        ]
        same = epochs["outside_boundary_pixels"].nunique() == 1
        outside = (
            f" Outside it, not counted anywhere: {rows[0].split(': ', 1)[1]} in every epoch"
            if same
            else " Outside it, not counted anywhere: " + "; ".join(rows)
        ) + " (<code>tables/epochs.csv</code>, <code>outside_boundary_area_ha</code>)."
    return (
        f"<p><strong>Study area:</strong> only pixels whose centre lies inside the boundary "
        f"<code>{where}</code> count.{outside}</p>"
    )


def _resampling(intervals_file: Path) -> str:
    """A line per interval whose epochs were resampled (``align: nearest``): the change resampling alone is
    expected to make, beside the change found."""
    frame = _read(intervals_file)
    if frame is None or "resampling_changed_pixels" not in frame.columns:
        return ""
    lines = []
    for r in frame[frame["resampling_changed_pixels"] > 0].itertuples():
        changed = r.changed_area_ha / r.area_ha if r.area_ha > 0 else float("nan")
        lines.append(
            f"Interval {int(r.y0)}-{int(r.y1)}: {100 * changed:.2f} % of the area changed "
            f"({int(r.changed_pixels):,} px); "
            f"resampling alone is expected to change {100 * r.resampling_changed_share:.2f} % of the valid pixels "
            f"({r.resampling_changed_pixels:,.1f} px)."
        )
    if not lines:
        return ""
    return (
        '<p class="warn"><strong>Change made by resampling.</strong> An epoch was resampled with nearest neighbour '
        "onto the first epoch's grid (<code>align: nearest</code>), which alone moves class boundaries by up to half "
        "a pixel. " + " ".join(lines) + " Only the difference can be land-use change "
        "(<code>resampling_changed_pixels</code>).</p>"
    )


def _completeness(classes_file: Path, balance_file: Path) -> str:
    """The report's first lines when land has no known flux: which classes, how much, where the net emission
    is not given, and how to supply what is missing."""
    classes, balance = _read(classes_file), _read(balance_file)
    if classes is None or balance is None or "uncounted_area_ha" not in classes.columns:
        return ""
    lost = classes[classes["uncounted_area_ha"] > 0]
    if lost.empty:
        return ""
    area = balance.set_index("year")["area_ha"]
    share = lost["uncounted_area_ha"] / lost["year"].map(area).where(lambda a: a > 0)
    worst = lost.assign(share=share).groupby(["class", "class_name"])[["uncounted_area_ha", "share"]].max()
    what = ", ".join(
        f"{c} {html.escape(str(n))} (up to {row.uncounted_area_ha:,.2f} ha, {row.share:.0%} of the land)"
        for (c, n), row in worst.iterrows()
    )
    missing = balance[balance["net_emission_tC_yr"].isna() & (balance["area_ha"] > 0)]
    if len(missing):
        years = ", ".join(str(int(y)) for y in missing["year"])
        net = (
            f"The region's net emission is <strong>not given</strong> for {years}: the flux of more than the "
            "allowed share of its land (<code>carbon.max_uncounted_share</code>) is unknown, and a partial sum "
            "would mislead. Sink and source are the sums over the counted land only (see counted_area_ha)."
        )
    else:
        net = (
            "The uncounted land is within <code>carbon.max_uncounted_share</code>: net emission is given, as the "
            "sum over the counted land (see counted_area_ha)."
        )
    return (
        '<p class="warn"><strong>Incomplete carbon balance.</strong> No annual rate or statistics for class '
        f"{what}: this land is not counted in sink, source or net emission. {net} To count it, add rows for "
        "these classes to the rates table (<code>carbon.rates</code>), or county statistics "
        "(<code>carbon.statistics</code>).</p>"
    )


def _balance_frame(frame: pd.DataFrame | None, drop: tuple[str, ...] = ()) -> pd.DataFrame | None:
    """A balance table for the page: net emission says "not counted" (and why) where it is not given."""
    if frame is None:
        return None
    frame = frame.drop(columns=[c for c in drop if c in frame.columns])
    nets = [c for c in frame.columns if c.startswith("net_emission_")]
    if not nets or "counted_share" not in frame.columns:
        return frame
    out = frame.copy()
    unknown = frame[nets[0]].isna() & (frame["area_ha"] > 0)
    reason = [f"not counted: flux of {1 - s:.0%} of the land unknown" for s in frame["counted_share"]]
    for column in nets:
        text = [_number(v) for v in frame[column]]
        out[column] = [r if u else t for r, u, t in zip(reason, unknown, text)]
    return out


def _number(v: float) -> str:
    if v != v:
        return ""
    return f"{v:,.2f}" if abs(v) >= 1 else f"{v:.4g}"


def _section(key: str, title: str, content: str) -> str:
    return f'<h2 id="{key}">{html.escape(title)}</h2>{content}'


def _warnings(messages: list[str]) -> str:
    if not messages:
        return "<p>None.</p>"
    return "".join(f'<p class="warn">{html.escape(m)}</p>' for m in messages)


def _figures(folder: Path, maps: list[Path]) -> str:
    items = []
    for m in maps:
        data = base64.b64encode(m.read_bytes()).decode("ascii")
        rel = m.relative_to(folder).as_posix()
        items.append(
            f'<figure><img alt="{rel}" src="data:image/png;base64,{data}"><figcaption>{rel}</figcaption></figure>'
        )
    return f'<div class="maps">{"".join(items)}</div>' if items else "<p>No maps.</p>"


def _read(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path, encoding="utf-8-sig", dtype={"zone_id": str}) if path.exists() else None


def _frame(frame: pd.DataFrame | None) -> str:
    if frame is None or frame.empty:
        return "<p>Not computed in this run.</p>"
    return _years_as_integers(frame).to_html(index=False, na_rep="", float_format=_number, border=0)


def _years_as_integers(frame: pd.DataFrame) -> pd.DataFrame:
    """Year columns (unit "year" in the glossary) print as 2003, not 2,003.00, also when a missing value made
    them floats."""
    out = frame.copy()
    for column in frame.columns:
        unit = spec.column_unit(str(column))
        values = frame[column]
        if unit is None or unit[0] != "year" or values.dtype.kind != "f":
            continue
        if (values.dropna() % 1 == 0).all():
            out[column] = [str(int(v)) if v == v else "" for v in values]
    return out


def _table(path: Path, drop: tuple[str, ...] = ()) -> str:
    frame = _read(path)
    return _frame(None if frame is None else frame.drop(columns=[c for c in drop if c in frame.columns]))


def _zone_balances(files: dict[str, Path]) -> str:
    out = []
    for layer, file in files.items():
        frame = _read(file)
        if frame is None:
            continue
        last = frame[(frame["year"] == frame["year"].max()) & (frame["area_ha"] > 0)]  # zones with land only
        keep = [
            c
            for c in (
                "zone_id",
                "zone_name",
                "year",
                "area_ha",
                "counted_share",
                "stock_tC",
                "sink_tC_yr",
                "source_tC_yr",
                "net_emission_tC_yr",
            )
            if c in last.columns
        ]
        out.append(f"<h3>{html.escape(layer)}</h3>" + _frame(_balance_frame(last[keep])))
    return "".join(out) or "<p>No zone layers in the config.</p>"


def _pathways(folder: Path, file: Path | None) -> str:
    frame = None if file is None else _read(file)
    if file is None or frame is None:
        return "<p>One epoch only: no change to describe.</p>"
    return f"<p><code>{file.relative_to(folder).as_posix()}</code></p>" + _frame(
        frame.drop(columns=["zone_id", "zone_name"])
    )


def _scenarios(folder: Path, context: spec.RunContext, table: Callable[..., Path]) -> str:
    """The region's scenarios side by side: stock, net emission, change against the base epoch by pathway,
    difference to the year's first scenario; then each zone layer's table file."""
    file = table("scenarios", layer="region")
    frame = _read(file)
    base = context.scenarios[0][0]
    text = (
        f"<p>Each scenario is an interval from the base epoch {base} to its map, on the run's grid and valid mask; "
        "both sides are valued with the per-hectare densities and rates (a simulated map has no county "
        "statistics). Stock in t C, flux in t C/yr; <code>stock_difference_tC</code> and "
        "<code>net_emission_difference_tC_yr</code> are against the first scenario of the year. Land valid in "
        "every epoch but nodata in a scenario map is left out of that scenario (<code>scenario_nodata_area_ha"
        "</code>). The maps <code>maps/scenarios_&lt;layer&gt;_&lt;year&gt;.png</code> put the scenarios side by "
        "side on shared classes.</p>"
        f"<p><code>{file.relative_to(folder).as_posix()}</code></p>"
    )
    if frame is None:
        return text + _frame(None)
    keep = [
        c
        for c in frame.columns
        if c not in ("zone_id", "zone_name", "years", "counted_area_ha", "uncounted_area_ha", "scenario_nodata_pixels")
        and "_tCO2" not in c
    ]
    text += _frame(_balance_frame(frame[keep]))
    layers = [table("scenarios", layer=name).relative_to(folder).as_posix() for name in context.layers]
    if layers:
        text += "<p>Per zone: " + ", ".join(f"<code>{name}</code>" for name in layers) + ".</p>"
    return text


def _uncertainty(folder: Path, context: spec.RunContext, table: Callable[..., Path]) -> str:
    """The region's percentiles per year and of the stock change per pathway, first to last epoch."""
    if not context.uncertainty:
        return ""
    text = (
        "<p>5th, 50th and 95th percentiles over draws of the parameter tables applied to the run's pixel counts: "
        "each value with a standard deviation (<code>_sd</code>) is drawn from a normal distribution (densities "
        "truncated at 0), each with bounds (<code>_low</code>/<code>_high</code>) from a triangular one with the "
        "table's value as mode; all pixels of a table row share its draw.</p>"
    )
    balance = table("uncertainty", layer="region")
    text += f"<h3>Region, per year</h3><p><code>{balance.relative_to(folder).as_posix()}</code></p>"
    text += _table(balance, drop=("zone_id", "zone_name"))
    change = table("stock_change_uncertainty", layer="region")
    frame = _read(change)
    if frame is not None and context.intervals:
        first, last = context.years[0], context.years[-1]
        frame = frame[(frame["y0"] == first) & (frame["y1"] == last)]
        text += (
            f"<h3>Stock change per pathway, {first} to {last}</h3>"
            f"<p><code>{change.relative_to(folder).as_posix()}</code></p>"
            + _frame(frame.drop(columns=["zone_id", "zone_name"]))
        )
    return text


def _valuation(folder: Path, context: spec.RunContext, table: Callable[..., Path]) -> str:
    """The region's net present value of the stock change per interval."""
    if not context.valuation or not context.intervals:
        return ""
    file = table("valuation", layer="region")
    return (
        "<h3>Net present value of the stock change</h3><p>InVEST's valuation: the interval's stock change spread "
        "evenly over its years, each year's share valued at the price of carbon changing by "
        "<code>valuation.price_change_pct</code> a year and discounted at <code>valuation.discount_rate_pct</code>; "
        "npv = stock_change_tC x valuation_constant, in the currency of <code>valuation.price_per_tC</code> "
        "(per pixel: <code>rasters/npv_&lt;y0&gt;_&lt;y1&gt;.tif</code>).</p>"
        f"<p><code>{file.relative_to(folder).as_posix()}</code></p>" + _table(file, drop=("zone_id", "zone_name"))
    )


def _redline(candidates: Path, coverage: Path | None) -> str:
    """Coverage per ecological function zone (with the gap fill) and the 20 best candidates."""
    cover = None if coverage is None else _read(coverage)
    text = (
        "<p>Candidates: Getis-Ord Gi* hotspots of carbon in forest, grassland, water and unused land, "
        "ranked by stock (<code>redline/candidates.gpkg</code>); gap fill: the next best land by stock density "
        "where a zone falls short of its target (<code>redline/gap_fill.gpkg</code>).</p>"
    )
    if cover is not None:
        text += "<h3>Coverage per zone</h3>" + _frame(cover)
    best = _read(candidates)
    return text + "<h3>Best candidates</h3>" + _frame(None if best is None else best.head(20))


def _indicators(files: dict[str, Path]) -> str:
    """Per layer: yearly means, the zone's Sen slope and Mann-Kendall p, and the land greening and browning."""
    text = (
        "<p>Means are area-weighted over the valid land with a value in every year; the slope is the Theil-Sen "
        "slope of the yearly means (per year) with the Mann-Kendall p; greening and browning shares count the "
        "pixels whose own series rises or falls significantly. Maps: share greening minus browning.</p>"
    )
    keep = ("indicator_area_ha", "sen_slope_per_yr", "mk_p", "greening_share", "browning_share")
    for name, file in files.items():
        frame = _read(file)
        if frame is None:
            continue
        columns = ["zone_id", "zone_name", "series", *[c for c in frame.columns if c.startswith("mean_")], *keep]
        text += f"<h3>{html.escape(name)}</h3>" + _frame(frame[columns])
    return text


def _trends(file: Path) -> str:
    frame = _read(file)
    if frame is None:
        return _frame(None)
    keep = frame[frame["indicator"].isin(["gibbs_martin_diversity", "gm11_C", "gm11_P", "net_emission_forecast"])]
    return _frame(keep.drop(columns=["zone_id", "zone_name", "class", "class_name"]))
