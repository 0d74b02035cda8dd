"""GDAL VRT datasets: tiles of an epoch mosaicked, and a raster's chunk files joined into one layer."""

from __future__ import annotations

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


def vrt_xml(
    grid: Grid, dtype: str, nodata: float, sources: list[tuple[Path, int, int, int, int]], masked: bool = True
) -> str:
    """A GDAL VRT on ``grid`` mosaicking ``sources`` (path, row, col, height, width). ``masked``: a source's
    nodata pixels do not cover its neighbours' (a ComplexSource); else plain, faster SimpleSources."""
    t = grid.transform
    value = "nan" if np.isnan(nodata) else repr(int(nodata) if float(nodata).is_integer() else float(nodata))
    kind = "ComplexSource" if masked else "SimpleSource"
    mask = f"\n      <NODATA>{value}</NODATA>" if masked else ""
    parts = "".join(
        f"""
    <{kind}>
      <SourceFilename relativeToVRT="0">{escape(str(path))}</SourceFilename>
      <SourceBand>1</SourceBand>
      <SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>
      <DstRect xOff="{c}" yOff="{r}" xSize="{w}" ySize="{h}"/>{mask}
    </{kind}>"""
        for path, r, c, h, w in sources
    )
    return f"""<VRTDataset rasterXSize="{grid.width}" rasterYSize="{grid.height}">
  <SRS dataAxisToSRSAxisMapping="1,2">{escape(grid.crs.to_wkt())}</SRS>
  <GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>
  <VRTRasterBand dataType="{_VRT_TYPES[np.dtype(dtype).name]}" band="1">
    <NoDataValue>{value}</NoDataValue>{parts}
  </VRTRasterBand>
</VRTDataset>
"""
