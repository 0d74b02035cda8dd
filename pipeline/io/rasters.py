"""Stage 1, ingest: the tiles of each epoch -> one lazy mosaic, every epoch on the first epoch's grid.

Reading is lazy and chunked (rioxarray + Dask); tiles are joined by a GDAL VRT, so no raster is ever
loaded whole. Every problem is raised as an ``InputError`` naming the file.
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
import rioxarray
import xarray as xr
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds

from pipeline.errors import GridMismatchError, InputError
from pipeline.io.vrt import INTEGER_TYPES, vrt_xml
from pipeline.model.grid import PIXEL_TOLERANCE, Grid
from pipeline.model.inputs import (
    EpochSource,
    RasterInfo,
)
from pipeline.stages.counts import merge_counts

log = logging.getLogger(__name__)


def resolve_tiles(year: int, patterns: list[str], label: str | None = None) -> list[Path]:
    """Expand the globs and paths of one epoch (or scenario, named by ``label``) into existing files (sorted,
    no duplicates)."""
    what = label or f"epoch {year}"
    files: list[Path] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            if not matches:
                raise InputError(f"{what}: the pattern matches no file", pattern)
            files.extend(matches)
        elif Path(pattern).is_dir() and not (Path(pattern) / "hdr.adf").exists():
            raise InputError(f"{what}: is a folder; give a raster file, a glob or a list of files", pattern)
        elif not Path(pattern).exists():
            raise InputError(f"{what}: file not found", pattern)
        else:
            files.append(Path(pattern))
    return list(dict.fromkeys(p.resolve() for p in files))


def read_header(path: Path) -> RasterInfo:
    """Open a raster's header (no pixels) and check it can serve as land cover."""
    try:
        with rasterio.open(path) as ds:
            if ds.crs is None:
                raise InputError(
                    "raster has no CRS; assign one (e.g. `gdal_edit.py -a_srs EPSG:4547 FILE` or QGIS "
                    "'Assign Projection') and run again",
                    path,
                )
            if ds.count > 1:
                log.warning("%s: %d bands; band 1 is used as land cover", path, ds.count)
            dtype = ds.dtypes[0]
            if dtype not in INTEGER_TYPES:
                raise InputError(
                    f"land-cover codes must be integers, found {dtype}; convert with "
                    "`gdal_translate -ot UInt16 IN OUT`",
                    path,
                )
            if ds.transform.is_identity:
                raise InputError("raster has no georeferencing (identity transform)", path)
            grid = Grid(ds.crs, ds.transform, ds.width, ds.height)
            return RasterInfo(Path(path), grid, dtype, ds.nodata, ds.block_shapes[0])
    except RasterioError as e:
        raise InputError(f"not a readable raster: {e}", path) from None


def open_sources(epochs: dict[int, list[str]], workdir: Path) -> list[EpochSource]:
    """Headers of every epoch, tiles joined into a VRT in ``workdir`` where there are several."""
    sources = []
    for year, patterns in epochs.items():
        infos = [read_header(p) for p in resolve_tiles(year, patterns)]
        if len(infos) == 1:
            i = infos[0]
            sources.append(EpochSource(year, (i.path,), i.path, i.grid, i.dtype, i.nodata))
        else:
            sources.append(_mosaic(year, infos, workdir))
    return sources


def open_scenario_sources(scenarios: dict[int, dict[str, list[str]]], workdir: Path) -> list[EpochSource]:
    """Headers of every scenario map (``scenarios:``), tiles joined into a VRT in ``workdir`` where there are
    several; years ascending, names in the config's order."""
    sources = []
    for year, named in scenarios.items():
        for name, patterns in named.items():
            label = f"scenario {name} {year}"
            infos = [read_header(p) for p in resolve_tiles(year, patterns, label)]
            if len(infos) == 1:
                i = infos[0]
                sources.append(EpochSource(year, (i.path,), i.path, i.grid, i.dtype, i.nodata, name))
            else:
                sources.append(_mosaic(year, infos, workdir, name))
    return sources


def _mosaic(year: int, infos: list[RasterInfo], workdir: Path, scenario: str | None = None) -> EpochSource:
    first = infos[0]
    what = f"epoch {year}" if scenario is None else f"scenario {scenario} {year}"
    for other in infos[1:]:
        if other.grid.crs != first.grid.crs:
            raise InputError(f"{what}: tile CRS differs from {first.path.name}", other.path)
        if not np.allclose(other.grid.res, first.grid.res, rtol=0, atol=PIXEL_TOLERANCE * abs(first.grid.res[0])):
            raise InputError(
                f"{what}: tile resolution {other.grid.res} differs from {first.path.name} {first.grid.res}",
                other.path,
            )
        if (other.dtype, other.nodata) != (first.dtype, first.nodata):
            raise InputError(
                f"{what}: tile data type/nodata {other.dtype}/{other.nodata} differ from "
                f"{first.path.name} {first.dtype}/{first.nodata}; tiles of one epoch must share them",
                other.path,
            )
    t = first.grid.transform
    lefts = [i.grid.bounds[0] for i in infos]
    tops = [i.grid.bounds[3] for i in infos]
    left, top = min(lefts), max(tops)
    offsets = []
    for i in infos:
        col = (i.grid.transform.c - left) / t.a
        row = (i.grid.transform.f - top) / t.e
        if abs(col - round(col)) > 1e-3 or abs(row - round(row)) > 1e-3:
            raise InputError(
                f"{what}: tile is not on the pixel lattice of {first.path.name} "
                f"(offset {col:.3f}, {row:.3f} pixels); resample it first",
                i.path,
            )
        offsets.append((round(row), round(col)))
    width = max(c + i.grid.width for (r, c), i in zip(offsets, infos))
    height = max(r + i.grid.height for (r, c), i in zip(offsets, infos))
    grid = Grid(first.grid.crs, t.__class__(t.a, t.b, left, t.d, t.e, top), width, height)
    nodata = first.nodata if first.nodata is not None else float(np.iinfo(first.dtype).max)
    workdir.mkdir(parents=True, exist_ok=True)
    vrt = workdir / (f"mosaic_{year}.vrt" if scenario is None else f"mosaic_{year}_{scenario}.vrt")
    sources = [(i.path, r, c, i.grid.height, i.grid.width) for i, (r, c) in zip(infos, offsets)]
    vrt.write_text(vrt_xml(grid, first.dtype, nodata, sources), encoding="utf-8")
    log.info("%s: %d tiles -> %s (%d x %d)", what, len(infos), vrt.name, width, height)
    return EpochSource(year, tuple(i.path for i in infos), vrt, grid, first.dtype, nodata, scenario)


