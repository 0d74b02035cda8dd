import tempfile
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import shapely
import shapely.affinity
import shapely.geometry
import xarray as xr
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS
from rasterio.features import shapes
from scipy import ndimage

from pipeline.io.parts import PartFolder
from pipeline.model.grid import Grid, pixel_areas
from pipeline.runner import redlines as redlines_runner
from pipeline.stages import redline as redline_module
from pipeline.stages.redline import (
    coverage,
    disc,
    disc_sum,
    gap_fill,
    gap_fill_mask,
    gi_star,
    hotspots,
    join_patches,
    label_patches,
    large_patches,
    level_stats,
    level_values,
    only,
    patch_anchors,
    patch_sizes,
    patch_table,
    redline_counts,
    vectorise,
)

UTM50 = CRS.from_epsg(32650)


def grid30(h, w):
    return Grid(UTM50, Affine(30, 0, 500000, 0, -30, 3400000), w, h)  # 0.09 ha pixels


def grid100(h, w):
    return Grid(UTM50, Affine(100, 0, 500000, 0, -100, 3400000), w, h)  # 1 ha pixels


def arr(a, chunks):
    return xr.DataArray(da.from_array(np.asarray(a), chunks=chunks), dims=("y", "x"))


# Density (t C/ha) and rate (t C/ha/yr) by class code, indexed by the raster value (0 = none).
DENS = np.array([np.nan, 60, 180, 70, 30, 10, 15, 5, 3], float)
RATE = np.array([np.nan, 0.3, -0.644, -0.021, -0.218, 2.0, 1.0, 1.5, -0.005])


def brute_gi(x, r):
    """Gi* by loops, straight from the formula."""
    valid = ~np.isnan(x)
    v = x[valid]
    n, mean, s = v.size, v.mean(), v.std()
    out = np.full(x.shape, np.nan)
    h, w = x.shape
    for i in range(h):
        for j in range(w):
            if not valid[i, j]:
                continue
            sx = wsum = 0.0
            for di in range(-r, r + 1):
                for dj in range(-r, r + 1):
                    a, b = i + di, j + dj
                    if di * di + dj * dj <= r * r and 0 <= a < h and 0 <= b < w and valid[a, b]:
                        sx += x[a, b]
                        wsum += 1
            den = s * np.sqrt((n * wsum - wsum**2) / (n - 1))
            out[i, j] = (sx - mean * wsum) / den if den > 0 else np.nan
    return out


def random_values(seed, shape=(13, 17)):
    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 30.0, shape)
    x[rng.random(shape) < 0.15] = np.nan
    return x


def gi(x, radius, chunks, stats=None):
    """``gi_star`` as a run computes it, each block with its halo cut from ``x`` (NaN beyond the edges); the
    stats of the valid pixels by default."""
    padded = np.pad(np.asarray(x, np.float64), radius, constant_values=np.nan)

    def window(r0, r1, c0, c1):
        return padded[r0 + radius : r1 + radius, c0 + radius : c1 + radius]

    v = padded[~np.isnan(padded)]
    stats = (v.size, v.mean(), v.std()) if stats is None else stats
    return gi_star(window, arr(x, chunks), radius, stats, float(np.abs(v).max())).values


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    radius=st.integers(1, 3),
    chunks=st.sampled_from([(4, 5), (13, 17), (3, 8), (1, 2), (2, 2)]),
)
def test_gi_star_matches_brute_force(seed, radius, chunks):
    x = random_values(seed)
    np.testing.assert_allclose(gi(x, radius, chunks), brute_gi(x, radius), rtol=0, atol=1e-9)


def test_gi_star_is_the_same_in_any_chunking():
    """Blocks smaller than the radius (each reads a halo wider than itself), uneven blocks, one block: the same
    z, bit for bit, and equal to the loops of the formula."""
    x = random_values(7)
    expected = brute_gi(x, 3)
    first = gi(x, 3, (13, 17))
    np.testing.assert_allclose(first, expected, rtol=0, atol=1e-9)
    assert np.array_equal(np.isnan(first), np.isnan(x))
    for chunks in [(1, 1), (2, 3), (5, 6), (13, 4)]:
        assert np.array_equal(gi(x, 3, chunks), first, equal_nan=True), chunks


