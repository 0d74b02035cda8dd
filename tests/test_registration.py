"""Change that is not change: the misregistration check of the intervals tables, on hand-made pairs
worked out by hand, across chunkings, and on the CORINE Vaud pair resampled with nearest neighbour."""

from __future__ import annotations

import logging
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from dask.core import get_dependencies

from pipeline.config import load_config
from pipeline.runner.run import run_pipeline
from pipeline.stages import registration

from .conftest import array_window, write_config, write_raster

CROPLAND, FOREST, URBAN = 11, 21, 51  # CNLUCC codes of classes 1, 2 and 5


def shifted_pair() -> tuple[np.ndarray, np.ndarray]:
    """128 x 64: cropland | forest split at column 32, an urban block in rows 20-59, columns 5-14; the
    later epoch is the earlier one moved one pixel to the right (column 0 kept).

    Changed by hand: column 32 (forest -> cropland) 128 px, column 5 (urban -> cropland) 40 px,
    column 15 (cropland -> urban) 40 px = 208, each taking its left neighbour's earlier class."""
    a = np.full((128, 64), CROPLAND, np.uint8)
    a[:, 32:] = FOREST
    a[20:60, 5:15] = URBAN
    b = a.copy()
    b[:, 1:] = a[:, :-1]
    return a, b


def genuine_pair() -> tuple[np.ndarray, np.ndarray]:
    """40 x 40 cropland with urban land in rows 14-25, columns 8-13 in both epochs; the later epoch adds a
    12 x 12 urban block beside it (rows 14-25, columns 14-25) = 144 changed px. Only column 14 (12 px)
    touches the old urban land; the other 132 px have cropland all round."""
    a = np.full((40, 40), CROPLAND, np.uint8)
    a[14:26, 8:14] = URBAN
    b = a.copy()
    b[14:26, 14:26] = URBAN
    return a, b


def kinds(a: np.ndarray, b: np.ndarray, chunks: int, zones: np.ndarray | None = None) -> dict:
    def arr(x: np.ndarray) -> xr.DataArray:
        return xr.DataArray(da.from_array(x, chunks=chunks), dims=("y", "x"))

    keys = {} if zones is None else {"zone_a": (arr(zones), int(zones.max()) + 1)}
    return registration.kind_counts(registration.change_kind(array_window(a, 0), arr(b)), keys).compute()


@pytest.mark.parametrize("chunks", [7, 16, 128])
def test_a_one_pixel_shift_is_all_misregistration_whatever_the_chunks(chunks):
    a, b = shifted_pair()
    zones = np.where(np.arange(64) < 32, 1, 2).astype(np.uint8)[None, :].repeat(128, axis=0)
    counts = kinds(a, b, chunks, zones)
    # region (row 1): 208 changed, all with the new class beside them, none amid uniform land
    assert counts[None].tolist() == [[0, 0, 0, 0], [0, 208, 0, 0]]
    # zone 1 (columns 0-31): the urban block's two edges, 80 px; zone 2: column 32, 128 px
    assert counts["zone_a"].tolist() == [[0, 0, 0, 0], [0, 80, 0, 0], [0, 128, 0, 0]]
    row = registration.registration_columns(counts[None], np.array([1])).iloc[0]
    assert (row.changed_pixels, row.changed_with_earlier_class_nearby_pixels) == (208, 208)
    assert row.neighbour_share == 1.0 and row.registration_check == "suspect"


@pytest.mark.parametrize("chunks", [5, 40])
def test_a_genuine_block_amid_uniform_land_is_not_flagged(chunks):
    counts = kinds(*genuine_pair(), chunks)
    assert counts[None].tolist() == [[0, 0, 0, 0], [0, 12, 132, 0]]
    row = registration.registration_columns(counts[None], np.array([1])).iloc[0]
    assert row.neighbour_share == pytest.approx(12 / 144) and row.registration_check == "pass"


