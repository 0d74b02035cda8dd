"""Change that resampling alone creates: the apparent change an interval shows only because an epoch was
resampled with nearest neighbour from its own grid onto the run's grid (``align: nearest``).

Nearest neighbour gives a run-grid pixel the class of the source pixel whose centre is nearest: the land
it shows lies not at the pixel's centre but displaced by ``d`` = (source centre - pixel centre), in run-grid
pixels (under half a source pixel in each axis). Two epochs on the run grid therefore look at points
``d1 - d0`` apart (``d`` = 0 for an epoch on the run grid, so two epochs resampled from one grid see the
same points and resampling makes no change between them). A pixel shows change where a class boundary
passes between the two points.

Where the boundaries lie within a pixel is unknown; the model takes it as uniform between neighbouring
pixel centres. The class at a point a fraction ``f`` of the way from centre ``u`` to centre ``u + 1`` is
then that of ``u + 1`` with probability ``f`` (the boundary lies in between), else that of ``u``: bilinear
weights over the four centres around the point, on the earlier epoch. The expected change of a pixel is
the weight of those of the four whose class differs from its own (nodata and outside the raster: no
change). A round trip (run grid -> own grid -> run grid) would not do: with equal resolutions nearest
neighbour maps pixels one to one, so any shift comes back unchanged, while the change it makes between the
epochs is large (a 0.39 px shift across one boundary: 39 % of the pixels beside it).

Sums are integers in units of 2^-20 pixel, so totals do not depend on the chunking or the scheduler; the
earlier epoch is read with an overlap as deep as the largest displacement (one pixel for a sub-pixel shift),
in the same pass as the other counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from affine import Affine
from dask.delayed import Delayed
from pyproj import Transformer

from pipeline.model.grid import Grid

#: Expected pixels are summed as integers of 2^-FRACTION_BITS pixel (exact, order-free sums).
FRACTION_BITS = 20
_UNIT = float(1 << FRACTION_BITS)


def _apply(t: Affine, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f


def _transformer(src: Grid, dst: Grid) -> Transformer | None:
    return None if src.crs == dst.crs else Transformer.from_crs(src.crs, dst.crs, always_xy=True)


def displacement_at(target: Grid, source: Grid, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dy, dx) in target pixels: where the land that nearest neighbour from ``source`` gives the target pixels
    (``rows``, ``cols``; broadcast) lies, relative to their centres. NaN where no source pixel is hit."""
    x, y = _apply(target.transform, cols + 0.5, rows + 0.5)
    forward, back = _transformer(target, source), _transformer(source, target)
    if forward is not None:
        x, y = forward.transform(x, y)
    sc, sr = _apply(~source.transform, x, y)
    sc, sr = np.floor(sc), np.floor(sr)
    hit = (sc >= 0) & (sc < source.width) & (sr >= 0) & (sr < source.height)
    x, y = _apply(source.transform, sc + 0.5, sr + 0.5)
    if back is not None:
        x, y = back.transform(x, y)
    tc, tr = _apply(~target.transform, x, y)
    dy, dx = tr - 0.5 - rows, tc - 0.5 - cols
    return np.where(hit, dy, np.nan), np.where(hit, dx, np.nan)


def _zero_if_on_grid(target: Grid, source: Grid | None) -> bool:
    return source is None or not target.differences(source)


def interval_displacement(
    target: Grid, sources: tuple[Grid | None, Grid | None], like: xr.DataArray
) -> tuple[da.Array, da.Array, int] | None:
    """Lazy (dy, dx) = d1 - d0 of an interval (``sources``: the epochs' own grids, None or the target for an
    epoch on the run grid), chunked like ``like``, and the overlap depth it needs; None when resampling moves
    no pixel (neither epoch resampled, or both from one grid)."""
    s0, s1 = sources
    if (_zero_if_on_grid(target, s0) and _zero_if_on_grid(target, s1)) or (
        s0 is not None and s1 is not None and not s0.differences(s1)
    ):
        return None

    def block(block_info: dict | None = None) -> np.ndarray:
        assert block_info is not None
        _, (r0, r1), (c0, c1) = block_info[None]["array-location"]
        rows, cols = np.arange(r0, r1, dtype=np.float64)[:, None], np.arange(c0, c1, dtype=np.float64)[None, :]
        out = np.zeros((2, r1 - r0, c1 - c0))
        for sign, src in ((-1.0, s0), (1.0, s1)):
            if not _zero_if_on_grid(target, src):
                assert src is not None
                dy, dx = displacement_at(target, src, rows, cols)
                out[0] += sign * dy
                out[1] += sign * dx
        return out

    chunks = ((2,), *like.data.chunks)
    field = da.map_blocks(block, chunks=chunks, dtype=np.float64, meta=np.array((), np.float64))
    return field[0], field[1], _depth(target, s0, s1)


def _depth(target: Grid, s0: Grid | None, s1: Grid | None) -> int:
    """Overlap the displacements need: the farthest of the four centres around a displaced point, from a
    sample of at most 513 x 513 pixels (every pixel of a row and a column on one CRS, where the displacement
    is separable), plus one pixel for a change of CRS."""
    h, w = target.height, target.width
    rows = np.unique(np.linspace(0, h - 1, min(h, 513)).round())[:, None]
    cols = np.unique(np.linspace(0, w - 1, min(w, 513)).round())[None, :]
    same_crs = all(s is None or s.crs == target.crs for s in (s0, s1))
    if same_crs:  # north-up grids on one CRS: dy depends on the row only, dx on the column only
        rows, cols = np.arange(h, dtype=np.float64)[:, None], np.array([[0.0]])
    deepest = 0.0
    for axis_rows, axis_cols in ((rows, cols), (np.array([[0.0]]), np.arange(w, dtype=np.float64)[None, :]))[
        : 2 if same_crs else 1
    ]:
        total = [np.zeros(1), np.zeros(1)]
        for sign, src in ((-1.0, s0), (1.0, s1)):
            if not _zero_if_on_grid(target, src):
                assert src is not None
                dy, dx = displacement_at(target, src, axis_rows, axis_cols)
                total = [total[0] + sign * dy, total[1] + sign * dx]
        for d in total:
            d = d[np.isfinite(d)]
            if d.size:
                deepest = max(deepest, float(np.abs(np.floor(d)).max()), float(np.abs(np.floor(d) + 1).max()))
    return max(1, math.ceil(deepest)) + (0 if same_crs else 1)


