"""Stage 3, carbon: stock density (t C/ha) and annual rate (t C/ha/yr) per pixel, and exact totals.

A parameter table row is found for each pixel by its target class or, for ``lucode`` tables, its
product code, and, for tables with a ``zone`` column, the zone it lies in (rows without a zone serve
every other pixel). Totals never add floats chunk by chunk: ``zonal.group_counts`` counts pixels per
(table row, class, zone) and ``stock_and_flux`` multiplies by the table's values afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from dask.delayed import Delayed

from pipeline.errors import InputError
from pipeline.model.classes import CONSTRUCTION, CROPLAND, NODATA
from pipeline.model.grid import PixelAreas
from pipeline.model.inputs import POOLS, ParameterTable, ZoneLayer
from pipeline.stages.counts import count_area_ha, values_where

NBINS_CLASS = 9  # class codes 0..8
_ZONE_SHIFT = 32


@dataclass(frozen=True)
class Lookup:
    """A parameter table prepared for pixels: row ``i`` of ``values`` serves pixel index ``i + 1``."""

    table: ParameterTable
    keys: np.ndarray  # int64, sorted: zone number << 32 | class or code (zone number 0: any zone)
    values: np.ndarray  # float64, one per key (total density, or rate)
    zones: ZoneLayer | None = None
    #: ``values[i]`` comes from row ``order[i]`` of ``table.frame`` (the uncertainty draws need the rows).
    order: np.ndarray | None = None

    @property
    def size(self) -> int:
        """Number of index values a pixel can take (0 = no row)."""
        return len(self.keys) + 1

    def value_of(self, index: np.ndarray) -> np.ndarray:
        return np.concatenate([[np.nan], self.values])[index]


def density_lookup(table: ParameterTable, zones: ZoneLayer | None = None) -> Lookup:
    """Total density c_above + c_below + c_soil + c_dead (t C/ha) per key."""
    return _lookup(table, table.frame[list(POOLS)].sum(axis=1), zones)


def rate_lookup(table: ParameterTable, zones: ZoneLayer | None = None) -> Lookup:
    """Annual rate (t C/ha/yr; negative = uptake) per key."""
    return _lookup(table, table.frame["rate_tC_ha_yr"], zones)


def _lookup(table: ParameterTable, values: pd.Series, zones: ZoneLayer | None) -> Lookup:
    number = np.zeros(len(table.frame), np.int64)
    if "zone" in table.frame.columns:
        if zones is None:
            raise InputError(
                "the table has a 'zone' column but the config names no zone layer for it: "
                "set carbon.zone_layer to the name of a layer in `zones`",
                table.path,
            )
        given = table.frame["zone"]
        index = zones.index_of()
        unknown = sorted(set(given) - set(index) - {""})
        if unknown:
            raise InputError(f"zone ids {unknown[:10]} are not ids of zone layer '{zones.name}'", table.path)
        # (zone, key) pairs are unique: parameters.read_* rejected duplicates.
        number = np.array([index.get(z, 0) for z in given], np.int64)
    keys = (number << _ZONE_SHIFT) | table.frame["key"].to_numpy(np.int64)
    order = np.argsort(keys)
    return Lookup(table, keys[order], values.to_numpy(np.float64)[order], zones if number.any() else None, order)


def _row_table(lookup: Lookup) -> np.ndarray:
    """[zone number, key] -> 1 + the row serving that (zone, key), 0 where none does, in the smallest
    unsigned type that holds the rows (a block of indices is then as small as a block of classes); the last column
    (key beyond the table) is 0. Rows without a zone fill every zone's line, then zone rows override them."""
    zone = lookup.keys >> _ZONE_SHIFT
    key = lookup.keys & ((1 << _ZONE_SHIFT) - 1)
    rows = np.arange(1, len(lookup.keys) + 1, dtype=np.min_scalar_type(len(lookup.keys)))
    n_zones = len(lookup.zones.ids) + 1 if lookup.zones is not None else 1
    table = np.zeros((n_zones, int(key.max(initial=0)) + 2), rows.dtype)
    general = zone == 0
    table[:, key[general]] = rows[general]
    table[zone[~general], key[~general]] = rows[~general]
    return table


