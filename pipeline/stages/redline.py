"""Stage 7 core: ecological protection red-line candidates and coverage of function zones.

Seed 003 §4.2: high carbon-sink areas should enter red lines; seed 004: red lines cover >= 73.84 % of
national key ecological function zones. Plain functions, lazy with Dask; no I/O.

* ``level_values(index, table)`` float64 values of a table per "row index" (NaN at index 0).
* ``level_stats(pixels, table)``: (n, mean, population std) for Gi*.
* ``gi_star(window, like, radius_px, stats, max_abs)``: Getis-Ord Gi* z-scores (float64), disc window, each
  block with its halo read through ``window`` (``gi_star_window``: the formula on one window).
* ``hotspots(z, classes, threshold, allowed, locked_out)``: boolean hot, allowed pixels
  (``land_kind``: 0 nodata, 1 cropland/construction, 2 allowed; ``disc``: the window).
* ``join_patches(mask)`` / ``label_patches(mask, joined)``: 8-connected patch labels (int32), count.
* ``patch_sizes`` + ``patch_anchors(labels)``, then ``redline_counts(only(labels, large_patches(...)), ...)``:
  pixels per patch, then the counts of the patches that may be candidates.
* ``patch_table``, ``coverage``, ``gap_fill``: pandas from those counts.
* ``gap_fill_mask(...)``: lazy boolean raster of gap-fill pixels; ``vectorise(labels, ids, grid, parts)``:
  polygons written to part files (``Polygons``), read back a part at a time.

Chunk independence: patch labels depend on the chunking, so nothing published uses them:
patches are ranked by stock (t C, from integer counts times constants, summed in key order) then by
their smallest row-major pixel index, and ``patch_id`` is that rank. Locked-in protected areas are
not merged into candidates: a candidate keeps the pixels it shares with them (``locked_in_ha`` says
how much), coverage counts candidates ∪ locked-in once, and gap fill skips both.

Order of a run (each step one pass; memory bounded by the chunk size): 1. stats (``level_stats`` from
the run's counts); 2. hot = ``hotspots(gi_star(...))`` written (temporary uint8 GeoTIFF); 3. compute
``join_patches(hot)``; 4. write ``label_patches(hot, joined)`` (temporary int32 GeoTIFF); 5. on the
labels read back, compute ``patch_sizes`` and ``patch_anchors`` together, then ``redline_counts`` of the
large patches; 6. ``patch_table``, ``coverage``, ``gap_fill`` (pandas); 7. ``vectorise`` the kept labels and
write / vectorise ``gap_fill_mask``.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.geometry
import xarray as xr
from affine import Affine
from dask.delayed import Delayed
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import shapes

from pipeline.errors import ConfigError
from pipeline.model.classes import FOREST, GRASSLAND, UNUSED, WATER
from pipeline.model.grid import Grid, PixelAreas
from pipeline.stages.counts import count_area_ha, group_counts, with_looked_up
from pipeline.stages.patches import edge_labels, join_blocks, label_block

# Blocks are polygonised in pixel coordinates, so the first block's transform is the identity; that is
# meant. A module filter, as in vector.py: catch_warnings is not thread-safe under Dask threads.
warnings.filterwarnings("ignore", "The given matrix is equal to Affine.identity", NotGeoreferencedWarning, "rasterio")

#: Classes that may enter a red line: not nodata, cropland or construction (5, 6, 7).
ALLOWED_CLASSES = (FOREST, GRASSLAND, WATER, UNUSED)
#: Seed 004: share of national key ecological function zones inside red lines.
KEY_ZONE_TARGET = 0.7384


def disc(radius_px: int) -> np.ndarray:
    """Boolean footprint of pixel centres within ``radius_px`` pixels of the centre (centre included)."""
    d = np.arange(-radius_px, radius_px + 1)
    return d[:, None] ** 2 + d[None, :] ** 2 <= radius_px**2


def level_values(index: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table[index]`` as float64 (e.g. t C/ha), NaN where index is 0. ``table`` is indexed by the raster
    value, e.g. ``np.concatenate([[nan], lookup.values])`` for a ``carbon.row_index`` raster."""
    t = np.asarray(table, np.float64).copy()
    t[0] = np.nan
    return t[index]


def level_stats(pixels: np.ndarray, table: np.ndarray) -> tuple[float, float, float]:
    """Exact (n, mean, population std) of ``level_values`` from pixel counts per index value
    (``pixels[i]`` pixels hold ``table[i]``; index 0 ignored). math.fsum: independent of any order."""
    p, v = np.asarray(pixels, np.float64)[1:], np.asarray(table, np.float64)[1 : len(pixels)]
    n = float(p.sum())
    mean = math.fsum(p * v) / n
    return n, mean, math.sqrt(math.fsum(p * (v - mean) ** 2) / n)


#: Rows of a Gi* block computed at once: about ten float64/int64 arrays of the strip and its halo live at a
#: time, 5 MB each at 2048 columns (a whole 2048^2 block made them 35 MB each, 350 MB a task).
GI_STRIP_ROWS = 256


