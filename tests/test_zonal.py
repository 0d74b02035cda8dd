"""Grouped pixel counts: exact, whatever the chunking; zone tables add up to the region's."""

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.model import inputs
from pipeline.model.inputs import ParameterTable
from pipeline.stages import balance, carbon, counts, zonal

from .strategies import zone_class_rasters


def _lazy(a: np.ndarray, chunks: tuple[int, int]) -> xr.DataArray:
    return xr.DataArray(da.from_array(a, chunks=chunks), dims=("y", "x"))


@settings(max_examples=60, deadline=None)
@given(zone_class_rasters(), st.booleans(), st.sampled_from([4, 1 << 25, 1 << 40]))
def test_group_counts_are_exact_for_any_chunking(data, per_row, zone_size):
    """Declared sizes of 2**25 and 2**40 zones take the hashing path instead of the dense bincount, with
    32-bit and 64-bit combined keys."""
    zone, cls, (c1, c2) = data
    frames = [
        counts.group_counts({"zone": (_lazy(zone, c), zone_size), "class": (_lazy(cls, c), 9)}, per_row).compute()
        for c in (c1, c2)
    ]
    pd.testing.assert_frame_equal(frames[0], frames[1])
    f = frames[0]
    assert f["pixels"].sum() == zone.size and (f["pixels"] > 0).all()
    for (z, k, r), n in f.set_index(["zone", "class", "row"])["pixels"].items():
        rows = slice(r, r + 1) if per_row else slice(None)
        assert n == ((zone[rows] == z) & (cls[rows] == k)).sum()


def _rates() -> carbon.Lookup:
    frame = pd.DataFrame({"key": [1, 2, 5], "rate_tC_ha_yr": [0.4, -0.644, 2.5], "source": ""})
    return carbon.rate_lookup(ParameterTable(None, "class", frame))


def _densities() -> carbon.Lookup:
    frame = pd.DataFrame(
        {
            "key": list(range(1, 9)),
            "c_above": np.arange(1, 9) * 3.3,
            "c_below": 1.0,
            "c_soil": 40.0,
            "c_dead": 0.5,
            "source": "",
        }
    )
    return carbon.density_lookup(ParameterTable(None, "class", frame))


@settings(max_examples=40, deadline=None)
@given(zone_class_rasters())
def test_zone_tables_add_up_to_the_region_and_do_not_depend_on_chunks(data):
    zone, cls, (c1, c2) = data
    zone = np.where(zone == 0, 1, zone)  # zones 1..3 tile the raster
    layer = inputs.ZoneLayer("zone", None, ["a", "b", "c"], ["A", "B", "C"], None)
    dens, rates = _densities(), _rates()
    row_area = 900.0 + np.arange(zone.shape[0]) * 0.37  # rows of different area, as on a geographic grid
    acc = balance.CarbonParameters(dens, rates, row_area)
    tables = []
    for c in (c1, c2):
        classes = _lazy(cls, c)
        keys = {
            "zone_zone": (_lazy(zone, c), 4),
            "class": (classes, 9),
            "density": (carbon.row_index(dens, classes, classes, None), dens.size),
            "rate": (carbon.row_index(rates, classes, classes, None), rates.size),
        }
        by_year = {2000: counts.group_counts(keys, per_row=True).compute()}
        tables.append(
            [balance.balance_table(acc, by_year, lay, col, "r") for lay, col in ((None, None), (layer, "zone_zone"))]
        )
    for a, b in zip(*tables):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    region, zones = tables[0]
    for column in ("area_ha", "stock_tC", "sink_tC_yr", "source_tC_yr"):
        assert zones[column].sum() == pytest.approx(region[column].sum(), rel=1e-12, nan_ok=True)
    expected_stock = sum(
        row_area[r] / 1e4 * dens.values[cls[r, x] - 1]
        for r in range(cls.shape[0])
        for x in range(cls.shape[1])
        if cls[r, x]
    )
    assert region["stock_tC"].sum() == pytest.approx(expected_stock, rel=1e-12)


def test_polygon_area_is_geodesic():
    import geopandas as gpd
    import shapely

    box = shapely.box(500000, 3400000, 501000, 3401000)  # 1 km square on UTM 50N near its central meridian
    layer = inputs.ZoneLayer("z", None, ["1"], ["1"], gpd.GeoDataFrame(geometry=[box], crs="EPSG:32650"))
    # UTM's scale factor 0.9996 at the central meridian: the ground is (1/0.9996)^2 larger than the grid square.
    assert zonal.polygon_area_ha(layer)[0] == pytest.approx(100 / 0.9996**2, rel=2e-5)
