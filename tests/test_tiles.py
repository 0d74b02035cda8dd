"""Rasters above `tiles.above_px` are written as COG tiles on a fixed grid with a VRT over them: the tiles
mosaic back to exactly the pixels written, each tile is a COG, the VRT's paths are relative, it has
overviews, maps read them, and everything is declared in the output specification and the manifest."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import dask
import numpy as np
import pytest
import rasterio
import rasterio.shutil
import xarray as xr
from affine import Affine
from matplotlib.image import imread
from rasterio.crs import CRS
from rasterio.enums import Resampling

from pipeline import spec
from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.io.cog import finish_rasters, raster_parts_task
from pipeline.io.staging import Staging
from pipeline.io.vrt import vrt_xml
from pipeline.model.grid import Grid
from pipeline.report import maps

from .conftest import read, write_config, write_raster
from .helpers import CNLUCC, cli, snapshot
from .test_pipeline import FULL_DENSITIES, same_tables

GRID = Grid(CRS.from_epsg(32650), Affine(30, 0, 500000, 0, -30, 3400000), 1100, 1300)


def _arrays() -> dict[str, np.ndarray]:
    """1300 x 1100 px: a float raster with NaN holes and a class raster with nodata, both irregular."""
    rng = np.random.default_rng(3)
    stock = rng.normal(100, 30, GRID.shape).astype(np.float32)
    stock[200:260, 700:1090] = np.nan
    landcover = rng.integers(1, 9, GRID.shape).astype(np.uint8)
    landcover[1000:, :30] = 0
    return {"stock_2000": stock, "landcover_2000": landcover}


def _write(out: Path, tile_size: int | None) -> Path:
    """The writer alone: staged parts (chunks of 300 px, which the 1024-px tiles cut across) -> outputs."""
    staging = Staging(out)
    for name, array in _arrays().items():
        nodata = np.nan if array.dtype == np.float32 else 0
        pixels = xr.DataArray(array, dims=("y", "x")).chunk(300)
        dask.compute(raster_parts_task(pixels, staging.path(f"rasters/{name}.vrt"), GRID, nodata))
    rasters = ["rasters/stock_2000.tif", "rasters/landcover_2000.tif"]
    dask.compute(finish_rasters(staging, rasters, True, tile_size))
    staging.commit()
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, Path]:
    """(single COGs, tiles of 1024 px) of the same arrays."""
    root = tmp_path_factory.mktemp("tiles")
    return _write(root / "single", None), _write(root / "tiled", 1024)


def test_tiles_and_vrt_are_named_as_declared(written):
    _, tiled = written
    files = sorted(p.relative_to(tiled).as_posix() for p in tiled.rglob("*") if p.is_file())
    # 1300 x 1100 px in tiles of 1024: 2 rows x 2 columns, written out by hand.
    expected = ["rasters/landcover_2000.qml", "rasters/landcover_2000.vrt"]
    expected += [f"rasters/landcover_2000/landcover_2000_r00{i}_c00{j}.tif" for i in (0, 1) for j in (0, 1)]
    expected += ["rasters/stock_2000.vrt"]
    expected += [f"rasters/stock_2000/stock_2000_r00{i}_c00{j}.tif" for i in (0, 1) for j in (0, 1)]
    assert files == expected  # no parts, temporaries or overview files left
    for f in files:
        assert spec.find(f) is not None, f


def test_the_vrt_mosaics_the_tiles_back_to_the_same_pixels(written):
    single, tiled = written
    for name, array in _arrays().items():
        with rasterio.open(tiled / f"rasters/{name}.vrt") as ds:
            assert (ds.width, ds.height, ds.count) == (1100, 1300, 1)
            assert ds.transform == GRID.transform and ds.crs == GRID.crs
            mosaic = ds.read(1)
            nodata = ds.nodata
        np.testing.assert_array_equal(mosaic, array)
        np.testing.assert_array_equal(mosaic, read(single / f"rasters/{name}.tif"))
        with rasterio.open(single / f"rasters/{name}.tif") as cog:
            assert nodata == cog.nodata or (np.isnan(nodata) and np.isnan(cog.nodata))


def test_each_tile_is_a_cog_of_its_window(written):
    single, tiled = written
    arrays = _arrays()
    for path in sorted(tiled.glob("rasters/*/*.tif")):
        name, i, j = re.fullmatch(r"(\w+_2000)_r(\d{3})_c(\d{3})", path.stem).groups()
        top, left = int(i) * 1024, int(j) * 1024
        with rasterio.open(path) as ds:
            assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert ds.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
            assert ds.profile["tiled"] and ds.block_shapes[0] == (512, 512)
            assert ds.transform == GRID.transform @ Affine.translation(left, top)
            # The whole raster's levels (1300 px halved until within a block: 650, 325), a tile of 276 x 76 too,
            # so that every level of the VRT is the tiles' levels side by side.
            assert ds.overviews(1) == [2, 4]
            np.testing.assert_array_equal(ds.read(1), arrays[name][top : top + 1024, left : left + 1024])
            with rasterio.open(single / f"rasters/{name}.tif") as cog:
                assert (ds.descriptions, ds.units, ds.tags(1)) == (cog.descriptions, cog.units, cog.tags(1))
                if name == "landcover_2000":
                    assert ds.colormap(1) == cog.colormap(1)
                    assert ds.tags(1)["CLASS_2"] == "2 forest"


def test_the_vrt_carries_the_meaning_and_overviews_of_the_raster(written):
    single, tiled = written
    for name in ("stock_2000", "landcover_2000"):
        with rasterio.open(single / f"rasters/{name}.tif") as cog, rasterio.open(tiled / f"rasters/{name}.vrt") as vrt:
            assert vrt.descriptions == cog.descriptions and vrt.units == cog.units
            assert vrt.tags(1) == cog.tags(1)
            # 1300 px: halved until the overview fits in one 512-px block, 650 then 325.
            assert vrt.overviews(1) == cog.overviews(1) == [2, 4]
            if name == "landcover_2000":  # a GeoTIFF's colour table has all 256 entries, the VRT those given
                assert cog.colormap(1) == {**dict.fromkeys(range(256), (0, 0, 0, 255)), **vrt.colormap(1)}
                assert len(vrt.colormap(1)) == 9
    assert (tiled / "rasters/landcover_2000.qml").read_bytes() == (single / "rasters/landcover_2000.qml").read_bytes()


def test_the_vrt_paths_are_relative_so_the_folder_can_move(written, tmp_path):
    _, tiled = written
    text = (tiled / "rasters/stock_2000.vrt").read_text(encoding="utf-8")
    sources = re.findall(r'<SourceFilename relativeToVRT="(\d)">([^<]+)</SourceFilename>', text)
    assert sorted(sources) == [("1", f"stock_2000/stock_2000_r00{i}_c00{j}.tif") for i in (0, 1) for j in (0, 1)]
    moved = tmp_path / "elsewhere"
    shutil.copytree(tiled, moved)
    np.testing.assert_array_equal(read(moved / "rasters/stock_2000.vrt"), _arrays()["stock_2000"])


def test_a_decimated_read_of_the_vrt_matches_the_cog(written):
    single, tiled = written
    shape = (325, 275)
    with (
        rasterio.open(single / "rasters/stock_2000.tif") as cog,
        rasterio.open(tiled / "rasters/stock_2000.vrt") as vrt,
    ):
        a = cog.read(1, out_shape=shape, resampling=Resampling.average)
        b = vrt.read(1, out_shape=shape, resampling=Resampling.average)
    np.testing.assert_allclose(b, a, rtol=1e-5, equal_nan=True)


def test_a_map_from_the_tiles_is_the_map_from_the_cog(written, tmp_path):
    single, tiled = written
    a = maps.stock_change_map(single / "rasters/stock_2000.tif", None, 2000, 2020, tmp_path / "a", "test")
    b = maps.stock_change_map(tiled / "rasters/stock_2000.vrt", None, 2000, 2020, tmp_path / "b", "test")
    np.testing.assert_array_equal(imread(b), imread(a))


def _with_distinct_overview(path: Path, full: np.ndarray, overview: np.ndarray, transform: Affine) -> Path:
    """A COG whose overview (factor 2) was built from ``overview``, its full resolution ``full``: what a read
    returns tells which level it came from."""
    staged = path.with_suffix(".staged.tif")
    profile = {"driver": "GTiff", "count": 1, "dtype": "float32", "crs": GRID.crs, "transform": transform}
    profile.update(width=full.shape[1], height=full.shape[0], nodata=np.nan, tiled=True, blockxsize=512, blockysize=512)
    with rasterio.open(staged, "w", **profile) as ds:
        ds.write(overview, 1)
        ds.build_overviews([2], Resampling.average)
        ds.write(full, 1)  # the overview stays as built
    rasterio.shutil.copy(staged, path, driver="COG", OVERVIEWS="FORCE_USE_EXISTING", BLOCKSIZE=512)
    return path


def test_maps_read_overviews_of_a_cog_and_of_a_tiled_vrt(tmp_path):
    ones, twos = np.ones((1024, 1024), np.float32), np.full((1024, 1024), 2, np.float32)
    cog = _with_distinct_overview(tmp_path / "cog.tif", ones, twos, GRID.transform)
    data, *_ = maps._overview(cog, max_cells=512)
    assert data.shape == (512, 512) and np.all(data == 2)  # the overview, not the full resolution
    tiles = [
        _with_distinct_overview(tmp_path / f"t{j}.tif", ones, twos, GRID.transform @ Affine.translation(1024 * j, 0))
        for j in (0, 1)
    ]
    grid = Grid(GRID.crs, GRID.transform, 2048, 1024)
    sources = [(t.name, 0, 1024 * j, 1024, 1024) for j, t in enumerate(tiles)]
    vrt = tmp_path / "mosaic.vrt"
    vrt.write_text(vrt_xml(grid, "float32", np.nan, sources, masked=False, relative=True, overviews=([2], "NEAREST")))
    data, *_ = maps._overview(vrt, max_cells=1024)
    assert data.shape == (512, 1024) and np.all(data == 2)


def test_tile_size_is_checked_at_the_entrance(tmp_path, two_epochs):
    write_config(two_epochs.parent, epochs={2000: "lc2000/*.tif"}, tiles={"size_px": 1000})
    with pytest.raises(ConfigError, match="multiple of 512"):
        load_config(two_epochs.parent / "config.yaml")
    write_config(two_epochs.parent, epochs={2000: "lc2000/*.tif"}, tiles={"size_px": 1024, "above": 5})
    with pytest.raises(ConfigError):
        load_config(two_epochs.parent / "config.yaml")
    write_config(two_epochs.parent, epochs={2000: "lc2000/*.tif"})
    assert load_config(two_epochs.parent / "config.yaml").tiles.model_dump() == {"above_px": 32768, "size_px": 32768}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """The whole pipeline on 1300 x 900 px, as single COGs and as tiles of 512 px (above 512 px)."""
    tmp = tmp_path_factory.mktemp("tiled_run")
    codes = np.array(sorted(c for c in CNLUCC if c != 99))
    rng = np.random.default_rng(11)
    a = rng.choice(codes, (1300, 900)).astype(np.uint8)
    b = np.where(rng.random((1300, 900)) < 0.2, 51, a).astype(np.uint8)
    write_raster(tmp / "lc2000.tif", a)
    write_raster(tmp / "lc2020.tif", b)
    (tmp / "d.csv").write_text(FULL_DENSITIES)
    settings = {
        "epochs": {2000: "lc2000.tif", 2020: "lc2020.tif"},
        "carbon": {"densities": "d.csv"},
        "rasters": ["landcover", "stock", "pathway", "stock_change"],
        "dask": {"chunks": 256},
    }
    write_config(tmp, **settings)
    assert cli("run", tmp / "config.yaml", "-o", tmp / "single") == 0
    write_config(tmp, **settings, tiles={"above_px": 512, "size_px": 512})
    assert cli("run", tmp / "config.yaml", "-o", tmp / "tiled") == 0
    return tmp / "single", tmp / "tiled"


def test_a_tiled_run_writes_what_the_spec_declares(runs):
    _, tiled = runs
    files = sorted(snapshot(tiled))
    assert [f for f in files if spec.find(f) is None] == []
    context = spec.RunContext(
        years=(2000, 2020),
        intervals=((2000, 2020),),
        layers=(),
        stages=frozenset(["ingest", "reclassify", "carbon", "transitions", "zonal", "trends", "report"]),
        rasters=frozenset(["landcover", "stock", "pathway", "stock_change"]),
        stock=True,
        balance_years=(2000, 2020),
        tiles=(3, 2),  # 1300 x 900 px in tiles of 512
    )
    assert files == spec.expected(context)
    # 2 epochs x 2 rasters + 1 interval x 2 rasters, each a VRT over 6 tiles; no single COG
    assert sum(f.endswith(".vrt") for f in files) == 6 and sum(f.endswith(".tif") for f in files) == 36
    assert "rasters/pathway_2000_2020/pathway_2000_2020_r002_c001.tif" in files
    assert "rasters/landcover_2020.qml" in files and "rasters/landcover_2020.tif" not in files
    manifest = json.loads((tiled / "manifest.json").read_text(encoding="utf-8"))
    listed = {o["path"]: o["sha256"] for o in manifest["outputs"]}
    checksums = snapshot(tiled)
    assert {f: listed[f] for f in files if f != "manifest.json"} == {
        f: checksums[f] for f in files if f != "manifest.json"
    }
    assert manifest["config"]["tiles"] == {"above_px": 512, "size_px": 512}


def test_a_tiled_run_has_the_pixels_tables_and_maps_of_a_single_one(runs):
    single, tiled = runs
    same_tables(single, tiled)
    for cog in sorted((single / "rasters").glob("*.tif")):
        np.testing.assert_array_equal(read(tiled / "rasters" / f"{cog.stem}.vrt"), read(cog), err_msg=cog.name)
    for png in sorted((single / "maps").glob("stock_change_*.png")):
        np.testing.assert_array_equal(imread(tiled / "maps" / png.name), imread(png), err_msg=png.name)


def test_a_tile_task_run_twice_leaves_one_whole_tile(tmp_path):
    """A task rerun after its worker was lost, and a temporary of one that died mid-write: one tile remains."""
    from pipeline.io import cog
    from pipeline.model.tiles import tiles

    staging = Staging(tmp_path / "out")
    array = _arrays()["stock_2000"]
    pixels = xr.DataArray(array, dims=("y", "x")).chunk(300)
    parts = staging.path("rasters/stock_2000.vrt")
    dask.compute(raster_parts_task(pixels, parts, GRID, np.nan))
    first = tiles(1100, 1300, 1024)[0]
    tile = staging.root / "rasters/stock_2000/stock_2000_r000_c000.tif"
    meaning = spec.BY_KEY["stock"].band
    cog._finish_tile(parts, tile, first, meaning, None, None, "AVERAGE", [2, 4])
    once = tile.read_bytes()
    cog._finish_tile(parts, tile, first, meaning, None, None, "AVERAGE", [2, 4])
    assert tile.read_bytes() == once
    (tile.parent / ".stock_2000_r000_c000.0123abcd.tif").write_bytes(once[:1000])  # a dead task's
    dask.compute(finish_rasters(staging, ["rasters/stock_2000.tif"], True, 1024))
    # Rerun once the VRT over the tiles has replaced the parts' (the worker holding the VRT's task was lost,
    # so the tiles it waited on run again): nothing left to do, nothing left behind.
    cog._finish_tile(parts, tile, first, meaning, None, None, "AVERAGE", [2, 4])
    staging.commit()
    out = tmp_path / "out"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == sorted(
        [
            "rasters",
            "rasters/stock_2000",
            *(f"rasters/stock_2000/stock_2000_r00{i}_c00{j}.tif" for i in (0, 1) for j in (0, 1)),
            "rasters/stock_2000.vrt",
        ]
    )
    assert (out / "rasters/stock_2000/stock_2000_r000_c000.tif").read_bytes() == once
    np.testing.assert_array_equal(read(out / "rasters/stock_2000.vrt"), array)


def test_tiles_without_overviews(tmp_path):
    """`overviews: false`: tiles and VRT without overview levels, the same pixels."""
    staging = Staging(tmp_path / "out")
    array = _arrays()["landcover_2000"]
    dask.compute(
        raster_parts_task(
            xr.DataArray(array, dims=("y", "x")).chunk(300), staging.path("rasters/landcover_2000.vrt"), GRID, 0
        )
    )
    dask.compute(finish_rasters(staging, ["rasters/landcover_2000.tif"], False, 1024))
    staging.commit()
    out = tmp_path / "out/rasters"
    with rasterio.open(out / "landcover_2000.vrt") as vrt:
        assert vrt.overviews(1) == [] and "OverviewList" not in (out / "landcover_2000.vrt").read_text()
        np.testing.assert_array_equal(vrt.read(1), array)
    for tile in out.glob("landcover_2000/*.tif"):
        with rasterio.open(tile) as ds:
            assert ds.overviews(1) == [] and ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    assert len(list(out.glob("landcover_2000/*.tif"))) == 4


def test_a_single_cog_task_run_twice_leaves_one_whole_cog(tmp_path):
    """The untiled raster's task rerun after its worker was lost (its COG written, its parts gone), and
    rerun before it removed its parts: the same COG either way, and no parts or temporaries left."""

    staging = Staging(tmp_path / "out")
    array = _arrays()["stock_2000"]
    parts = staging.path("rasters/stock_2000.vrt")
    dask.compute(raster_parts_task(xr.DataArray(array, dims=("y", "x")).chunk(300), parts, GRID, np.nan))
    final = staging.path("rasters/stock_2000.tif")
    (task,) = finish_rasters(staging, ["rasters/stock_2000.tif"], True)
    kept = {p: p.read_bytes() for p in parts.parent.rglob("*") if p.is_file()}  # the parts, to stage a rerun
    dask.compute(task)
    once = final.read_bytes()
    dask.compute(task)  # finished already: nothing to do
    assert final.read_bytes() == once
    for path, content in kept.items():  # lost after the rename, before the parts were removed
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    dask.compute(task)
    assert final.read_bytes() == once
    assert sorted(p.name for p in final.parent.iterdir()) == ["stock_2000.tif"]
    np.testing.assert_array_equal(read(final), array)
