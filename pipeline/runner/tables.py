"""Every table of a run, written from its pixel counts (no pixels are read here): classes and balance
per zone layer, transitions, pathways and interval checks per layer and interval, intensity analysis
and the Sankey diagram of the region."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipeline.io.staging import Staging
from pipeline.io.tables import write_table
from pipeline.model.inputs import ZoneLayer
from pipeline.stages import (
    balance,
    intensity,
    reclassify,
    transitions,
    trends,
    zonal,
)
from pipeline.stages.counts import areas_ha

log = logging.getLogger(__name__)


def epoch_table(sources: list, status: dict, unknown: dict, row_area_m2: np.ndarray) -> pd.DataFrame:
    """tables/epochs.csv: per epoch (``sources``, the run's ``ingest.EpochSource``s) the valid, own-nodata,
    unknown-code and excluded-by-another-epoch pixels and hectares."""
    rows = []
    for src in sources:
        px = status[src.year].sum(axis=0)
        ha = areas_ha(status[src.year], row_area_m2)
        rows.append({
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
            "unknown_codes": " ".join(f"{k}:{v}" for k, v in unknown[src.year].items()),
        })
    return pd.DataFrame(rows)


def epoch_tables(acc: balance.CarbonParameters, counts: dict[int, pd.DataFrame], layers: dict[str, tuple], region: str,
                 co2: bool, staging: Staging, with_trends: bool = True
                 ) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """classes_<layer>, balance_<layer> and (``with_trends``) trends_<layer> for every layer; returns the
    classes and balance tables by layer name.

    ``layers`` maps an output name to (ZoneLayer or None for the region, its count column or None).
    """
    written = {}
    for name, (layer, column) in layers.items():
        classes = balance.class_table(acc, counts, layer, column, region, co2)
        balances = balance.balance_table(acc, counts, layer, column, region, co2)
        write_table(classes, staging.path(f"tables/classes_{name}.csv"))
        write_table(balances, staging.path(f"tables/balance_{name}.csv"))
        if with_trends:
            write_table(trends.trend_table(classes, balances), staging.path(f"tables/trends_{name}.csv"))
        written[name] = (classes, balances)
    return written


def zone_tables(layers: dict[str, tuple], counts: dict[int, pd.DataFrame], balances: dict[str, pd.DataFrame],
                row_area_m2, grid, staging: Staging) -> None:
    """zones_<layer>: polygon, burned and valid areas, boundary difference and overlaps of every zone;
    overlaps between zones of one layer are also warned about (a pixel goes to one of them). And
    <layer>.gpkg: the zones in the grid's CRS with those areas and their balance, one column per year."""
    frame = next(iter(counts.values()))
    for name, (layer, column) in layers.items():
        if layer is None:
            continue
        report = zonal.zone_report(layer, frame, column, row_area_m2, grid)
        write_table(report, staging.path(f"tables/zones_{name}.csv"))
        _geopackage(layer, report, balances[name], staging.path(f"{name}.gpkg"))
        shared = report["overlap_ha"] > 0
        if shared.any():
            log.warning("zone layer '%s': %d zones overlap others, %.2f ha shared in all (each pixel is counted in "
                        "one zone only); see tables/zones_%s.csv", name, shared.sum(),
                        report["overlap_ha"].sum() / 2, name)


def interval_tables(acc: balance.CarbonParameters, interval_counts: dict[tuple[int, int], pd.DataFrame],
                    layers: dict[str, tuple[ZoneLayer | None, str | None]], region: str, co2: bool,
                    staging: Staging, with_sankey: bool = True) -> dict[tuple[str, int, int], pd.DataFrame]:
    """transitions_<layer>_<y0>_<y1>, pathways_<layer>_<y0>_<y1> and intervals_<layer> for every layer
    and interval; intensity_{interval,category,transition} and (``with_sankey``) maps/sankey.png for the
    region over the consecutive intervals. Returns the pathway tables by (layer, y0, y1)."""
    written: dict[tuple[str, int, int], pd.DataFrame] = {}
    if not interval_counts:  # a single epoch has no change to describe
        return written
    summaries: dict[str, list[pd.DataFrame]] = {name: [] for name in layers}
    region_matrices = {}
    stock = acc.densities is not None
    for (y0, y1), frame in interval_counts.items():
        acct = transitions.stock_and_flux_change(acc, frame, y0, y1)
        for name, (layer, column) in layers.items():
            zones = balance.zone_frame(layer, region)
            matrix = _sorted(transitions.transition_table(acct, zones, column), ["from_class", "to_class"])
            pathways = _sorted(transitions.pathway_table(acct, zones, column, stock), ["pathway"])
            _write(matrix, staging, f"transitions_{name}_{y0}_{y1}", co2)
            _write(pathways, staging, f"pathways_{name}_{y0}_{y1}", co2)
            written[(name, y0, y1)] = pathways
            summaries[name].append(transitions.interval_summary(matrix, zones, y0, y1))
            if layer is None:
                region_matrices[(y0, y1)] = matrix
    for name, parts in summaries.items():
        _write(_sorted(pd.concat(parts, ignore_index=True), ["y0", "y1"]), staging, f"intervals_{name}", co2)
    consecutive = {k: m for k, m in region_matrices.items()
                   if not any(k[0] < y < k[1] for pair in region_matrices for y in pair)}
    if not consecutive:
        return written
    mats = intensity.matrices(consecutive)
    write_table(intensity.interval_level(mats), staging.path("tables/intensity_interval.csv"))
    write_table(intensity.category_level(mats), staging.path("tables/intensity_category.csv"))
    write_table(intensity.transition_level(mats), staging.path("tables/intensity_transition.csv"))
    if not with_sankey:
        return written
    from pipeline.report import sankey

    flows = pd.concat([m.assign(y0=y0, y1=y1) for (y0, y1), m in consecutive.items()], ignore_index=True)
    sankey.draw_sankey(flows[["y0", "y1", "from_class", "to_class", "area_ha"]], staging.path("maps/sankey.png"),
                       f"{region}: land-class flows {min(flows['y0'])}-{max(flows['y1'])}")
    return written


def _sorted(table: pd.DataFrame, then: list[str]) -> pd.DataFrame:
    return table.sort_values(["zone_id", *then], key=balance.natural_order, kind="stable").reset_index(drop=True)


def _write(table: pd.DataFrame, staging: Staging, name: str, co2: bool) -> None:
    write_table(balance.with_co2(table) if co2 else table, staging.path(f"tables/{name}.csv"))


def _geopackage(layer: ZoneLayer, report: pd.DataFrame, table: pd.DataFrame, path) -> None:
    """The zones with their areas and, per balance year, stock, sink, source and net emission."""
    import geopandas as gpd

    from pipeline.errors import OutputError

    values = [c for c in ("stock_tC", "sink_tC_yr", "source_tC_yr", "net_emission_tC_yr") if c in table.columns]
    wide = table.pivot(index="zone_id", columns="year", values=values)
    wide.columns = [f"{value}_{year}" for value, year in wide.columns]
    attributes = report.merge(wide, left_on="zone_id", right_index=True, how="left")
    gdf = gpd.GeoDataFrame(attributes, geometry=layer.polygons.geometry.to_numpy(), crs=layer.polygons.crs)
    try:
        gdf.to_file(path, driver="GPKG", layer=layer.name, engine="pyogrio")
    except Exception as e:  # noqa: BLE001 - GDAL's errors come in several types
        raise OutputError(f"cannot write the GeoPackage: {e}", path) from None
