"""GDAL VRT datasets: tiles of an epoch mosaicked, and a raster's chunk files joined into one layer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from pipeline.model.grid import Grid

#: GDAL type names of the integer types land cover may come in, by numpy dtype name.
INTEGER_TYPES = {
    "uint8": "Byte",
    "int8": "Int8",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
}

_VRT_TYPES = {**INTEGER_TYPES, "float32": "Float32", "float64": "Float64"}


#: A source of a VRT: (path, row, col, height, width) placed at (row, col), or with (src_row, src_col) appended,
#: a window of the source from there.
Source = tuple[Path | str, int, int, int, int] | tuple[Path | str, int, int, int, int, int, int]


def vrt_xml(
    grid: Grid,
    dtype: str,
    nodata: float,
    sources: Sequence[Source],
    masked: bool = True,
    relative: bool = False,
    overviews: tuple[list[int], str] | None = None,
) -> str:
    """A GDAL VRT on ``grid`` mosaicking ``sources``. ``masked``: a source's nodata pixels do not cover its
    neighbours' (a ComplexSource); else plain, faster SimpleSources. ``relative``: source paths are relative to
    the VRT's folder (the folder can be moved). ``overviews``: (factors, GDAL resampling) of virtual overviews
    read from the sources' own overviews (GDAL's ``OverviewList``)."""
    t = grid.transform
    value = "nan" if np.isnan(nodata) else repr(int(nodata) if float(nodata).is_integer() else float(nodata))
    kind = "ComplexSource" if masked else "SimpleSource"
    mask = f"\n      <NODATA>{value}</NODATA>" if masked else ""
    parts = "".join(
        f"""
    <{kind}>
      <SourceFilename relativeToVRT="{int(relative)}">{escape(str(path))}</SourceFilename>
      <SourceBand>1</SourceBand>
      <SrcRect xOff="{src[1] if src else 0}" yOff="{src[0] if src else 0}" xSize="{w}" ySize="{h}"/>
      <DstRect xOff="{c}" yOff="{r}" xSize="{w}" ySize="{h}"/>{mask}
    </{kind}>"""
        for path, r, c, h, w, *src in sources
    )
    listed = ""
    if overviews is not None and overviews[0]:
        factors, resampling = overviews
        listed = f'\n  <OverviewList resampling="{resampling.lower()}">{" ".join(map(str, factors))}</OverviewList>'
    return f"""<VRTDataset rasterXSize="{grid.width}" rasterYSize="{grid.height}">
  <SRS dataAxisToSRSAxisMapping="1,2">{escape(grid.crs.to_wkt())}</SRS>
  <GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>
  <VRTRasterBand dataType="{_VRT_TYPES[np.dtype(dtype).name]}" band="1">
    <NoDataValue>{value}</NoDataValue>{parts}
  </VRTRasterBand>{listed}
</VRTDataset>
"""
