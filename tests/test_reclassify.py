import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import BUILTIN_SCHEMES
from pipeline.errors import ConfigError
from pipeline.io.parameters import load_scheme
from pipeline.model.grid import PixelAreas
from pipeline.stages.counts import group_counts
from pipeline.stages.reclassify import (
    EXCLUDED_BY_OTHER,
    OUTSIDE_BOUNDARY,
    OWN_NODATA,
    UNKNOWN,
    UNKNOWN_CODE,
    VALID,
    _map_codes,
    apply_mask,
    common_valid,
    map_to_classes,
    pixel_status,
    status_counts,
    unknown_codes,
)

from .helpers import assert_file_error, per_row_histogram

# For each built-in scheme: a 2 x 4 block of product codes and the DESIGN.md classes expected, by hand
# from the product legends (see the header of each pipeline/schemes/*.csv).
HAND = {
    "cnlucc": ([[11, 24, 33, 44], [51, 52, 53, 64]], [[1, 2, 3, 8], [5, 6, 7, 4]]),
    "clcd": ([[1, 3, 4, 6], [8, 9, 5, 7]], [[1, 2, 3, 8], [5, 4, 4, 8]]),
    "esa_worldcover": ([[10, 20, 30, 40], [50, 95, 90, 100]], [[2, 2, 3, 1], [5, 2, 4, 3]]),
    "globeland30": ([[10, 20, 30, 40], [80, 50, 70, 100]], [[1, 2, 3, 2], [5, 4, 3, 8]]),
    "modis_igbp": ([[1, 7, 9, 12], [13, 11, 14, 16]], [[2, 2, 3, 1], [5, 4, 1, 8]]),
    "nlcd": ([[82, 41, 81, 90], [21, 24, 31, 11]], [[1, 2, 3, 4], [5, 5, 8, 4]]),
    "corine": ([[12, 15, 18, 35], [1, 3, 10, 41]], [[1, 2, 3, 4], [5, 7, 5, 4]]),
}


def lazy(codes, nodata=255, chunks=2, year=2000):
    arr = np.asarray(codes)
    return xr.DataArray(da.from_array(arr, chunks=chunks), dims=("y", "x"), attrs={"nodata": nodata, "year": year})


@pytest.mark.parametrize("name", BUILTIN_SCHEMES)
def test_builtin_scheme_by_hand(name):
    scheme = load_scheme(name)
    assert scheme.meta["source"] and scheme.meta["title"]  # every scheme cites its source
    codes, expected = HAND[name]
    got = map_to_classes(lazy(np.array(codes, np.uint8)), scheme).values
    np.testing.assert_array_equal(got, expected)


def test_cnlucc_three_digit_codes_and_int16():
    scheme = load_scheme("cnlucc")
    codes = np.array([[111, 124, 21, 0], [99, 52, 67, 46]], dtype=np.int16)
    got = map_to_classes(lazy(codes, nodata=0), scheme).values
    np.testing.assert_array_equal(got, [[1, 1, 2, 0], [0, 6, 8, 4]])


def test_int8_with_negative_nodata_and_unknown_codes():
    scheme = load_scheme("clcd")
    codes = np.array([[1, -128, 7, 42], [42, 2, -128, 100]], dtype=np.int8)
    mapped = map_to_classes(lazy(codes, nodata=-128), scheme)
    np.testing.assert_array_equal(mapped.values, [[1, 0, 8, UNKNOWN], [UNKNOWN, 2, 0, UNKNOWN]])
    assert unknown_codes(lazy(codes, nodata=-128), mapped).compute() == {42: 2, 100: 1}


def test_int32_codes_use_the_sorted_lookup():
    scheme = load_scheme("cnlucc")
    codes = np.array([[11, 70000], [-1, 52]], dtype=np.int32)
    np.testing.assert_array_equal(map_to_classes(lazy(codes, nodata=-1), scheme).values, [[1, UNKNOWN], [0, 6]])


def test_user_csv(tmp_path):
    path = tmp_path / "wuhan.csv"
    path.write_bytes("source_code,target_class,name\n3,1,cropland\n4,5,built-up\n6,4,eau\u00e9\n".encode("latin-1"))
    scheme = load_scheme(str(path))
    assert scheme.as_dict() == {3: 1, 4: 5, 6: 4} and scheme.labels[-1] == "eau\u00e9"


@pytest.mark.parametrize(
    "text, message",
    [
        ("code,class\n1,1\n", "missing ['source_code', 'target_class']"),
        ("source_code,target_class\n1,1\n1,2\n", "listed more than once: [1]"),
        ("source_code,target_class\n1,9\n2,1\n", "rows 2"),
        ("source_code,target_class\n1,x\n", "non-integer codes in rows 2"),
    ],
)
def test_user_csv_errors(tmp_path, text, message):
    assert_file_error(tmp_path / "s.csv", text, lambda path: load_scheme(str(path)), ConfigError, message)