def test_nodata_and_the_raster_edge_are_not_neighbours():
    a = np.array([[0, 2, 2], [1, 1, 1], [1, 1, 1]], np.uint8)
    b = np.array([[0, 2, 2], [2, 1, 1], [1, 1, 1]], np.uint8)  # (1, 0): 1 -> 2, class 2 at (0, 1)
    assert kinds(a, b, 2)[None][1].tolist() == [0, 1, 0, 0]
    b = np.array([[0, 2, 2], [1, 1, 1], [1, 1, 3]], np.uint8)  # (2, 2): 1 -> 3 amid class 1 and the edge
    assert kinds(a, b, 2)[None][1].tolist() == [0, 0, 1, 0]
    b = np.array([[0, 2, 2], [1, 1, 1], [3, 1, 1]], np.uint8)  # (2, 0): 1 -> 3 amid 1 only: uniform
    assert kinds(a, b, 2)[None][1].tolist() == [0, 0, 1, 0]
    b = np.array([[0, 2, 2], [1, 1, 3], [1, 1, 1]], np.uint8)  # (1, 2): 1 -> 3 beside class 2: other
    assert kinds(a, b, 2)[None][1].tolist() == [0, 0, 0, 1]
    assert registration.registration_columns(kinds(a, b, 2)[None], np.array([1])).registration_check[0] == "n/a"


def test_each_block_reads_its_own_halo_and_depends_on_no_other_block():
    """What keeps memory flat in the raster's size: a block of kinds is one task on one block of the later
    epoch (its halo of the earlier epoch read by the task), so the scheduler never holds neighbour blocks."""
    a, b = shifted_pair()
    later = xr.DataArray(da.from_array(b, chunks=32), dims=("y", "x"))
    kind = registration.change_kind(array_window(a, 0), later).data
    graph = dict(kind.__dask_graph__())
    blocks = [k for k in graph if isinstance(k, tuple) and k[0] == kind.name]
    assert len(blocks) == 4 * 2
    for key in blocks:
        upstream, todo = set(), [key]
        while todo:
            for d in get_dependencies(graph, todo.pop()):
                upstream.add(d)
                todo.append(d)
        later_blocks = {d for d in upstream if isinstance(d, tuple) and d[0] == later.data.name}
        assert later_blocks == {(later.data.name, *key[1:])}
    # and the kinds are those of the whole raster at once (the block edges hide nothing)
    whole = registration.kind_block(np.pad(a, 1), b)
    np.testing.assert_array_equal(kind.compute(), whole)


STAGES = ["transitions"]


def run_pair(tmp_path: Path, a: np.ndarray, b: np.ndarray, chunks: int) -> Path:
    folder = tmp_path / f"c{chunks}"
    epochs = {2000: str(write_raster(folder / "a.tif", a)), 2010: str(write_raster(folder / "b.tif", b))}
    cfg = write_config(folder, epochs=epochs, dask={"chunks": chunks}, area="planar")  # 0.09 ha pixels
    run_pipeline(load_config(cfg), folder / "out", progress=False, stages=STAGES)
    return folder / "out"


COLUMNS = [
    "changed_pixels",
    "changed_with_earlier_class_nearby_pixels",
    "changed_amid_uniform_land_pixels",
    "neighbour_share",
    "registration_check",
]


