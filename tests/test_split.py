import dask.array as da
import numpy as np
import pytest
import shapely
import xarray as xr
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS
from scipy import ndimage

from pipeline.model.grid import Grid, PixelAreas, pixel_areas
from pipeline.stages.split import extent_mask, split_by_extent, split_by_patches

GRID = Grid(CRS.from_epsg(32650), Affine(100, 0, 500000, 0, -100, 3400000), 12, 10)
PLANAR = pixel_areas(GRID, "planar")  # 1 ha pixels


def classes(arr, chunks):
    return xr.DataArray(da.from_array(np.asarray(arr, np.uint8), chunks=chunks), dims=("y", "x"))


# A 10 x 12 raster: a town of 6 pixels (6 ha) cut by the chunk edges at row 5 and column 6, a diagonal
# 3-pixel village (8-connected), a lone pixel, and other construction (7) touching the town.
RASTER = np.ones((10, 12), np.uint8)
RASTER[4:6, 5:8] = 5  # town, straddles both chunk edges
RASTER[8, 0] = RASTER[9, 1] = RASTER[7, 2] = 6  # not 4-connected; is 8-connected only via (8,0)-(9,1)
RASTER[7, 2] = 5
RASTER[0, 11] = 5
RASTER[3, 5] = 7


@pytest.mark.parametrize("chunks", [(5, 6), (3, 4), (10, 12), (1, 1)])
def test_patch_rule_by_hand_across_chunk_edges(chunks):
    out = split_by_patches(classes(RASTER, chunks), PLANAR, min_area_ha=6).values
    expected = RASTER.copy()
    expected[4:6, 5:8] = 5  # 6 ha >= 6 ha: urban, although cut in four by the chunks
    expected[8, 0] = expected[9, 1] = 6  # 2 ha village: rural
    expected[7, 2] = 6  # 1 ha: rural
    expected[0, 11] = 6
    expected[3, 5] = 7  # other construction never joins a patch
    np.testing.assert_array_equal(out, expected)
    assert (split_by_patches(classes(RASTER, chunks), PLANAR, min_area_ha=6.01).values[4:6, 5:8] == 6).all()


def test_patch_threshold_in_pixels_uses_real_pixel_area():
    grid30 = Grid(GRID.crs, Affine(30, 0, 500000, 0, -30, 3400000), 12, 10)  # 0.09 ha pixels
    out = split_by_patches(
        classes(RASTER, (5, 6)), pixel_areas(grid30, "planar"), min_area_ha=0.54
    ).values  # = 6 pixels
    assert (out[4:6, 5:8] == 5).all() and out[8, 0] == 6
    out = split_by_patches(classes(RASTER, (5, 6)), pixel_areas(grid30, "planar"), min_area_ha=0.55).values
    assert (out[4:6, 5:8] == 6).all()


def test_patch_rule_on_a_geographic_grid_uses_row_areas():
    # 0.001 degree pixels at 60 N are about 111 m x 55.8 m = 0.62 ha; the town of 6 pixels is about 3.7 ha.
    geo = Grid(CRS.from_epsg(4326), Affine(0.001, 0, 10, 0, -0.001, 60.0), 12, 10)
    areas = pixel_areas(geo)
    area = areas.area_m2[4:6, 0].sum() * 3 / 1e4
    below = split_by_patches(classes(RASTER, (5, 6)), areas, min_area_ha=area * 0.999).values
    above = split_by_patches(classes(RASTER, (5, 6)), areas, min_area_ha=area * 1.001).values
    assert (below[4:6, 5:8] == 5).all() and (above[4:6, 5:8] == 6).all()


def test_extent_rule_pixel_centres(tmp_path):
    # Polygon covering x 500500..500650: centres of columns 5 (500550) and 6 (500650 on the edge) ...
    poly = shapely.box(500500, 3399000, 500651, 3400000)
    like = classes(RASTER, (5, 6))
    inside = extent_mask(np.array([poly]), GRID, like)
    np.testing.assert_array_equal(inside.values[0], [0] * 5 + [1, 1] + [0] * 5)
    out = split_by_extent(like, inside).values
    assert out[4, 5] == out[4, 6] == 5 and out[4, 7] == 6 and out[0, 11] == 6 and out[3, 5] == 7
    assert out[0, 0] == 1


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 30), st.integers(1, 30)),
    chunks=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    density=st.floats(0.2, 0.8),
    min_pixels=st.integers(1, 12),
    seed=st.integers(0, 2**31),
)
def test_patch_rule_equals_whole_raster_labelling_for_any_chunking(shape, chunks, density, min_pixels, seed):
    rng = np.random.default_rng(seed)
    arr = np.where(rng.random(shape) < density, rng.choice([5, 6], shape), rng.choice([1, 2, 7], shape)).astype(
        np.uint8
    )
    grid = Grid(GRID.crs, GRID.transform, shape[1], shape[0])
    out = split_by_patches(classes(arr, chunks), pixel_areas(grid, "planar"), min_area_ha=float(min_pixels)).values
    built = (arr == 5) | (arr == 6)
    # 8-neighbour patches (docs/methods/classes.md; FRAGSTATS' default), written out
    labels, _ = ndimage.label(built, [[1, 1, 1], [1, 1, 1], [1, 1, 1]])
    size = np.bincount(labels.ravel())
    expected = np.where(built, np.where(size[labels] >= min_pixels, 5, 6), arr)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("chunks", [(5, 6), (3, 4), (10, 12), (1, 1), (2, 7)])
def test_patch_area_is_summed_over_pixel_area_cells(chunks):
    """Cells of 2 x 3 pixels with areas 1 + i + j/2 ha (cell row i, cell column j), as an ellipsoidal lattice
    gives: the town's pixels (4-5, 5) lie in cell (2, 1), 3.5 ha each, and (4-5, 6-7) in cell (2, 2), 4 ha
    each: 2 x 3.5 + 4 x 4 = 23 ha, whatever the chunks."""
    i, j = np.meshgrid(np.arange(5), np.arange(4), indexing="ij")
    areas = PixelAreas((10, 12), (2, 3), (1 + i + j / 2) * 1e4, "ellipsoidal")
    assert (split_by_patches(classes(RASTER, chunks), areas, min_area_ha=23.0).values[4:6, 5:8] == 5).all()
    assert (split_by_patches(classes(RASTER, chunks), areas, min_area_ha=23.001).values[4:6, 5:8] == 6).all()