@pytest.mark.parametrize("cells", [False, True])
def test_status_counts_are_the_counts_of_the_status_raster(cells):
    """Counted per class, validity and study area, then looked up: the frame of counting the status raster."""
    rng = np.random.default_rng(7)
    m = rng.choice(np.array([0, 1, 2, 5, 8, UNKNOWN], np.uint8), (23, 17))
    valid = (m != 0) & (m != UNKNOWN) & (rng.random((23, 17)) < 0.8)
    inside = rng.random((23, 17)) < 0.7
    areas = PixelAreas((23, 17), (3, 4), np.ones((8, 5)), "ellipsoidal") if cells else None
    for within in (None, lazy(inside)):
        counted = group_counts({"status": (pixel_status(lazy(m), lazy(valid), within), 5)}, areas).compute()
        pd.testing.assert_frame_equal(status_counts(lazy(m), lazy(valid), within, areas).compute(), counted)


def test_common_mask_and_status_by_hand():
    scheme = load_scheme("cnlucc")
    a = map_to_classes(lazy(np.array([[11, 255, 21], [77, 51, 52]], np.uint8)), scheme)
    b = map_to_classes(lazy(np.array([[12, 21, 255], [21, 51, 52]], np.uint8)), scheme)
    valid = common_valid([a, b])
    np.testing.assert_array_equal(valid.values, [[True, False, False], [False, True, True]])
    np.testing.assert_array_equal(
        pixel_status(a, valid).values, [[VALID, OWN_NODATA, EXCLUDED_BY_OTHER], [UNKNOWN_CODE, VALID, VALID]]
    )
    inside = xr.DataArray(np.array([[True, True, False], [True, False, True]])).chunk(2)
    np.testing.assert_array_equal(  # outside the study area whatever the class; the rest as without a boundary
        pixel_status(a, valid, inside).values,
        [[VALID, OWN_NODATA, OUTSIDE_BOUNDARY], [UNKNOWN_CODE, OUTSIDE_BOUNDARY, VALID]],
    )
    np.testing.assert_array_equal(apply_mask(b, valid).values, [[1, 0, 0], [0, 5, 6]])
    np.testing.assert_array_equal(
        per_row_histogram(apply_mask(b, valid), 9)[:, [0, 1, 5, 6]], [[2, 1, 0, 0], [1, 0, 1, 1]]
    )


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    chunk=st.tuples(st.integers(1, 17), st.integers(1, 17)),
    seed=st.integers(0, 2**31),
)
def test_class_counts_sum_to_valid_area_whatever_the_chunking(shape, chunk, seed):
    rng = np.random.default_rng(seed)
    scheme = load_scheme("cnlucc")
    pool = np.array([11, 12, 21, 31, 41, 51, 52, 53, 65, 255], np.uint8)
    epochs = [pool[rng.integers(0, len(pool), shape)] for _ in range(2)]
    results = []
    for chunks in (chunk, shape):
        mapped = [map_to_classes(lazy(e, chunks=chunks), scheme) for e in epochs]
        valid = common_valid(mapped)
        counts = [per_row_histogram(apply_mask(m, valid), 9) for m in mapped]
        results.append(counts)
        n_valid = int(valid.sum())
        for c in counts:
            assert c[:, 1:].sum() == n_valid  # class areas of an epoch sum to the valid area
            assert c.sum() == shape[0] * shape[1]
    for small, whole in zip(*results):
        np.testing.assert_array_equal(small, whole)


@pytest.mark.parametrize(
    ("dtype", "low", "high"),
    [
        (np.uint8, 0, 255),
        (np.int8, -128, 127),
        (np.uint16, 0, 65535),
        (np.int16, -32768, 32767),
        (np.int32, -(2**31), 2**31 - 1),
    ],
)
def test_codes_at_the_limits_of_their_type_are_mapped(dtype, low, high):
    """A scheme entry for the smallest and the largest value of the raster's type is used (the look-up table
    of small types spans the whole type), a code between them not in the scheme is UNKNOWN, and nodata is 0
    whatever the scheme says."""
    keys, values = np.array([low, low + 1, high - 1, high], np.int64), np.array([1, 2, 3, 4], np.uint8)
    block = np.array([[low, high, low + 1], [high - 1, low + 2, high]], dtype)
    np.testing.assert_array_equal(_map_codes(block, keys, values, None), [[1, 4, 2], [3, UNKNOWN, 4]])
    np.testing.assert_array_equal(_map_codes(block, keys, values, high), [[1, 0, 2], [3, UNKNOWN, 0]])