def test_gi_star_by_strips_of_rows_is_the_whole_block_bit_for_bit(monkeypatch):
    """A block computed a strip of rows at a time (strips thinner than the radius, a last strip cut short):
    the same z as the block at once."""
    x = random_values(11)
    whole = gi(x, 3, (13, 17))
    for rows in (1, 2, 5):
        monkeypatch.setattr(redline_module, "GI_STRIP_ROWS", rows)
        assert np.array_equal(gi(x, 3, (13, 17)), whole, equal_nan=True), rows


def test_level_index_by_strips_of_rows(monkeypatch):
    """1 + the position among the sorted values, 0 for NaN, in strips of any height."""
    x = random_values(5).astype(np.float32)
    values = np.unique(x[~np.isnan(x)]).astype(np.float64)
    expected = np.where(np.isnan(x), 0, np.searchsorted(values, x.astype(np.float64)) + 1)
    for rows in (1, 4, 1000):
        monkeypatch.setattr(redlines_runner, "_INDEX_ROWS", rows)
        got = redlines_runner._level_index(x, values)
        assert got.dtype == np.uint32 and np.array_equal(got, expected), rows


def test_gi_star_constant_raster_is_nan_and_disc_has_centre():
    assert disc(1).sum() == 5 and disc(2).sum() == 13 and disc(0).sum() == 1
    assert np.isnan(gi(np.full((6, 6), 3.0), 1, 3)).all()


def test_level_stats_equal_pixel_stats():
    idx = np.random.default_rng(1).integers(0, 9, (20, 30))
    x = level_values(idx, DENS)
    n, mean, std = level_stats(np.bincount(idx.ravel(), minlength=9), DENS)
    v = x[~np.isnan(x)]
    assert n == v.size and mean == pytest.approx(v.mean(), rel=1e-14) and std == pytest.approx(v.std(), rel=1e-12)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    density=st.floats(0.3, 0.7),
    chunks=st.sampled_from([(1, 1), (2, 3), (4, 4), (5, 7), (13, 11)]),
)
def test_labels_partition_like_whole_array_label(seed, density, chunks):
    mask = np.random.default_rng(seed).random((13, 11)) < density
    lab, n = label_patches(arr(mask, chunks))  # one graph: the default
    lab, n = dask.compute(lab.data, n)
    ref, ref_n = ndimage.label(mask, np.ones((3, 3)))
    assert n == ref_n == lab.max(initial=0) and (lab[~mask] == 0).all()
    assert len(set(zip(ref[mask].tolist(), lab[mask].tolist()))) == ref_n  # same patches, other numbers


