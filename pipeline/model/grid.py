"""The raster grid as a value: CRS, affine transform and shape, comparable within a tolerance.

Pixel area lives here too, because it is a property of the grid: on the ellipsoid, exactly per row
for a geographic CRS (never square metres from degrees), and for a projected CRS the planar area
divided by the projection's areal scale factor, taken per cell of a lattice of about
``AREA_CELL_M`` (``PixelAreas``). ``planar`` keeps a projected grid's constant planar area.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyproj
from affine import Affine
from rasterio.crs import CRS

from pipeline.errors import ConfigError

#: Origins and resolutions agree when they differ by less than this share of a pixel.
PIXEL_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Grid:
    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def res(self) -> tuple[float, float]:
        return (self.transform.a, -self.transform.e)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        left, top = self.transform.c, self.transform.f
        return (left, top + self.transform.e * self.height, left + self.transform.a * self.width, top)

    def differences(self, other: Grid) -> list[str]:
        """Human-readable ways in which ``other`` is not this grid (empty when they match)."""
        out = []
        if self.crs != other.crs:
            out.append(f"CRS {_crs_name(other.crs)} instead of {_crs_name(self.crs)}")
            return out
        rotated = self.transform.b or self.transform.d or other.transform.b or other.transform.d
        if rotated and self.transform != other.transform:
            out.append("rotated grid")
        px = abs(self.transform.a)
        if not np.isclose(other.transform.a, self.transform.a, rtol=0, atol=PIXEL_TOLERANCE * px) or not np.isclose(
            other.transform.e, self.transform.e, rtol=0, atol=PIXEL_TOLERANCE * px
        ):
            out.append(f"resolution {_fmt_res(other.res)} instead of {_fmt_res(self.res)}")
        dx = (other.transform.c - self.transform.c) / self.transform.a
        dy = (other.transform.f - self.transform.f) / self.transform.e
        if abs(dx) > PIXEL_TOLERANCE or abs(dy) > PIXEL_TOLERANCE:
            out.append(
                f"origin ({other.transform.c:.6f}, {other.transform.f:.6f}) instead of "
                f"({self.transform.c:.6f}, {self.transform.f:.6f}), a shift of {dx:+.4g}, {dy:+.4g} pixels"
            )
        if (other.width, other.height) != (self.width, self.height):
            out.append(f"size {other.width}x{other.height} instead of {self.width}x{self.height}")
        return out

    def overlaps(self, other: Grid) -> bool:
        """True when the two grids' extents intersect (same CRS assumed)."""
        a, b = self.bounds, other.bounds
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    def window_transform(self, row_off: int, col_off: int) -> Affine:
        return self.transform @ Affine.translation(col_off, row_off)

    def planar_pixel_area_m2(self) -> float:
        """Area of a pixel in the projection's plane (m²); projected grids only."""
        unit = self.crs.linear_units_factor[1] if self.crs.linear_units_factor else 1.0
        return abs(self.transform.a * self.transform.e - self.transform.b * self.transform.d) * unit**2


#: Side of the lattice cells within which a projected grid's pixel area is taken as constant (m). The
#: areal scale of a transverse Mercator grid 800 km from its central meridian changes by 2e-4 over
#: 5 km, and a cell's centre value is exact for a whole cell to second order.
AREA_CELL_M = 5000.0

AreaMethod = Literal["ellipsoidal", "planar"]


