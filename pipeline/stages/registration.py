"""Change that is not change: how much of an interval's change a one-pixel misregistration of the
epochs could make.

When the later epoch is the earlier one displaced by at most one pixel (epochs on grids that differ by
a fraction of a pixel and resampled with nearest neighbour, or two versions of a product that draw the
same boundaries a pixel apart), every "changed" pixel takes a class that its earlier 3 x 3
neighbourhood already holds, and no pixel changes amid uniform land. Each changed pixel (valid in both
epochs, class differs) is therefore put in one of three kinds by its earlier 3 x 3 neighbourhood:

* ``NEARBY``: the new class occurs among the 8 earlier neighbours: a shift of <= 1 px can explain it
  (so can genuine change on the rim of existing land of the new class);
* ``UNIFORM``: every valid earlier neighbour holds the earlier class: no shift of <= 1 px can make it;
* ``OTHER``: the earlier neighbourhood is mixed but lacks the new class: no shift of <= 1 px either.

``neighbour_share`` = NEARBY / changed. Pure misregistration gives 1 (UNIFORM 0); genuine change in
patches of w pixels across against existing land of the new class gives about 1 / w, and 0 for new
patches amid other land. Counts are integers from a 3 x 3 window: each block reads the earlier epoch with
a one-pixel halo (nodata outside the raster) from a file, so they do not depend on the chunking and no block
waits on its neighbours; only the changed pixels are looked at, so the cost is one comparison per pixel.
"""

from __future__ import annotations

from collections.abc import Callable

import dask
import numpy as np
import pandas as pd
import xarray as xr
from dask.delayed import Delayed

#: Kinds of pixel in ``change_kind`` (0: unchanged or nodata in either epoch).
NEARBY, UNIFORM, OTHER = 1, 2, 3
NKINDS = 4
#: At or above this ``neighbour_share`` the change is mostly what a <= 1 px shift makes: on average
#: less than ~1.1 px thick against land that already held the new class, which the data cannot tell
#: from misregistration.
SHARE_SUSPECT = 0.9
#: Below this many changed pixels the share is not judged (a few genuine slivers can all lie on edges).
MIN_CHANGED_PIXELS = 100

_OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def change_kind(before: Callable[[int, int, int, int], np.ndarray], after: xr.DataArray) -> xr.DataArray:
    """Lazy uint8 kind of change per pixel (0, ``NEARBY``, ``UNIFORM``, ``OTHER``) on the grid and chunks of
    ``after``, from two class rasters (0 = nodata) on one grid.

    ``before(r0, r1, c0, c1)``: the earlier classes in rows r0..r1-1 and columns c0..c1-1, 0 where these pass
    the raster's edges (e.g. ``cog.read_window`` of a staged raster). Each block reads its own one-pixel halo:
    blocks share no task, so memory is set by the chunk size and the threads, not by the raster (a
    ``map_overlap`` graph made the single pass hold a strip of blocks of every raster it fed).
    """

    def block(b: np.ndarray, block_info=None) -> np.ndarray:
        (r0, r1), (c0, c1) = block_info[0]["array-location"]
        return kind_block(before(r0 - 1, r1 + 1, c0 - 1, c1 + 1), b)

    data = after.data.map_blocks(block, dtype=np.uint8)
    return after.copy(data=data).rename("change_kind")


def kind_block(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Kinds of a block of ``after`` from ``before`` padded by one pixel on every side."""
    a, b = before[1:-1, 1:-1], after
    out = np.zeros(after.shape, np.uint8)
    ii, jj = np.nonzero((a != b) & (a > 0) & (b > 0))
    if not len(ii):
        return out
    old, new = a[ii, jj], b[ii, jj]
    nearby = np.zeros(len(ii), bool)
    mixed = np.zeros(len(ii), bool)
    for dy, dx in _OFFSETS:
        n = before[ii + 1 + dy, jj + 1 + dx]
        nearby |= n == new
        mixed |= (n > 0) & (n != old)
    out[ii, jj] = np.where(nearby, NEARBY, np.where(mixed, OTHER, UNIFORM))
    return out


def kind_counts(kind: xr.DataArray, zones: dict[str, tuple[xr.DataArray, int]]) -> Delayed:
    """Delayed {None: (2, 4) counts of the region (row 1), column: (n, 4) per zone number} of changed
    pixels per kind; exact integers (only changed pixels are gathered)."""
    names = list(zones)
    blocks = [kind.data.to_delayed(optimize_graph=False).ravel()]
    blocks += [z.data.to_delayed(optimize_graph=False).ravel() for z, _ in zones.values()]
    sizes = [n for _, n in zones.values()]
    parts = [dask.delayed(_block_kinds)(sizes, *(b[i] for b in blocks)) for i in range(len(blocks[0]))]
    return dask.delayed(_sum_kinds)(parts, names)


def _block_kinds(sizes: list[int], kind: np.ndarray, *zones: np.ndarray) -> list[np.ndarray]:
    where = kind > 0
    k = kind[where].astype(np.int64)
    out = [np.bincount(k + NKINDS, minlength=2 * NKINDS).reshape(2, NKINDS)]
    for zone, n in zip(zones, sizes):
        out.append(np.bincount(zone[where].astype(np.int64) * NKINDS + k, minlength=n * NKINDS).reshape(n, NKINDS))
    return out


def _sum_kinds(parts: list[list[np.ndarray]], names: list[str]) -> dict[str | None, np.ndarray]:
    keys: list[str | None] = [None, *names]
    return {key: np.asarray(np.sum([p[i] for p in parts], axis=0, dtype=np.int64)) for i, key in enumerate(keys)}


def registration_columns(counts: np.ndarray, numbers: np.ndarray) -> pd.DataFrame:
    """The intervals table's columns for the zones ``numbers`` (rows of ``counts``): changed pixels, those
    a <= 1 px shift explains, those amid uniform land, ``neighbour_share`` and ``registration_check``
    (suspect / pass / n/a under ``MIN_CHANGED_PIXELS``)."""
    rows = counts[np.asarray(numbers, np.int64)]
    changed = rows[:, 1:].sum(axis=1)
    nearby = rows[:, NEARBY]
    share = nearby / np.where(changed > 0, changed, 1).astype(np.float64)
    share = np.where(changed > 0, share, np.nan)
    check = np.where(changed < MIN_CHANGED_PIXELS, "n/a", np.where(share >= SHARE_SUSPECT, "suspect", "pass")).astype(
        object
    )
    return pd.DataFrame(
        {
            "changed_pixels": changed.astype(np.int64),
            "changed_with_earlier_class_nearby_pixels": nearby.astype(np.int64),
            "changed_amid_uniform_land_pixels": rows[:, UNIFORM].astype(np.int64),
            "neighbour_share": share,
            "registration_check": check,
        }
    )
