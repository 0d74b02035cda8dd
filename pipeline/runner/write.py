"""Write: the run's tables from its pixel counts (no pixels are read here), its GeoPackages, and the
staged rasters finished as COGs. Every file name comes from the output specification."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import geopandas as gpd
import pandas as pd

from pipeline import spec
from pipeline.io.staging import Staging
from pipeline.io.tables import write_geopackage, write_table
from pipeline.model.grid import Grid, PixelAreas
from pipeline.model.inputs import EpochSource, ZoneLayer
from pipeline.runner.compute import PassResults, warn_uncounted
from pipeline.runner.plan import Plan
from pipeline.stages import (
    balance,
    indicators,
    intensity,
    reclassify,
    registration,
    resampling,
    scenarios,
    transitions,
    trends,
    uncertainty,
    valuation,
    zonal,
)
from pipeline.stages.counts import count_area_ha

log = logging.getLogger(__name__)


@dataclass
class Tables:
    """The tables the maps and the report draw: per layer name the classes and balance tables, per
    (layer, y0, y1) the pathway table, and the region's transition matrices of consecutive epochs."""

    classes: dict[str, pd.DataFrame] = field(default_factory=dict)
    balance: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: Per layer name the indicators table (every series), when ``indicators:`` are given.
    indicators: dict[str, pd.DataFrame] = field(default_factory=dict)
    pathways: dict[tuple[str, int, int], pd.DataFrame] = field(default_factory=dict)
    flows: dict[tuple[int, int], pd.DataFrame] = field(default_factory=dict)
    #: Per layer name, the intervals table (zone and interval summaries).
    intervals: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: Per layer name, the scenarios table (``scenarios:``).
    scenarios: dict[str, pd.DataFrame] = field(default_factory=dict)


def write_tables(plan: Plan, results: PassResults, staging: Staging) -> Tables:
    """Every table and GeoPackage of the run."""
    config, areas = plan.config, plan.areas
    status = epochs_table(plan.lc.sources, results.status, results.unknown, areas)
    write_table(status, staging.path(spec.path("epochs")))
    layers: dict[str, tuple[ZoneLayer | None, str | None]] = {"region": (None, None)}
    layers |= {z.name: (z, plan.column(z)) for z in plan.reported}
    out = Tables()
    for name, (layer, column) in layers.items():
        classes = balance.class_table(results.parameters, results.counts, layer, column, config.name, config.carbon.co2)
        balances = balance.balance_table(
            results.parameters,
            results.counts,
            layer,
            column,
            config.name,
            config.carbon.co2,
            config.carbon.max_uncounted_share,
        )
        write_table(classes, staging.path(spec.path("classes", layer=name)))
        write_table(balances, staging.path(spec.path("balance", layer=name)))
        if "trends" in plan.stages:
            write_table(trends.trend_table(classes, balances), staging.path(spec.path("trends", layer=name)))
        out.classes[name], out.balance[name] = classes, balances
        if results.indicators and "trends" in plan.stages:
            out.indicators[name] = indicator_table(plan, results, layer, column)
            write_table(out.indicators[name], staging.path(spec.path("indicators", layer=name)))
    warn_uncounted(out.classes["region"], plan.rates)
    frame = next(iter(results.counts.values()))
    for layer in plan.reported:
        zone_tables(layer, frame, plan.column(layer), out.balance[layer.name], areas, plan.grid, staging)
    interval_tables(results, layers, config.name, config.carbon.co2, staging, out)
    if results.scenario_counts:
        share = config.carbon.max_uncounted_share
        scenario_tables(results, layers, config.name, config.carbon.co2, share, staging, out)
    if config.uncertainty is not None:
        uncertainty_tables(plan, results, layers, out, staging)
    if config.valuation is not None:
        value = config.valuation
        for name, summary in out.intervals.items():
            table = valuation.valuation_table(
                summary, value.discount_rate_pct, value.price_change_pct, value.price_per_tC
            )
            _write(table, staging, spec.path("valuation", layer=name), config.carbon.co2)
    return out


def indicator_table(plan: Plan, results: PassResults, layer: ZoneLayer | None, column: str | None) -> pd.DataFrame:
    """tables/indicators_<layer>: every indicator series, zone by zone (``indicators.zone_table``)."""
    zones = balance.zone_frame(layer, plan.config.name)
    parts = []
    for series in plan.indicators:
        frame = results.indicators[series.name]
        table = indicators.zone_table(
            frame, column, zones, series.years, series.precision, series.name, series.config.unit
        )
        parts.append(table)
    # Series of other years leave their mean_<year> columns empty; the years' columns stay together, in order.
    table = pd.concat(parts, ignore_index=True)
    means = sorted(c for c in table.columns if c.startswith("mean_"))
    first = list(table.columns).index("indicator_missing_ha") + 1
    rest = [c for c in table.columns if not c.startswith("mean_")]
    return _sorted(table[rest[:first] + means + rest[first:]], ["series"])