def run(
    cls,
    chunks,
    grid,
    zones,
    min_area_ha,
    radius=2,
    locked=None,
    lockout=None,
    key_zones=(),
    default_target=None,
    mask=None,
    idx=None,
):
    """The module wired as a run would: stats, z, hotspots, labels written once, one counting pass, tables.
    Projected grids are measured in their plane (``area: planar``), so pixels of 30 m are 0.09 ha."""
    areas = pixel_areas(grid, "ellipsoidal" if grid.crs.is_geographic else "planar")
    idx = cls if idx is None else idx
    c, ix = arr(cls, chunks), arr(idx, chunks)
    lk = None if locked is None else arr(locked, chunks)
    if mask is None:
        stats = level_stats(np.bincount(idx.ravel(), minlength=len(DENS)), DENS)  # from counts in a real run
        z = arr(gi(level_values(idx, DENS), radius, chunks, stats), chunks)
        mask = hotspots(z, c, locked_out=None if lockout is None else arr(lockout, chunks))
    else:
        mask = arr(mask, chunks)
    (joined,) = dask.compute(join_patches(mask))  # first pass: edge labels only
    lab, n = label_patches(mask, joined)
    lab_np, n = dask.compute(lab.data, n)  # stands for the temporary GeoTIFF
    labels = arr(lab_np, chunks)
    zr = {name: (arr(z, chunks), int(z.max()) + 1) for name, z in zones.items()}
    counts, anchors = dask.compute(
        redline_counts(labels, int(n), c, areas, (ix, len(DENS)), zr, rate=(ix, len(RATE)), locked_in=lk),
        patch_anchors(labels),
    )
    table = patch_table(counts, anchors, grid, areas, min_area_ha, DENS, RATE, zone_names=list(zones))
    keep = table["label"].tolist()
    zone = list(zones)[-1]
    cover = coverage(counts, areas, zone, keep, key_zones, default_target=default_target)
    # As a run counts: densities and zones of the patches that may reach the minimum area only.
    (sizes,) = dask.compute(patch_sizes(labels, int(n), areas))
    large = large_patches(sizes, areas, min_area_ha)
    assert set(keep) <= set(large.tolist()) and (sizes.groupby("label")["pixels"].sum() > 0).all()
    (few,) = dask.compute(
        redline_counts(only(labels, large), int(n), c, areas, (ix, len(DENS)), zr, rate=(ix, len(RATE)), locked_in=lk)
    )
    assert len(few) <= len(counts)
    pd.testing.assert_frame_equal(
        patch_table(few, anchors, grid, areas, min_area_ha, DENS, RATE, zone_names=list(zones)), table
    )
    pd.testing.assert_frame_equal(coverage(few, areas, zone, keep, key_zones, default_target=default_target), cover)
    fill, thresholds = gap_fill(counts, cover, areas, zone, keep, DENS)
    pd.testing.assert_frame_equal(gap_fill(few, cover, areas, zone, keep, DENS)[0], fill)
    gap = gap_fill_mask(labels, keep, c, ix, DENS, zr[zone][0], thresholds, lk).values
    with tempfile.TemporaryDirectory() as parts:
        polygons = vectorise(labels, keep, grid, PartFolder(Path(parts))).frame()
    return {
        "mask": mask.values,
        "table": table,
        "cover": cover,
        "fill": fill,
        "thresholds": thresholds,
        "gap": gap,
        "polygons": polygons,
        "labels": lab_np,
    }


def hotspot_raster():
    cls = np.full((40, 40), 3, np.uint8)  # grassland, 70 t C/ha
    cls[7:21, 9:23] = 1  # a ring of cropland (60 t C/ha) three pixels wide ...
    cls[10:18, 12:20] = 2  # ... around an 8 x 8 forest block (180 t C/ha)
    return cls


@pytest.mark.parametrize("chunks", [(40, 40), (7, 9)])
def test_known_hotspot_block_found_with_hand_area_and_stock(chunks):
    out = run(hotspot_raster(), chunks, grid30(40, 40), {"county": np.ones((40, 40), np.int32)}, min_area_ha=1.0)
    expected = np.zeros((40, 40), bool)
    expected[10:18, 12:20] = True
    np.testing.assert_array_equal(out["mask"], expected)
    (row,) = out["table"].to_dict("records")
    assert row["patch_id"] == 1 and row["pixels"] == 64
    assert row["area_ha"] == pytest.approx(64 * 0.09) and row["stock_tC"] == pytest.approx(5.76 * 180)
    assert row["density_tC_ha"] == pytest.approx(180) and row["sink_tC_yr"] == pytest.approx(5.76 * 0.644)
    assert (row["first_row"], row["first_col"], row["county"], row["county_share"]) == (10, 12, 1, 1.0)
    assert out["polygons"].area.iloc[0] == pytest.approx(64 * 900)
    assert shapely.equals(
        out["polygons"].geometry.iloc[0],
        shapely.box(500000 + 12 * 30, 3400000 - 18 * 30, 500000 + 20 * 30, 3400000 - 10 * 30),
    )


def test_lock_out_removes_pixels():
    lockout = np.zeros((40, 40), bool)
    lockout[10:12, 12:20] = True
    out = run(
        hotspot_raster(),
        (7, 9),
        grid30(40, 40),
        {"county": np.ones((40, 40), np.int32)},
        min_area_ha=1.0,
        lockout=lockout,
    )
    assert out["mask"].sum() == 48 and not out["mask"][lockout].any()
    assert out["table"]["pixels"].tolist() == [48]