def gi_star(
    window: Callable[[int, int, int, int], np.ndarray], like: xr.DataArray, radius_px: int, stats, max_abs: float
) -> xr.DataArray:
    """Getis-Ord Gi* z-score per pixel (float64, dimensionless) on the grid and chunks of ``like``, binary
    weights over ``disc(radius_px)``; ``gi_star_window`` is the formula.

    ``window(r0, r1, c0, c1)``: the values (float, NaN = nodata) of rows r0..r1-1 and columns c0..c1-1, NaN
    where these pass the raster's edges. Each output block is one task that reads its own block and a halo of
    ``radius_px`` through ``window``, ``GI_STRIP_ROWS`` rows at a time: blocks share no task, so memory is
    set by the chunk size and the threads, not by the raster (a ``map_overlap`` graph kept up to 99
    neighbour blocks of an 8 x 8 grid).
    """
    r = radius_px

    def block(block_info=None) -> np.ndarray:
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        out = np.empty((r1 - r0, c1 - c0), np.float64)
        # A strip of rows at a time: z of a pixel depends only on its own window, so strips give the same
        # values as the whole block, and a task's temporaries are those of a strip, not of a block.
        for s in range(r0, r1, GI_STRIP_ROWS):
            e = min(s + GI_STRIP_ROWS, r1)
            out[s - r0 : e - r0] = gi_star_window(window(s - r, e + r, c0 - r, c1 + r), r, stats, max_abs)
        return out

    data = da.map_blocks(block, chunks=like.data.chunks, dtype=np.float64, meta=np.array((), np.float64))
    return like.copy(data=data).rename("gi_star")


def gi_star_window(values: np.ndarray, radius_px: int, stats, max_abs: float) -> np.ndarray:
    """Gi* z (float64) of the pixels of ``values`` (float, NaN = nodata) more than ``radius_px`` from its edges.

    Gi* = (Σx − X̄W) / (S √((nW − W²)/(n − 1))) with W, Σx the count and sum of valid pixels in the window,
    X̄, S the mean and population std over the n valid pixels of the raster: ``stats`` = (n, mean, std), e.g.
    ``level_stats``. z is NaN where the pixel is NaN, S = 0 or W = n. ``max_abs``: the largest |value| of the
    raster, which sets the fixed point of Σx (the same in every window).
    """
    r = radius_px
    values = np.asarray(values, np.float64)
    taps = int(disc(r).sum())
    valid = ~np.isnan(values)
    # Window sums in integers (values in fixed point, exact to about 1e-12 of the largest value): any
    # order of summation gives the same sums, so row prefix sums are as chunk-independent as the
    # direct sum over the footprint, and cost O(radius) per pixel instead of O(radius^2).
    scale = 2.0 ** np.floor(np.log2(2.0**62 / (np.maximum(max_abs, 1e-6) * taps)))
    fixed = np.where(valid, np.rint(values * scale), 0.0).astype(np.int64)
    inner = (slice(r, values.shape[0] - r), slice(r, values.shape[1] - r))
    sx = disc_sum(fixed, r)[inner].astype(np.float64) / scale
    w = disc_sum(valid.astype(np.int32), r)[inner].astype(np.float64)
    n, mean, std = np.asarray(stats, np.float64)
    den = std * np.sqrt(np.maximum(n * w - w * w, 0.0) / (n - 1))
    ok = valid[inner] & (den > 0)
    return np.where(ok, (sx - mean * w) / np.where(ok, den, 1.0), np.nan)


def disc_sum(block: np.ndarray, radius_px: int) -> np.ndarray:
    """Sum over ``disc(radius_px)`` of an integer block padded by ``radius_px`` on every side (the pad
    is returned as 0): one prefix sum per row, then two look-ups per footprint row. int64 is summed
    modulo 2**64, exact whenever the window sums fit."""
    r, (h, w) = radius_px, block.shape
    a = block.view(np.uint64) if block.dtype == np.int64 else block
    prefix = np.zeros((h, w + 1), a.dtype)
    np.cumsum(a, axis=1, out=prefix[:, 1:])
    total = np.zeros((h - 2 * r, w - 2 * r), a.dtype)
    run = np.empty_like(total)
    for dy, row in enumerate(disc(r)):
        half = int(np.flatnonzero(row).max()) - r  # footprint row dy - r spans columns -half..half
        np.subtract(
            prefix[dy : dy + h - 2 * r, r + half + 1 : w - r + half + 1],
            prefix[dy : dy + h - 2 * r, r - half : w - r - half],
            out=run,
        )
        total += run
    out = np.zeros(block.shape, block.dtype)
    out[r : h - r, r : w - r] = total.view(block.dtype)
    return out


def land_kind(classes: xr.DataArray, allowed: Iterable[int] = ALLOWED_CLASSES) -> xr.DataArray:
    """uint8: 0 nodata, 1 valid but not allowed (cropland, construction), 2 allowed."""
    allowed = np.asarray(list(allowed))

    def kind(c: np.ndarray) -> np.ndarray:
        return np.where(np.isin(c, allowed), 2, c > 0).astype(np.uint8)

    data = classes.data.map_blocks(kind, dtype=np.uint8)
    return classes.copy(data=data).rename("land")


