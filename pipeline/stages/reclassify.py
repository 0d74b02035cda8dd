"""Stage 2, reclassify: product codes -> DESIGN.md's target classes, and one common valid mask.

Schemes are data (``pipeline/data/schemes/*.csv`` or a user CSV), read by ``pipeline.io.parameters``.
The functions here are lazy: they return Dask-backed DataArrays and per-row counts to be computed
together with every other output of the run.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr
from dask.delayed import Delayed

from pipeline.model.classes import (
    NODATA,
)
from pipeline.model.inputs import (
    Scheme,
)
from pipeline.stages.counts import values_where

#: Sentinel class for codes the scheme does not know (never written to an output raster).
UNKNOWN = 255

#: Per-pixel status of an epoch, counted per row for the epoch table.
VALID, OWN_NODATA, UNKNOWN_CODE, EXCLUDED_BY_OTHER = range(4)


def _map_codes(block: np.ndarray, keys: np.ndarray, values: np.ndarray, nodata: float | None) -> np.ndarray:
    """Target class of each pixel; 0 where nodata, UNKNOWN where the scheme has no entry."""
    if block.dtype.itemsize <= 2:
        info = np.iinfo(block.dtype)
        lut = np.full(int(info.max) - int(info.min) + 1, UNKNOWN, dtype=np.uint8)
        inside = (keys >= info.min) & (keys <= info.max)
        lut[keys[inside] - info.min] = values[inside]
        out = lut[block.astype(np.int64) - info.min] if info.min else lut[block]
    else:
        idx = np.clip(np.searchsorted(keys, block), 0, len(keys) - 1)
        out = np.where(keys[idx] == block, values[idx], UNKNOWN).astype(np.uint8)
    if nodata is not None:
        out[block == nodata] = NODATA
    return out


def map_to_classes(codes: xr.DataArray, scheme: Scheme) -> xr.DataArray:
    """Lazy target classes (uint8; 0 nodata, ``UNKNOWN`` for unmapped codes)."""
    mapped = codes.data.map_blocks(_map_codes, scheme.codes, scheme.targets, codes.attrs.get("nodata"), dtype=np.uint8)
    return codes.copy(data=mapped).rename(f"classes_{codes.attrs.get('year', '')}")


def unknown_codes(codes: xr.DataArray, mapped: xr.DataArray) -> Delayed:
    """Delayed {code: pixel count} of the codes the scheme does not map (shares the reads of the run)."""
    return values_where(codes, mapped == UNKNOWN)


def common_valid(mapped: list[xr.DataArray]) -> xr.DataArray:
    """True where every epoch has a known, non-nodata class."""
    valid = None
    for m in mapped:
        ok = (m != NODATA) & (m != UNKNOWN)
        valid = ok if valid is None else valid & ok
    if valid is None:
        raise ValueError("no epochs")
    return valid.rename("common_valid")


def pixel_status(mapped: xr.DataArray, valid: xr.DataArray) -> xr.DataArray:
    """Why each pixel of an epoch counts or not: VALID, OWN_NODATA, UNKNOWN_CODE, EXCLUDED_BY_OTHER."""
    reason = np.full(256, EXCLUDED_BY_OTHER, np.uint8)
    reason[[NODATA, UNKNOWN]] = OWN_NODATA, UNKNOWN_CODE

    def status(classes: np.ndarray, ok: np.ndarray) -> np.ndarray:
        # One table look-up per pixel: nested xr.where chains built three int64 temporaries per block.
        out = reason[classes]
        out *= ~ok  # VALID is 0
        return out

    return mapped.copy(data=da.map_blocks(status, mapped.data, valid.data, dtype=np.uint8)).rename("status")


def apply_mask(mapped: xr.DataArray, valid: xr.DataArray) -> xr.DataArray:
    """Classes inside the common valid mask, 0 elsewhere (uint8)."""
    return xr.where(valid, mapped, np.uint8(NODATA)).astype(np.uint8).rename(mapped.name)