def test_minimum_area_just_above_and_below():
    mask = np.zeros((12, 16), bool)
    mask[1:4, 1:5] = True  # 12 pixels = 1.08 ha
    mask[7:8, 2:13] = True  # 11 pixels = 0.99 ha
    cls = np.full((12, 16), 2, np.uint8)
    zones = {"county": np.ones((12, 16), np.int32)}

    def areas(limit):
        return run(cls, (5, 6), grid30(12, 16), zones, min_area_ha=limit, mask=mask)["table"]["pixels"].tolist()

    assert areas(1.08) == [12]
    assert areas(1.0801) == []
    assert areas(0.99) == [12, 11]  # ranked by stock


def coverage_case():
    """Zone 1: 100 px of 1 ha (columns 0-9); zone 2: columns 10-11, no target."""
    h, w = 10, 12
    cls = np.full((h, w), 2, np.uint8)
    idx = np.full((h, w), 3, np.uint8)  # 70 t C/ha by default
    mask = np.zeros((h, w), bool)
    mask[0:4, 0:10] = True  # candidates: 40 px
    locked = np.zeros((h, w), bool)
    locked[3:6, 0:10] = True  # locked in: 30 px, 10 shared with the candidates
    idx[6, 0:10] = 2  # 180 t C/ha: 10 ha
    idx[7, 0:5] = 8  # 3 t C/ha: 5 ha ... lowest densities, so change the table below
    cls[7, 5:10] = 1  # cropland, never filled
    idx[7, 5:10] = 1
    idx[8:10, 0:10] = 4  # 30 t C/ha: 20 ha
    idx[:, 10:12] = 2  # 180 t C/ha in zone 2: another zone, never used for zone 1
    zone = np.ones((h, w), np.int32)
    zone[:, 10:12] = 2
    return cls, idx, mask, locked, zone


def test_coverage_and_gap_fill_by_hand():
    cls, idx, mask, locked, zone = coverage_case()
    idx[7, 0:5] = 3  # 70 t C/ha: the second level
    out = run(
        cls,
        (4, 5),
        grid100(10, 12),
        {"ecozone": zone},
        min_area_ha=1.0,
        locked=locked,
        key_zones=[1],
        mask=mask,
        idx=idx,
    )
    assert out["table"][["pixels", "locked_in_ha"]].values.tolist() == [[40, 10]]  # keeps its protected part
    cover = out["cover"].set_index("zone")
    assert cover.loc[1, ["zone_area_ha", "candidate_ha", "locked_in_ha", "covered_ha"]].tolist() == [100, 40, 30, 60]
    assert cover.loc[1, "share"] == pytest.approx(0.6) and cover.loc[1, "target_share"] == pytest.approx(0.7384)
    assert cover.loc[1, "shortfall_ha"] == pytest.approx(13.84) and not cover.loc[1, "met"]
    assert np.isnan(cover.loc[2, "target_share"]) and cover.loc[2, "shortfall_ha"] == 0 and pd.isna(cover.loc[2, "met"])
    (fill,) = out["fill"].to_dict("records")
    # 180 t C/ha first (10 ha, still 3.84 short), then the whole 70 t C/ha level (5 ha): 15 ha, 1.16 ha over.
    assert fill["zone"] == 1 and fill["added_ha"] == pytest.approx(15) and fill["threshold_density_tC_ha"] == 70
    assert fill["added_stock_tC"] == pytest.approx(10 * 180 + 5 * 70) and fill["met_after"]
    assert fill["share_after"] == pytest.approx(0.75) and fill["remaining_shortfall_ha"] == 0
    expected = np.zeros_like(mask)
    expected[6, 0:10] = expected[7, 0:5] = True
    np.testing.assert_array_equal(out["gap"], expected)
    assert out["thresholds"] == {1: 70.0}