def hotspots(
    z: xr.DataArray,
    classes: xr.DataArray,
    threshold: float = 1.96,
    allowed: Iterable[int] = ALLOWED_CLASSES,
    locked_out: xr.DataArray | None = None,
) -> xr.DataArray:
    """Boolean: z > ``threshold`` (NaN is not), class allowed, and not where ``locked_out`` is True."""
    hot = (z > threshold) & (land_kind(classes, allowed) == 2)
    if locked_out is not None:
        hot = hot & ~locked_out.astype(bool)
    return hot.rename("hotspot")


def join_patches(mask: xr.DataArray) -> Delayed:
    """Delayed (per block: local label -> global label, number of patches): one pass keeping only the
    blocks' edge labels (``pipeline.patches``, as the urban split). Not dask_image.ndmeasure.label: its
    graph grows with the square of the number of blocks (225 blocks: 686k tasks and 100 s to build)."""
    blocks = mask.data.astype(bool).to_delayed(optimize_graph=False)
    return dask.delayed(_join_labels)([[dask.delayed(_block_edges)(b) for b in row] for row in blocks])


def label_patches(mask: xr.DataArray, joined=None) -> tuple[xr.DataArray, da.Array]:
    """8-connected patches of a boolean raster across chunk edges: (int32 labels 1..n, 0 = none; 0-d n).

    ``joined``: ``join_patches(mask)``, computed first for bounded memory (each block is then read
    twice); by default it is built in the same graph, which keeps every mask block until all are read.
    Label numbers depend on the chunking: write them once and use them only as keys.
    """
    if joined is None:
        joined = join_patches(mask)
    elif not isinstance(joined, Delayed):
        joined = dask.delayed(joined, traverse=False)  # one key: sent once per worker, not with every task

    def relabel(block: np.ndarray, joined: tuple, block_info=None) -> np.ndarray:
        i, j = block_info[0]["chunk-location"]
        return joined[0][i][j][label_block(block)[0]]  # the local labels of _block_edges

    data = mask.data.astype(bool).map_blocks(relabel, joined=joined, dtype=np.int32, meta=np.array((), np.int32))
    n = da.from_delayed(dask.delayed(operator.itemgetter(1))(joined), (), np.int64)
    return mask.copy(data=data).rename("patch_label"), n


def _block_edges(block: np.ndarray) -> tuple:
    local, n = label_block(block)
    return n, edge_labels(local)


def _join_labels(summaries: list[list[tuple]]) -> tuple[list[list[np.ndarray]], int]:
    """Per block, local label -> global label (0 stays 0), and the number of patches."""
    counts = [[n for n, _ in row] for row in summaries]
    first, component = join_blocks(counts, [[e for _, e in row] for row in summaries])
    n = int(component.max(initial=-1)) + 1
    if n >= np.iinfo(np.int32).max:
        raise ConfigError(
            f"{n:,} hotspot patches: more than a raster of patch labels can hold; raise "
            "redline.z_threshold or redline.radius_m"
        )
    maps = [
        [
            np.concatenate([[0], component[first[i, j] : first[i, j] + c] + 1]).astype(np.int32)
            for j, c in enumerate(row)
        ]
        for i, row in enumerate(counts)
    ]
    return maps, n


def redline_counts(
    labels: xr.DataArray,
    n_labels: int,
    classes: xr.DataArray,
    areas: PixelAreas,
    density: tuple[xr.DataArray, int],
    zones: dict[str, tuple[xr.DataArray, int]],
    rate: tuple[xr.DataArray, int] | None = None,
    locked_in: xr.DataArray | None = None,
    allowed: Iterable[int] = ALLOWED_CLASSES,
) -> Delayed:
    """Delayed ``group_counts`` frame: pixels per label, density, [rate,] zones, locked (0/1), land
    (``land_kind``) and pixel-area cell. ``density``/``rate``: (row-index raster,
    size); ``zones``: name -> (zone numbers 0..n, n + 1); ``n_labels``: the largest label."""
    keys = {"label": (labels, int(n_labels) + 1), "density": density}
    if rate is not None:
        keys["rate"] = rate
    keys |= zones
    columns = [*keys, "locked", "land"]
    # Locked and land counted as one key (3 x locked + land) and split afterwards: a block's count then
    # holds one byte a pixel for them, not two arrays (and no array of zeros where nothing is locked in).
    land = land_kind(classes, allowed)
    if locked_in is not None:
        land = land + 3 * locked_in.astype(np.uint8)
    keys["land_locked"] = (land.astype(np.uint8), 6)
    split = {"locked": ("land_locked", np.repeat([0, 1], 3)), "land": ("land_locked", np.tile([0, 1, 2], 2))}
    return with_looked_up(group_counts(keys, areas), split, columns)


def patch_sizes(labels: xr.DataArray, n_labels: int, areas: PixelAreas) -> Delayed:
    """Delayed ``group_counts`` frame: pixels per label and pixel-area cell (rows grow with the patches)."""
    return group_counts({"label": (labels, int(n_labels) + 1)}, areas)