def uncertainty_tables(
    plan: Plan,
    results: PassResults,
    layers: dict[str, tuple[ZoneLayer | None, str | None]],
    out: Tables,
    staging: Staging,
) -> None:
    """uncertainty_<layer> and stock_change_uncertainty_<layer>: percentiles over draws of the parameter tables
    applied to the run's counts (no pixels are read)."""
    config = plan.config
    assert config.uncertainty is not None
    draws = uncertainty.make_draws(plan.densities, plan.rates, config.uncertainty.draws, config.uncertainty.seed)
    params = results.parameters
    for name, (layer, column) in layers.items():
        zones = balance.zone_frame(layer, config.name)
        table = uncertainty.balance_percentiles(params, draws, results.counts, out.balance[name], zones, column)
        _write(table, staging, spec.path("uncertainty", layer=name), config.carbon.co2)
        if results.interval_counts:
            change = uncertainty.stock_change_percentiles(params, draws, results.interval_counts, zones, column)
            _write(change, staging, spec.path("stock_change_uncertainty", layer=name), config.carbon.co2)


def epochs_table(
    sources: list[EpochSource],
    status: dict[int, pd.DataFrame],
    unknown: dict[int, dict[int, int]],
    areas: PixelAreas,
) -> pd.DataFrame:
    """tables/epochs.csv: per epoch the valid, own-nodata, unknown-code, excluded-by-another-epoch and
    outside-the-boundary pixels and hectares."""
    rows = []
    for src in sources:
        frame, every = status[src.year], range(reclassify.NSTATUS)
        px = frame.groupby("status")["pixels"].sum().reindex(every, fill_value=0).to_numpy()
        area = pd.Series(count_area_ha(frame, areas), index=frame.index)
        ha = area.groupby(frame["status"]).sum().reindex(every, fill_value=0.0).to_numpy()
        rows.append(
            {
                "year": src.year,
                "files": len(src.files),
                "source_dtype": src.dtype,
                "source_nodata": src.nodata,
                "valid_pixels": int(px[reclassify.VALID]),
                "valid_area_ha": ha[reclassify.VALID],
                "nodata_pixels": int(px[reclassify.OWN_NODATA]),
                "nodata_area_ha": ha[reclassify.OWN_NODATA],
                "unknown_code_pixels": int(px[reclassify.UNKNOWN_CODE]),
                "unknown_code_area_ha": ha[reclassify.UNKNOWN_CODE],
                "excluded_by_other_epochs_pixels": int(px[reclassify.EXCLUDED_BY_OTHER]),
                "excluded_by_other_epochs_area_ha": ha[reclassify.EXCLUDED_BY_OTHER],
                "outside_boundary_pixels": int(px[reclassify.OUTSIDE_BOUNDARY]),
                "outside_boundary_area_ha": ha[reclassify.OUTSIDE_BOUNDARY],
                "unknown_codes": " ".join(f"{k}:{v}" for k, v in unknown[src.year].items()),
            }
        )
    return pd.DataFrame(rows)


def zone_tables(
    layer: ZoneLayer,
    frame: pd.DataFrame,
    column: str,
    balances: pd.DataFrame,
    areas: PixelAreas,
    grid: Grid,
    staging: Staging,
) -> None:
    """zones_<layer>: polygon, burned and valid areas, boundary difference and overlaps of every zone
    (overlaps are also warned about: a pixel goes to one of them); and <layer>.gpkg: the zones in the
    grid's CRS with those areas and their balance, one column per year."""
    report = zonal.zone_report(layer, frame, column, areas, grid)
    write_table(report, staging.path(spec.path("zones", layer=layer.name)))
    values = [
        c
        for c in ("stock_tC", "sink_tC_yr", "source_tC_yr", "net_emission_tC_yr", "counted_share")
        if c in balances.columns
    ]
    wide = balances.pivot(index="zone_id", columns="year", values=values)
    wide.columns = [f"{value}_{year}" for value, year in wide.columns]
    attributes = report.merge(wide, left_on="zone_id", right_index=True, how="left")
    gdf = gpd.GeoDataFrame(attributes, geometry=layer.polygons.geometry.to_numpy(), crs=layer.polygons.crs)
    write_geopackage(gdf, staging.path(spec.path("zone_layer", layer=layer.name)), layer.name)
    empty = report["valid_area_ha"] == 0
    if empty.any():
        log.warning(
            "zone layer '%s': %d of %d zones have no valid pixel (outside the rasters or on nodata); they "
            "are listed in %s with a valid area of 0 and left out of the maps and the report",
            layer.name,
            empty.sum(),
            len(report),
            spec.path("zones", layer=layer.name),
        )
    shared = report["overlap_ha"] > 0
    if shared.any():
        log.warning(
            "zone layer '%s': %d zones overlap others, %.2f ha shared in all (each pixel is counted in "
            "one zone only); see %s",
            layer.name,
            shared.sum(),
            report["overlap_ha"].sum() / 2,
            spec.path("zones", layer=layer.name),
        )