def test_gap_fill_mask_in_the_last_zone_a_byte_holds():
    """Zone numbers come as uint8 for up to 255 zones: a threshold for zone 255 (the look-up then has 257
    slots) fills that zone's dense allowed land and nothing in zones without a threshold."""
    from pipeline.model.classes import FOREST

    def raster(values, dtype):
        return xr.DataArray(da.from_array(np.array([values], dtype), chunks=(1, 2)), dims=("y", "x"))

    labels = raster([0, 0, 0, 0], np.int32)
    classes = raster([FOREST] * 4, np.uint8)
    density_index = raster([1, 2, 2, 2], np.uint16)  # 10 and 80 t C/ha
    zones = raster([255, 255, 254, 0], np.uint8)
    table = np.array([np.nan, 10.0, 80.0])
    got = gap_fill_mask(labels, [], classes, density_index, table, zones, {255: 50.0}).values
    assert got.tolist() == [[False, True, False, False]]


def test_gap_fill_reports_what_it_cannot_close():
    cls, idx, mask, locked, zone = coverage_case()
    cls[6:10, 0:10] = 1  # no allowed land left in zone 1
    out = run(
        cls,
        (10, 12),
        grid100(10, 12),
        {"ecozone": zone},
        min_area_ha=1.0,
        locked=locked,
        key_zones=[1],
        mask=mask,
        idx=idx,
    )
    (fill,) = out["fill"].to_dict("records")
    assert fill["added_ha"] == 0 and not fill["met_after"] and fill["remaining_shortfall_ha"] == pytest.approx(13.84)
    assert not out["gap"].any() and out["thresholds"] == {}


@pytest.mark.parametrize("chunks", [(4, 4), (8, 8), (3, 5)])
def test_patch_across_chunk_edge_and_diagonal_corner_is_one(chunks):
    mask = np.zeros((8, 8), bool)
    mask[1:7, 1] = True  # crosses the row edge between 3 and 4
    mask[2, 3] = mask[3, 3] = mask[4, 4] = mask[4, 5] = True  # (3,3)-(4,4): only a corner, at the chunk corner
    out = run(
        np.full((8, 8), 2, np.uint8),
        chunks,
        grid30(8, 8),
        {"county": np.ones((8, 8), np.int32)},
        min_area_ha=0.01,
        mask=mask,
    )
    assert out["table"]["pixels"].tolist() == [6, 4]
    polys = out["polygons"].geometry
    assert len(polys) == 2 and shapely.is_valid(polys.values).all()
    assert polys.area.tolist() == pytest.approx([6 * 900, 4 * 900])
    assert polys.iloc[0].geom_type == "Polygon" and len(shapely.get_parts(polys.iloc[1])) == 2


def test_geographic_grid_areas_from_row_areas():
    geo = Grid(CRS.from_epsg(4326), Affine(0.001, 0, 110, 0, -0.001, 45.0), 10, 12)
    mask = np.zeros((12, 10), bool)
    mask[2:9, 3:6] = True  # 7 rows x 3 columns
    out = run(
        np.full((12, 10), 2, np.uint8), (5, 4), geo, {"county": np.ones((12, 10), np.int32)}, min_area_ha=0.1, mask=mask
    )
    (row,) = out["table"].to_dict("records")
    area = pixel_areas(geo).area_m2[2:9, 0].sum() * 3 / 1e4
    assert row["area_ha"] == pytest.approx(area) and row["stock_tC"] == pytest.approx(area * 180)
    assert out["polygons"].crs == geo.crs and shapely.is_valid(out["polygons"].geometry.iloc[0])


def varied_case():
    rng = np.random.default_rng(42)
    h, w = 60, 70
    smooth = ndimage.gaussian_filter(rng.normal(size=(h, w)), 4)
    q = np.quantile(smooth, [0.15, 0.3, 0.45, 0.55, 0.7])
    cls = np.select(
        [smooth < q[0], smooth < q[1], smooth < q[2], smooth < q[3], smooth < q[4]], [1, 3, 5, 4, 8], default=2
    ).astype(np.uint8)
    cls[rng.random((h, w)) < 0.03] = 6
    cls[0:3, 0:5] = 0
    ecozone = np.ones((h, w), np.int32)
    ecozone[:, 35:] = 2
    ecozone[40:, :] = 3
    county = np.where(np.arange(w)[None, :] < 20, 1, 2) * np.ones((h, 1), np.int32)
    locked = np.zeros((h, w), bool)
    locked[5:15, 40:55] = True
    lockout = np.zeros((h, w), bool)
    lockout[45:50, 10:30] = True
    return cls, {"county": county, "ecozone": ecozone}, locked, lockout


