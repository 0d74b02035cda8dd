"""The raster grid as a value: CRS, affine transform and shape, comparable within a tolerance.

Pixel area lives here too, because it is a property of the grid: constant for a projected CRS,
per row on the ellipsoid for a geographic one (never square metres from degrees).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio.crs import CRS

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

    def row_area_m2(self) -> np.ndarray:
        """Area of one pixel in each row (m², float64, length ``height``)."""
        if self.crs.is_geographic:
            lat_top = self.transform.f + self.transform.e * np.arange(self.height)
            lat_bottom = lat_top + self.transform.e
            return ellipsoid_band_area_m2(lat_bottom, lat_top, abs(self.transform.a))
        unit = self.crs.linear_units_factor[1] if self.crs.linear_units_factor else 1.0
        area = abs(self.transform.a * self.transform.e - self.transform.b * self.transform.d) * unit**2
        return np.full(self.height, area)

    @property
    def constant_pixel_area(self) -> bool:
        return not self.crs.is_geographic


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