def large_patches(sizes: pd.DataFrame, areas: PixelAreas, min_area_ha: float) -> np.ndarray:
    """Sorted labels (int64) of ``patch_sizes`` that may reach ``min_area_ha`` ha: every label ``patch_table``
    keeps, and on a grid of varying pixel area those within float rounding below it too (``patch_table``
    decides). Counting the other patches' densities and zones only as background keeps the counts' rows in
    proportion to the candidates, not to every hotspot patch (most are a few pixels)."""
    f = sizes[sizes["label"] > 0]
    if areas.constant:
        large = f.groupby("label")["pixels"].sum() >= math.ceil(min_area_ha / (areas.flat_m2[0] / 1e4) - 1e-9)
    else:
        large = _area_by(f, ["label"], areas) >= min_area_ha * (1 - 1e-9)
    return large.index[large.to_numpy()].to_numpy(np.int64)


def only(labels: xr.DataArray, keep: np.ndarray) -> xr.DataArray:
    """``labels`` with every label not in ``keep`` set to 0."""
    keep = np.asarray(keep, np.int64)

    def block(b: np.ndarray) -> np.ndarray:
        return np.where(np.isin(b, keep), b, 0).astype(b.dtype, copy=False)  # int32 already: no second copy

    return labels.copy(data=labels.data.map_blocks(block, dtype=labels.dtype))


def patch_anchors(labels: xr.DataArray) -> Delayed:
    """Delayed Series label -> smallest row-major pixel index (row * width + col) of the patch."""
    width = labels.shape[1]
    rows = np.cumsum((0, *labels.data.chunks[0][:-1]))
    cols = np.cumsum((0, *labels.data.chunks[1][:-1]))
    blocks = labels.data.to_delayed(optimize_graph=False)
    parts = [
        dask.delayed(_block_anchors)(blocks[i, j], int(rows[i]), int(cols[j]), width)
        for i in range(blocks.shape[0])
        for j in range(blocks.shape[1])
    ]
    return dask.delayed(_min_anchor)(parts)