def test_outputs_identical_for_chunk_sizes():
    cls, zones, locked, lockout = varied_case()
    grid = grid30(*cls.shape)
    runs = [
        run(
            cls,
            c,
            grid,
            zones,
            min_area_ha=0.5,
            radius=3,
            locked=locked,
            lockout=lockout,
            key_zones=[1, 2],
            default_target=0.3,
        )
        for c in (7, 16, 64)
    ]
    first = runs[0]
    assert len(first["table"]) >= 3 and len(first["fill"]) >= 1 and first["gap"].any()
    assert first["table"]["rank"].tolist() == list(range(1, len(first["table"]) + 1))
    assert shapely.is_valid(first["polygons"].geometry.values).all()
    np.testing.assert_allclose(first["polygons"].area.to_numpy(), first["table"]["area_ha"].to_numpy() * 1e4)
    for other in runs[1:]:
        # Exact: the same bits whatever the chunking (patch labels differ; areas are not summed in their order).
        table = first["table"].drop(columns="label")
        pd.testing.assert_frame_equal(other["table"].drop(columns="label"), table, check_exact=True)
        pd.testing.assert_frame_equal(other["cover"], first["cover"], check_exact=True)
        pd.testing.assert_frame_equal(other["fill"], first["fill"], check_exact=True)
        assert other["thresholds"] == first["thresholds"]
        np.testing.assert_array_equal(other["mask"], first["mask"])
        np.testing.assert_array_equal(other["gap"], first["gap"])
        assert (
            shapely.to_wkb(other["polygons"].geometry.values).tolist()
            == shapely.to_wkb(first["polygons"].geometry.values).tolist()
        )


@pytest.mark.parametrize("radius", [1, 4, 7])
def test_disc_sum_is_the_exact_footprint_sum(radius):
    """Integer window sums by row prefix sums: equal to the direct footprint sum, negatives and prefix sums
    past 2**63 included (they wrap, the windows do not)."""
    rng = np.random.default_rng(radius)
    block = rng.integers(-(2**40), 2**40, (20, 300), dtype=np.int64)
    block += 2**55  # row prefix sums pass 2**63 (300 x 2**55), no window sum does (at most 149 x 2**55)
    got = disc_sum(block, radius)
    r, foot = radius, disc(radius)
    expected = np.zeros_like(block)
    for i in range(r, block.shape[0] - r):
        for j in range(r, block.shape[1] - r):
            expected[i, j] = sum(int(v) for v in block[i - r : i + r + 1, j - r : j + r + 1][foot])
    assert int(np.abs(block[0]).sum(dtype=object)) > 2**63
    np.testing.assert_array_equal(got, expected)
    counts = disc_sum((block > 0).astype(np.int32), radius)
    assert counts.dtype == np.int32 and counts[r, r] == ((block > 0)[: 2 * r + 1, : 2 * r + 1] & foot).sum()


def test_minimum_area_on_a_geographic_grid_is_in_hectares():
    """0.001 degree pixels at 30 N (about 1.07 ha each): a 3 x 3 hotspot (about 9.7 ha) is kept and a 2 x 2 one
    (about 4.3 ha) dropped at min_area_ha = 5. Areas from pyproj's geodesic polygon area (independent)."""
    from pyproj import Geod

    grid = Grid(CRS.from_epsg(4326), Affine(0.001, 0, 106.0, 0, -0.001, 30.0), 12, 10)
    mask = np.zeros((10, 12), bool)
    mask[1:4, 1:4] = True  # rows 1-3, cols 1-3
    mask[6:8, 7:9] = True  # rows 6-7, cols 7-8
    cls = np.where(mask, 2, 3).astype(np.uint8)

    def geodesic_ha(r0, r1, c0, c1):
        lons = [106 + c0 * 0.001, 106 + c1 * 0.001, 106 + c1 * 0.001, 106 + c0 * 0.001]
        lats = [30 - r0 * 0.001, 30 - r0 * 0.001, 30 - r1 * 0.001, 30 - r1 * 0.001]
        return abs(Geod(ellps="WGS84").polygon_area_perimeter(lons, lats)[0]) / 1e4

    big, small = geodesic_ha(1, 4, 1, 4), geodesic_ha(6, 8, 7, 9)
    assert 9.5 < big < 10 and 4 < small < 4.5
    table = run(cls, (4, 5), grid, {"county": np.ones((10, 12), np.int32)}, min_area_ha=5.0, mask=mask)["table"]
    assert table["pixels"].tolist() == [9]
    assert table["area_ha"].iloc[0] == pytest.approx(big, rel=1e-6)
    assert table["stock_tC"].iloc[0] == pytest.approx(big * 180, rel=1e-6)  # forest, 180 t C/ha
    both = run(cls, (4, 5), grid, {"county": np.ones((10, 12), np.int32)}, min_area_ha=4.0, mask=mask)["table"]
    assert sorted(both["area_ha"]) == pytest.approx([small, big], rel=1e-6)


