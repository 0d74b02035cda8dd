"""Exact pixel counts, the engine under every table: counts per combination of per-pixel keys, per row
where pixel area changes with the row. Integers, so they do not depend on the chunking or the scheduler;
areas and carbon are multiplied in afterwards."""

from __future__ import annotations

from collections.abc import Iterable

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from dask.delayed import Delayed

from pipeline.errors import ConfigError

#: Above this many key combinations a block's keys are found by hashing instead of a dense bincount.
_DENSE_LIMIT = 1 << 22


def group_counts(keys: dict[str, tuple[xr.DataArray, int]], per_row: bool) -> Delayed:
    """Delayed DataFrame of pixel counts per combination of keys present (and per image row if ``per_row``).

    ``keys`` maps a column name to (an integer raster with values in 0..size-1, size). The result has
    one column per key, ``row`` (0 unless ``per_row``) and ``pixels`` (int64), sorted by the keys and row.
    """
    names = list(keys)
    sizes = [int(n) for _, n in keys.values()]
    arrays = [a.data for a, _ in keys.values()]
    if np.prod(sizes, dtype=float) >= 2.0**62:
        raise ConfigError(
            f"too many combinations of zones, classes and parameter rows to count in one run "
            f"({' x '.join(map(str, sizes))} >= 2^62): run the zone layers in separate runs"
        )
    row_starts = np.concatenate([[0], np.cumsum(arrays[0].chunks[0])[:-1]])
    ncols = len(arrays[0].chunks[1])
    # optimize_graph=False keeps the block keys of the run's graph, so the reads are shared.
    blocks = [a.to_delayed(optimize_graph=False).ravel() for a in arrays]
    parts = [
        dask.delayed(_block_counts)(sizes, int(row_starts[i // ncols]) if per_row else None, *(b[i] for b in blocks))
        for i in range(len(blocks[0]))
    ]
    return dask.delayed(_merge)(parts, names, sizes)


def _compact(values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, index of each value among them): a dense bincount when ``size`` is small,
    else a hash table (pandas.factorize is linear where sorting is not)."""
    if size <= _DENSE_LIMIT:
        present = np.flatnonzero(np.bincount(values, minlength=size))
        lookup = np.zeros(size, np.int64)
        lookup[present] = np.arange(len(present))
        return present, lookup[values]
    index, present = pd.factorize(values, sort=False)
    return np.asarray(present, np.int64), index.astype(np.int64)


def _block_counts(sizes: list[int], row0: int | None, *blocks: np.ndarray) -> tuple[np.ndarray, ...]:
    """(combined key, global row, pixels) of one block; rows are all 0 unless ``row0`` is given."""
    total = int(np.prod(sizes))
    # Half the memory traffic of int64 when the combinations fit: this loop is most of the counting time.
    dtype = np.uint32 if total <= np.iinfo(np.uint32).max else np.int64
    key = blocks[0].astype(dtype)
    for block, size in zip(blocks[1:], sizes[1:]):
        key *= dtype(size)
        np.add(key, block, out=key, casting="unsafe")  # block values lie in 0..size-1
    key = key.ravel()
    if row0 is None and total <= _DENSE_LIMIT:
        counts = np.bincount(key, minlength=total)
        present = np.flatnonzero(counts)
        return present, np.zeros(len(present), np.int64), counts[present]
    present, local = _compact(key, total)
    if row0 is None:
        pixels = np.bincount(local, minlength=len(present))
        return present, np.zeros(len(present), np.int64), pixels
    h = blocks[0].shape[0]
    combo, where = _compact(local * h + np.repeat(np.arange(h), blocks[0].shape[1]), len(present) * h)
    pixels = np.bincount(where, minlength=len(combo))
    return present[combo // h], combo % h + row0, pixels


def _merge(parts: list, names: list[str], sizes: list[int]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(["key", "row", "pixels"])}
    )
    # Integer sums: exact, and the same in any order of the blocks.
    frame = frame.groupby(["key", "row"], sort=True)["pixels"].sum().reset_index()
    out = pd.DataFrame({n: c.astype(np.int64) for n, c in zip(names, np.unravel_index(frame["key"].to_numpy(), sizes))})
    out["row"] = frame["row"].to_numpy(np.int64)
    out["pixels"] = frame["pixels"].to_numpy(np.int64)
    return out


def values_where(values: xr.DataArray, mask: xr.DataArray) -> Delayed:
    """Delayed {value: pixel count} of ``values`` where ``mask`` holds; a small dict per block."""
    parts = [
        dask.delayed(_count_where)(v, m)
        # optimize_graph=False keeps the block keys of the run's graph, so the reads are shared.
        for v, m in zip(
            values.data.to_delayed(optimize_graph=False).ravel(), mask.data.to_delayed(optimize_graph=False).ravel()
        )
    ]
    return dask.delayed(merge_counts)(parts)


def _count_where(values: np.ndarray, mask: np.ndarray) -> dict[int, int]:
    found, counts = np.unique(values[mask], return_counts=True)
    return dict(zip(found.tolist(), counts.tolist()))


def merge_counts(parts: Iterable[dict[int, int]]) -> dict[int, int]:
    """{key: count} dicts summed key by key, sorted by key."""
    total: dict[int, int] = {}
    for part in parts:
        for k, v in part.items():
            total[k] = total.get(k, 0) + v
    return dict(sorted(total.items()))


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


def count_area_ha(counts: pd.DataFrame, row_area_m2: np.ndarray) -> np.ndarray:
    """Hectares of each row of a ``group_counts`` frame: its pixels times the area of a pixel of its image
    row (row 0 on a projected grid, where every pixel has the same area)."""
    return counts["pixels"].to_numpy() * row_area_m2[counts["row"].to_numpy()] / 1e4
