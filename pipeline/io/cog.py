"""The run's own rasters: written as one GeoTIFF per Dask chunk joined by a VRT, read back lazily, and
finished as Cloud-Optimised GeoTIFFs with their meaning, colour tables and QGIS styles."""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from pathlib import Path
from xml.sax.saxutils import escape

import dask
import dask.array as da
import numpy as np
import rasterio
import rasterio.shutil
import xarray as xr
from affine import Affine
from dask.delayed import Delayed
from rasterio._err import CPLE_BaseError
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from pipeline import spec
from pipeline.errors import OutputError
from pipeline.io.rasters import open_epoch
from pipeline.io.staging import Staging
from pipeline.io.vrt import vrt_xml
from pipeline.model import pathways
from pipeline.model.classes import (
    CLASS_CODES,
    CLASS_COLOURS,
    CLASS_NAMES,
)
from pipeline.model.grid import Grid
from pipeline.model.inputs import (
    EpochSource,
)
from pipeline.model.tiles import Tile, tiles

# rioxarray also stores the CRS as CF attributes; oblique Mercator (e.g. Swiss CH1903+) loses a parameter
# there, but our GeoTIFFs carry the full WKT, so the warning says nothing about our outputs.
warnings.filterwarnings("ignore", "angle from rectified to skew grid parameter lost", UserWarning)


def raster_parts_task(arr: xr.DataArray, path: Path, grid: Grid, nodata: float) -> da.Array:
    """Lazy write of ``arr``: one tiled GeoTIFF per Dask chunk in ``<path>.d/``, joined by the VRT at
    ``path`` (written now; the parts when computed). A flag per chunk is returned, not the pixels.

    Each task writes its own file, so workers of a cluster need no lock, only a shared folder. The parts
    are ZSTD level 1, about as small as DEFLATE and five times faster to write; ``finish_cog`` compresses
    the deliverable once. (Blocks written into one file in update mode took five times as long.)
    """
    folder = path.with_name(path.name + ".d")
    folder.mkdir(parents=True, exist_ok=True)
    chunks = arr.data.chunks
    rows, cols = (np.cumsum((0, *c))[:-1] for c in chunks)
    sources = [
        (folder / f"{r}_{c}.tif", int(r), int(c), h, w)
        for r, h in zip(rows, chunks[0])
        for c, w in zip(cols, chunks[1])
    ]
    path.write_text(vrt_xml(grid, arr.dtype.name, nodata, sources, masked=False), encoding="utf-8")

    def write(block: np.ndarray, block_info=None) -> np.ndarray:
        (r, _), (c, _) = block_info[0]["array-location"]
        h, w = block.shape
        tiles = {"tiled": True, "blockxsize": 512, "blockysize": 512} if min(h, w) >= 512 else {}
        # Written under a name of its own, then renamed: a task rerun after its worker died (or run twice)
        # never leaves a part half written, nor two writers on one file.
        part = folder / f"{r}_{c}.tif"
        temporary = folder / f".{r}_{c}.{uuid.uuid4().hex}.tif"
        try:
            with rasterio.open(
                temporary,
                "w",
                driver="GTiff",
                width=w,
                height=h,
                count=1,
                dtype=block.dtype,
                crs=grid.crs,
                transform=grid.transform @ Affine.translation(c, r),
                nodata=nodata,
                compress="ZSTD",
                zstd_level=1,
                **tiles,
            ) as dst:
                dst.write(block[np.newaxis], [1])  # band 1 as a 3-D view: rasterio stacks (copies) a 2-D array
            os.replace(temporary, part)
        except (RasterioError, OSError) as e:  # disk full, folder gone: not the inputs' fault
            temporary.unlink(missing_ok=True)
            raise OutputError(f"cannot write the raster: {e}", path) from None
        return np.ones((1, 1), dtype=bool)

    return arr.data.map_blocks(write, chunks=tuple((1,) * len(c) for c in chunks), dtype=bool)


