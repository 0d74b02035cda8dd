"""Stage 7 wiring: from the run's own rasters to redline/ (candidates, coverage, gap fill).

Reads only what the run wrote (land cover, stock and flux of one epoch), in three bounded passes:
(1) the distinct stock and flux values with their pixel counts (exact Gi* mean and deviation, and a
level index for every pixel), (2) Gi* z, written as ``rasters/gi_star_<year>``, and the hotspot mask,
(3) patch labels written once, then counted by patch, zone, protection and land in one reduction.
The compute is ``pipeline.redline``; this module adds files, zone ids and names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr

from pipeline import spec
from pipeline.config import RedlineConfig
from pipeline.errors import InputError
from pipeline.io import cog
from pipeline.io.cog import raster_parts_task
from pipeline.io.parts import PartFolder
from pipeline.io.staging import Staging
from pipeline.io.tables import write_polygon_layer, write_table
from pipeline.io.vectors import read_polygons
from pipeline.model.classes import CROPLAND
from pipeline.model.grid import Grid, PixelAreas
from pipeline.model.inputs import ZoneLayer
from pipeline.model.results import RedlineResult
from pipeline.runner import execution
from pipeline.stages import redline
from pipeline.stages.zonal import rasterize_blocks, zone_index

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RedlineInputs:
    """The red-line polygons and key zones, read and checked before any pixel is computed."""

    lock_out: gpd.GeoDataFrame | None
    protected: gpd.GeoDataFrame | None
    key_zones: list[int]


def read_inputs(red: RedlineConfig, layers: list[ZoneLayer], grid: Grid) -> RedlineInputs:
    layer = next((z for z in layers if z.name == red.zone_layer), None)
    return RedlineInputs(
        _polygons(red.lock_out, grid, "lock_out"),
        _polygons(red.protected_areas, grid, "protected_areas"),
        _key_zones(layer, red.key_field) if layer is not None else [],
    )


def write_redlines(
    red: RedlineConfig,
    inputs: RedlineInputs,
    year: int,
    layers: list[ZoneLayer],
    grid: Grid,
    areas: PixelAreas,
    chunks: int,
    staging: Staging,
) -> RedlineResult:
    """Candidates, coverage and gap fill for ``year`` into ``staging``/redline, and the Gi* raster."""

    def staged(key: str) -> Path:
        return staging.path(spec.path(key, year=year)).with_suffix(".vrt")

    def own(key: str, dtype: str, nodata: float) -> xr.DataArray:
        return cog.open_own(staged(key), grid, chunks, dtype, nodata)

    classes = own("landcover", "uint8", 0)
    zone_rasters = {z.name: zone_index(z, grid, classes) for z in layers}
    stock, flux = own("stock", "float32", np.nan), own("flux", "float32", np.nan)
    density_levels, rate_levels = execution.compute(_levels(stock), _levels(flux))
    density = _indexed(stock, density_levels)
    rate = _indexed(flux, rate_levels)
    if red.value == "stock":
        source, counts, table = "stock", density_levels, np.r_[np.nan, density_levels.index.to_numpy()]
    else:  # sink density: uptake as a positive t C/ha/yr, 0 for sources
        source, counts, table = "flux", rate_levels, np.r_[np.nan, np.maximum(-rate_levels.index.to_numpy(), 0.0)]
    stats = redline.level_stats(np.r_[0, counts.to_numpy()], table)
    radius = max(1, round(red.radius_m / np.sqrt(areas.mean_m2())))
    # Each Gi* block reads its own halo from the staged raster: no task is shared between blocks.
    window = partial(_level_window, staged(source), counts.index.to_numpy(), table)
    z = redline.gi_star(window, classes, radius, stats, float(np.nanmax(np.abs(table)))).astype(np.float32)
    locked_out, locked_in = _burn(inputs.lock_out, grid, classes), _burn(inputs.protected, grid, classes)
    if locked_out is not None:
        # Locked-out land stays in its zone's area but, like cropland, can be neither candidate nor gap fill.
        classes = classes.where(~locked_out, CROPLAND).astype(np.uint8)
    hot = redline.hotspots(z, classes, red.z_threshold).astype(np.uint8)
    hot_path = staging.path("work/redline_hot.vrt")
    gi_star = spec.path("gi_star", year=year)
    execution.compute(
        [
            raster_parts_task(z, staging.path(gi_star).with_suffix(".vrt"), grid, np.nan),
            raster_parts_task(hot, hot_path, grid, 0),
        ]
    )
    hot = cog.open_own(hot_path, grid, chunks, "uint8", 0)
    (joined,) = execution.compute(redline.join_patches(hot))
    labels, n = redline.label_patches(hot, joined)
    label_path = staging.path("work/redline_labels.vrt")
    (_, n) = execution.compute(raster_parts_task(labels, label_path, grid, 0), n)
    labels = cog.open_own(label_path, grid, chunks, "int32", 0)
    zones = {z.name: (zone_rasters[z.name], len(z.ids) + 1) for z in layers}
    sizes, anchors = execution.compute(redline.patch_sizes(labels, int(n), areas), redline.patch_anchors(labels))
    # Densities, zones and protection are counted for the patches that may be candidates; the others are
    # background, as they are to the coverage and the gap fill.
    large = redline.only(labels, redline.large_patches(sizes, areas, red.min_area_ha))
    (pixels,) = execution.compute(
        redline.redline_counts(
            large, int(n), classes, areas, (density[0], density[1]), zones, (rate[0], rate[1]), locked_in
        )
    )
    density_table = np.r_[np.nan, density_levels.index.to_numpy()]
    rate_table = np.r_[np.nan, rate_levels.index.to_numpy()]
    candidates = redline.patch_table(
        pixels, anchors, grid, areas, red.min_area_ha, density_table, rate_table, [z.name for z in layers]
    )
    keep = candidates["label"].tolist()
    table = _named(candidates, layers).drop(columns="label")
    # Written a part at a time, from the workers' parts: a country's candidates do not fit in memory at once.
    parts = PartFolder(staging.path("work/redline_candidates"))
    polygons = redline.vectorise(labels, keep, grid, parts, execution.compute)
    candidates_path = staging.path(spec.path("candidates_gpkg"))
    write_polygon_layer(polygons.batches(), table.set_axis(keep), grid.crs, candidates_path, "candidates")
    write_table(table, staging.path(spec.path("candidates")))
    what = "stock density" if red.value == "stock" else "sink density"
    out = RedlineResult(
        year,
        f"Red-line candidates {year}\nGi* hotspots of {what} (z > {red.z_threshold:g}, "
        f"radius {red.radius_m:g} m), patches ≥ {red.min_area_ha:g} ha",
        candidates_path,
        protected=None if inputs.protected is None else inputs.protected.geometry,
        rasters=[gi_star],
    )
    if red.zone_layer is not None:
        layer = next(z for z in layers if z.name == red.zone_layer)
        cover = redline.coverage(
            pixels, areas, layer.name, keep, inputs.key_zones, red.key_target_share, red.other_target_share
        )
        fill, thresholds = redline.gap_fill(pixels, cover, areas, layer.name, keep, density_table)
        gap = redline.gap_fill_mask(
            labels, keep, classes, density[0], density_table, zone_rasters[layer.name], thresholds, locked_in
        )
        gap_zones = zone_rasters[layer.name].where(gap, 0).astype(np.int32)
        zones_filled = list(thresholds)
        shapes = redline.vectorise(
            gap_zones, zones_filled, grid, PartFolder(staging.path("work/redline_gap_fill")), execution.compute
        )
        attributes = _zone_columns(fill, layer).set_index("zone").loc[zones_filled]
        out.gap_fill = staging.path(spec.path("gap_fill"))
        write_polygon_layer(shapes.batches(), attributes, grid.crs, out.gap_fill, "gap_fill")
        merged = cover.merge(fill.drop(columns=["shortfall_ha"]), on="zone", how="left")
        out.coverage = _zone_columns(merged, layer).drop(columns="zone")
        out.zones = layer.polygons.geometry
        write_table(out.coverage, staging.path(spec.path("coverage")))
    log.info(
        "red lines %d: %d hotspot patches, %d candidates of >= %g ha (Gi* radius %d px, z > %g)",
        year,
        int(n),
        len(candidates),
        red.min_area_ha,
        radius,
        red.z_threshold,
    )
    return out


def _levels(values: xr.DataArray):
    """Delayed Series: each distinct non-NaN value -> its pixel count (integers: exact in any chunking)."""
    parts = [dask.delayed(_block_levels)(b) for b in values.data.to_delayed(optimize_graph=False).ravel()]
    return dask.delayed(_merge_levels)(parts)


def _block_levels(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.unique(block[~np.isnan(block)], return_counts=True)


def _merge_levels(parts: list) -> pd.Series:
    values = np.concatenate([p[0] for p in parts]).astype(np.float64)
    counts = np.concatenate([p[1] for p in parts]).astype(np.int64)
    levels = pd.Series(counts, index=values).groupby(level=0).sum()
    if len(levels) > 1_000_000:
        raise InputError(f"{len(levels)} distinct carbon values: red lines expect rasters made from parameter tables")
    return levels


def _indexed(values: xr.DataArray, levels: pd.Series) -> tuple[xr.DataArray, int]:
    """(raster of 1 + the position of each pixel's value among ``levels``, 0 = NaN, in the smallest unsigned
    type that holds it; size)."""
    dtype = np.min_scalar_type(len(levels))
    index = values.data.map_blocks(_level_index, levels.index.to_numpy(), dtype, dtype=dtype)
    return values.copy(data=index), len(levels) + 1


#: Rows of a block indexed at once: the float64 and int64 temporaries of a whole 2048^2 block were 80 MB a task.
_INDEX_ROWS = 256


def _level_index(values: np.ndarray, sorted_values: np.ndarray, dtype=np.uint32) -> np.ndarray:
    """1 + the position of each value among ``sorted_values`` (which holds them all), 0 = NaN."""
    out = np.empty(values.shape, dtype)
    for s in range(0, values.shape[0], _INDEX_ROWS):  # each pixel on its own: strips change no value
        strip = values[s : s + _INDEX_ROWS]
        i = np.searchsorted(sorted_values, strip.astype(np.float64)) + 1
        out[s : s + _INDEX_ROWS] = np.where(np.isnan(strip), 0, i)
    return out


def _level_window(path: Path, sorted_values: np.ndarray, table: np.ndarray, r0: int, r1: int, c0: int, c1: int):
    """``redline.gi_star``'s window: ``table`` values (float64) of the staged raster at ``path``, NaN outside it."""
    return redline.level_values(_level_index(cog.read_window(path, r0, r1, c0, c1, np.nan), sorted_values), table)


