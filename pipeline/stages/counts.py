"""Exact pixel counts, the engine under every table: counts per combination of per-pixel keys, per cell
of the grid's pixel-area lattice (``model.grid.PixelAreas``) where pixel area changes over the grid.
Integers, so they do not depend on the chunking or the scheduler; areas and carbon are multiplied in
afterwards."""

from __future__ import annotations

from collections.abc import Iterable

import dask
import numpy as np
import pandas as pd
import xarray as xr
from dask.delayed import Delayed

from pipeline.errors import ConfigError
from pipeline.model.grid import PixelAreas

#: Above this many key combinations a block's keys are found by hashing instead of a dense bincount.
_DENSE_LIMIT = 1 << 22


def group_counts(
    keys: dict[str, tuple[xr.DataArray, int]], areas: PixelAreas | None, along: Iterable[xr.DataArray] = ()
) -> Delayed:
    """Delayed DataFrame of pixel counts per combination of keys present and per pixel-area cell.

    ``keys`` maps a column name to (an integer raster with values in 0..size-1, size). The result has
    one column per key, ``cell`` (the ``areas`` cell; 0 when ``areas`` is None or constant) and
    ``pixels`` (int64), sorted by the keys and cell. A block's count also waits for the blocks of the
    rasters ``along`` (not counted), for the order Dask runs the run's tasks in (see ``with_looked_up``).
    """
    names = list(keys)
    sizes = [int(n) for _, n in keys.values()]
    arrays = [a.data for a, _ in keys.values()] + [a.data for a in along]
    if np.prod(sizes, dtype=float) >= 2.0**62:
        raise ConfigError(
            f"too many combinations of zones, classes and parameter rows to count in one run "
            f"({' x '.join(map(str, sizes))} >= 2^62): run the zone layers in separate runs"
        )
    per_cell = areas if areas is not None and not areas.constant else None
    row_starts = np.concatenate([[0], np.cumsum(arrays[0].chunks[0])[:-1]])
    col_starts = np.concatenate([[0], np.cumsum(arrays[0].chunks[1])[:-1]])
    ncols = len(arrays[0].chunks[1])
    # optimize_graph=False keeps the block keys of the run's graph, so the reads are shared.
    blocks = [a.to_delayed(optimize_graph=False).ravel() for a in arrays]
    parts = [
        dask.delayed(_block_counts)(
            sizes, per_cell, (int(row_starts[i // ncols]), int(col_starts[i % ncols])), *(b[i] for b in blocks)
        )
        for i in range(len(blocks[0]))
    ]
    # The parts as arguments of their own, not a list: Dask then keeps the array layers under them (a list
    # made them a flat copy, and a raster written from a layer also counted here had that layer fused into
    # its write, each block computed twice).
    return dask.delayed(_merge)(names, sizes, *parts)


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


#: Rows of a block counted at once: the combined keys and their compaction of a whole 2048^2 block took
#: about 100 MB a task, strips of 512 rows half that (where a block holds few combinations, as land cover does).
_STRIP_ROWS = 512


def _block_counts(
    sizes: list[int], areas: PixelAreas | None, origin: tuple[int, int], *blocks: np.ndarray
) -> tuple[np.ndarray, ...]:
    """(combined key, cell, pixels) of the block at ``origin`` (row, column); cells all 0 without ``areas``.
    A (key, cell) pair may come in several rows (one per strip): ``_merge`` sums them. Blocks beyond the keys'
    (``group_counts``' ``along``) are not counted."""
    blocks = blocks[: len(sizes)]
    rows = blocks[0].shape[0]
    if blocks[0].ndim != 2 or rows <= _STRIP_ROWS:
        return _strip_counts(sizes, areas, origin, *blocks)
    parts = [
        _strip_counts(sizes, areas, (origin[0] + r, origin[1]), *(b[r : r + _STRIP_ROWS] for b in blocks))
        for r in range(0, rows, _STRIP_ROWS)
    ]
    # Summed once in _merge (exact in any order): a groupby per block cost more than the few repeated rows.
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


def _strip_counts(
    sizes: list[int], areas: PixelAreas | None, origin: tuple[int, int], *blocks: np.ndarray
) -> tuple[np.ndarray, ...]:
    """``_block_counts`` of rows that are counted at once."""
    total = int(np.prod(sizes))
    # Half the memory traffic of int64 when the combinations fit: this loop is most of the counting time.
    dtype = np.uint32 if total <= np.iinfo(np.uint32).max else np.int64
    key = blocks[0].astype(dtype)
    for block, size in zip(blocks[1:], sizes[1:]):
        key *= dtype(size)
        np.add(key, block, out=key, casting="unsafe")  # block values lie in 0..size-1
    if areas is None or key.size == 0:
        return _uncelled_counts(key.ravel(), total)
    # Cell numbers are a row part plus a column part: added to the key by broadcasting, never made per pixel.
    rows, cols = areas.cell_parts(*origin, *key.shape)
    first = int(rows[0] + cols[0])
    span = int(rows[-1] + cols[-1]) - first + 1
    present = None  # few enough combinations: (key, cell) counted densely without compacting the keys first
    if total * span > _DENSE_LIMIT:
        present, local = _compact(key.ravel(), total)
        key = local.reshape(key.shape)
    n = total if present is None else len(present)
    kind = np.uint32 if n * span <= np.iinfo(np.uint32).max else np.int64
    combined = key.astype(kind, copy=False)  # the key is this function's own: scaled in place
    combined *= kind(span)
    combined += (rows - rows[0]).astype(kind)[:, None]
    combined += (cols - cols[0]).astype(kind)[None, :]
    if n * span <= _DENSE_LIMIT:
        counts = np.bincount(combined.ravel(), minlength=n * span)
        combo = np.flatnonzero(counts)
        pixels = counts[combo]
    else:
        combo, where = _compact(combined.ravel(), n * span)
        pixels = np.bincount(where, minlength=len(combo))
    keys = combo // span if present is None else present[combo // span]
    return keys.astype(np.int64), combo % span + first, pixels


def _uncelled_counts(key: np.ndarray, total: int) -> tuple[np.ndarray, ...]:
    """``_strip_counts`` of flat combined keys, all in cell 0 (no pixel-area lattice, or no pixels)."""
    if total <= _DENSE_LIMIT:
        counts = np.bincount(key, minlength=total)
        present = np.flatnonzero(counts)
        return present, np.zeros(len(present), np.int64), counts[present]
    present, local = _compact(key, total)
    return present, np.zeros(len(present), np.int64), np.bincount(local, minlength=len(present))


def _merge(names: list[str], sizes: list[int], *parts: tuple[np.ndarray, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(["key", "cell", "pixels"])}
    )
    # Integer sums: exact, and the same in any order of the blocks.
    frame = frame.groupby(["key", "cell"], sort=True)["pixels"].sum().reset_index()
    out = pd.DataFrame({n: c.astype(np.int64) for n, c in zip(names, np.unravel_index(frame["key"].to_numpy(), sizes))})
    out["cell"] = frame["cell"].to_numpy(np.int64)
    out["pixels"] = frame["pixels"].to_numpy(np.int64)
    return out


def with_looked_up(counts: Delayed, looked_up: dict[str, tuple[str, np.ndarray]], columns: list[str]) -> Delayed:
    """A delayed ``group_counts`` frame with more key columns, each a function of one counted column (``name:
    (column, table)``: ``table[column]``), the keys in the order of ``columns``.

    A key set by another one need not be counted (a count per key costs a multiply-add per pixel, and a larger
    key space to compact): the frame is the one ``group_counts`` gives with it counted, row for row, when each
    looked-up key comes after its column in ``columns`` and the counted keys keep their order (the rows
    then sort the same)."""
    if not looked_up:
        return counts
    return dask.delayed(_look_up)(counts, looked_up, columns)


def _look_up(frame: pd.DataFrame, looked_up: dict[str, tuple[str, np.ndarray]], columns: list[str]) -> pd.DataFrame:
    values = {c: frame[c].to_numpy(np.int64) for c in frame.columns}
    values |= {name: table[values[source]].astype(np.int64) for name, (source, table) in looked_up.items()}
    return pd.DataFrame({c: values[c] for c in [*columns, "cell", "pixels"]})


def values_where(values: xr.DataArray, mask: xr.DataArray, along: xr.DataArray | None = None) -> Delayed:
    """Delayed {value: pixel count} of ``values`` where ``mask`` holds; a small dict per block. A block's count
    also waits for the block of ``along`` (not counted), as ``group_counts``' do."""
    # optimize_graph=False keeps the block keys of the run's graph, so the reads are shared.
    arrays = [a.data.to_delayed(optimize_graph=False).ravel() for a in (values, mask, along) if a is not None]
    parts = [dask.delayed(_count_where)(*blocks) for blocks in zip(*arrays)]
    return dask.delayed(_merge_dicts)(*parts)  # not a list: see group_counts


def _count_where(values: np.ndarray, mask: np.ndarray, *along: np.ndarray) -> dict[int, int]:
    found, counts = np.unique(values[mask], return_counts=True)
    return dict(zip(found.tolist(), counts.tolist()))


def _merge_dicts(*parts: dict[int, int]) -> dict[int, int]:
    return merge_counts(parts)


def merge_counts(parts: Iterable[dict[int, int]]) -> dict[int, int]:
    """{key: count} dicts summed key by key, sorted by key."""
    total: dict[int, int] = {}
    for part in parts:
        for k, v in part.items():
            total[k] = total.get(k, 0) + v
    return dict(sorted(total.items()))


def count_area_ha(counts: pd.DataFrame, areas: PixelAreas) -> np.ndarray:
    """Hectares of each row of a counts frame: its ``area_ha`` once ``fold_cells`` has summed its cells, else
    (a ``group_counts`` frame) its pixels times the area of a pixel of its cell."""
    if "cell" not in counts.columns:
        return counts["area_ha"].to_numpy()
    return counts["pixels"].to_numpy() * areas.flat_m2[counts["cell"].to_numpy()] / 1e4


def fold_cells(counts: pd.DataFrame, areas: PixelAreas, weighted: Iterable[str] = ()) -> pd.DataFrame:
    """A ``group_counts`` frame with its pixel-area cells summed: one row per combination of keys, with its
    ``pixels`` (int64) and ``area_ha``, the hectares of its cells added in cell order. Each column of
    ``weighted`` (``group_sums``' value sums) becomes ``<column>_m2``: its cells' sums times their pixel area
    (m²), added likewise.

    The frame then grows with the combinations, not with the raster's area (a row per 5 km cell would be about
    1 GB for a 30 m country). The cells' pixels and sums are exact integers that do not depend on the chunking,
    and so is the order they are added in, so the areas do not either."""
    weighted = list(weighted)
    keys = [c for c in counts.columns if c not in ("cell", "pixels", *weighted)]
    frame = counts[keys].copy()
    frame["pixels"] = counts["pixels"].to_numpy(np.int64)
    frame["area_ha"] = count_area_ha(counts, areas)
    m2 = areas.flat_m2[counts["cell"].to_numpy()]
    for column in weighted:
        frame[f"{column}_m2"] = counts[column].to_numpy() * m2
    # the rows are sorted by keys then cell (group_counts), so each key's cells are added in cell order
    return frame.groupby(keys, sort=True)[frame.columns[len(keys) :]].sum().reset_index()


#: Integer sums are made per block in float64 (``numpy.bincount`` weights), exact while below 2^53.
_EXACT_FLOAT = 2.0**53


def group_sums(
    keys: dict[str, tuple[xr.DataArray, int]], values: dict[str, xr.DataArray], areas: PixelAreas
) -> Delayed:
    """Delayed DataFrame like ``group_counts`` (keys, ``cell``, ``pixels``) with, per row, the exact integer
    sum of each int64 raster of ``values`` over its pixels (one column per name). Integer sums do not depend
    on the chunking or the order of the blocks."""
    names, vnames = list(keys), list(values)
    sizes = [int(n) for _, n in keys.values()]
    if np.prod(sizes, dtype=float) >= 2.0**62:
        raise ConfigError(
            f"too many combinations of zones and keys to sum in one run ({' x '.join(map(str, sizes))} >= 2^62): "
            "run the zone layers in separate runs"
        )
    arrays = [a.data for a, _ in keys.values()] + [v.data for v in values.values()]
    per_cell = None if areas.constant else areas
    row_starts = np.concatenate([[0], np.cumsum(arrays[0].chunks[0])[:-1]])
    col_starts = np.concatenate([[0], np.cumsum(arrays[0].chunks[1])[:-1]])
    ncols = len(arrays[0].chunks[1])
    blocks = [a.to_delayed(optimize_graph=False).ravel() for a in arrays]
    parts = [
        dask.delayed(_block_sums)(
            sizes, per_cell, (int(row_starts[i // ncols]), int(col_starts[i % ncols])), *(b[i] for b in blocks)
        )
        for i in range(len(blocks[0]))
    ]
    return dask.delayed(_merge_sums)(names, sizes, vnames, *parts)  # not a list: see group_counts


def _block_sums(
    sizes: list[int], areas: PixelAreas | None, origin: tuple[int, int], *blocks: np.ndarray
) -> tuple[np.ndarray, ...]:
    """(combined key, cell, pixels, sum of each value block) of the block at ``origin``."""
    nkeys = len(sizes)
    key = np.zeros(blocks[0].size, np.int64)
    for block, size in zip(blocks[:nkeys], sizes):
        key = key * size + block.ravel().astype(np.int64)
    present, local = _compact(key, int(np.prod(sizes)))
    cells = np.zeros(key.size, np.int64) if areas is None else areas.cells(*origin, *blocks[0].shape).ravel()
    first = int(cells.min(initial=0))
    span = int(cells.max(initial=0)) - first + 1
    combo, where = _compact(local * span + (cells - first), len(present) * span)
    pixels = np.bincount(where, minlength=len(combo))
    sums = []
    for block in blocks[nkeys:]:
        flat = block.ravel()
        if flat.size and float(np.abs(flat).max()) * flat.size >= _EXACT_FLOAT:
            raise ConfigError("values too large to sum exactly: use a coarser `precision` or smaller dask.chunks")
        sums.append(np.rint(np.bincount(where, weights=flat.astype(np.float64), minlength=len(combo))).astype(np.int64))
    return (present[combo // span], combo % span + first, pixels, *sums)


def _merge_sums(names: list[str], sizes: list[int], vnames: list[str], *parts: tuple[np.ndarray, ...]) -> pd.DataFrame:
    columns = ["key", "cell", "pixels", *vnames]
    frame = pd.DataFrame({c: np.concatenate([p[i] for p in parts]).astype(np.int64) for i, c in enumerate(columns)})
    # Integer sums: exact, and the same in any order of the blocks.
    frame = frame.groupby(["key", "cell"], sort=True)[columns[2:]].sum().reset_index()
    out = pd.DataFrame({n: c.astype(np.int64) for n, c in zip(names, np.unravel_index(frame["key"].to_numpy(), sizes))})
    for c in columns[1:]:
        out[c] = frame[c].to_numpy(np.int64)
    return out