def _block_anchors(block: np.ndarray, r0: int, c0: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    r, c = np.nonzero(block)  # row-major: the first hit of a label is its smallest global index here
    ids, first = np.unique(block[r, c], return_index=True)
    return ids, (r0 + r[first]).astype(np.int64) * width + c0 + c[first]


def _min_anchor(parts: list) -> pd.Series:
    ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    at = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    return pd.Series(at, index=ids).groupby(level=0).min()


def _with_carbon(
    counts: pd.DataFrame, areas: PixelAreas, density_tC_ha: np.ndarray, rate_tC_ha_yr=None
) -> pd.DataFrame:
    f = counts.copy()
    f["area_ha"] = count_area_ha(f, areas)
    # Index 0 (no table row) carries no stock; hot patches are built from pixels that have one.
    f["value"] = np.nan_to_num(np.asarray(density_tC_ha, np.float64)[f["density"].to_numpy()])
    f["stock_tC"] = f["area_ha"] * f["value"]
    if rate_tC_ha_yr is not None and "rate" in f:
        r = np.asarray(rate_tC_ha_yr, np.float64)[f["rate"].to_numpy()]
        f["sink_tC_yr"] = f["area_ha"] * np.where(r < 0, -r, 0.0)  # uptake as a positive t C/yr; NaN: none
    else:
        f["sink_tC_yr"] = np.nan
    f["locked_in_ha"] = f["area_ha"].where(f["locked"] == 1, 0.0)
    return f


def patch_table(
    counts: pd.DataFrame,
    anchors: pd.Series,
    grid: Grid,
    areas: PixelAreas,
    min_area_ha: float,
    density_tC_ha: np.ndarray,
    rate_tC_ha_yr: np.ndarray | None = None,
    zone_names: Iterable[str] = (),
) -> pd.DataFrame:
    """Candidates of at least ``min_area_ha`` ha, best first: patch_id (= rank), rank, label (internal,
    chunk-dependent), pixels, area_ha, stock_tC, density_tC_ha (mean), sink_tC_yr, locked_in_ha,
    first_row, first_col and per zone layer ``<name>`` (zone number with the largest area, smallest on a
    tie, 0 if none) and ``<name>_share`` (of the patch area). Tables indexed by row-index value."""
    f = _with_carbon(counts[counts["label"] > 0], areas, density_tC_ha, rate_tC_ha_yr)
    columns = ["pixels", "area_ha", "stock_tC", "sink_tC_yr", "locked_in_ha"]
    t = f.groupby("label")[columns].sum(min_count=1)
    t[["stock_tC", "locked_in_ha"]] = t[["stock_tC", "locked_in_ha"]].fillna(0.0)
    if areas.constant:  # an integer pixel threshold: no float edge at the limit
        t = t[t["pixels"] >= math.ceil(min_area_ha / (areas.flat_m2[0] / 1e4) - 1e-9)]
    else:
        t = t[t["area_ha"] >= min_area_ha]
    t["density_tC_ha"] = t["stock_tC"] / t["area_ha"]
    t["anchor"] = anchors.reindex(t.index).to_numpy(np.int64)
    for name in zone_names:
        z = f[f[name] > 0].groupby(["label", name])["area_ha"].sum().reset_index()
        z = z.sort_values(["label", "area_ha", name], ascending=[True, False, True]).drop_duplicates("label")
        z = z.set_index("label").reindex(t.index)
        t[name] = z[name].fillna(0).astype(np.int64)
        t[f"{name}_share"] = (z["area_ha"] / t["area_ha"]).fillna(0.0)
    t = t.reset_index().sort_values(["stock_tC", "anchor"], ascending=[False, True], kind="stable")
    t.insert(0, "rank", np.arange(1, len(t) + 1))
    t.insert(0, "patch_id", t["rank"])
    t["first_row"], t["first_col"] = t["anchor"] // grid.width, t["anchor"] % grid.width
    return t.drop(columns="anchor").reset_index(drop=True)


def _covered(f: pd.DataFrame, keep_labels) -> tuple[pd.Series, pd.Series]:
    kept = f["label"].isin(np.asarray(list(keep_labels), np.int64))
    return kept, kept | (f["locked"] == 1)


def _area_by(f: pd.DataFrame, keys: list[str], areas: PixelAreas) -> pd.Series:
    """Hectares per combination of ``keys``. Integer pixels are summed per keys and cell first, so the float
    sum runs in (keys, cell) order, not in the order of the patch labels (which depend on the chunking)."""
    px = f.groupby([*keys, "cell"], sort=True)["pixels"].sum().reset_index()
    area = pd.Series(count_area_ha(px, areas), index=px.index, name="area_ha")
    return area.groupby([px[k] for k in keys], sort=True).sum()


def coverage(
    counts: pd.DataFrame,
    areas: PixelAreas,
    zone: str,
    keep_labels: Iterable[int],
    key_zones: Iterable[int] = (),
    key_target: float = KEY_ZONE_TARGET,
    default_target: float | None = None,
) -> pd.DataFrame:
    """Per zone number of layer ``zone`` (valid pixels only): zone_area_ha, candidate_ha, locked_in_ha,
    covered_ha (candidates ∪ locked-in, counted once), share, key_zone, target_share (``key_target`` for
    ``key_zones``, else ``default_target``; NaN: none), shortfall_ha (>= 0) and met (NA without target)."""
    f = counts[(counts["land"] > 0) & (counts[zone] > 0)]
    kept, covered = _covered(f, keep_labels)
    out = pd.DataFrame({"zone_area_ha": _area_by(f, [zone], areas)})
    for column, where in (("candidate_ha", kept), ("locked_in_ha", f["locked"] == 1), ("covered_ha", covered)):
        out[column] = _area_by(f[where], [zone], areas).reindex(out.index, fill_value=0.0)
    out = out.rename_axis("zone").reset_index()
    out["share"] = out["covered_ha"] / out["zone_area_ha"]
    out["key_zone"] = out["zone"].isin(list(key_zones))
    default = np.nan if default_target is None else default_target
    out["target_share"] = np.where(out["key_zone"], key_target, default)
    need = out["target_share"] * out["zone_area_ha"]
    out["shortfall_ha"] = (need - out["covered_ha"]).clip(lower=0).where(need - out["covered_ha"] > 1e-9, 0.0)
    out["met"] = pd.array(np.where(out["target_share"].isna(), None, out["shortfall_ha"] == 0), "boolean")
    return out


def gap_fill(
    counts: pd.DataFrame,
    cover: pd.DataFrame,
    areas: PixelAreas,
    zone: str,
    keep_labels: Iterable[int],
    density_tC_ha: np.ndarray,
) -> tuple[pd.DataFrame, dict[int, float]]:
    """Where a zone falls short, add its uncovered allowed land by stock density, highest first.

    Densities are discrete, so land is taken a whole density level (t C/ha) at a time: levels are
    added while the area already added is below the shortfall, so the level at the threshold is taken
    whole (ties included) and the fill may overshoot; ``added_ha`` reports what was added. Returns per
    short zone: zone, shortfall_ha, threshold_density_tC_ha, added_ha, added_stock_tC, covered_after_ha,
    share_after, met_after, remaining_shortfall_ha (> 0: not enough land); and {zone: threshold}.
    """
    f = counts[(counts["land"] == 2) & (counts["locked"] == 0) & (counts["density"] > 0) & (counts[zone] > 0)]
    f = _with_carbon(f[~_covered(f, keep_labels)[0]], areas, density_tC_ha)
    levels = _area_by(f, [zone, "value"], areas).reset_index()
    levels = levels.sort_values([zone, "value"], ascending=[True, False], kind="stable")
    short = cover[cover["shortfall_ha"] > 0].set_index("zone")
    rows, thresholds = [], {}
    for z, need in short["shortfall_ha"].items():
        lv = levels[levels[zone] == z]
        before = lv["area_ha"].cumsum() - lv["area_ha"]
        take = lv[(before < need - 1e-9).to_numpy()]
        added, stock = float(take["area_ha"].sum()), float((take["area_ha"] * take["value"]).sum())
        threshold = float(take["value"].min()) if len(take) else np.nan
        if len(take):
            thresholds[int(z)] = threshold
        after = short.at[z, "covered_ha"] + added
        rows.append(
            {
                "zone": int(z),
                "shortfall_ha": need,
                "threshold_density_tC_ha": threshold,
                "added_ha": added,
                "added_stock_tC": stock,
                "covered_after_ha": after,
                "share_after": after / short.at[z, "zone_area_ha"],
                "met_after": added >= need - 1e-9,
                "remaining_shortfall_ha": max(need - added, 0.0),
            }
        )
    columns = [
        "zone",
        "shortfall_ha",
        "threshold_density_tC_ha",
        "added_ha",
        "added_stock_tC",
        "covered_after_ha",
        "share_after",
        "met_after",
        "remaining_shortfall_ha",
    ]
    return pd.DataFrame(rows, columns=columns), thresholds


def gap_fill_mask(
    labels: xr.DataArray,
    keep_labels: Iterable[int],
    classes: xr.DataArray,
    density_index: xr.DataArray,
    density_tC_ha: np.ndarray,
    zone_raster: xr.DataArray,
    thresholds: dict[int, float],
    locked_in: xr.DataArray | None = None,
    allowed: Iterable[int] = ALLOWED_CLASSES,
) -> xr.DataArray:
    """Lazy boolean raster of gap-fill pixels: allowed, not locked in, not in a kept candidate, in a zone
    of ``thresholds`` and density >= that zone's threshold (the pixels ``gap_fill`` counted)."""
    keep = np.asarray(sorted(keep_labels), np.int64)
    top = max(thresholds, default=0)
    limit = np.full(top + 2, np.inf)  # last slot serves every zone beyond the thresholds
    for z, v in thresholds.items():
        limit[z] = v
    table = np.asarray(density_tC_ha, np.float64).copy()
    table[0] = -np.inf  # no density row: never filled
    locked = (xr.zeros_like(labels, bool) if locked_in is None else locked_in.astype(bool)).data

    def block(lab, land, idx, zn, lk):
        # An intp bound, not a Python int: zone numbers come in the smallest type (uint8 up to 255 zones).
        thr = limit[np.minimum(zn, np.intp(len(limit) - 1))]
        return (land == 2) & ~lk & ~np.isin(lab, keep) & (table[idx] >= thr)

    data = da.map_blocks(
        block, labels.data, land_kind(classes, allowed).data, density_index.data, zone_raster.data, locked, dtype=bool
    )
    return labels.copy(data=data).rename("gap_fill")


class PartStore(Protocol):
    """Where tasks write their parts of a result and read them back (``pipeline.io.parts.PartFolder``)."""

    def put(self, name: str, value: Any) -> str: ...

    def get(self, name: str) -> Any: ...


#: (label, block) pairs a join task gathers at most, unless one label alone is in more blocks: join tasks then
#: hold a bounded share of the pieces each, and their number grows with the raster, not their size.
JOIN_BLOCKS = 16


@dataclass(frozen=True)
class Polygons:
    """``vectorise``'s polygons, kept on disk: parts of ``folder``, each a list of (label, geometry) in the grid's
    CRS. Read them a part at a time (``batches``) to keep a country's polygons out of memory."""

    labels: tuple[int, ...]
    crs: Any
    folder: PartStore
    parts: tuple[str, ...]

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(labels int64, geometries) of each part in turn, then of the kept labels without a pixel (empty)."""
        seen: set[int] = set()
        for name in self.parts:
            items = self.folder.get(name)
            seen.update(label for label, _ in items)
            yield _batch([label for label, _ in items], [g for _, g in items])
        missing = [label for label in self.labels if label not in seen]
        if missing:
            yield _batch(missing, [_finish([], (1.0, 0.0, 0.0, 0.0, 1.0, 0.0))] * len(missing))

    def frame(self) -> gpd.GeoDataFrame:
        """Every polygon in ``labels`` order (columns label, geometry), all in memory."""
        geoms = {int(v): g for labels, part in self.batches() for v, g in zip(labels, part)}
        return gpd.GeoDataFrame(
            {"label": np.asarray(self.labels, np.int64)}, geometry=[geoms[v] for v in self.labels], crs=self.crs
        )


def _batch(labels: list[int], geoms: list) -> tuple[np.ndarray, np.ndarray]:
    out = np.empty(len(geoms), object)  # not np.array(geoms): it could unpack a geometry
    out[:] = geoms
    return np.asarray(labels, np.int64), out


def vectorise(
    labels: xr.DataArray,
    keep_ids: Iterable[int],
    grid: Grid,
    folder: PartStore,
    compute=dask.compute,
) -> Polygons:
    """One (multi)polygon per kept label, grid CRS, written to ``folder`` in parts (``Polygons``).

    Pixels are polygonised 4-connected in whole-pixel coordinates (exact integers), a label's polygons made one
    (multi)polygon, collinear vertices dropped and the geometry normalised (the same coordinates in any
    chunking), then moved to the grid's CRS, all on the workers, in three computes whose results are small:
    (1) the kept labels of each block (a read of the labels); (2) per block, a label found in that block only
    (most patches) finished and written there, and the pieces of the others written (``_noded``); (3) the
    labels found in several blocks joined from their pieces, in tasks of a share of them each (at most
    ``JOIN_BLOCKS`` (label, block) pairs a task). Memory is then set by the chunk size and
    the largest polygon, not by the raster. Any other integer raster works too (e.g. zones x gap fill, a zone
    found in many blocks). ``compute``: the runner's (``dask.compute``'s signature), which watches a cluster
    for lost workers and scheduler.
    """
    ids = [int(i) for i in keep_ids]
    keep = np.asarray(sorted(set(ids)), np.int64)
    transform = tuple(grid.transform)[:6]  # a plain tuple: Dask would rebuild the Affine namedtuple
    # Object arrays of one value per block: a graph layer whatever the number of blocks (a Delayed per block
    # and step made a graph that took longer to build than the polygons).
    box = {"dtype": object, "meta": np.empty((), object)}
    one = tuple((1,) * len(c) for c in labels.data.chunks)
    (found,) = compute(labels.data.map_blocks(_block_labels, chunks=one, keep=keep, **box))
    found = list(found.ravel())
    where = np.repeat(np.arange(len(found)), [len(f) for f in found])  # block (row-major) of each pair
    held = np.concatenate([*found, np.zeros(0, np.int64)])
    order = np.lexsort((where, held))
    held, where = held[order], where[order]
    shared, first, count = np.unique(held, return_index=True, return_counts=True)
    several = count > 1
    first, count, shared = first[several], count[several], shared[several]
    groups = _join_groups(count, JOIN_BLOCKS)
    group_of = np.repeat(np.arange(len(groups)), [b - a for a, b in groups])
    # One key: sent once per worker, not with every task.
    joint = dask.delayed((shared, group_of), traverse=False)
    blocks = labels.data.map_blocks(
        _block_polygons, chunks=one, keep=keep, shared=joint, folder=folder, transform=transform, **box
    )
    (written,) = compute(blocks)
    parts = [name for name in written.ravel().tolist() if name is not None]
    n_cols = len(labels.data.chunks[1])
    tasks = []
    for k, (a, b) in enumerate(groups):
        held_by = np.unique(np.concatenate([where[f : f + c] for f, c in zip(first[a:b], count[a:b])]))
        sources = [f"pieces_{k}_{i // n_cols}_{i % n_cols}" for i in held_by.tolist()]
        tasks.append(dask.delayed(_join_group)(shared[a:b], sources, folder, transform, f"joined_{k}"))
    parts += list(compute(*tasks))
    return Polygons(tuple(ids), grid.crs, folder, tuple(parts))


def _join_groups(count: np.ndarray, most: int) -> list[tuple[int, int]]:
    """Runs [a, b) of consecutive labels whose block ``count`` sum to at most ``most`` (or one label alone)."""
    groups, a, total = [], 0, 0
    for i, c in enumerate(count.tolist()):
        if i > a and total + c > most:
            groups.append((a, i))
            a, total = i, 0
        total += c
    if len(count):
        groups.append((a, len(count)))
    return groups


def _boxed(value, ndim: int = 2) -> np.ndarray:
    box = np.empty((1,) * ndim, object)  # not np.array(value): it would unpack tuples and arrays
    box[(0,) * ndim] = value
    return box


def _block_labels(block: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Boxed: the kept labels found in the block, sorted (int64)."""
    return _boxed(np.unique(block[np.isin(block, keep)]).astype(np.int64))