def polygon_case() -> tuple[np.ndarray, list[int]]:
    """12 x 14 labels and the kept ones, in a deliberate order: every kind of patch shape and position."""
    lab = np.zeros((12, 14), np.int32)
    lab[1:6, 1:6] = 1  # 5 x 5 with a one-pixel hole, in one block or cut by several edges
    lab[3, 3] = 0
    lab[7:11, 2:13] = 2  # long: crosses one edge or several
    lab[8, 5:9] = 0  # a hole open to ... nothing: a bay from the top side of a 4-row band
    lab[7, 5:9] = 0
    lab[0, 8:14] = 3  # along the top and right raster edges
    lab[0:5, 13] = 3
    lab[2, 8] = lab[3, 9] = lab[4, 10] = 4  # diagonal neighbours only
    lab[5, 9] = lab[5, 11] = 4  # ... and a corner-to-corner fork
    lab[1, 11] = lab[11, 0] = 5  # one label in two separate places (as a zone of the gap fill)
    lab[11, 6] = 6  # a single pixel on the bottom edge
    lab[6, 7] = 7  # not kept
    lab[4:6, 6:8] = 8  # touches label 1 along an edge: its own polygon
    return lab, [5, 2, 8, 1, 6, 3, 4, 9]  # 9: kept but absent


