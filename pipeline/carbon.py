"""Stage 3, carbon: stock density (t C/ha) and annual rate (t C/ha/yr) per pixel, and exact totals.

A parameter table row is found for each pixel by its target class or, for ``lucode`` tables, its
product code. Totals never add floats chunk by chunk: pixels are counted per (table row, class)
(per image row on geographic grids) and multiplied by the table's values afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask
import numpy as np
import xarray as xr

from pipeline import reclassify
from pipeline.classes import NODATA
from pipeline.errors import InputError
from pipeline.parameters import POOLS, ParameterTable

NBINS_CLASS = 9  # class codes 0..8


@dataclass(frozen=True)
class Lookup:
    """A parameter table prepared for pixels: row ``i`` of ``values`` serves pixel index ``i + 1``."""

    table: ParameterTable
    keys: np.ndarray  # int64, sorted
    values: np.ndarray  # float64, one per key (total density, or rate)

    @property
    def nbins(self) -> int:
        return (len(self.keys) + 1) * NBINS_CLASS


def density_lookup(table: ParameterTable) -> Lookup:
    """Total density c_above + c_below + c_soil + c_dead (t C/ha) per key."""
    _region_wide(table)
    frame = table.frame.sort_values("key")
    return Lookup(table, frame["key"].to_numpy(np.int64), frame[list(POOLS)].sum(axis=1).to_numpy(np.float64))


def rate_lookup(table: ParameterTable) -> Lookup:
    """Annual rate (t C/ha/yr; negative = uptake) per key."""
    _region_wide(table)
    frame = table.frame.sort_values("key")
    return Lookup(table, frame["key"].to_numpy(np.int64), frame["rate_tC_ha_yr"].to_numpy(np.float64))


def _region_wide(table: ParameterTable) -> None:
    if "zone" in table.frame.columns:
        raise InputError(
            "zone-specific values (a 'zone' column) are not supported yet: they need the zonal stage; "
            "use one row per key for now",
            table.path,
        )


def _row_index(block_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """1-based index of each pixel's key in ``keys``; 0 where the key has no row."""
    idx = np.clip(np.searchsorted(keys, block_keys), 0, len(keys) - 1)
    return np.where(keys[idx] == block_keys, idx + 1, 0).astype(np.int32)


def row_index(lookup: Lookup, classes: xr.DataArray, codes: xr.DataArray) -> xr.DataArray:
    """Per pixel, 1 + the table row that serves it (0 where none does or the pixel is nodata)."""
    keyed = classes if lookup.table.key == "class" else codes

    def index(k: np.ndarray, cls: np.ndarray) -> np.ndarray:
        out = _row_index(k.astype(np.int64), lookup.keys)
        out[cls == NODATA] = 0
        return out

    data = keyed.data.map_blocks(index, classes.data, dtype=np.int32)
    return classes.copy(data=data).rename("row_index")


def per_pixel(lookup: Lookup, index: xr.DataArray) -> xr.DataArray:
    """The table's value at each pixel (float32; NaN where no row applies)."""
    values = np.concatenate([[np.nan], lookup.values]).astype(np.float32)
    return index.copy(data=index.data.map_blocks(lambda i: values[i], dtype=np.float32))


def counts(lookup: Lookup, index: xr.DataArray, classes: xr.DataArray, per_row: bool):
    """Integer pixel counts per (table row index, class), per image row when ``per_row``."""
    joint = index * NBINS_CLASS + classes.astype(np.int32)
    return reclassify.row_histogram(joint, lookup.nbins, per_row)


def missing_keys(lookup: Lookup, index: xr.DataArray, classes: xr.DataArray, codes: xr.DataArray) -> dask.delayed:
    """Delayed {key: pixels} of valid pixels whose class or code has no row in the table."""
    keyed = classes if lookup.table.key == "class" else codes
    return reclassify.values_where(keyed, (index == 0) & (classes != NODATA))


def class_totals(lookup: Lookup, joint_counts: np.ndarray, row_area_m2: np.ndarray) -> dict[str, np.ndarray]:
    """Per class (float64 arrays of length 9, indexed by class code): ``area_ha`` of land the table has a
    row for, ``positive`` = Σ area x value where value > 0, ``negative`` = Σ area x |value| where value < 0
    (t C for densities, t C/yr for rates)."""
    area = reclassify.areas_ha(joint_counts, row_area_m2).reshape(len(lookup.keys) + 1, NBINS_CLASS)[1:]
    value = lookup.values[:, None]
    return {
        "area_ha": area.sum(axis=0),
        "positive": (area * np.where(value > 0, value, 0)).sum(axis=0),
        "negative": (area * np.where(value < 0, -value, 0)).sum(axis=0),
    }