def _block_polygons(
    block: np.ndarray,
    keep: np.ndarray,
    shared: tuple[np.ndarray, np.ndarray],
    folder: PartStore,
    transform: tuple,
    block_info=None,
) -> np.ndarray:
    """Polygonise a block's kept labels: the labels of this block only finished and written as part
    ``block_<i>_<j>``, the pieces (pixel coordinates) of the labels in ``shared`` (sorted labels, the join group
    of each) as ``pieces_<group>_<i>_<j>``, a part per join group. Boxed: the name of the finished part, or None."""
    (r0, r1), (c0, c1) = block_info[0]["array-location"]
    i, j = block_info[0]["chunk-location"]
    mask = np.isin(block, keep)
    pieces: dict[int, list] = {}
    if mask.any():
        # 4-connected rings: diagonal neighbours become two polygons touching at a corner (valid once
        # dissolved) instead of one ring that touches itself (invalid).
        found = shapes(block.astype(np.int32), mask=mask, connectivity=4, transform=Affine.translation(c0, r0))
        for g, v in found:
            pieces.setdefault(int(v), []).append(shapely.geometry.shape(g))
    labels, group_of = shared
    done, by_group = [], dict[int, dict[int, list]]()
    for v, p in pieces.items():
        g = _parts(p)
        at = int(np.searchsorted(labels, v))
        if at < len(labels) and labels[at] == v:
            by_group.setdefault(int(group_of[at]), {})[v] = [_noded(g, r0, r1, c0, c1)]
        else:
            done.append((v, _finish([g], transform)))
    for k, group in by_group.items():
        folder.put(f"pieces_{k}_{i}_{j}", group)
    return _boxed(folder.put(f"block_{i}_{j}", done) if done else None)


