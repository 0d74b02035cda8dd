"""Carbon tables of every zone layer from the run's pixel counts: classes (zone, year, class) and
balance (zone, year), with seed 002's statistics where given. Pure pandas; no pixels are read here.

The whole region is the layer ``region`` with one zone (id 1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.errors import InputError
from pipeline.model.classes import CLASS_CODES, CLASS_NAMES, CONSTRUCTION, CROPLAND
from pipeline.model.grid import PixelAreas
from pipeline.model.inputs import TERMS, ZoneLayer
from pipeline.stages import carbon

log = logging.getLogger(__name__)

CO2_PER_C = 44 / 12
#: Largest share of a zone's land (0-1) whose flux may be unknown for its net emission to be given.
DEFAULT_MAX_UNCOUNTED_SHARE = 0.01


@dataclass
class CarbonParameters:
    """What turns pixel counts into carbon: parameter lookups, statistics terms, pixel areas."""

    densities: carbon.Lookup | None
    rates: carbon.Lookup
    areas: PixelAreas
    carbon_layer: ZoneLayer | None = None
    #: statistics year -> terms indexed by the carbon layer's zone number
    terms: dict[int, pd.DataFrame] = field(default_factory=dict)

    def stock_and_flux(self, counts: pd.DataFrame, year: int) -> pd.DataFrame:
        return carbon.stock_and_flux(counts, self.areas, self.densities, self.rates, self.terms.get(year))


def terms_by_year(terms: pd.DataFrame, layer: ZoneLayer, path) -> dict[int, pd.DataFrame]:
    """Statistics terms per year, indexed by the layer's zone numbers (unknown zone ids are an error)."""
    index = layer.index_of()
    unknown = sorted(set(terms["zone_id"]) - set(index))
    if unknown:
        raise InputError(
            f"statistics zone_id {unknown[:10]} are not ids of zone layer '{layer.name}' "
            f"(ids look like {layer.ids[:3]})",
            path,
        )
    numbered = terms.assign(czone=terms["zone_id"].map(index)).set_index("czone")
    return {int(y): g.drop(columns="year") for y, g in numbered.groupby("year")}


def nearest_epoch(year: int, epochs: list[int]) -> int:
    """The epoch whose areas stand in for a statistics year (the earlier one on a tie)."""
    return min(epochs, key=lambda e: (abs(e - year), e))


def zone_frame(layer: ZoneLayer | None, region_name: str) -> pd.DataFrame:
    """number (as in the zone rasters), zone_id, zone_name of a layer; the region is one zone, id 1."""
    if layer is None:
        return pd.DataFrame({"number": [1], "zone_id": ["1"], "zone_name": [region_name]})
    return pd.DataFrame({"number": np.arange(1, len(layer.ids) + 1), "zone_id": layer.ids, "zone_name": layer.labels})


def class_table(
    acc: CarbonParameters,
    counts: dict[int, pd.DataFrame],
    layer: ZoneLayer | None,
    column: str | None,
    region_name: str,
    co2: bool = False,
) -> pd.DataFrame:
    """Per zone, epoch and class: pixels, area_ha, stock_tC, sink_tC_yr, source_tC_yr, uncounted_area_ha."""
    zones = zone_frame(layer, region_name)
    parts = []
    for year, frame in counts.items():
        acct = acc.stock_and_flux(frame, year)
        acct["number"] = acct[column] if column else 1
        sums = carbon.by_class(acct, ["number"])
        full = pd.MultiIndex.from_product([zones["number"], CLASS_CODES], names=["number", "class"])
        sums = sums.set_index(["number", "class"]).reindex(full).reset_index()
        sums[["pixels", "area_ha", "uncounted_area_ha"]] = sums[["pixels", "area_ha", "uncounted_area_ha"]].fillna(0)
        # Where a zone has no land of a class there is nothing uncounted: zero, not missing.
        empty = sums["pixels"] == 0
        sums.loc[empty, ["sink_tC_yr", "source_tC_yr"]] = 0.0
        if acc.densities is not None:
            sums.loc[empty, "stock_tC"] = 0.0
        parts.append(sums.assign(year=year))
    table = pd.concat(parts, ignore_index=True).merge(zones, on="number").drop(columns="number")
    table["class_name"] = table["class"].map(CLASS_NAMES)
    table["pixels"] = table["pixels"].astype(np.int64)
    order = [
        "zone_id",
        "zone_name",
        "year",
        "class",
        "class_name",
        "pixels",
        "area_ha",
        "stock_tC",
        "sink_tC_yr",
        "source_tC_yr",
        "uncounted_area_ha",
    ]
    table = table[order].sort_values(["zone_id", "year", "class"], key=natural_order).reset_index(drop=True)
    return with_co2(table) if co2 else table


