"""Indicator series (NDVI, ...): per-pixel Sen slope and Mann-Kendall against scipy, zone means and trends
by hand, exact sums whatever the chunking, and a run with a bilinearly resampled series."""

from __future__ import annotations

import logging

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from pipeline.config import load_config
from pipeline.runner.run import run_pipeline
from pipeline.stages import indicators
from pipeline.stages.counts import fold_cells, group_sums

from .conftest import write_config, write_raster
from .helpers import constant_areas, row_areas


def lazy(a: np.ndarray, chunks) -> xr.DataArray:
    return xr.DataArray(da.from_array(a, chunks=chunks), dims=("y", "x"))


@pytest.mark.parametrize("seed", range(6))
def test_pixel_slope_and_p_are_scipys(seed):
    rng = np.random.default_rng(seed)
    years = np.sort(rng.choice(np.arange(1990, 2025), size=rng.integers(3, 12), replace=False))
    # integer values on a coarse step, so ties occur
    values = rng.integers(0, 6, (len(years), 40)).astype(float) * 0.05
    slope, p, s = indicators.series_trend(values, years)
    for k in range(values.shape[1]):
        y = values[:, k]
        assert slope[k] == pytest.approx(stats.theilslopes(y, years).slope, abs=1e-12)
        if np.ptp(y) == 0:
            assert p[k] == 1.0 and s[k] == 0
            continue
        ref = stats.kendalltau(years, y, method="asymptotic")
        assert p[k] == pytest.approx(ref.pvalue, rel=1e-9)
        assert np.sign(s[k]) == np.sign(ref.statistic)


def test_a_known_trend_by_hand():
    years = np.array([2000, 2005, 2010, 2015, 2020])
    # 0.3 + 0.002/yr exactly: every pairwise slope is 0.002, S = 10 of 10 pairs.
    values = (0.3 + 0.002 * (years - 2000))[:, None]
    slope, p, s = indicators.series_trend(values, years)
    assert slope[0] == pytest.approx(0.002)
    assert s[0] == 10
    # Var(S) = 5 * 4 * 15 / 18 = 16.667, Z = 10 / 4.0825 = 2.4495, p = 2 (1 - Phi(2.4495)) = 0.014306
    assert p[0] == pytest.approx(0.0143058, abs=1e-6)
    # one tie pair: values 1, 2, 2, 3, 4 -> S = 9, Var = (300 - 2 * 1 * 9) / 18 = 15.667, Z = 2.2738
    slope, p, s = indicators.series_trend(np.array([[1.0], [2], [2], [3], [4]]), years)
    assert s[0] == 9 and p[0] == pytest.approx(2 * stats.norm.sf(9 / np.sqrt(282 / 18)))
    # pairwise slopes 1/5, 1/10, 2/15, 3/20, 0, 1/10, 2/15, 1/5, 2/10, 1/5: median (2/15 + 3/20) / 2
    assert slope[0] == pytest.approx((2 / 15 + 3 / 20) / 2)


def _series(years, shape, seed):
    rng = np.random.default_rng(seed)
    base = rng.integers(2000, 8000, shape)
    trend = rng.integers(-60, 60, shape)
    return [base + trend * k + rng.integers(-40, 40, shape) for k in range(len(years))]


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 20),
    st.integers(1, 20),
    st.data(),
)
def test_sums_and_trends_do_not_depend_on_the_chunking(h, w, data):
    years = [2000, 2004, 2008, 2012]
    raw = _series(years, (h, w), data.draw(st.integers(0, 10**6)))
    zone = data.draw(arrays(np.int32, (h, w), elements=st.integers(0, 3)))
    valid = data.draw(arrays(np.bool_, (h, w)))
    raw[1][data.draw(arrays(np.bool_, (h, w)))] = -3000  # nodata in one year
    chunkings = [(data.draw(st.integers(1, h)), data.draw(st.integers(1, w))) for _ in range(2)]
    areas = row_areas(np.linspace(800.0, 900.0, h), w)
    results = []
    for chunks in chunkings:
        q = [indicators.quantise(lazy(r, chunks), 0.0001, 0.0, 0.0001, -3000) for r in raw]
        trends = indicators.pixel_trends(q, years, 0.0001)
        cls = indicators.trend_class(trends, lazy(valid, chunks), 0.05)
        sums = {f"sum_{y}": indicators.summed(a, cls) for y, a in zip(years, q)}
        frame = group_sums({"zone": (lazy(zone, chunks), 4), "trend": (cls, indicators.NCLASSES)}, sums, areas)
        results.append((frame.compute(), trends.values, cls.values))
    pd.testing.assert_frame_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    np.testing.assert_array_equal(results[0][2], results[1][2])
    # the sums are the integer values of the counted pixels, by hand
    counted = results[0][2] >= indicators.STABLE
    frame = results[0][0]
    for y, r in zip(years, raw):
        assert frame[f"sum_{y}"].sum() == int(r[counted].sum())
    assert frame["pixels"].sum() == h * w