def test_runs_write_the_check_and_warn_only_on_the_shift(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    tables = []
    for chunks in (64, 256):  # two blocks of rows, one block
        out = run_pair(tmp_path, *shifted_pair(), chunks)
        tables.append(pd.read_csv(out / "tables/intervals_region.csv", encoding="utf-8-sig", keep_default_na=False))
    assert tables[0].equals(tables[1])
    assert tables[0][COLUMNS].iloc[0].tolist() == [208, 208, 0, 1.0, "suspect"]
    assert tables[0]["changed_area_ha"].iloc[0] == pytest.approx(208 * 0.09)
    warned = [r.getMessage() for r in caplog.records if "misregistration" in r.getMessage()]
    assert len(warned) == 2  # one per run
    assert "interval 2000-2010: 100.0 % of the changed pixels (208 of 208)" in warned[0]
    assert "co-register the epochs, or compare products on one grid" in warned[0]
    assert "ESA WorldCover v100 and v200" in warned[0]
    caplog.clear()
    out = run_pair(tmp_path / "genuine", *genuine_pair(), 64)
    table = pd.read_csv(out / "tables/intervals_region.csv", encoding="utf-8-sig", keep_default_na=False)
    assert table[COLUMNS].iloc[0].tolist() == [144, 12, 132, pytest.approx(1 / 12), "pass"]
    assert not [r for r in caplog.records if "misregistration" in r.getMessage()]


@pytest.mark.realdata
def test_corine_vaud_resampled_pair_is_flagged_and_the_one_grid_pair_is_not(real_data, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    d = real_data / "corine_vaud_pylandstats"
    shifted = {2006: str(d / "ls100_06.tif"), 2012: str(d / "ls100_12.tif")}
    cfg = write_config(tmp_path, epochs=shifted, scheme="corine", align="nearest")
    run_pipeline(load_config(cfg), tmp_path / "out", progress=False, stages=STAGES)
    t = pd.read_csv(tmp_path / "out/tables/intervals_region.csv", encoding="utf-8-sig", keep_default_na=False)
    # 2012 lies 0.61 and 1.44 px off the 2006 grid: 5,528 px "changed", 5,427 beside their new class
    assert t[COLUMNS].iloc[0].tolist() == [5528, 5427, 90, pytest.approx(5427 / 5528), "suspect"]
    assert t["displacement_ratio"].iloc[0] == pytest.approx(2.57, abs=0.01)  # the artefact it flags
    warned = [r.getMessage() for r in caplog.records if "misregistration" in r.getMessage()]
    assert len(warned) == 1 and "98.2 % of the changed pixels (5,427 of 5,528)" in warned[0]
    assert "epoch 2012 was resampled with nearest neighbour" in warned[0]
    # Change resampling alone makes: 5,440.3 px expected, 7.09 % of the 76,754 valid px, against 7.20 % changed.
    # Independent reference: on one grid (below) the same product and years change 0.15 %, and 7.20 - 7.09 =
    # 0.11 % is what is left for it here.
    alone = t[["resampling_changed_pixels", "resampling_changed_share"]].iloc[0].tolist()
    assert alone == [5440.3, pytest.approx(5440.3 / 76754, abs=1e-6)]
    assert (
        "resampling alone is expected to change 7.09 % of the valid pixels (5,440.3 of 76,754 px), against "
        "7.20 % (5,528 px) changed" in warned[0]
    )
    left = 5528 / 76754 - alone[1]
    # Negative control: the same product and years on one grid (250 m), no resampling: too little
    # change to judge (18 px, 13 of them beside their new class), and no warning.
    caplog.clear()
    aligned = {2006: str(d / "ls250_06.tif"), 2012: str(d / "ls250_12.tif")}
    cfg = write_config(tmp_path, epochs=aligned, scheme="corine", output="out250")
    run_pipeline(load_config(cfg), tmp_path / "out250", progress=False, stages=STAGES)
    t = pd.read_csv(tmp_path / "out250/tables/intervals_region.csv", encoding="utf-8-sig", keep_default_na=False)
    assert t[COLUMNS].iloc[0].tolist() == [18, 13, 5, pytest.approx(13 / 18), "n/a"]
    one_grid = t["changed_area_ha"].iloc[0] / t["area_ha"].iloc[0]  # 112.4 of 76,812 ha
    assert one_grid == pytest.approx(0.0015, abs=1e-4) and abs(left - one_grid) < 0.001
    assert t[["resampling_changed_pixels", "resampling_changed_share"]].iloc[0].tolist() == [0, 0]  # no resampling
    assert not [r for r in caplog.records if "misregistration" in r.getMessage()]