def _join_group(group: np.ndarray, sources: list[str], folder: PartStore, transform: tuple, name: str) -> str:
    """Finish every label of ``group`` from its pieces in the parts ``sources`` (in row-major block order, the
    order a single task would see them in), written as part ``name``."""
    pieces: dict[int, list] = {v: [] for v in group.tolist()}
    for source in sources:
        for v, p in folder.get(source).items():
            pieces[v] += p
    return folder.put(name, [(v, _finish(p, transform)) for v, p in pieces.items()])


def _parts(polygons: list):
    """One polygonisation's polygons of a label as one geometry. They are its 4-connected parts, which touch
    at most at corners: their union is the MultiPolygon of them (a GEOS union gave the same geometry in
    several times the time)."""
    return polygons[0] if len(polygons) == 1 else shapely.multipolygons(polygons)


def _noded(g, r0: int, r1: int, c0: int, c1: int):
    """A block's piece (pixel coordinates) with a vertex at every pixel corner of its sides on the block's
    edges (rows ``r0``, ``r1``, columns ``c0``, ``c1``): the pieces of a label then meet vertex for vertex, a
    polygon coverage, which GEOS joins by dropping the edges they share (``coverage_union_all``), three times
    faster than a general union, in less memory, with the same result (``_corners`` drops these vertices)."""
    kind, xy, offsets = shapely.to_ragged_array([g], include_z=False)
    ring_start = offsets[0].astype(np.int64)
    a, b = xy[:-1], xy[1:]
    edge = np.ones(len(a), bool)
    edge[ring_start[1:-1] - 1] = False  # a ring's closing vertex and the next ring's first: no edge
    on = edge & (
        ((a[:, 0] == b[:, 0]) & np.isin(a[:, 0], (c0, c1))) | ((a[:, 1] == b[:, 1]) & np.isin(a[:, 1], (r0, r1)))
    )
    if not on.any():
        return g
    step = np.ones(len(xy), np.int64)  # points each vertex becomes: itself, and the corners up to the next
    step[:-1][on] = np.abs(b[on] - a[on]).sum(axis=1).astype(np.int64)
    at = np.repeat(np.arange(len(xy)), step)
    t = np.arange(len(at)) - np.repeat(np.cumsum(step) - step, step)
    delta = np.zeros_like(xy)
    delta[:-1][on] = (b[on] - a[on]) / step[:-1][on, None]  # a unit step along the side
    out = xy[at] + delta[at] * t[:, None]
    starts = np.r_[0, np.cumsum(step)][ring_start]
    return shapely.from_ragged_array(kind, out, (starts, *offsets[1:]))[0]