def test_zone_table_by_hand():
    # Two zones of 2 x 2 px, 900 m2 each; zone 1 rises 0.01 a year exactly, zone 2 is flat at 0.5 with one pixel
    # missing a year.
    years = [2000, 2001, 2002]
    zone = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    raw = [np.where(zone == 1, 3000 + 100 * k + np.array([[0, 10, 0, 0], [20, 30, 0, 0]]), 5000) for k in range(3)]
    raw[2][0, 3] = -3000
    q = [indicators.quantise(lazy(r, (2, 2)), 0.0001, 0.0, 0.0001, -3000) for r in raw]
    trends = indicators.pixel_trends(q, years, 0.0001)
    cls = indicators.trend_class(trends, lazy(np.ones((2, 4), bool), (2, 2)), 0.05)
    sums = {f"sum_{y}": indicators.summed(a, cls) for y, a in zip(years, q)}
    areas = constant_areas(900.0, (2, 4))
    frame = group_sums({"z": (lazy(zone, (2, 2)), 3), "trend": (cls, indicators.NCLASSES)}, sums, areas).compute()
    zones = pd.DataFrame({"number": [1, 2], "zone_id": ["a", "b"], "zone_name": ["A", "B"]})
    folded = fold_cells(frame, areas, list(sums))
    table = indicators.zone_table(folded, "z", zones, years, 0.0001, "ndvi", "NDVI").set_index("zone_id")
    # zone a: means (0.300 + 0.301 + 0.302 + 0.303) / 4 + 0.01 k = 0.3015, 0.3115, 0.3215
    np.testing.assert_allclose(table.loc["a", ["mean_2000", "mean_2001", "mean_2002"]], [0.3015, 0.3115, 0.3215])
    assert table.loc["a", "sen_slope_per_yr"] == pytest.approx(0.01)
    assert table.loc["a", "area_ha"] == pytest.approx(0.36) and table.loc["a", "indicator_missing_ha"] == 0
    # n = 3: S = 3, Var = 3 * 2 * 11 / 18, p = 0.2963 > 0.05: nothing greens significantly
    assert table.loc["a", "mk_p"] == pytest.approx(2 * stats.norm.sf(3 / np.sqrt(66 / 18)))
    assert table.loc["a", "greening_ha"] == 0 and table.loc["a", "greening_share"] == 0
    # zone b: 3 of 4 pixels counted, all 0.5; constant means: slope 0, p 1, no tau
    assert table.loc["b", "indicator_area_ha"] == pytest.approx(0.27)
    assert table.loc["b", "indicator_missing_ha"] == pytest.approx(0.09)
    np.testing.assert_allclose(table.loc["b", ["mean_2000", "mean_2001", "mean_2002"]], [0.5, 0.5, 0.5])
    assert table.loc["b", "sen_slope_per_yr"] == 0 and table.loc["b", "mk_p"] == 1
    assert np.isnan(table.loc["b", "mk_tau"])


def _run_folder(tmp_path, chunks: int = 64, ndvi_transform: Affine | None = None, years=(2000, 2005, 2010, 2015, 2020)):
    rng = np.random.default_rng(4)
    codes = np.array([11, 21, 31, 41, 51], np.uint8)
    lc = codes[rng.integers(0, 5, (150, 130))]
    write_raster(tmp_path / "a.tif", lc)
    write_raster(tmp_path / "b.tif", lc)
    files = {}
    for k, year in enumerate(years):
        # left half greens by 0.01 per 5 years (100 raw), right half flat, noise-free
        v = np.full((150, 130), 4000, np.int16)
        v[:, :65] += 100 * k
        v[:10, :10] = -3000
        write_raster(tmp_path / f"ndvi{year}.tif", v, nodata=-3000, transform=ndvi_transform)
        files[year] = f"ndvi{year}.tif"
    return write_config(
        tmp_path,
        epochs={2000: "a.tif", 2020: "b.tif"},
        indicators={"ndvi": {**files, "scale": 0.0001, "unit": "NDVI"}},
        dask={"chunks": chunks},
    )