def _polygons(path: Path | None, grid: Grid, what: str) -> gpd.GeoDataFrame | None:
    if path is None:
        return None
    polygons = read_polygons(path, grid)
    if polygons.empty:
        raise InputError(f"redline.{what}: the layer has no polygons", path)
    return polygons


def _burn(polygons: gpd.GeoDataFrame | None, grid: Grid, like: xr.DataArray) -> xr.DataArray | None:
    """Lazy boolean raster of the polygons (pixel-centre rule), or None."""
    if polygons is None:
        return None
    geoms = polygons.geometry.to_numpy()
    burned = rasterize_blocks(geoms, np.ones(len(geoms), np.uint8), grid, like.data, np.uint8)
    return like.copy(data=burned.astype(bool))


def _key_zones(layer: ZoneLayer, field: str | None) -> list[int]:
    """Zone numbers (1-based) flagged as national key ecological function zones."""
    if field is None:
        return []
    if field not in layer.polygons.columns:
        fields = ", ".join(c for c in layer.polygons.columns if c != layer.polygons.geometry.name)
        raise InputError(
            f"redline.key_field '{field}' is not a field of zone layer '{layer.name}'; fields: {fields}", layer.path
        )
    flags = layer.polygons[field].map(lambda v: str(v).strip().lower() in ("1", "true", "yes", "y", "t"))
    return [i + 1 for i, flagged in enumerate(flags) if flagged]


def _zone_columns(frame: pd.DataFrame, layer: ZoneLayer) -> pd.DataFrame:
    ids, names = np.asarray(layer.ids, object), np.asarray(layer.labels, object)
    z = frame["zone"].to_numpy(np.int64) - 1
    return frame.assign(zone_id=ids[z], zone_name=names[z])[
        ["zone", "zone_id", "zone_name", *[c for c in frame.columns if c != "zone"]]
    ]


def _named(candidates: pd.DataFrame, layers: list[ZoneLayer]) -> pd.DataFrame:
    """Zone numbers -> `<layer>_id` and `<layer>_name` (empty outside every zone)."""
    out = candidates.copy()
    for layer in layers:
        number = out.pop(layer.name).to_numpy(np.int64)
        share = out.pop(f"{layer.name}_share")
        ids, names = np.asarray(["", *layer.ids], object), np.asarray(["", *layer.labels], object)
        out[f"{layer.name}_id"], out[f"{layer.name}_name"] = ids[number], names[number]
        out[f"{layer.name}_share"] = share
    return out