def finish_cog(
    parts: Path,
    final: Path,
    meaning: tuple[str, str],
    colormap: dict[int, tuple[int, int, int]] | None = None,
    categories: dict[int, str] | None = None,
    overview_resampling: str | None = "NEAREST",
    factors: list[int] | None = None,
) -> None:
    """Copy the VRT of a ``raster_parts_task`` into a COG (DEFLATE; overviews unless ``overview_resampling``
    is None) with its band description, unit and colour table; the caller removes the parts.
    ``meaning`` is (description, unit); ``factors`` the overview levels (default: the COG driver's)."""
    try:
        # Overviews built beside the VRT (ZSTD level 1) and reused by the COG driver: building them
        # inside the COG copy, DEFLATE-compressed twice, took a quarter longer.
        with (
            rasterio.Env(
                COMPRESS_OVERVIEW="ZSTD",
                ZSTD_LEVEL_OVERVIEW=1,
                GDAL_TIFF_OVR_BLOCKSIZE=512,
                GDAL_NUM_THREADS=gdal_threads(),
            ),
            rasterio.open(parts, "r+") as ds,
        ):
            _describe(ds, meaning, colormap, categories)
            if not overview_resampling:
                factors = []
            elif factors is None:
                factors = overview_factors(ds.width, ds.height)
            if factors and overview_resampling:
                ds.build_overviews(factors, Resampling[overview_resampling.lower()])
        # DEFLATE is read by every GIS. Level 1 against the default 6: the copy 2-3 times faster (it was
        # two thirds of a whole run), files about 30 % larger, about the size LZW gives.
        rasterio.shutil.copy(
            parts,
            final,
            driver="COG",
            COMPRESS="DEFLATE",
            LEVEL=1,
            OVERVIEWS="FORCE_USE_EXISTING" if factors else "NONE",
            BLOCKSIZE=512,
            NUM_THREADS=gdal_threads(),
        )
    except (RasterioError, CPLE_BaseError) as e:  # GDAL's write errors come as either
        raise OutputError(f"cannot write the raster: {e}", final) from None


#: A cluster worker's Dask threads, its share of the machine (set in each worker by ``clusters.GdalSettings``);
#: None in a run's own process, whose COG copies may use every core.
worker_threads: int | None = None


def gdal_threads() -> str:
    """Threads GDAL compresses a COG and builds its overviews with: the user's ``GDAL_NUM_THREADS``, else a
    worker's own threads, else every core. Not put in the environment: GDAL would then also read every
    GeoTIFF with that many threads, and its error for a truncated file would no longer name the file."""
    return os.environ.get("GDAL_NUM_THREADS", "ALL_CPUS" if worker_threads is None else str(worker_threads))


def _describe(ds, meaning: tuple[str, str], colormap, categories) -> None:
    """A band's description and unit, colour table and class names (``CLASS_<code>`` tags), on an open dataset."""
    ds.set_band_description(1, meaning[0])
    ds.set_band_unit(1, meaning[1])
    if colormap:
        ds.write_colormap(1, {k: (*v, 255) for k, v in colormap.items()})
    if categories:
        ds.update_tags(1, **{f"CLASS_{k}": v for k, v in categories.items()})


#: Colours and labels of the class-like rasters (the spec's ``style``): colour table and QGIS style.
_STYLES = {
    "landcover": (CLASS_COLOURS, {k: f"{k} {CLASS_NAMES[k]}" for k in CLASS_CODES}),
    "pathway": (pathways.PATHWAY_COLOURS, {k: f"{k} {n}" for k, n in pathways.PATHWAY_NAMES.items()}),
    # A change is drawn in the colour of the class it became; persistence in grey.
    "transition": (
        {f * 10 + t: (225, 225, 225) if f == t else CLASS_COLOURS[t] for f in CLASS_CODES for t in CLASS_CODES},
        {f * 10 + t: f"{CLASS_NAMES[f]} → {CLASS_NAMES[t]}" for f in CLASS_CODES for t in CLASS_CODES},
    ),
}


