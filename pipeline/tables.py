"""Every table of a run, written from its pixel counts (no pixels are read here): classes and balance
per zone layer, transitions, pathways and interval checks per layer and interval, intensity analysis
and the Sankey diagram of the region."""

from __future__ import annotations

import logging

import pandas as pd

from pipeline import balance, intensity, sankey, transitions, trends
from pipeline.outputs import Staging, write_table
from pipeline.zonal import ZoneLayer

log = logging.getLogger(__name__)


def epoch_tables(acc: balance.Accounting, counts: dict[int, pd.DataFrame], layers: dict[str, tuple], region: str,
                 co2: bool, staging: Staging) -> pd.DataFrame:
    """classes_<layer>, balance_<layer> and trends_<layer> for every layer; returns the region's classes table.

    ``layers`` maps an output name to (ZoneLayer or None for the region, its count column or None).
    """
    region_classes = None
    for name, (layer, column) in layers.items():
        classes = balance.class_table(acc, counts, layer, column, region, co2)
        region_classes = classes if layer is None else region_classes
        write_table(classes, staging.path(f"tables/classes_{name}.csv"))
        balances = balance.balance_table(acc, counts, layer, column, region, co2)
        write_table(balances, staging.path(f"tables/balance_{name}.csv"))
        write_table(trends.trend_table(classes, balances), staging.path(f"tables/trends_{name}.csv"))
    return region_classes


def interval_tables(acc: balance.Accounting, interval_counts: dict[tuple[int, int], pd.DataFrame],
                    layers: dict[str, tuple[ZoneLayer | None, str | None]], region: str, co2: bool,
                    staging: Staging) -> None:
    """transitions_<layer>_<y0>_<y1>, pathways_<layer>_<y0>_<y1> and intervals_<layer> for every layer
    and interval; intensity_{interval,category,transition} and maps/sankey.png for the region over the
    consecutive intervals."""
    if not interval_counts:  # a single epoch has no change to describe
        return
    summaries: dict[str, list[pd.DataFrame]] = {name: [] for name in layers}
    region_matrices = {}
    stock = acc.densities is not None
    for (y0, y1), frame in interval_counts.items():
        acct = transitions.account(acc, frame, y0, y1)
        for name, (layer, column) in layers.items():
            zones = balance.zone_frame(layer, region)
            matrix = _sorted(transitions.transition_table(acct, zones, column), ["from_class", "to_class"])
            pathways = _sorted(transitions.pathway_table(acct, zones, column, stock), ["pathway"])
            _write(matrix, staging, f"transitions_{name}_{y0}_{y1}", co2)
            _write(pathways, staging, f"pathways_{name}_{y0}_{y1}", co2)
            summaries[name].append(transitions.interval_summary(matrix, zones, y0, y1))
            if layer is None:
                region_matrices[(y0, y1)] = matrix
    for name, parts in summaries.items():
        _write(_sorted(pd.concat(parts, ignore_index=True), ["y0", "y1"]), staging, f"intervals_{name}", co2)
    consecutive = {k: m for k, m in region_matrices.items()
                   if not any(k[0] < y < k[1] for pair in region_matrices for y in pair)}
    if not consecutive:
        return
    mats = intensity.matrices(consecutive)
    write_table(intensity.interval_level(mats), staging.path("tables/intensity_interval.csv"))
    write_table(intensity.category_level(mats), staging.path("tables/intensity_category.csv"))
    write_table(intensity.transition_level(mats), staging.path("tables/intensity_transition.csv"))
    flows = pd.concat([m.assign(y0=y0, y1=y1) for (y0, y1), m in consecutive.items()], ignore_index=True)
    sankey.draw_sankey(flows[["y0", "y1", "from_class", "to_class", "area_ha"]], staging.path("maps/sankey.png"),
                       f"{region}: land-class flows {min(flows['y0'])}-{max(flows['y1'])}")


def _sorted(table: pd.DataFrame, then: list[str]) -> pd.DataFrame:
    return table.sort_values(["zone_id", *then], key=balance.natural_order, kind="stable").reset_index(drop=True)


def _write(table: pd.DataFrame, staging: Staging, name: str, co2: bool) -> None:
    write_table(balance.with_co2(table) if co2 else table, staging.path(f"tables/{name}.csv"))