@dataclass(frozen=True, eq=False)
class PixelAreas:
    """The area of a pixel as a function of its position: constant within each cell of a lattice tied
    to the grid's top-left corner (cells of ``cell_shape`` pixels). Pixels are counted per cell, so
    areas are multiplied in after integer counting and never depend on the chunking.

    ``area_m2[i, j]`` is the area (m²) of one pixel in cell row ``i`` and cell column ``j``;
    ``areal_scale`` the projection's (min, max) areal scale factor over the cells (1 on the ellipsoid).
    """

    shape: tuple[int, int]
    cell_shape: tuple[int, int]
    area_m2: np.ndarray
    method: str
    areal_scale: tuple[float, float] = (1.0, 1.0)

    @property
    def constant(self) -> bool:
        """One area for every pixel: counts need no cell."""
        return self.area_m2.size == 1

    @property
    def flat_m2(self) -> np.ndarray:
        """Pixel area (m²) by cell number (cell row * cell columns + cell column)."""
        return self.area_m2.ravel()

    def cells(self, row0: int, col0: int, height: int, width: int) -> np.ndarray:
        """Cell number (int64) of each pixel of the window at (``row0``, ``col0``) of ``height`` x ``width``."""
        rows, cols = self.cell_parts(row0, col0, height, width)
        return (rows[:, None] + cols[None, :]).astype(np.int64)

    def cell_parts(self, row0: int, col0: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(per row, per column) of a window: the cell number of pixel (i, j) is ``rows[i] + cols[j]``
        (int64, both non-decreasing)."""
        rows = (row0 + np.arange(height, dtype=np.int64)) // self.cell_shape[0] * self.area_m2.shape[1]
        cols = (col0 + np.arange(width, dtype=np.int64)) // self.cell_shape[1]
        return rows, cols

    def window_m2(self, row0: int, col0: int, height: int, width: int) -> np.ndarray:
        """Area (m², float64) of each pixel of a window."""
        return self.flat_m2[self.cells(row0, col0, height, width)]

    def pixels_per_cell(self) -> np.ndarray:
        """Number of the grid's pixels in each cell (int64, shaped like ``area_m2``; edge cells are cut)."""
        h, w = self.shape
        ch, cw = self.cell_shape
        rows = np.minimum(ch, h - ch * np.arange(self.area_m2.shape[0]))
        cols = np.minimum(cw, w - cw * np.arange(self.area_m2.shape[1]))
        return rows[:, None].astype(np.int64) * cols[None, :]

    def total_m2(self) -> float:
        """Area of the whole grid (m²)."""
        return float((self.pixels_per_cell() * self.area_m2).sum())

    def mean_m2(self) -> float:
        """Mean pixel area of the grid (m²)."""
        return self.total_m2() / (self.shape[0] * self.shape[1])


def pixel_areas(grid: Grid, method: AreaMethod = "ellipsoidal") -> PixelAreas:
    """Pixel areas of ``grid``: on the ellipsoid (exact per row on a geographic grid; on a projected one
    the planar area divided by pyproj's areal scale factor at the centre of each cell of about
    ``AREA_CELL_M``), or ``planar`` (a projected grid's constant area in its plane)."""
    h, w = grid.height, grid.width
    if grid.crs.is_geographic:
        if method == "planar":
            raise ConfigError(
                "`area: planar` needs a projected grid: the rasters are in degrees, whose pixels are "
                "measured on the ellipsoid; remove `area: planar`"
            )
        lat_top = grid.transform.f + grid.transform.e * np.arange(h)
        lat_bottom = lat_top + grid.transform.e
        rows = ellipsoid_band_area_m2(lat_bottom, lat_top, abs(grid.transform.a))
        return PixelAreas((h, w), (1, w), rows[:, None], "ellipsoidal")
    planar = grid.planar_pixel_area_m2()
    if method == "planar":
        scale = _areal_scale_lattice(grid, 1)
        return PixelAreas((h, w), (h, w), np.full((1, 1), planar), "planar", (float(scale.min()), float(scale.max())))
    side = max(1, round(AREA_CELL_M / np.sqrt(planar)))
    scale = _areal_scale_lattice(grid, side)
    return PixelAreas((h, w), (side, side), planar / scale, "ellipsoidal", (float(scale.min()), float(scale.max())))


def _areal_scale_lattice(grid: Grid, side: int) -> np.ndarray:
    """The projection's areal scale factor at the centre of each ``side`` x ``side`` pixel cell (edge
    cells cut at the grid's edge), or, for ``side`` 1 on a large grid, at most 64 x 64 sample points
    spread over it (enough to tell how much the scale varies)."""
    h, w = grid.height, grid.width
    if side == 1 and h * w > 64 * 64:
        rows, cols = np.linspace(0.5, h - 0.5, min(h, 64)), np.linspace(0.5, w - 0.5, min(w, 64))
    else:
        r0, c0 = np.arange(0, h, side), np.arange(0, w, side)
        rows, cols = (r0 + np.minimum(r0 + side, h)) / 2, (c0 + np.minimum(c0 + side, w)) / 2
    cc, rr = np.meshgrid(cols, rows)
    a = grid.transform
    x, y = a.a * cc + a.b * rr + a.c, a.d * cc + a.e * rr + a.f
    try:
        proj = pyproj.Proj(grid.crs.to_wkt())
        lon, lat = proj(np.asarray(x), np.asarray(y), inverse=True, errcheck=True)
        scale = np.asarray(proj.get_factors(lon, lat, errcheck=True).areal_scale, float)
    except (pyproj.exceptions.ProjError, pyproj.exceptions.CRSError) as exc:
        raise ConfigError(
            f"the areal scale of {_crs_name(grid.crs)} cannot be computed over the rasters ({exc}); "
            "set `area: planar` to measure pixels in the projection's plane"
        ) from exc
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ConfigError(
            f"the areal scale of {_crs_name(grid.crs)} is undefined over part of the rasters; "
            "set `area: planar` to measure pixels in the projection's plane"
        )
    return scale.reshape(len(rows), len(cols))


# WGS84 (and GRS80/CGCS2000 to well below a millimetre per pixel).
_A = 6378137.0
_F = 1 / 298.257223563


def ellipsoid_band_area_m2(lat1: np.ndarray, lat2: np.ndarray, dlon_deg: float) -> np.ndarray:
    """Area (m²) of the ellipsoidal quadrangle between latitudes ``lat1`` and ``lat2`` (degrees) and
    ``dlon_deg`` degrees of longitude, on the WGS84 ellipsoid.

    Closed form of the area between the equator and latitude phi on an ellipsoid of revolution,
    S(phi) = pi b^2 [ sin(phi) / (1 - e^2 sin^2 phi) + atanh(e sin phi) / e ], scaled by dlon / 360
    (e.g. Snyder 1987, Map Projections: A Working Manual, USGS PP 1395, eq. 3-12).
    """
    e2 = _F * (2 - _F)
    e = np.sqrt(e2)
    b2 = _A**2 * (1 - e2)

    def zone(lat: np.ndarray) -> np.ndarray:
        s = np.sin(np.radians(lat))
        return np.pi * b2 * (s / (1 - e2 * s * s) + np.arctanh(e * s) / e)

    return np.abs(zone(np.asarray(lat2, float)) - zone(np.asarray(lat1, float))) * dlon_deg / 360.0


def _crs_name(crs: CRS | None) -> str:
    if crs is None:
        return "none"
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else (crs.to_string()[:60] + "…")


def _fmt_res(res: tuple[float, float]) -> str:
    return f"{res[0]:.10g} x {res[1]:.10g}"