def finish_rasters(
    staging: Staging, rasters: list[str], overviews: bool = True, tile_size: int | None = None
) -> list[Delayed]:
    """Lazy: the staged parts of ``rasters`` (relative ``.tif`` paths of the output specification) -> COGs
    with the band description and unit of their spec entry (and overviews when asked); class-like rasters
    get a colour table and a QGIS style. One task per raster, so they run in parallel, on the workers of a
    cluster (not its client).

    With ``tile_size`` (px, a multiple of 512) each raster is written as tiles on a fixed grid from its
    top-left corner, one COG and one task per tile (a large raster is finished in parallel across its
    tiles), then a VRT over them (the spec's ``mosaic_path``) with virtual overviews."""
    tasks = []
    for relative in rasters:
        found = spec.find(relative)
        if found is None:
            raise ValueError(f"{relative} is not in the output specification")
        (output, fields), final = found, staging.root / relative
        resampling = output.overviews if overviews else None
        style = _STYLES[output.style] if output.style is not None else (None, None)
        if tile_size is None:
            tasks.append(dask.delayed(_finish, pure=False)(final, output.band, *style, resampling))
            continue
        parts = final.with_suffix(".vrt")
        with rasterio.open(parts) as ds:  # the header only: the tile windows are made here, on the client
            width, height = ds.width, ds.height
        # Every tile gets the whole raster's overview levels (a tile within one block too), so each level of
        # the VRT is the tiles' levels side by side, the pixels of the single COG's level.
        factors = overview_factors(width, height) if resampling else []
        done, mosaic = [], []
        for tile in tiles(width, height, tile_size):
            path = output.tile_path(tile.row, tile.col, **fields)
            done.append(
                dask.delayed(_finish_tile, pure=False)(
                    parts, staging.root / path, tile, output.band, *style, resampling, factors
                )
            )
            mosaic.append((Path(path).relative_to(Path(relative).parent), tile))
        tasks.append(dask.delayed(_finish_mosaic, pure=False)(parts, mosaic, output.band, *style, factors, done))
    return tasks


def _finish_tile(
    parts: Path,
    path: Path,
    tile: Tile,
    meaning: tuple[str, str],
    colours,
    names,
    resampling: str | None,
    factors: list[int],
) -> None:
    """One tile of a raster's staged parts -> its COG at ``path``, as ``finish_cog`` makes a whole raster.

    Idempotent: the tile's VRT and COG are written under names of their own and the COG renamed into place,
    so a task run twice (its worker lost) leaves one whole tile; a task that finds its tile and the parts gone
    (removed with every tile written) has nothing left to do."""
    folder = parts.with_name(parts.name + ".d")
    if path.exists() and not folder.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    unique = uuid.uuid4().hex
    window = folder / f".tile_{tile.row}_{tile.col}.{unique}.vrt"
    temporary = path.with_name(f".{path.stem}.{unique}.tif")
    with rasterio.open(parts) as ds:
        grid = Grid(ds.crs, ds.transform @ Affine.translation(tile.left, tile.top), tile.width, tile.height)
        dtype, nodata = ds.dtypes[0], ds.nodata
    window.parent.mkdir(parents=True, exist_ok=True)
    source = (parts, 0, 0, tile.height, tile.width, tile.top, tile.left)
    window.write_text(vrt_xml(grid, dtype, nodata, [source], masked=False), encoding="utf-8")
    try:
        finish_cog(window, temporary, meaning, colours, names, resampling, factors)
        os.replace(temporary, path)
    except OutputError as e:
        raise OutputError(e.message, path) from None
    finally:
        temporary.unlink(missing_ok=True)
        window.unlink(missing_ok=True)
        window.with_name(window.name + ".ovr").unlink(missing_ok=True)