def interval_tables(
    results: PassResults,
    layers: dict[str, tuple[ZoneLayer | None, str | None]],
    region: str,
    co2: bool,
    staging: Staging,
    out: Tables,
) -> None:
    """transitions_<layer>_<y0>_<y1>, pathways_<layer>_<y0>_<y1> and intervals_<layer> for every layer
    and interval; intensity_{interval,category,transition} for the region over the consecutive intervals.
    Fills ``out.pathways`` and ``out.flows``."""
    if not results.interval_counts:  # a single epoch has no change to describe
        return
    params = results.parameters
    summaries: dict[str, list[pd.DataFrame]] = {name: [] for name in layers}
    region_matrices = {}
    for (y0, y1), frame in results.interval_counts.items():
        change = transitions.stock_and_flux_change(params, frame, y0, y1)
        for name, (layer, column) in layers.items():
            zones = balance.zone_frame(layer, region)
            matrix = _sorted(transitions.transition_table(change, zones, column), ["from_class", "to_class"])
            pathways = _sorted(
                transitions.pathway_table(change, zones, column, params.densities is not None), ["pathway"]
            )
            _write(matrix, staging, spec.path("transitions", layer=name, y0=y0, y1=y1), co2)
            _write(pathways, staging, spec.path("pathways", layer=name, y0=y0, y1=y1), co2)
            out.pathways[(name, y0, y1)] = pathways
            summary = transitions.interval_summary(matrix, zones, y0, y1)
            if (y0, y1) in results.registration:
                kinds = registration.registration_columns(results.registration[(y0, y1)][column], zones["number"])
                moved = results.resampling.get((y0, y1))
                alone = resampling.resampling_columns(None if moved is None else moved[column], zones["number"])
                summary = pd.concat([summary, kinds.set_axis(summary.index), alone.set_axis(summary.index)], axis=1)
            summaries[name].append(summary)
            if layer is None:
                region_matrices[(y0, y1)] = matrix
    for name, parts in summaries.items():
        out.intervals[name] = _sorted(pd.concat(parts, ignore_index=True), ["y0", "y1"])
        _write(out.intervals[name], staging, spec.path("intervals", layer=name), co2)
    out.flows = {
        k: m for k, m in region_matrices.items() if not any(k[0] < y < k[1] for pair in region_matrices for y in pair)
    }
    if not out.flows:
        return
    mats = intensity.matrices(out.flows)
    write_table(intensity.interval_level(mats), staging.path(spec.path("intensity_interval")))
    write_table(intensity.category_level(mats), staging.path(spec.path("intensity_category")))
    write_table(intensity.transition_level(mats), staging.path(spec.path("intensity_transition")))


def scenario_tables(
    results: PassResults,
    layers: dict[str, tuple[ZoneLayer | None, str | None]],
    region: str,
    co2: bool,
    max_uncounted_share: float,
    staging: Staging,
    out: Tables,
) -> None:
    """Per scenario and layer transitions_<layer>_<y0>_<y1>_<scenario> and pathways_<...>_<scenario>, as for an
    observed interval, and per layer scenarios_<layer>: the scenarios side by side. Fills ``out.scenarios``;
    warns about land valid in every epoch that a scenario map leaves as nodata."""
    params = scenarios.without_statistics(results.parameters)
    rows: dict[str, list[pd.DataFrame]] = {name: [] for name in layers}
    for (y0, y1, scenario), frame in results.scenario_counts.items():
        kept, gaps = scenarios.split_gaps(frame)
        if len(gaps):
            log.warning(
                "scenario %s %d: %s px (%.2f ha) valid in every epoch are nodata (or unknown codes) in the scenario "
                "map; they are left out of that scenario's figures, base and scenario alike (scenario_nodata_area_ha "
                "in %s)",
                scenario,
                y1,
                f"{int(gaps['pixels'].sum()):,}",
                count_area_ha(gaps, params.areas).sum(),
                spec.path("scenarios", layer="region"),
            )
        change = transitions.stock_and_flux_change(params, kept, y0, y1)
        fields = {"y0": y0, "y1": y1, "scenario": scenario}
        for name, (layer, column) in layers.items():
            zones = balance.zone_frame(layer, region)
            matrix = _sorted(transitions.transition_table(change, zones, column), ["from_class", "to_class"])
            pathways = _sorted(
                transitions.pathway_table(change, zones, column, params.densities is not None), ["pathway"]
            )
            _write(matrix, staging, spec.path("scenario_transitions", layer=name, **fields), co2)
            _write(pathways, staging, spec.path("scenario_pathways", layer=name, **fields), co2)
            rows[name].append(
                scenarios.scenario_rows(
                    params, frame, zones, layer, column, region, y0, y1, scenario, max_uncounted_share
                )
            )
    for name, parts in rows.items():
        table = scenarios.with_differences(pd.concat(parts, ignore_index=True))
        out.scenarios[name] = _sorted(table, ["y1"])
        _write(out.scenarios[name], staging, spec.path("scenarios", layer=name), co2)


def _sorted(table: pd.DataFrame, then: list[str]) -> pd.DataFrame:
    return table.sort_values(["zone_id", *then], key=balance.natural_order, kind="stable").reset_index(drop=True)


def _write(table: pd.DataFrame, staging: Staging, relative: str, co2: bool) -> None:
    write_table(balance.with_co2(table) if co2 else table, staging.path(relative))
