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
                dst.write(block, 1)
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
) -> None:
    """Copy the VRT of a ``raster_parts_task`` into a COG (DEFLATE; overviews unless ``overview_resampling``
    is None) with its band description, unit and colour table, then drop the VRT and its parts.
    ``meaning`` is (description, unit)."""
    try:
        # Overviews built beside the VRT (ZSTD level 1) and reused by the COG driver: building them
        # inside the COG copy, DEFLATE-compressed twice, took a quarter longer.
        with (
            rasterio.Env(
                COMPRESS_OVERVIEW="ZSTD",
                ZSTD_LEVEL_OVERVIEW=1,
                GDAL_TIFF_OVR_BLOCKSIZE=512,
                GDAL_NUM_THREADS="ALL_CPUS",
            ),
            rasterio.open(parts, "r+") as ds,
        ):
            ds.set_band_description(1, meaning[0])
            ds.set_band_unit(1, meaning[1])
            if colormap:
                ds.write_colormap(1, {k: (*v, 255) for k, v in colormap.items()})
            if categories:
                ds.update_tags(1, **{f"CLASS_{k}": v for k, v in categories.items()})
            factors = overview_factors(ds.width, ds.height) if overview_resampling else []
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
            NUM_THREADS="ALL_CPUS",
        )
    except (RasterioError, CPLE_BaseError) as e:  # GDAL's write errors come as either
        raise OutputError(f"cannot write the raster: {e}", final) from None
    parts.unlink()
    parts.with_name(parts.name + ".ovr").unlink(missing_ok=True)
    shutil.rmtree(parts.with_name(parts.name + ".d"), ignore_errors=True)


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


def finish_rasters(staging: Staging, rasters: list[str], overviews: bool = True) -> list[Delayed]:
    """Lazy: the staged parts of ``rasters`` (relative ``.tif`` paths of the output specification) -> COGs
    with the band description and unit of their spec entry (and overviews when asked); class-like rasters
    get a colour table and a QGIS style. One task per raster, so they run in parallel, on the workers of a
    cluster (not its client)."""
    tasks = []
    for relative in rasters:
        found = spec.find(relative)
        if found is None:
            raise ValueError(f"{relative} is not in the output specification")
        output, final = found[0], staging.root / relative
        resampling = output.overviews if overviews else None
        style = _STYLES[output.style] if output.style is not None else (None, None)
        tasks.append(dask.delayed(_finish, pure=False)(final, output.band, *style, resampling))
    return tasks


def _finish(final: Path, meaning: tuple[str, str], colours, names, resampling: str | None) -> None:
    finish_cog(final.with_suffix(".vrt"), final, meaning, colours, names, resampling)
    if colours is not None:
        paletted_qml(final.with_suffix(".qml"), colours, names)


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