def _finish_mosaic(
    parts: Path,
    mosaic: list[tuple[Path, Tile]],
    meaning: tuple[str, str],
    colours,
    names,
    factors: list[int],
    _done: list[None],
) -> None:
    """The VRT over a raster's finished tiles (``mosaic``: path relative to the VRT, tile), in place of the
    staged parts' VRT at ``parts``, which it then removes with the parts.

    The VRT carries the band's meaning, colour table and class names, and virtual overviews (GDAL's
    ``OverviewList``) at ``factors``, the levels every tile has: a GIS zoomed out reads each tile's own
    overviews, where overviews built on the VRT would read every pixel once more, in one task. They are
    ``nearest``: a level is then the tiles' levels read as they are (built with the raster's own
    resampling); with ``average`` GDAL would compute it from the full resolution on every read."""
    with rasterio.open(parts) as ds:
        grid = Grid(ds.crs, ds.transform, ds.width, ds.height)
        dtype, nodata = ds.dtypes[0], ds.nodata
    sources = [(path.as_posix(), t.top, t.left, t.height, t.width) for path, t in mosaic]
    listed = (factors, "NEAREST") if factors else None
    temporary = parts.with_name(f".{parts.stem}.{uuid.uuid4().hex}.vrt")  # beside it: the same relative paths
    temporary.write_text(
        vrt_xml(grid, dtype, nodata, sources, masked=False, relative=True, overviews=listed), encoding="utf-8"
    )
    try:
        with rasterio.open(temporary, "r+") as ds:
            _describe(ds, meaning, colours, names)
        os.replace(temporary, parts)
    except (RasterioError, CPLE_BaseError, OSError) as e:
        temporary.unlink(missing_ok=True)
        raise OutputError(f"cannot write the raster: {e}", parts) from None
    if colours is not None:
        paletted_qml(parts.with_suffix(".qml"), colours, names)
    shutil.rmtree(parts.with_name(parts.name + ".d"), ignore_errors=True)
    # Tiles of a task that died mid-write (its retry wrote the tile whole): not part of the output.
    folder = parts.with_suffix("")
    for stale in folder.glob(".*"):
        stale.unlink(missing_ok=True)


def _finish(final: Path, meaning: tuple[str, str], colours, names, resampling: str | None) -> None:
    """A raster's staged parts -> one COG at ``final``, then the parts removed.

    Idempotent, as a task on a cluster must be (a worker lost after it finished runs it again): the COG is
    written under a name of its own and renamed into place before the parts go, and a task that finds the
    COG without its parts has nothing left to do."""
    parts = final.with_suffix(".vrt")
    if final.exists() and not parts.exists():
        return
    temporary = final.with_name(f".{final.stem}.{uuid.uuid4().hex}.tif")
    try:
        finish_cog(parts, temporary, meaning, colours, names, resampling)
        os.replace(temporary, final)
    except OutputError as e:
        raise OutputError(e.message, final) from None
    finally:
        temporary.unlink(missing_ok=True)
    if colours is not None:
        paletted_qml(final.with_suffix(".qml"), colours, names)
    parts.unlink()
    parts.with_name(parts.name + ".ovr").unlink(missing_ok=True)
    shutil.rmtree(parts.with_name(parts.name + ".d"), ignore_errors=True)


def overview_factors(width: int, height: int, block: int = 512) -> list[int]:
    """The COG driver's default levels: halve until the overview fits in one block."""
    factors: list[int] = []
    while -(-max(width, height) // (2 ** len(factors))) > block:
        factors.append(2 ** (len(factors) + 1))
    return factors


def paletted_qml(path: Path, colormap: dict[int, tuple[int, int, int]], labels: dict[int, str]) -> None:
    """A QGIS style beside a raster (QGIS loads ``NAME.qml`` with ``NAME.tif`` automatically)."""
    entries = "\n".join(
        f'        <paletteEntry value="{k}" color="#{r:02x}{g:02x}{b:02x}" alpha="255" label="{escape(labels[k])}"/>'
        for k, (r, g, b) in colormap.items()
    )
    path.write_text(
        f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="1" nodataColor="">
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
  </pipe>
</qgis>
""",
        encoding="utf-8",
    )


def open_own(path: Path, grid: Grid, chunks: int, dtype: str = "uint8", nodata: float = 0) -> xr.DataArray:
    """One of the run's own rasters (intermediate or output), read lazily on its grid and chunks."""
    return open_epoch(EpochSource(0, (path,), path, grid, dtype, nodata), grid, chunks)


def read_window(path: Path, r0: int, r1: int, c0: int, c1: int, fill: float) -> np.ndarray:
    """Rows r0..r1-1 and columns c0..c1-1 of band 1 of a raster (its dtype), ``fill`` where they pass its
    edges: a block with a halo, read by the task that needs it (no neighbour blocks in the graph)."""
    with rasterio.open(path) as ds:
        out = np.full((r1 - r0, c1 - c0), fill, ds.dtypes[0])
        a0, a1, b0, b1 = max(r0, 0), min(r1, ds.height), max(c0, 0), min(c1, ds.width)
        if a0 < a1 and b0 < b1:
            out[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = ds.read(1, window=Window(b0, a0, b1 - b0, a1 - a0))
    return out