def test_a_run_writes_the_series_tables_and_rasters_by_hand(tmp_path):
    cfg = _run_folder(tmp_path)
    run_pipeline(load_config(cfg), tmp_path / "out", progress=False)
    table = pd.read_csv(tmp_path / "out/tables/indicators_region.csv", encoding="utf-8-sig").iloc[0]
    # 150 x 130 px minus the 10 x 10 nodata corner; left half 65 columns rises 0.002/yr, right half flat.
    left, total = 150 * 65 - 100, 150 * 130 - 100
    means = [(left * (0.4 + 0.01 * k) + (total - left) * 0.4) / total for k in range(5)]
    np.testing.assert_allclose([table[f"mean_{y}"] for y in (2000, 2005, 2010, 2015, 2020)], means, rtol=1e-9)
    assert table["sen_slope_per_yr"] == pytest.approx(0.01 / 5 * left / total, rel=1e-9)
    assert table["greening_share"] == pytest.approx(left / total) and table["browning_share"] == 0
    with rasterio.open(tmp_path / "out/rasters/ndvi_sen_slope.tif") as ds:
        slope = ds.read(1)
        assert ds.dtypes[0] == "float32"
    assert np.isnan(slope[:10, :10]).all()
    np.testing.assert_allclose(slope[20:, :65], 0.002, rtol=1e-6)
    np.testing.assert_array_equal(slope[:, 65:], 0)
    with rasterio.open(tmp_path / "out/rasters/ndvi_mk_p.tif") as ds:
        p = ds.read(1)
    # S = 10, Var(S) = 16.667: p = 0.014306 where it rises; flat pixels p = 1
    np.testing.assert_allclose(p[20:, :65], 0.0143058, atol=1e-6)
    np.testing.assert_array_equal(p[20:, 65:], 1)


def test_tables_are_byte_identical_across_chunk_sizes(tmp_path):
    outs = []
    for chunks in (64, 100):
        folder = tmp_path / str(chunks)
        folder.mkdir()
        run_pipeline(load_config(_run_folder(folder, chunks)), folder / "out", progress=False, stages=["trends"])
        outs.append(folder / "out")
    for name in ("tables/indicators_region.csv", "rasters/ndvi_sen_slope.tif", "rasters/ndvi_mk_p.tif"):
        if name.endswith(".tif"):
            with rasterio.open(outs[0] / name) as a, rasterio.open(outs[1] / name) as b:
                np.testing.assert_array_equal(a.read(1), b.read(1))
        else:
            assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()


def test_a_series_on_another_grid_is_resampled_bilinearly_with_a_warning(tmp_path, caplog):
    # 15 m pixels over the same extent (twice the size): bilinear onto the 30 m grid
    cfg = _run_folder(tmp_path, ndvi_transform=Affine(15, 0, 500000, 0, -15, 3400000))
    for year in (2000, 2005, 2010, 2015, 2020):
        with rasterio.open(tmp_path / f"ndvi{year}.tif") as ds:
            v = ds.read(1)
        write_raster(
            tmp_path / f"ndvi{year}.tif",
            np.repeat(np.repeat(v, 2, 0), 2, 1),
            nodata=-3000,
            transform=Affine(15, 0, 500000, 0, -15, 3400000),
        )
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        run_pipeline(load_config(cfg), tmp_path / "out", progress=False, stages=["trends"])
    said = [r.getMessage() for r in caplog.records if "resampled bilinearly" in r.getMessage()]
    assert len(said) == 1 and "2000 (ndvi2000.tif)" in said[0] and "resolution 15 x 15 instead of 30 x 30" in said[0]
    with rasterio.open(tmp_path / "out/rasters/ndvi_sen_slope.tif") as ds:
        slope = ds.read(1)
    np.testing.assert_allclose(slope[20:140, 5:60], 0.002, rtol=1e-6)
