"""Stage 2, reclassify: product codes -> DESIGN.md's target classes, and one common valid mask.

Schemes are data (``pipeline/schemes/*.csv`` or a user CSV ``source_code,target_class[,name]``).
The functions here are lazy: they return Dask-backed DataArrays and per-row counts to be computed
together with every other output of the run.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from pipeline.classes import CLASS_CODES, NODATA, RURAL
from pipeline.config import BUILTIN_SCHEMES
from pipeline.errors import ConfigError
from pipeline.parameters import read_text

#: Sentinel class for codes the scheme does not know (never written to an output raster).
UNKNOWN = 255

#: Per-pixel status of an epoch, counted per row for the epoch table.
VALID, OWN_NODATA, UNKNOWN_CODE, EXCLUDED_BY_OTHER = range(4)


@dataclass(frozen=True)
class Scheme:
    """A mapping from a product's codes to target classes (0 = nodata)."""

    name: str
    codes: np.ndarray  # int64, sorted
    targets: np.ndarray  # uint8, same order
    labels: tuple[str, ...]
    meta: dict[str, str]

    @property
    def native_split(self) -> bool:
        """True when the scheme itself tells rural settlements (6) from urban land."""
        return bool((self.targets == RURAL).any())

    def as_dict(self) -> dict[int, int]:
        return dict(zip(self.codes.tolist(), self.targets.tolist()))


def load_scheme(name_or_path: str) -> Scheme:
    """A built-in scheme by name, or a user CSV (``source_code,target_class[,name]``)."""
    if name_or_path in BUILTIN_SCHEMES:
        text = resources.files("pipeline.schemes").joinpath(f"{name_or_path}.csv").read_text(encoding="utf-8")
        return _parse_scheme(text, name_or_path, name_or_path)
    path = Path(name_or_path)
    text = read_text(path)
    return _parse_scheme(text, path.stem, path)


def _parse_scheme(text: str, name: str, origin: str | Path) -> Scheme:
    meta = {}
    for line in text.splitlines():
        if line.startswith("#") and ":" in line:
            key, _, value = line.lstrip("# ").partition(":")
            meta[key.strip()] = value.strip()
    try:
        table = pd.read_csv(io.StringIO(text), comment="#", skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ConfigError(f"scheme table is not a CSV: {e}", origin) from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = {"source_code", "target_class"} - set(table.columns)
    if missing:
        raise ConfigError(
            f"scheme table needs columns source_code,target_class[,name]; missing {sorted(missing)}", origin
        )
    codes = pd.to_numeric(table["source_code"], errors="coerce")
    targets = pd.to_numeric(table["target_class"], errors="coerce")
    bad = table[codes.isna() | targets.isna() | (codes % 1 != 0) | (targets % 1 != 0)]
    if len(bad):
        raise ConfigError(f"non-integer codes in rows {_rows(bad)}", origin)
    out_of_range = table[~targets.isin([NODATA, *CLASS_CODES])]
    if len(out_of_range):
        raise ConfigError(
            f"target_class must be 0 (nodata) or 1-8 (DESIGN.md classes); rows {_rows(out_of_range)}", origin
        )
    dup = sorted(set(codes[codes.duplicated()].astype(int)))
    if dup:
        raise ConfigError(f"source codes listed more than once: {dup}", origin)
    order = np.argsort(codes.to_numpy())
    labels = table["name"].astype(str).tolist() if "name" in table else [""] * len(table)
    return Scheme(
        name=name,
        codes=codes.to_numpy().astype(np.int64)[order],
        targets=targets.to_numpy().astype(np.uint8)[order],
        labels=tuple(labels[i] for i in order),
        meta=meta,
    )


def _rows(frame: pd.DataFrame) -> str:
    # +2: the header line and 1-based numbering, as a spreadsheet shows them (comments not counted).
    return ", ".join(str(i + 2) for i in frame.index[:10]) + (" ..." if len(frame) > 10 else "")


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
    mapped = codes.data.map_blocks(
        _map_codes, scheme.codes, scheme.targets, codes.attrs.get("nodata"), dtype=np.uint8
    )
    return codes.copy(data=mapped).rename(f"classes_{codes.attrs.get('year', '')}")


def unknown_codes(codes: xr.DataArray, mapped: xr.DataArray) -> dask.delayed:
    """Delayed {code: pixel count} of the codes the scheme does not map (shares the reads of the run)."""
    return values_where(codes, mapped == UNKNOWN)


def values_where(values: xr.DataArray, mask: xr.DataArray) -> dask.delayed:
    """Delayed {value: pixel count} of ``values`` where ``mask`` holds; a small dict per block."""
    parts = [
        dask.delayed(_count_where)(v, m)
        # optimize_graph=False keeps the block keys of the run's graph, so the reads are shared.
        for v, m in zip(values.data.to_delayed(optimize_graph=False).ravel(),
                        mask.data.to_delayed(optimize_graph=False).ravel())
    ]
    return dask.delayed(_merge_counts)(parts)


def _count_where(values: np.ndarray, mask: np.ndarray) -> dict[int, int]:
    found, counts = np.unique(values[mask], return_counts=True)
    return dict(zip(found.tolist(), counts.tolist()))


def _merge_counts(parts: list[dict[int, int]]) -> dict[int, int]:
    total: dict[int, int] = {}
    for part in parts:
        for k, v in part.items():
            total[k] = total.get(k, 0) + v
    return dict(sorted(total.items()))


def common_valid(mapped: list[xr.DataArray]) -> xr.DataArray:
    """True where every epoch has a known, non-nodata class."""
    valid = None
    for m in mapped:
        ok = (m != NODATA) & (m != UNKNOWN)
        valid = ok if valid is None else valid & ok
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


def row_histogram(values: xr.DataArray, nbins: int, per_row: bool = True) -> da.Array:
    """Pixel counts of each value 0..nbins-1 (int64), per row (shape (height, nbins)) or in all
    (shape (1, nbins)): exact integers, whatever the chunking.

    Per row is what a geographic grid needs (pixel area changes with the row); ``areas_ha`` then
    multiplies by each row's area, so floats are never summed in chunk order.
    """
    arr = values.data

    def count(block: np.ndarray) -> np.ndarray:
        if not per_row:
            return np.bincount(block.ravel(), minlength=nbins).reshape(1, 1, nbins)
        rows = np.arange(block.shape[0])[:, None] * nbins
        hist = np.bincount((rows + block.astype(np.int64)).ravel(), minlength=block.shape[0] * nbins)
        return hist.reshape(block.shape[0], 1, nbins)

    per_block = arr.map_blocks(
        count,
        new_axis=2,
        chunks=(arr.chunks[0] if per_row else (1,) * len(arr.chunks[0]), (1,) * len(arr.chunks[1]), (nbins,)),
        dtype=np.int64,
    )
    return per_block.sum(axis=1) if per_row else per_block.sum(axis=(0, 1))[None, :]


def areas_ha(counts: np.ndarray, row_area_m2: np.ndarray) -> np.ndarray:
    """Hectares per value from ``row_histogram`` counts (per row, or in all on a constant-area grid)."""
    weights = row_area_m2 if counts.shape[0] == len(row_area_m2) else row_area_m2[:1]
    return (counts * weights[:, None]).sum(axis=0) / 1e4