def _byte_rows(table: np.ndarray) -> np.ndarray:
    """Row (``_row_table``'s first line) of each key 0..255, keys beyond the table folded in."""
    return table[0, np.minimum(np.arange(256), table.shape[1] - 1)]


def class_rows(lookup: Lookup) -> np.ndarray | None:
    """1 + the row serving each class 0..255 (0 for nodata), as ``row_index`` gives it, where the row is set by
    the class alone (a table keyed by class, without rows per zone); else None."""
    if lookup.table.key != "class" or lookup.zones is not None:
        return None
    rows = _byte_rows(_row_table(lookup))
    rows[NODATA] = 0
    return rows


def row_index(lookup: Lookup, classes: xr.DataArray, codes: xr.DataArray, zone: xr.DataArray | None) -> xr.DataArray:
    """Per pixel, 1 + the table row that serves it (0 where none does or the pixel is nodata): the row of
    the pixel's zone if the table has one, else the row for every zone."""
    keyed = classes if lookup.table.key == "class" else codes
    table = _row_table(lookup)
    beyond = table.shape[1] - 1
    flat = table.ravel()
    # Without zones, a uint8 key's row in one 256-entry look-up, keys beyond the table folded in; keyed by class,
    # nodata's row 0 too (the key is the class), so a block costs one gather and no masking.
    of_byte = _byte_rows(table)
    of_class = class_rows(lookup)

    def index(k: np.ndarray, cls: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
        if z is None and k.dtype == np.uint8:
            if of_class is not None:
                return of_class[k]
            out = of_byte[k]
            out *= cls != NODATA
            return out
        # A dense table look-up: a sorted search per pixel cost ten times as much on large rasters.
        if k.dtype.kind != "u":
            k = np.where((k < 0) | (k > beyond), beyond, k)
        elif np.iinfo(k.dtype).max > beyond:
            k = np.minimum(k, k.dtype.type(beyond))
        out = flat[k if z is None else z.astype(np.intp) * table.shape[1] + k]
        out *= cls != NODATA  # a multiply costs half a masked assignment
        return out

    extra = []
    if lookup.zones is not None:
        if zone is None:
            raise ValueError("the table has rows per zone: row_index needs the zone raster")
        extra.append(zone.data)
    data = keyed.data.map_blocks(index, classes.data, *extra, dtype=table.dtype)
    return classes.copy(data=data).rename("row_index")


def per_pixel(lookup: Lookup, index: xr.DataArray) -> xr.DataArray:
    """The table's value at each pixel (float32; NaN where no row applies)."""
    values = np.concatenate([[np.nan], lookup.values]).astype(np.float32)
    return index.copy(data=index.data.map_blocks(lambda i: values[i], dtype=np.float32))


def missing_keys(lookup: Lookup, index: xr.DataArray, classes: xr.DataArray, codes: xr.DataArray) -> Delayed:
    """Delayed {key: pixels} of valid pixels whose class or code has no row in the table."""
    keyed = classes if lookup.table.key == "class" else codes
    return values_where(keyed, (index == 0) & (classes != NODATA))


def stock_and_flux(
    counts: pd.DataFrame,
    areas: PixelAreas,
    densities: Lookup | None,
    rates: Lookup,
    terms: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Carbon of each counted group of pixels (``zonal.group_counts`` rows with class, density and rate).

    Adds area_ha, stock_tC, sink_tC_yr (uptake, >= 0), source_tC_yr (>= 0). Where ``terms`` (indexed by
    the ``czone`` number: seed 002 statistics for one year) covers a zone, its agricultural source and
    cropland sink replace the per-hectare parts of cropland, and its construction source those of the
    construction classes, shared out by area over the zone's pixels of those classes. NaN: not counted.
    """
    frame = counts[counts["class"] != NODATA].copy()
    frame["area_ha"] = count_area_ha(frame, areas)
    frame["stock_tC"] = frame["area_ha"] * densities.value_of(frame["density"]) if densities else np.nan
    rate = rates.value_of(frame["rate"].to_numpy())
    frame["sink_tC_yr"] = frame["area_ha"] * np.where(rate < 0, -rate, np.where(np.isnan(rate), np.nan, 0))
    frame["source_tC_yr"] = frame["area_ha"] * np.where(rate > 0, rate, np.where(np.isnan(rate), np.nan, 0))
    if terms is not None and len(terms):
        _apply_terms(frame, terms)
    return frame


def _term_groups(frame: pd.DataFrame) -> list[tuple[pd.Series, dict[str, str]]]:
    """(rows of the land a term belongs to, {flux column: the term replacing it}) for cropland and construction."""
    return [
        (
            frame["class"] == CROPLAND,
            {"source_tC_yr": "source_agricultural_tC_yr", "sink_tC_yr": "sink_cropland_tC_yr"},
        ),
        (frame["class"].isin(CONSTRUCTION), {"source_tC_yr": "source_construction_tC_yr"}),
    ]


def term_rows(frame: pd.DataFrame, terms: pd.DataFrame | None) -> dict[str, pd.Series]:
    """Rows of a counts frame whose ``sink_tC_yr`` or ``source_tC_yr`` the statistics ``terms`` replace (as
    ``stock_and_flux`` does), and ``construction``: construction rows of zones with a construction source,
    whose missing per-hectare sink counts as 0."""
    out = {c: pd.Series(False, index=frame.index) for c in ("sink_tC_yr", "source_tC_yr", "construction")}
    if terms is None or not len(terms):
        return out
    for in_group, replace in _term_groups(frame):
        for column, term in replace.items():
            out[column] |= in_group & frame["czone"].isin(terms[term].dropna().index)
    out["construction"] = frame["class"].isin(CONSTRUCTION) & out["source_tC_yr"]
    return out


def _apply_terms(frame: pd.DataFrame, terms: pd.DataFrame) -> None:
    for in_group, replace in _term_groups(frame):
        area = frame["area_ha"].where(in_group, 0).groupby(frame["czone"]).sum()
        for column, term in replace.items():
            given = terms[term].dropna()
            rows = in_group & frame["czone"].isin(given.index)
            zone = frame.loc[rows, "czone"]
            frame.loc[rows, column] = given[zone].to_numpy() * frame.loc[rows, "area_ha"] / area[zone].to_numpy()
        if "source_tC_yr" in replace and "sink_tC_yr" not in replace:
            # Seed 002 counts construction only by its energy source; no per-hectare sink to keep.
            rows = in_group & frame["czone"].isin(terms[replace["source_tC_yr"]].dropna().index)
            frame.loc[rows, "sink_tC_yr"] = frame.loc[rows, "sink_tC_yr"].fillna(0)


def uncounted(frame: pd.DataFrame) -> pd.Series:
    """Rows of a ``stock_and_flux`` frame whose annual flux is not known (no rate, no statistics): a sink or
    a source term is missing."""
    return frame["sink_tC_yr"].isna() | frame["source_tC_yr"].isna()


def by_class(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Sums of a ``stock_and_flux`` frame per ``by`` + class; flux stays NaN where none of the land was counted,
    and ``uncounted_area_ha`` says how much land had no flux term."""
    frame = frame.assign(uncounted_area_ha=frame["area_ha"].where(uncounted(frame), 0))
    columns = ["pixels", "area_ha", "stock_tC", "sink_tC_yr", "source_tC_yr", "uncounted_area_ha"]
    return frame.groupby([*by, "class"])[columns].sum(min_count=1).reset_index()