def balance_table(
    acc: CarbonParameters,
    counts: dict[int, pd.DataFrame],
    layer: ZoneLayer | None,
    column: str | None,
    region_name: str,
    co2: bool = False,
    max_uncounted_share: float = DEFAULT_MAX_UNCOUNTED_SHARE,
) -> pd.DataFrame:
    """Per zone and year (epochs and statistics years): stock_tC, sink_tC_yr, source_tC_yr and
    net_emission_tC_yr = source - sink (t C/yr, positive = net source). A statistics year without an
    epoch uses the nearest epoch's land (``areas_from_epoch``); ``statistics`` says whether seed 002's
    terms were used for the zone and year, with the terms themselves on the carbon layer.

    A balance is complete only where every class has a rate or statistics: counted_area_ha and
    uncounted_area_ha say how much land's annual flux is known and not (counted_share = counted / area).
    Sink and source are the sums over the counted land; net emission is NaN, not a partial sum, where the
    uncounted share of the zone's land exceeds ``max_uncounted_share`` (a fraction 0-1)."""
    zones = zone_frame(layer, region_name)
    epochs = sorted(counts)
    rows = []
    for year in sorted(set(epochs) | set(acc.terms)):
        epoch = year if year in counts else nearest_epoch(year, epochs)
        acct = acc.stock_and_flux(counts[epoch], year)
        acct["number"] = acct[column] if column else 1
        covered = acc.terms[year].index if year in acc.terms else []
        acct["statistics"] = acct["czone"].isin(covered) if "czone" in acct.columns else False
        missing = carbon.uncounted(acct)
        acct["counted_area_ha"] = acct["area_ha"].where(~missing, 0.0)
        acct["uncounted_area_ha"] = acct["area_ha"].where(missing, 0.0)
        summed = ["area_ha", "counted_area_ha", "uncounted_area_ha", "stock_tC", "sink_tC_yr", "source_tC_yr"]
        sums = acct.groupby("number")[summed].sum(min_count=1)
        sums["statistics"] = acct.groupby("number")["statistics"].any()
        sums = sums.reindex(zones["number"])
        sums["year"], sums["areas_from_epoch"] = year, epoch
        rows.append(sums.reset_index())
    table = pd.concat(rows, ignore_index=True).merge(zones, on="number").drop(columns="number")
    table["statistics"] = table["statistics"].fillna(False).astype(bool)
    table[["area_ha", "counted_area_ha", "uncounted_area_ha"]] = table[
        ["area_ha", "counted_area_ha", "uncounted_area_ha"]
    ].fillna(0)
    area = table["area_ha"].where(table["area_ha"] > 0)
    table["counted_share"] = table["counted_area_ha"] / area
    table["net_emission_tC_yr"] = table["source_tC_yr"] - table["sink_tC_yr"]
    # Not a partial sum: where too much of the zone's land has no known flux, the net is unknown.
    incomplete = table["uncounted_area_ha"] / area > max_uncounted_share
    table.loc[incomplete, "net_emission_tC_yr"] = np.nan
    table["nearest_epoch"] = table["year"] != table["areas_from_epoch"]
    if layer is not None and acc.carbon_layer is layer and acc.terms:
        all_terms = pd.concat([t.assign(year=y) for y, t in acc.terms.items()])
        table = table.merge(all_terms[["zone_id", "year", *TERMS.values()]], on=["zone_id", "year"], how="left")
    order = [
        "zone_id",
        "zone_name",
        "year",
        "areas_from_epoch",
        "nearest_epoch",
        "statistics",
        "area_ha",
        "counted_area_ha",
        "uncounted_area_ha",
        "counted_share",
        "stock_tC",
        "sink_tC_yr",
        "source_tC_yr",
        "net_emission_tC_yr",
    ]
    table = table[order + [c for c in table.columns if c not in order]]
    table = table.sort_values(["zone_id", "year"], key=natural_order).reset_index(drop=True)
    return with_co2(table) if co2 else table


def with_co2(table: pd.DataFrame) -> pd.DataFrame:
    """A t CO2 column (C x 44/12) after each t C column."""
    out = table.copy()
    for column in [c for c in table.columns if "_tC" in c]:
        out.insert(out.columns.get_loc(column) + 1, column.replace("_tC", "_tCO2"), table[column] * CO2_PER_C)
    return out


def natural_order(column: pd.Series) -> pd.Series:
    """Sort zone ids numerically when they are numbers (420101 after 99), as text otherwise."""
    if column.name != "zone_id":
        return column
    numeric = pd.to_numeric(column, errors="coerce")
    return numeric if numeric.notna().all() else column


def flux_spread(acc: CarbonParameters, counts: pd.DataFrame, year: int) -> np.ndarray | None:
    """Flux (t C/ha/yr) of each (carbon-layer zone, class) whose annual carbon comes from statistics:
    the zone's total for that class over its area, for the flux map. NaN elsewhere; None if no statistics."""
    terms = acc.terms.get(year)
    if terms is None or acc.carbon_layer is None:
        return None
    acct = acc.stock_and_flux(counts, year)
    sums = acct.groupby(["czone", "class"])[["area_ha", "sink_tC_yr", "source_tC_yr"]].sum(min_count=1)
    lut = np.full((len(acc.carbon_layer.ids) + 1, carbon.NBINS_CLASS), np.nan, np.float32)
    for (zone, cls), row in sums.iterrows():
        if zone in terms.index and (cls == CROPLAND or cls in CONSTRUCTION) and row["area_ha"] > 0:
            lut[zone, cls] = (row["source_tC_yr"] - row["sink_tC_yr"]) / row["area_ha"]
    _warn_unplaced(acc.carbon_layer, terms, sums, year)
    return lut


def _warn_unplaced(layer: ZoneLayer, terms: pd.DataFrame, sums: pd.DataFrame, year: int) -> None:
    """Statistics of a zone with no land of the class they belong to cannot be shared out: say so."""
    area = sums["area_ha"].unstack("class", fill_value=0)
    for zone, row in terms.iterrows():
        land = area.loc[zone] if zone in area.index else pd.Series(0.0, index=CLASS_CODES)
        crop = land.get(CROPLAND, 0)
        built = sum(land.get(c, 0) for c in CONSTRUCTION)
        lost = []
        if not crop and (row["source_agricultural_tC_yr"] > 0 or row["sink_cropland_tC_yr"] > 0):
            lost.append("cropland terms")
        if not built and row["source_construction_tC_yr"] > 0:
            lost.append("the construction source")
        if lost:
            log.warning(
                "%s: zone %s has statistics for %d but no %s pixels inside the rasters; %s not placed",
                layer.name,
                row["zone_id"],
                year,
                "cropland or construction",
                " and ".join(lost),
            )
