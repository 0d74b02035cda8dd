"""Stage 2, reclassify: product codes -> DESIGN.md's target classes, and one common valid mask.

Schemes are data (``pipeline/data/schemes/*.csv`` or a user CSV), read by ``pipeline.io.parameters``.
The functions here are lazy: they return Dask-backed DataArrays and per-row counts to be computed
together with every other output of the run.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from dask.delayed import Delayed

from pipeline.model.classes import (
    NODATA,
)
from pipeline.model.grid import PixelAreas
from pipeline.model.inputs import (
    Scheme,
)
from pipeline.stages.counts import group_counts, values_where

#: Sentinel class for codes the scheme does not know (never written to an output raster).
UNKNOWN = 255

#: Per-pixel status of an epoch, counted per row for the epoch table. A pixel outside the study area
#: (``boundary:``) is OUTSIDE_BOUNDARY whatever its class, so it is not also nodata or excluded.
VALID, OWN_NODATA, UNKNOWN_CODE, EXCLUDED_BY_OTHER, OUTSIDE_BOUNDARY = range(5)
#: Number of statuses (bins of the status histogram).
NSTATUS = 5


def _map_codes(block: np.ndarray, keys: np.ndarray, values: np.ndarray, nodata: float | None) -> np.ndarray:
    """Target class of each pixel; 0 where nodata, UNKNOWN where the scheme has no entry."""
    if block.dtype.itemsize <= 2:
        info = np.iinfo(block.dtype)
        lut = np.full(int(info.max) - int(info.min) + 1, UNKNOWN, dtype=np.uint8)
        inside = (keys >= info.min) & (keys <= info.max)
        lut[keys[inside] - info.min] = values[inside]
        if nodata is not None and float(nodata).is_integer() and info.min <= nodata <= info.max:
            # Nodata in the look-up itself: no comparison and masked assignment over the block.
            lut[int(nodata) - info.min] = NODATA
            nodata = None
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


def unknown_codes(
    codes: xr.DataArray, mapped: xr.DataArray, inside: xr.DataArray | None = None, along: xr.DataArray | None = None
) -> Delayed:
    """Delayed {code: pixel count} of the codes the scheme does not map (shares the reads of the run), inside
    the study area if ``inside`` is given; a block's count waits for the block of ``along``.

    With the common valid mask ``along``, Dask reads every epoch of a block together: alone, one epoch's count
    was a small reduction that Dask's threaded scheduler ran first, reading that epoch whole and holding each
    block of it until the other epochs' were read (on 5 x 5 blocks the pass held 25 blocks more)."""
    return values_where(codes, mapped == UNKNOWN if inside is None else (mapped == UNKNOWN) & inside, along)


def common_valid(mapped: list[xr.DataArray]) -> xr.DataArray:
    """True where every epoch has a known, non-nodata class."""
    valid = None
    for m in mapped:
        ok = (m != NODATA) & (m != UNKNOWN)
        valid = ok if valid is None else valid & ok
    if valid is None:
        raise ValueError("no epochs")
    return valid.rename("common_valid")


def _reasons() -> np.ndarray:
    """Status of an invalid pixel by its class (0..255)."""
    reason = np.full(256, EXCLUDED_BY_OTHER, np.uint8)
    reason[[NODATA, UNKNOWN]] = OWN_NODATA, UNKNOWN_CODE
    return reason


def pixel_status(mapped: xr.DataArray, valid: xr.DataArray, inside: xr.DataArray | None = None) -> xr.DataArray:
    """Why each pixel of an epoch counts or not: VALID, OWN_NODATA, UNKNOWN_CODE, EXCLUDED_BY_OTHER, and
    OUTSIDE_BOUNDARY where ``inside`` (the study area, if any) is False."""
    reason = _reasons()

    def status(classes: np.ndarray, ok: np.ndarray) -> np.ndarray:
        # One table look-up per pixel: nested xr.where chains built three int64 temporaries per block.
        out = reason[classes]
        out *= ~ok  # VALID is 0
        return out

    def status_inside(classes: np.ndarray, ok: np.ndarray, within: np.ndarray) -> np.ndarray:
        out = status(classes, ok)
        out[~within] = OUTSIDE_BOUNDARY
        return out

    if inside is None:
        data = da.map_blocks(status, mapped.data, valid.data, dtype=np.uint8)
    else:
        data = da.map_blocks(status_inside, mapped.data, valid.data, inside.data, dtype=np.uint8)
    return mapped.copy(data=data).rename("status")


def status_counts(
    mapped: xr.DataArray, valid: xr.DataArray, inside: xr.DataArray | None, areas: PixelAreas | None
) -> Delayed:
    """Delayed pixel counts per ``pixel_status`` and pixel-area cell, the ``group_counts`` frame of the status
    raster (status, cell, pixels). The pixels are counted per class and validity (and study area), and each
    combination's status looked up afterwards: a look-up per pixel less than counting the status raster."""
    keys = {"mapped": (mapped, 256), "valid": (valid, 2)}
    if inside is not None:
        keys["inside"] = (inside, 2)
    return dask.delayed(_status_frame)(group_counts(keys, areas))


def _status_frame(counts: pd.DataFrame) -> pd.DataFrame:
    status = _reasons()[counts["mapped"].to_numpy()].astype(np.int64)
    status[counts["valid"].to_numpy() == 1] = VALID
    if "inside" in counts.columns:
        status[counts["inside"].to_numpy() == 0] = OUTSIDE_BOUNDARY
    frame = pd.DataFrame({"status": status, "cell": counts["cell"].to_numpy(), "pixels": counts["pixels"].to_numpy()})
    # Integer sums of the combinations of one status: exact.
    summed = frame.groupby(["status", "cell"], sort=True)["pixels"].sum().reset_index()
    return pd.DataFrame({c: summed[c].to_numpy(np.int64) for c in ("status", "cell", "pixels")})


def edge_histogram(classes: xr.DataArray) -> da.Array:
    """Lazy pixel counts of each class (0..255) on the raster's edge: first and last row, first and last
    column, each pixel once. Reads only the edge blocks."""
    arr = classes.data
    height, width = arr.shape
    parts = [arr[0, :]] + ([arr[-1, :]] if height > 1 else [])
    parts += [arr[1:-1, 0]] + ([arr[1:-1, -1]] if width > 1 else [])
    edge = da.concatenate(parts)
    return da.bincount(edge.astype(np.intp), minlength=256)


def apply_mask(mapped: xr.DataArray, valid: xr.DataArray) -> xr.DataArray:
    """Classes inside the common valid mask, 0 elsewhere (uint8)."""
    # Times the mask, nodata being 0: an eighth of the time of a where per block.
    return (mapped * valid).astype(np.uint8).rename(mapped.name)


def apply_known(mapped: xr.DataArray, valid: xr.DataArray) -> xr.DataArray:
    """Classes inside the common valid mask where ``mapped`` itself is known (not nodata, not an unknown
    code), 0 elsewhere (uint8): a scenario map on the epochs' mask, its own gaps left as nodata."""
    keep = valid & (mapped != UNKNOWN)
    return xr.where(keep, mapped, np.uint8(NODATA)).astype(np.uint8).rename(mapped.name)
