"""GCJ-02 <-> WGS84 on published point pairs (eviltransform's test points in Shanghai, Shenzhen, Beijing)."""

import numpy as np
import pyproj
import pytest
import shapely

from pipeline.io.gcj02 import gcj02_to_wgs84, geometries_to_wgs84, wgs84_to_gcj02

# (WGS84 lat, lon, GCJ-02 lat, lon), from github.com/googollee/eviltransform python/test.py
PAIRS = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),
]
GEOD = pyproj.Geod(ellps="WGS84")


@pytest.mark.parametrize("w_lat, w_lon, g_lat, g_lon", PAIRS)
def test_published_pairs(w_lat, w_lon, g_lat, g_lon):
    lon, lat = wgs84_to_gcj02(w_lon, w_lat)
    assert lon == pytest.approx(g_lon, abs=1e-7) and lat == pytest.approx(g_lat, abs=1e-7)
    lon, lat = gcj02_to_wgs84(g_lon, g_lat)
    assert GEOD.inv(lon, lat, w_lon, w_lat)[2] < 0.01  # metres
    assert 300 < GEOD.inv(g_lon, g_lat, w_lon, w_lat)[2] < 700  # the offset itself is hundreds of metres


def test_round_trip_over_china_and_no_offset_outside():
    rng = np.random.default_rng(3)
    lon, lat = rng.uniform(75, 135, 1000), rng.uniform(18, 53, 1000)
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert np.abs(back[0] - lon).max() < 1e-9 and np.abs(back[1] - lat).max() < 1e-9
    assert wgs84_to_gcj02(6.5, 0.3) == (6.5, 0.3)  # São Tomé: GCJ-02 is WGS84 outside China


def test_geometries_move_vertex_by_vertex():
    square = shapely.box(116.3, 39.9, 116.4, 40.0)
    (moved,) = geometries_to_wgs84(np.array([square]))
    lon, lat = gcj02_to_wgs84(116.3, 39.9)
    corners = shapely.get_coordinates(moved)
    assert np.abs(corners - [lon, lat]).sum(axis=1).min() < 1e-12  # the south-west corner, moved
    assert moved.is_valid and len(shapely.get_coordinates(moved)) == 5
