"""China's GCJ-02 ("Mars") coordinates to WGS84, for boundaries from Amap / Aliyun DataV and similar.

GCJ-02 adds to WGS84 longitude/latitude an offset of a few hundred metres given by a published
closed-form function of position on the Krasovsky ellipsoid (the formula circulated since 2010 and
used, e.g., by the eviltransform project of googollee). Going back has no closed form: the WGS84
point is found by fixed-point iteration, w <- w - (gcj(w) - g), which converges to below 1e-9 degrees
in a few steps because the offset changes slowly. Outside China's bounding box there is no offset.
"""

from __future__ import annotations

import numpy as np
import shapely

_A = 6378245.0  # Krasovsky 1940 semi-major axis (m)
_EE = 0.00669342162296594323  # its first eccentricity squared
_CHINA = (72.004, 0.8293, 137.8347, 55.8271)  # lon/lat box outside which GCJ-02 equals WGS84


def _wave(t: np.ndarray, a: float, b: float, c: float, d: float) -> np.ndarray:
    return (a * np.sin(t * np.pi / b) + c * np.sin(t * np.pi / d)) * 2 / 3


def _offset(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(d lon, d lat) in degrees that GCJ-02 adds at WGS84 (lon, lat)."""
    x, y = lon - 105.0, lat - 35.0
    common = _wave(x, 20, 1 / 6, 20, 1 / 2)
    north = (
        -100
        + 2 * x
        + 3 * y
        + 0.2 * y * y
        + 0.1 * x * y
        + 0.2 * np.sqrt(np.abs(x))
        + common
        + _wave(y, 20, 1, 40, 3)
        + _wave(y, 160, 12, 320, 30)
    )
    east = (
        300
        + x
        + 2 * y
        + 0.1 * x * x
        + 0.1 * x * y
        + 0.1 * np.sqrt(np.abs(x))
        + common
        + _wave(x, 20, 1, 40, 3)
        + _wave(x, 150, 12, 300, 30)
    )
    phi = np.radians(lat)
    w = 1 - _EE * np.sin(phi) ** 2
    dlat = north * 180 / (_A * (1 - _EE) / (w * np.sqrt(w)) * np.pi)
    dlon = east * 180 / (_A / np.sqrt(w) * np.cos(phi) * np.pi)
    inside = (lon >= _CHINA[0]) & (lon <= _CHINA[2]) & (lat >= _CHINA[1]) & (lat <= _CHINA[3])
    return np.where(inside, dlon, 0.0), np.where(inside, dlat, 0.0)


def wgs84_to_gcj02(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = np.asarray(lon, np.float64), np.asarray(lat, np.float64)
    dlon, dlat = _offset(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon, lat, tolerance: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 (lon, lat) of GCJ-02 (lon, lat), degrees."""
    g_lon, g_lat = np.asarray(lon, np.float64), np.asarray(lat, np.float64)
    w_lon, w_lat = g_lon.copy(), g_lat.copy()
    for _ in range(30):
        f_lon, f_lat = wgs84_to_gcj02(w_lon, w_lat)
        e_lon, e_lat = f_lon - g_lon, f_lat - g_lat
        w_lon, w_lat = w_lon - e_lon, w_lat - e_lat
        if max(np.abs(e_lon).max(initial=0), np.abs(e_lat).max(initial=0)) < tolerance:
            break
    return w_lon, w_lat


def geometries_to_wgs84(geoms: np.ndarray) -> np.ndarray:
    """Shapely geometries in GCJ-02 lon/lat moved to WGS84 lon/lat, vertex by vertex."""

    def move(xy: np.ndarray) -> np.ndarray:
        lon, lat = gcj02_to_wgs84(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    return shapely.transform(geoms, move)