def expected_change(
    before: Callable[[int, int, int, int], np.ndarray], dy: da.Array, dx: da.Array, depth: int
) -> da.Array:
    """Lazy int64 expected change per pixel in units of 2^-FRACTION_BITS pixel (0 on nodata), on the chunks of
    the interval's displacements ``dy``, ``dx``.

    ``before(r0, r1, c0, c1)``: the earlier epoch's classes (0 = nodata) in rows r0..r1-1 and columns
    c0..c1-1, 0 past the raster's edges (e.g. ``cog.read_window`` of a staged raster): each block reads its
    own halo of ``depth`` pixels, so no block waits on its neighbours."""

    def block(y: np.ndarray, x: np.ndarray, block_info=None) -> np.ndarray:
        (r0, r1), (c0, c1) = block_info[0]["array-location"]
        return _expected_block(before(r0 - depth, r1 + depth, c0 - depth, c1 + depth), y, x, depth)

    return da.map_blocks(block, dy, dx, dtype=np.int64)


def _expected_block(before: np.ndarray, dy: np.ndarray, dx: np.ndarray, depth_value: int) -> np.ndarray:
    k = depth_value
    own = before[k:-k, k:-k]
    h, w = own.shape
    rows, cols = np.indices((h, w))
    ok = np.isfinite(dy) & np.isfinite(dx)
    dy, dx = np.where(ok, dy, 0.0), np.where(ok, dx, 0.0)
    ny, nx = np.floor(dy), np.floor(dx)
    fy, fx = dy - ny, dx - nx
    ny, nx = ny.astype(np.int64), nx.astype(np.int64)
    total = np.zeros((h, w))
    for oy, wy in ((ny, 1.0 - fy), (ny + 1, fy)):
        r = np.clip(rows + k + oy, 0, before.shape[0] - 1)
        for ox, wx in ((nx, 1.0 - fx), (nx + 1, fx)):
            c = np.clip(cols + k + ox, 0, before.shape[1] - 1)
            n = before[r, c]
            total += wy * wx * ((n > 0) & (n != own))
    total = np.where((own > 0) & ok, total, 0.0)
    return np.rint(total * _UNIT).astype(np.int64)


def change_counts(expected: da.Array, before: xr.DataArray, zones: dict[str, tuple[xr.DataArray, int]]) -> Delayed:
    """Delayed {None: (2, 2) of the region (row 1), column: (n, 2) per zone number}: valid pixels and expected
    change (2^-FRACTION_BITS px), exact integers."""
    names = list(zones)
    blocks = [expected.to_delayed(optimize_graph=False).ravel(), before.data.to_delayed(optimize_graph=False).ravel()]
    blocks += [z.data.to_delayed(optimize_graph=False).ravel() for z, _ in zones.values()]
    sizes = [n for _, n in zones.values()]
    parts = [dask.delayed(_block_counts)(sizes, *(b[i] for b in blocks)) for i in range(len(blocks[0]))]
    return dask.delayed(_sum_counts)(parts, names)


def _block_counts(sizes: list[int], expected: np.ndarray, before: np.ndarray, *zones: np.ndarray) -> list[np.ndarray]:
    valid = before > 0
    e = expected[valid]
    out = [np.array([[0, 0], [int(valid.sum()), int(e.sum())]], np.int64)]
    for zone, n in zip(zones, sizes):
        z = zone[valid].astype(np.int64)
        pixels = np.bincount(z, minlength=n).astype(np.int64)
        # float64 sums of integers below 2^53 are exact (a 4096 x 4096 block sums to at most 2^44)
        change = np.rint(np.bincount(z, weights=e.astype(np.float64), minlength=n)).astype(np.int64)
        out.append(np.stack([pixels, change], axis=1))
    return out


def _sum_counts(parts: list[list[np.ndarray]], names: list[str]) -> dict[str | None, np.ndarray]:
    keys: list[str | None] = [None, *names]
    return {key: np.asarray(np.sum([p[i] for p in parts], axis=0, dtype=np.int64)) for i, key in enumerate(keys)}


def resampling_columns(counts: np.ndarray | None, numbers: np.ndarray) -> pd.DataFrame:
    """The intervals table's columns for the zones ``numbers`` (rows of ``counts``; None: no resampling
    between the epochs, 0): expected pixels resampling alone changes (0.1 px) and their share of the valid
    pixels."""
    n = len(numbers)
    if counts is None:
        return pd.DataFrame({"resampling_changed_pixels": np.zeros(n), "resampling_changed_share": np.zeros(n)})
    rows = counts[np.asarray(numbers, np.int64)]
    valid, change = rows[:, 0], rows[:, 1] / _UNIT
    share = np.where(valid > 0, change / np.where(valid > 0, valid, 1), np.nan)
    return pd.DataFrame({"resampling_changed_pixels": np.round(change, 1), "resampling_changed_share": share})