def _finish(pieces: list, transform: tuple):
    """The union of a label's pieces (pixel coordinates; one per block, ``_noded`` when more than one),
    simplified, normalised, in CRS coordinates."""
    a, b, c, d, e, f = transform
    g = pieces[0] if len(pieces) == 1 else shapely.coverage_union_all(pieces)  # most patches: in one block
    g = shapely.normalize(_corners(g))
    g = shapely.transform(
        g, lambda xy: np.column_stack([c + a * xy[:, 0] + b * xy[:, 1], f + d * xy[:, 0] + e * xy[:, 1]])
    )
    # GEOS unions are valid, dropping vertices that do not turn changes no point set, and scaling each axis on
    # its own keeps a valid polygon of integer vertices valid: only a rotated grid needs the (costly) check.
    return g if (b == 0 and d == 0) or shapely.is_valid(g) else shapely.make_valid(g)


def _corners(g):
    """A (multi)polygon in pixel coordinates (every side horizontal or vertical) without the vertices where it
    does not turn, such as where block edges cut a side. GEOS's ``simplify(g, 0)`` gives the same geometry,
    but its topology-preserving index took about 600 B a vertex: 326 MiB for the 572 583 vertices of one
    patch at N = 24000."""
    if g.is_empty:
        return g
    kind, coords, offsets = shapely.to_ragged_array([g], include_z=False)
    ring_start = offsets[0].astype(np.int64)
    size = np.diff(ring_start) - 1  # a ring's vertices, the closing repeat of its first left out
    ring = np.repeat(np.arange(len(size)), size + 1)
    at = np.arange(len(coords)) - ring_start[ring]  # position in the ring
    opened = at < size[ring]
    ring, at, xy = ring[opened], at[opened], coords[opened]
    base = ring_start[ring] - ring  # where the ring's open vertices start in xy
    before = xy[base + (at - 1) % size[ring]]
    after = xy[base + (at + 1) % size[ring]]
    turns = ~(
        ((before[:, 0] == xy[:, 0]) & (xy[:, 0] == after[:, 0]))
        | ((before[:, 1] == xy[:, 1]) & (xy[:, 1] == after[:, 1]))
    )
    kept = np.bincount(ring[turns], minlength=len(size))
    first = np.flatnonzero(np.r_[True, ring[turns][1:] != ring[turns][:-1]])  # each ring's first kept vertex
    out = np.insert(xy[turns], np.r_[first[1:], turns.sum()], xy[turns][first], axis=0)  # closed again
    new_offsets = (np.r_[0, np.cumsum(kept + 1)], *offsets[1:])
    return shapely.from_ragged_array(kind, out, new_offsets)[0]
