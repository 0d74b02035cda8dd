"""pipeline.samples.synthetic (large synthetic land cover for benchmarks) and bench/floor.py (the numpy floor)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from scipy import ndimage

from pipeline.config import load_config
from pipeline.io.cog import overview_factors
from pipeline.samples.synthetic import generate

from .helpers import CNLUCC, class_lut

N = 512
KM2 = N * N * 30.0 * 30.0 / 1e6  # raster area, km2
TARGET = class_lut(CNLUCC)  # CNLUCC code -> DESIGN class (0 = nodata/unknown), written out in tests/helpers.py


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    """N x N region, block 512: returns the folder (config.yaml, lc2000.tif, lc2020.tif, ...)."""
    return generate(tmp_path_factory.mktemp("syn512"), N, counties=30, seed=3, block=512).parent


def test_rasters_are_tiled_cnlucc(region: Path) -> None:
    with rasterio.open(region / "lc2000.tif") as ds:
        assert (ds.width, ds.height, ds.dtypes[0], ds.nodata) == (N, N, "uint8", 255)
        assert ds.block_shapes[0] == (512, 512) and ds.compression.name.lower() == "deflate"
        assert ds.crs.is_projected and ds.res == (30.0, 30.0)
        codes = np.unique(ds.read(1))
    assert set(codes.tolist()) <= set(CNLUCC)  # only codes of the built-in scheme


def test_class_shares_are_plausible(region: Path) -> None:
    share = np.bincount(TARGET[_read(region / "lc2000.tif")].ravel(), minlength=9) / N**2
    bounds = {
        1: (0.25, 0.60),
        2: (0.15, 0.45),
        3: (0.03, 0.20),
        4: (0.02, 0.12),
        5: (0.005, 0.12),
        6: (0.01, 0.06),
        7: (0.003, 0.05),
        8: (0.0, 0.06),
    }
    for cls, (lo, hi) in bounds.items():
        assert lo <= share[cls] <= hi, (cls, share[cls])
    assert share[0] == 0


def test_same_pixels_whatever_the_block(region: Path, tmp_path: Path) -> None:
    other = generate(tmp_path, N, counties=30, seed=3, block=256).parent
    for year in (2000, 2020):
        assert np.array_equal(_read(region / f"lc{year}.tif"), _read(other / f"lc{year}.tif"))


def test_change_between_epochs(region: Path) -> None:
    a, b = TARGET[_read(region / "lc2000.tif")], TARGET[_read(region / "lc2020.tif")]
    assert 0.01 <= (a != b).mean() <= 0.10
    urban_gain = ((b == 5) & (a != 5)).sum()
    assert ((b == 5) & (a == 1)).sum() > 0.5 * urban_gain  # cities grow mostly over cropland
    for frm, to in ((3, 1), (6, 1), (1, 2)):  # displacement, rural shrinkage, restoration all happen
        assert ((a == frm) & (b == to)).sum() > 0, (frm, to)


def test_cropland_is_patchy_not_noise(region: Path) -> None:
    lab, n = ndimage.label(TARGET[_read(region / "lc2000.tif")] == 1, structure=np.ones((3, 3)))
    sizes = np.bincount(lab.ravel())[1:]
    assert 0.1 <= n / KM2 <= 20  # many patches per km2, as in real land cover, not a few blobs
    assert sizes[sizes >= 11].sum() / sizes.sum() > 0.9  # and not salt-and-pepper: most in patches >= 1 ha
    assert sizes.max() / sizes.sum() < 0.95


def test_counties_tile_the_raster(region: Path) -> None:
    counties = gpd.read_file(region / "counties.gpkg")
    assert list(counties["code"][:2]) == ["C0001", "C0002"] and counties["code"].is_unique and len(counties) == 30
    assert {"code", "name"} <= set(counties.columns)
    with rasterio.open(region / "lc2000.tif") as ds:
        extent = (ds.bounds.right - ds.bounds.left) * (ds.bounds.top - ds.bounds.bottom)
    assert abs(counties.union_all().area / extent - 1) < 1e-6
    assert abs(counties.area.sum() / extent - 1) < 1e-6  # no overlaps either


def test_configs_load(region: Path) -> None:
    cfg = load_config(region / "config.yaml")
    assert cfg.years == [2000, 2020] and cfg.scheme == "cnlucc" and cfg.align == "exact"
    assert cfg.zones[0].path == region / "counties.gpkg" and cfg.dask.chunks == 2048
    assert cfg.carbon.densities == region / "densities.csv" and cfg.carbon.statistics is None
    assert load_config(region / "config_stock.yaml").zones == []


def test_floor_equals_numpy(region: Path, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_floor", Path(__file__).parents[1] / "bench" / "floor.py")
    floor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(floor)
    a, b = _read(region / "lc2000.tif"), _read(region / "lc2020.tif")
    a[:3, :5] = 255  # nodata in one epoch only gives NaN
    with rasterio.open(region / "lc2000.tif") as src:
        profile = src.profile
    with rasterio.open(tmp_path / "a.tif", "w", **profile) as dst:
        dst.write(a, 1)
    floor.floor(tmp_path / "a.tif", region / "lc2020.tif", region / "densities.csv", tmp_path / "d.tif", block=200)
    total = {1: 97.0, 2: 185.0, 3: 86.64, 4: 30.5, 5: 40.6, 6: 62.5, 7: 40.6, 8: 20.6}  # t C/ha, densities.csv sums
    dens = np.full(9, np.nan)
    dens[list(total)] = list(total.values())
    expected = dens[TARGET[b]] - np.where(a == 255, np.nan, dens[TARGET[a]])
    with rasterio.open(tmp_path / "d.tif") as ds:
        got = ds.read(1)
        assert ds.dtypes[0] == "float32" and np.isnan(ds.nodata) and ds.block_shapes[0] == (512, 512)
    assert np.isnan(got[:3, :5]).all()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    # The COG floor: the same pixels, as a COG with overviews (what the pipeline's stock-only run writes).
    floor.cog_floor(tmp_path / "a.tif", region / "lc2020.tif", region / "densities.csv", tmp_path / "c.tif", block=200)
    with rasterio.open(tmp_path / "c.tif") as ds:
        # The pipeline's overview levels (none at 512 px: one block); GDAL's COG driver chose them here.
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and ds.overviews(1) == overview_factors(N, N)
        assert ds.compression.name.lower() == "deflate" and ds.block_shapes[0] == (512, 512)
        np.testing.assert_array_equal(ds.read(1), got)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "c.tif", "d.tif"]  # no scratch file left