def check_alignment(sources: list[EpochSource], align: str, first: EpochSource | None = None) -> Grid:
    """The first epoch's grid, once every other epoch (or scenario map) is on it (or may be resampled onto
    it). ``first``: the epoch whose grid is the run's, when ``sources`` does not start with it."""
    first = first or sources[0]
    target = first.grid
    for src in sources:
        if src is first:
            continue
        diffs = target.differences(src.grid)
        if not _overlaps(target, src.grid):
            raise InputError(f"{src.label} does not overlap epoch {first.year} ({_names(first)})", _names(src))
        if diffs and align == "exact":
            raise GridMismatchError(
                f"{src.label} is not on the grid of epoch {first.year} ({_names(first)}): "
                + "; ".join(diffs)
                + ". Set `align: nearest` to resample it onto that grid with nearest neighbour",
                _names(src),
            )
        if diffs:
            log.warning("%s resampled (nearest) onto the grid of %d: %s", src.label, first.year, "; ".join(diffs))
    return target


def _overlaps(target: Grid, other: Grid) -> bool:
    if other.crs == target.crs:
        return target.overlaps(other)
    left, bottom, right, top = transform_bounds(other.crs, target.crs, *other.bounds, densify_pts=21)
    tb = target.bounds
    return left < tb[2] and tb[0] < right and bottom < tb[3] and tb[1] < top


def _names(src: EpochSource) -> str:
    return str(src.files[0]) if len(src.files) == 1 else f"{src.files[0].parent}/ ({len(src.files)} tiles)"


def open_epoch(src: EpochSource, target: Grid, chunks: int) -> xr.DataArray:
    """Raw land-cover codes of one epoch on ``target``, lazy, as a (y, x) DataArray.

    Attributes keep the source ``nodata`` and dtype; nothing is masked or converted here.
    """
    if target.differences(src.grid):
        # Nearest-neighbour onto the target grid, done by GDAL window by window as Dask asks.
        opened = WarpedVRT(
            rasterio.open(src.dataset),
            crs=target.crs,
            transform=target.transform,
            width=target.width,
            height=target.height,
            resampling=Resampling.nearest,
            nodata=src.nodata,
        )
    else:
        opened = src.dataset
    try:
        arr = rioxarray.open_rasterio(opened, chunks={"band": 1, "y": chunks, "x": chunks}, lock=False, masked=False)
    except RasterioError as e:
        raise InputError(f"not a readable raster: {e}", src.dataset) from None
    if not isinstance(arr, xr.DataArray):  # a container of subdatasets (netCDF, HDF), not one raster
        raise InputError("has subdatasets, not one raster band: give one of them", src.dataset)
    data = arr.isel(band=0, drop=True).data
    return xr.DataArray(
        data,
        dims=("y", "x"),
        coords=grid_coords(target),
        name=f"landcover_source_{src.year}" + (f"_{src.scenario}" if src.scenario else ""),
        attrs={"nodata": src.nodata, "source_dtype": src.dtype, "year": src.year},
    )


def grid_coords(grid: Grid) -> dict[str, np.ndarray]:
    """Pixel-centre coordinates of a north-up grid."""
    t = grid.transform
    return {
        "y": t.f + t.e * (np.arange(grid.height) + 0.5),
        "x": t.c + t.a * (np.arange(grid.width) + 0.5),
    }


def sample_codes(path: Path, max_blocks: int = 16) -> dict[int, int]:
    """Code counts in a sample of blocks (first, last and evenly spread), for ``validate``.

    A truncated or corrupt file usually fails here, naming itself.
    """
    parts: list[dict[int, int]] = []
    try:
        with rasterio.open(path) as ds:
            windows = [w for _, w in ds.block_windows(1)]
            pick = sorted({0, len(windows) - 1, *np.linspace(0, len(windows) - 1, max_blocks).astype(int)})
            for k in pick:
                block = ds.read(1, window=windows[k])
                values, n = np.unique(block, return_counts=True)
                parts.append({v: c for v, c in zip(values.tolist(), n.tolist()) if ds.nodata is None or v != ds.nodata})
    except RasterioError as e:
        raise InputError(f"cannot read pixels (corrupt or truncated?): {e}", path) from None
    return merge_counts(parts)