def small(value) -> bool:
    """What a compute may bring back to the client: names, nothing, or arrays of integers (never geometries)."""
    if isinstance(value, (tuple, list)):
        return all(small(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.dtype != object or all(small(v) for v in value.ravel())
    return value is None or isinstance(value, str)


@pytest.mark.parametrize("join_blocks", [1, 3, 16])
@pytest.mark.parametrize("chunks", [(1, 1), (2, 3), (3, 2), (1, 14), (5, 4), (7, 9), (12, 14)])
def test_vectorise_matches_whole_raster_polygons_in_any_chunking(chunks, join_blocks, tmp_path, monkeypatch):
    lab, keep = polygon_case()
    grid = grid30(*lab.shape)
    monkeypatch.setattr(redline_module, "JOIN_BLOCKS", join_blocks)
    results = []

    def compute(*graphs):
        results.append(dask.compute(*graphs))
        return results[-1]

    polygons = vectorise(arr(lab, chunks), keep, grid, PartFolder(tmp_path), compute)
    # Polygons reach the client only through the parts, a part at a time: the computes bring back names.
    assert small(results) and len(results) == 3
    got = polygons.frame()
    # Reference: the whole array polygonised at once in pixel coordinates, each label's rings dissolved,
    # collinear vertices dropped and normalised there, then moved to the grid (30 m pixels on a whole-metre
    # origin: every coordinate exact).
    found = shapes(lab, mask=np.isin(lab, keep), connectivity=4, transform=Affine.identity())
    pieces: dict[int, list] = {}
    for g, v in found:
        pieces.setdefault(int(v), []).append(shapely.geometry.shape(g))
    assert got["label"].tolist() == keep and got.crs == grid.crs
    for label, geom in zip(keep, got.geometry):
        if label not in pieces:
            assert geom.is_empty
            continue
        expected = shapely.normalize(shapely.simplify(shapely.union_all(pieces[label]), 0.0))
        expected = shapely.affinity.affine_transform(expected, grid.transform.to_shapely())
        assert shapely.equals_exact(geom, expected, tolerance=0), label
        assert shapely.is_valid(geom) and geom.area == (lab == label).sum() * 900.0
    assert shapely.get_num_interior_rings(got.geometry.iloc[3]) == 1  # label 1 keeps its hole
    assert len(shapely.get_parts(got.geometry.iloc[6])) == 5  # label 4: five pixels meeting at corners
    assert len(shapely.get_parts(got.geometry.iloc[0])) == 2  # label 5: two places, one multipolygon


def test_join_groups_hold_at_most_so_many_blocks_unless_one_label_alone_is_in_more():
    count = np.array([2, 3, 9, 1, 1, 4, 2])
    assert redline_module._join_groups(count, 5) == [(0, 2), (2, 3), (3, 5), (5, 6), (6, 7)]
    assert redline_module._join_groups(count, 100) == [(0, 7)]
    assert redline_module._join_groups(np.zeros(0, np.int64), 5) == []


def whole_raster_polygons(lab: np.ndarray, keep: list[int], grid: Grid) -> dict[int, object]:
    """Reference: the whole array polygonised at once, each label's rings dissolved by a GEOS union, collinear
    vertices dropped and normalised, then moved to the grid."""
    pieces: dict[int, list] = {}
    for g, v in shapes(lab, mask=np.isin(lab, keep), connectivity=4, transform=Affine.identity()):
        pieces.setdefault(int(v), []).append(shapely.geometry.shape(g))
    return {
        v: shapely.affinity.affine_transform(
            shapely.normalize(shapely.simplify(shapely.union_all(p), 0.0)), grid.transform.to_shapely()
        )
        for v, p in pieces.items()
    }


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    density=st.floats(0.3, 0.8),
    chunks=st.sampled_from([(1, 1), (2, 3), (4, 4), (5, 7), (9, 6), (16, 16)]),
    join_blocks=st.sampled_from([1, 2, 16]),
)
def test_vectorise_of_random_patches_is_the_whole_raster_union_in_any_chunking(seed, density, chunks, join_blocks):
    # 8-connected patches of random pixels: many parts meeting only at corners, holes, islands in holes.
    rng = np.random.default_rng(seed)
    lab, n = ndimage.label(rng.random((16, 16)) < density, np.ones((3, 3)))
    keep = sorted(rng.permutation(np.arange(1, n + 1))[: max(1, n // 2)].tolist())
    grid = grid30(*lab.shape)
    with tempfile.TemporaryDirectory() as parts, pytest.MonkeyPatch.context() as m:
        m.setattr(redline_module, "JOIN_BLOCKS", join_blocks)
        lab = lab.astype(np.int32)
        got = vectorise(arr(lab, chunks), keep, grid, PartFolder(Path(parts)), dask.compute).frame()
    expected = whole_raster_polygons(lab, keep, grid)
    for label, geom in zip(got["label"], got.geometry):
        assert shapely.equals_exact(geom, expected[label], tolerance=0), label
        assert shapely.is_valid(geom) and geom.area == (lab == label).sum() * 900.0


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 11))
def test_corners_are_geos_simplify_at_zero_tolerance(seed, cut):
    """Random patches polygonised in two halves and joined have a vertex wherever a side crosses the cut;
    ``_corners`` drops those and every other vertex that does not turn, as GEOS's ``simplify(g, 0)`` does,
    a ring that starts on a straight side included."""
    a = (np.random.default_rng(seed).random((12, 12)) < 0.55).astype(np.uint8)
    halves = ((a[:, :cut], 0), (a[:, cut:], cut))
    pieces = [
        shapely.geometry.shape(g)
        for half, left in halves
        for g, _ in shapes(half, mask=half.astype(bool), connectivity=4, transform=Affine.translation(left, 0))
    ]
    joined = shapely.union_all(pieces)
    start_on_a_side = shapely.Polygon([(1, 0), (2, 0), (2, 2), (0, 2), (0, 0), (1, 0)])
    for g in (joined, start_on_a_side):
        expected = shapely.normalize(shapely.simplify(g, 0.0))
        assert shapely.normalize(redline_module._corners(g)).equals_exact(expected, 0)
