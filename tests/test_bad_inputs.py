"""The bad-input and fault catalogue: each case gets exit code 1, one line naming the file and what to do,
and an output folder byte for byte as it was (or, for a run that succeeds, exactly the new run's files)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from rasterio.warp import transform_bounds

from .conftest import write_config, write_raster
from .helpers import cli, snapshot


def one_error_line(capsys, *needles: str) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


@pytest.fixture(scope="module")
def finished_once(tmp_path_factory) -> Path:
    """A finished run of two small epochs in <folder>/out, made once per module."""
    folder = tmp_path_factory.mktemp("finished")
    rng = np.random.default_rng(3)
    codes = np.array([11, 21, 31, 41, 51, 52], np.uint8)
    write_raster(folder / "a.tif", codes[rng.integers(0, 6, (40, 50))])
    write_raster(folder / "b.tif", codes[rng.integers(0, 6, (40, 50))])
    cfg = write_config(folder, epochs={2000: "a.tif", 2020: "b.tif"})
    assert cli("run", cfg) == 0
    return folder


@pytest.fixture
def finished(finished_once, tmp_path) -> Path:
    """A copy of that run's folder (inputs, config and output) for one test; returns the config."""
    shutil.copytree(finished_once, tmp_path, dirs_exist_ok=True)
    return tmp_path / "config.yaml"


def test_a_new_run_leaves_no_file_of_the_old_one(finished):
    out = finished.parent / "out"
    assert any(name.startswith("tables/transitions_") for name in snapshot(out))
    write_config(finished.parent, epochs={2000: "a.tif"})  # one epoch: no interval outputs
    assert cli("run", finished) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(snapshot(out)) == sorted([o["path"] for o in manifest["outputs"]] + ["manifest.json"])
    assert not any(name.startswith(("tables/transitions_", "rasters/pathway_")) for name in snapshot(out))
    assert not list(finished.parent.glob("out.previous")) and not list(finished.parent.glob(".out.staging-*"))


@pytest.mark.parametrize(
    "case",
    ["duplicate key", "syntax", "config is a folder", "output is a file", "huge grid", "unknown codes in one tile"],
)
def test_bad_input_is_one_line_and_the_output_stays(finished, capsys, case):
    tmp, before = finished.parent, snapshot(finished.parent / "out")
    capsys.readouterr()
    args: list[str] = []
    if case == "duplicate key":
        finished.write_text(finished.read_text().replace("name: test-region", "name: a\nname: b"), encoding="utf-8")
        first = finished.read_text().splitlines().index("name: a") + 1
        needles = [f"{finished}:{first + 1}:1:", f"key 'name' given twice (first on line {first})"]
    elif case == "syntax":
        finished.write_text("name: [a\nscheme: cnlucc\n", encoding="utf-8")
        needles = [f"{finished}:2:7:", "not valid YAML"]
    elif case == "config is a folder":
        finished = tmp
        needles = [str(tmp), "is a folder; give the config file"]
    elif case == "output is a file":
        (tmp / "a_file").write_text("x")
        args = ["--output", str(tmp / "a_file")]
        needles = [str(tmp / "a_file"), "is a file, not a folder"]
    elif case == "huge grid":
        (tmp / "huge.vrt").write_text(
            '<VRTDataset rasterXSize="1000000" rasterYSize="1000000"><SRS>EPSG:32650</SRS>'
            "<GeoTransform>500000, 30, 0, 3400000, 0, -30</GeoTransform>"
            '<VRTRasterBand dataType="Byte" band="1"><NoDataValue>255</NoDataValue><SimpleSource>'
            f'<SourceFilename relativeToVRT="0">{tmp / "a.tif"}</SourceFilename><SourceBand>1</SourceBand>'
            '<SrcRect xOff="0" yOff="0" xSize="50" ySize="40"/><DstRect xOff="0" yOff="0" xSize="50" ySize="40"/>'
            "</SimpleSource></VRTRasterBand></VRTDataset>"
        )
        write_config(tmp, epochs={2000: "huge.vrt", 2020: "huge.vrt"})
        needles = [str(tmp / "huge.vrt"), "1e+12 px", "dask.max_pixels"]
    else:  # unknown codes in the second of two tiles: validate names that tile
        write_raster(tmp / "tiles" / "w.tif", np.full((40, 25), 11, np.uint8))
        write_raster(
            tmp / "tiles" / "e.tif",
            np.full((40, 25), 77, np.uint8),
            transform=__import__("affine").Affine(30, 0, 500000 + 25 * 30, 0, -30, 3400000),
        )
        write_config(tmp, epochs={2000: "a.tif", 2020: "tiles/*.tif"})
        assert cli("validate", finished) == 1
        one_error_line(capsys, str(tmp / "tiles" / "e.tif"), "e.tif: 77 (1000 px)")
        return
    for command in (["validate", finished], ["run", finished, *args]):
        if command[0] == "validate" and args:
            continue
        assert cli(*command) == 1
        one_error_line(capsys, *needles)
        assert snapshot(tmp / "out") == before


def test_an_unwritable_folder_inside_the_output_stops_the_run_before_any_work(finished, capsys, monkeypatch):
    out = finished.parent / "out"
    before = snapshot(out)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(out / "rasters") else real(p, mode))
    capsys.readouterr()
    assert cli("run", finished) == 1
    one_error_line(capsys, str(out / "rasters"), "not writable", "chmod")
    assert snapshot(out) == before


# ---- inputs the pipeline already refused: each now also keeps the previous output byte for byte ---------


def _zones(tmp: Path, name: str = "z.gpkg", crs: str | None = "EPSG:32650", ids=("a", "b"), where=(0, 0)) -> Path:
    """Two square zones over the ``finished`` rasters (or shifted by ``where`` metres)."""
    import geopandas as gpd
    import shapely

    x0, y0 = 500000 + where[0], 3400000 - 1200 + where[1]
    boxes = [shapely.box(x0, y0, x0 + 750, y0 + 1200), shapely.box(x0 + 750, y0, x0 + 1500, y0 + 1200)]
    frame = gpd.GeoDataFrame({"code": list(ids)}, geometry=boxes[: len(ids)], crs=crs)
    with warnings.catch_warnings():  # a layer without a CRS is the point of one case
        warnings.simplefilter("ignore", UserWarning)
        frame.to_file(tmp / name, driver="GPKG")
    return tmp / name


def _case(tmp: Path, case: str) -> tuple[dict, list[str]]:
    """Write the inputs of a bad-input case; returns the config settings and what the one line must name."""
    epochs = {2000: "a.tif", 2020: "b.tif"}
    data = np.random.default_rng(9).choice(np.array([11, 21, 31], np.uint8), (40, 50))
    if case == "truncated tile":
        path = write_raster(tmp / "t.tif", np.tile(data, (8, 8)), tiled=True)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
        return {"epochs": {2000: "a.tif", 2020: "t.tif"}}, [str(path)]
    if case == "raster without CRS":
        write_raster(tmp / "n.tif", data, crs=None)
        return {"epochs": {2000: "a.tif", 2020: "n.tif"}}, [str(tmp / "n.tif"), "no CRS"]
    if case == "epochs that do not overlap":
        write_raster(tmp / "far.tif", data, transform=Affine(30, 0, 900000, 0, -30, 3400000))
        return {"epochs": {2000: "a.tif", 2020: "far.tif"}}, [str(tmp / "far.tif"), "does not overlap"]
    if case == "sub-pixel shift":
        write_raster(tmp / "s.tif", data, transform=Affine(30, 0, 500000 + 0.3 * 30, 0, -30, 3400000))
        return {"epochs": {2000: "a.tif", 2020: "s.tif"}}, [str(tmp / "s.tif"), "shift of +0.3", "align: nearest"]
    if case == "other resolution":
        write_raster(tmp / "r.tif", data, transform=Affine(20, 0, 500000, 0, -20, 3400000))
        return {"epochs": {2000: "a.tif", 2020: "r.tif"}}, [str(tmp / "r.tif"), "resolution 20 x 20"]
    if case == "other CRS":
        left, _, _, top = transform_bounds("EPSG:32650", "EPSG:32651", 500000, 3400000 - 1200, 501500, 3400000)
        write_raster(tmp / "c.tif", data, transform=Affine(30, 0, left, 0, -30, top), crs="EPSG:32651")
        return {"epochs": {2000: "a.tif", 2020: "c.tif"}}, [str(tmp / "c.tif"), "CRS EPSG:32651"]
    if case == "float land cover":
        write_raster(tmp / "f.tif", data.astype(np.float32))
        return {"epochs": {2000: "a.tif", 2020: "f.tif"}}, [str(tmp / "f.tif"), "must be integers"]
    if case == "unknown codes":
        write_raster(tmp / "u.tif", np.where(data == 31, 77, data).astype(np.uint8))
        return {"epochs": {2000: "a.tif", 2020: "u.tif"}}, [str(tmp / "u.tif"), "code 77", "unknown_codes: nodata"]
    if case == "missing raster":
        return {"epochs": {2000: "a.tif", 2020: "gone.tif"}}, [str(tmp / "gone.tif"), "file not found"]
    if case.startswith("indicator"):
        # a series of three NDVI years on the rasters' grid (40 x 50 px); each case spoils one thing
        ndvi = {y: f"n{y}.tif" for y in (2000, 2010, 2020)}
        for y in ndvi:
            write_raster(tmp / f"n{y}.tif", np.full((40, 50), 5000, np.int16), nodata=-3000)
        series: dict = {**ndvi, "scale": 0.0001, "nodata": -3000}
        if case == "indicator year missing":
            (tmp / "n2010.tif").unlink()
            needles = [str(tmp / "n2010.tif"), "indicators.ndvi 2010: file not found"]
        elif case == "indicator with two years":
            del series[2020]
            needles = [str(tmp / "config.yaml"), "indicators.ndvi.years", "at least 3"]
        elif case == "indicator scale not a number":
            series["scale"] = "1e-4x"
            needles = [str(tmp / "config.yaml"), "indicators.ndvi.scale", "valid number"]
        else:  # a raster of the wrong size: half the grid's rows
            write_raster(tmp / "n2020.tif", np.full((20, 50), 5000, np.int16), nodata=-3000)
            needles = [str(tmp / "n2020.tif"), "covers 50% of the land cover's grid", "covering the whole grid"]
        return {"epochs": epochs, "indicators": {"ndvi": series}}, needles
    if case == "zones without the id field":
        path = _zones(tmp)
        return {"epochs": epochs, "zones": [{"name": "z", "path": path.name, "id": "nope"}]}, [str(path), "'nope'"]
    if case == "duplicate zone ids":
        path = _zones(tmp, ids=("a", "a"))
        return {"epochs": epochs, "zones": [{"name": "z", "path": path.name, "id": "code"}]}, [str(path), "duplicate"]
    if case == "zones outside the rasters":
        path = _zones(tmp, where=(100000, 0))
        return {"epochs": epochs, "zones": [{"name": "z", "path": path.name, "id": "code"}]}, [str(path), "overlaps"]
    if case == "zones without a CRS":
        path = _zones(tmp, crs=None)
        return {"epochs": epochs, "zones": [{"name": "z", "path": path.name, "id": "code"}]}, [str(path), "no CRS"]
    if case == "boundary outside the rasters":
        path = _zones(tmp, name="b.gpkg", where=(100000, 0))
        return {"epochs": epochs, "boundary": path.name}, [str(path), "overlaps"]
    if case == "boundary of points":
        import geopandas as gpd
        import shapely

        gpd.GeoDataFrame(geometry=[shapely.Point(500100, 3399900)], crs="EPSG:32650").to_file(tmp / "p.gpkg")
        return {"epochs": epochs, "boundary": "p.gpkg"}, [str(tmp / "p.gpkg"), "polygons"]
    if case == "planar areas of a geographic grid":
        for name in ("g1.tif", "g2.tif"):
            write_raster(tmp / name, data, transform=Affine(0.001, 0, 106, 0, -0.001, 27), crs="EPSG:4326")
        settings = {"epochs": {2000: "g1.tif", 2020: "g2.tif"}, "area": "planar"}
        return settings, [str(tmp / "g1.tif"), "`area: planar` needs a projected grid", "remove `area: planar`"]
    if case == "gcj02 on a projected layer":
        path = _zones(tmp)
        zone = {"name": "z", "path": path.name, "id": "code", "coordinates": "gcj02"}
        return {"epochs": epochs, "zones": [zone]}, [str(path), "gcj02 needs longitude/latitude"]
    tables = {
        "density table without a pool column": ("class,c_above,c_below,c_soil\n1,1,1,1\n", "missing ['c_dead']"),
        "negative density": ("class,c_above,c_below,c_soil,c_dead\n1,1,1,1,1\n2,-1,1,1,1\n", "rows 3"),
        "density key twice": ("class,c_above,c_below,c_soil,c_dead\n1,1,1,1,1\n1,2,1,1,1\n", "more than once"),
        "non-numeric density": ("class,c_above,c_below,c_soil,c_dead\n1,x,1,1,1\n", "non-numeric values in rows 2"),
        "density without a key column": ("c_above,c_below,c_soil,c_dead\n1,1,1,1\n", "exactly one key column"),
        "density missing a class present": ("class,c_above,c_below,c_soil,c_dead\n1,1,1,1,1\n", "no carbon density"),
        "negative sd": (
            "class,c_above,c_below,c_soil,c_dead,c_soil_sd\n1,1,1,1,1,2\n2,1,1,1,1,-3\n3,1,1,1,1,0\n",
            "negative standard deviation c_soil_sd in rows 3; give sd >= 0",
        ),
        "low above high": (
            "class,c_above,c_below,c_soil,c_dead,c_above_low,c_above_high\n1,5,1,1,1,6,4\n2,1,1,1,1,0,2\n",
            "c_above_low above c_above_high in rows 2; give low <= high",
        ),
        "sd and bounds of one pool": (
            "class,c_above,c_below,c_soil,c_dead,c_above_sd,c_above_low,c_above_high\n1,5,1,1,1,1,4,6\n",
            "give either c_above_sd or c_above_low and c_above_high, not both",
        ),
    }
    if case in tables:
        text, needle = tables[case]
        (tmp / "d.csv").write_text(text)
        spread = {"uncertainty": {"draws": 100}} if case in ("negative sd", "low above high") else {}
        return {"epochs": epochs, "carbon": {"densities": "d.csv"}, **spread}, [str(tmp / "d.csv"), needle]
    if case == "uncertainty without spread columns":
        (tmp / "d.csv").write_text("class,c_above,c_below,c_soil,c_dead\n1,1,1,1,1\n2,1,1,1,1\n3,1,1,1,1\n")
        settings = {"epochs": epochs, "carbon": {"densities": "d.csv"}, "uncertainty": {"draws": 100, "seed": 1}}
        return settings, [str(tmp / "d.csv"), "`uncertainty:` needs spread columns", "c_above_sd"]
    if case == "scenario on another grid":
        write_raster(tmp / "sc.tif", data, transform=Affine(20, 0, 500000, 0, -20, 3400000))
        settings = {"epochs": epochs, "scenarios": {2035: {"natural": "sc.tif"}}}
        return settings, [str(tmp / "sc.tif"), "scenario natural 2035 is not on the grid", "align: nearest"]
    if case == "scenario with unknown codes":
        write_raster(tmp / "su.tif", np.where(data == 31, 77, data).astype(np.uint8))
        settings = {"epochs": epochs, "scenarios": {2035: {"natural": "su.tif"}}}
        return settings, [str(tmp / "su.tif"), "scenario natural 2035", "code 77", "unknown_codes: nodata"]
    if case == "rate table without its column":
        (tmp / "r.csv").write_text("class,rate\n2,-0.6\n")
        return {"epochs": epochs, "carbon": {"rates": "r.csv"}}, [str(tmp / "r.csv"), "rate_tC_ha_yr"]
    configs = {
        "unknown config key": ({"epochs": epochs, "schme": "cnlucc"}, "unknown key 'schme'; did you mean 'scheme'?"),
        "unknown scheme": ({"epochs": epochs, "scheme": "cnluc"}, "did you mean 'cnlucc'?"),
        "epochs that are not years": ({"epochs": {20: "a.tif", 2020: "b.tif"}}, "epoch keys must be years"),
        "bad align value": ({"epochs": epochs, "align": "closest"}, "align"),
        "bad area value": ({"epochs": epochs, "area": "geodesic"}, "area"),
        "red lines without densities": ({"epochs": epochs, "redline": {"min_area_ha": 10}}, "needs carbon.densities"),
        "statistics without a zone layer": ({"epochs": epochs, "carbon": {"statistics": "s.csv"}}, "zone layer"),
        "valuation without densities": (
            {"epochs": epochs, "valuation": {"price_per_tC": 43, "discount_rate_pct": 7}},
            "valuation needs carbon.densities",
        ),
        "valuation without a discount rate": (
            {"epochs": epochs, "valuation": {"price_per_tC": 43}},
            "valuation.discount_rate_pct: Field required",
        ),
        "too few uncertainty draws": ({"epochs": epochs, "uncertainty": {"draws": 5}}, "uncertainty.draws"),
        "chunks too small": ({"epochs": epochs, "dask": {"chunks": 8}}, "dask.chunks"),
        "tile size not a multiple of 512": ({"epochs": epochs, "tiles": {"size_px": 1000}}, "multiple of 512"),
        "scenario year not after the base": (
            {"epochs": epochs, "scenarios": {2020: {"natural": "b.tif"}}},
            "scenario years [2020] are not after the base epoch 2020",
        ),
        "scenario before scenarios_from": (
            {"epochs": epochs, "scenarios_from": 2000, "scenarios": {1990: {"natural": "b.tif"}}},
            "scenario years [1990] are not after the base epoch 2000",
        ),
        "scenarios_from not an epoch": (
            {"epochs": epochs, "scenarios_from": 2010, "scenarios": {2030: {"natural": "b.tif"}}},
            "scenarios_from 2010 is not an epoch",
        ),
        "bad scenario name": (
            {"epochs": epochs, "scenarios": {2030: {"Natural Development": "b.tif"}}},
            "name 'Natural Development' is not a lowercase identifier",
        ),
    }
    settings, needle = configs[case]
    return settings, [str(tmp / "config.yaml"), needle]


CASES = [
    "truncated tile",
    "raster without CRS",
    "epochs that do not overlap",
    "sub-pixel shift",
    "other resolution",
    "other CRS",
    "float land cover",
    "unknown codes",
    "missing raster",
    "zones without the id field",
    "duplicate zone ids",
    "zones outside the rasters",
    "boundary outside the rasters",
    "boundary of points",
    "zones without a CRS",
    "gcj02 on a projected layer",
    "planar areas of a geographic grid",
    "density table without a pool column",
    "negative density",
    "density key twice",
    "non-numeric density",
    "density without a key column",
    "density missing a class present",
    "negative sd",
    "low above high",
    "sd and bounds of one pool",
    "uncertainty without spread columns",
    "rate table without its column",
    "scenario on another grid",
    "scenario with unknown codes",
    "scenario year not after the base",
    "scenario before scenarios_from",
    "scenarios_from not an epoch",
    "bad scenario name",
    "unknown config key",
    "unknown scheme",
    "epochs that are not years",
    "bad align value",
    "bad area value",
    "red lines without densities",
    "statistics without a zone layer",
    "valuation without densities",
    "valuation without a discount rate",
    "too few uncertainty draws",
    "chunks too small",
    "tile size not a multiple of 512",
    "indicator year missing",
    "indicator with two years",
    "indicator scale not a number",
    "indicator raster of the wrong size",
]


@pytest.mark.parametrize("case", CASES)
def test_known_bad_inputs_keep_the_previous_output(finished, capsys, case):
    tmp = finished.parent
    before = snapshot(tmp / "out")
    settings, needles = _case(tmp, case)
    cfg = write_config(tmp, **settings)
    capsys.readouterr()
    assert cli("run", cfg) == 1
    line = one_error_line(capsys, *needles)
    assert line.startswith("error: ")
    assert snapshot(tmp / "out") == before
    assert not list(tmp.glob(".out.staging-*")) and not (tmp / "out.previous").exists()


# ---- faults of a whole process: killed runs and concurrent runs ----------------------------------------


def slow_config(tmp: Path) -> Path:
    """A run of a few seconds: 1200 x 1200 px, small chunks, one thread."""
    rng = np.random.default_rng(5)
    codes = np.array([11, 21, 31, 41, 51, 52], np.uint8)
    for name in ("a", "b"):
        write_raster(tmp / f"{name}.tif", codes[rng.integers(0, 6, (1200, 1200))])
    return write_config(tmp, epochs={2000: "a.tif", 2020: "b.tif"}, dask={"chunks": 64, "scheduler": "synchronous"})


def start(cfg: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-q", "run", str(cfg)], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not list(cfg.parent.glob(".out.staging-*")):  # wait until it is writing
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.05)
    return process


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_killed_run_leaves_the_output_as_it_was(tmp_path, how, capsys):
    cfg = slow_config(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("from an earlier run")
    before = snapshot(tmp_path / "out")
    process = start(cfg)
    process.send_signal(how)
    code = process.wait(60)
    assert snapshot(tmp_path / "out") == before
    if how == signal.SIGKILL:
        assert code == -signal.SIGKILL and list(tmp_path.glob(".out.staging-*"))  # nothing could clean up
        write_config(tmp_path, epochs={2000: "a.tif"}, dask={"chunks": 600})
        assert cli("run", cfg) == 0  # the next run removes what the killed one left
        assert not list(tmp_path.glob(".out.staging-*")) and not (tmp_path / "out" / "old.txt").exists()
    else:
        assert code == 1 and not list(tmp_path.glob(".out.staging-*"))
        # The plan's warnings come before the signal or not, as it falls: the error itself is one line.
        lines = [line for line in process.stderr.read().splitlines() if line.strip() and " WARNING " not in line]
        assert lines == [
            "terminated (SIGTERM); the output folder is as it was"
            if how == signal.SIGTERM
            else "interrupted; the output folder is as it was"
        ]


def test_a_second_run_into_the_same_folder_is_refused(tmp_path, capsys):
    cfg = slow_config(tmp_path)
    first = start(cfg)
    try:
        capsys.readouterr()
        assert cli("run", cfg) == 1
        one_error_line(capsys, str(tmp_path / "out"), f"another run is writing this output folder (pid {first.pid}")
    finally:
        first.terminate()
        first.wait(60)


# ---- non-finite and implausible carbon parameters ------------------------------------------------------


DENSITY_HEADER = "class,c_above,c_below,c_soil,c_dead\n"
GOOD_DENSITIES = "1,5,1,90,1\n2,40,10,130,5\n3,3,8,95,1\n4,0.5,0,30,0\n5,0.5,0.1,40,0\n6,2,0.5,60,0\n8,0.5,0.1,20,0\n"


@pytest.mark.parametrize(
    "table, text, needles",
    [
        ("densities", DENSITY_HEADER + GOOD_DENSITIES.replace("2,40,", "2,inf,"), ["non-finite", "rows 3 "]),
        ("densities", DENSITY_HEADER + GOOD_DENSITIES.replace(",130,", ",2500,"), ["above 2,000 t C/ha", "rows 3 "]),
        (
            "densities",
            DENSITY_HEADER + GOOD_DENSITIES.replace("3,3,8,", "3,3,-8,"),
            ["negative carbon density in rows 4"],
        ),
        ("rates", "class,rate_tC_ha_yr\n1,0.3\n2,-0.644\n3,1e300\n", ["beyond +-100 t C/ha/yr in rows 4 "]),
        ("rates", "class,rate_tC_ha_yr\n1,150\n2,-0.644\n3,-0.021\n", ["beyond +-100 t C/ha/yr in rows 2 "]),
    ],
    ids=["inf density", "2500 t C/ha soil", "negative density", "rate 1e300", "rate 150"],
)
def test_impossible_parameters_are_refused_by_validate_and_run(finished_once, tmp_path, capsys, table, text, needles):
    out, before = finished_once / "out", snapshot(finished_once / "out")
    (tmp_path / "table.csv").write_text(text, encoding="utf-8")
    epochs = {2000: str(finished_once / "a.tif"), 2020: str(finished_once / "b.tif")}
    cfg = write_config(tmp_path, epochs=epochs, output=str(out), carbon={table: "table.csv"})
    capsys.readouterr()
    for command in ("validate", "run"):
        assert cli(command, cfg) == 1
        one_error_line(capsys, f"error: {tmp_path / 'table.csv'}: ", *needles)
        assert snapshot(out) == before


# ---- GM(1,1) forecasts of series it cannot model -------------------------------------------------------


@pytest.mark.parametrize(
    "text, needles",
    [
        (
            "year,value\n2000,100\n2001,100\n2002,100\n2003,100\n2004,100\n",
            ["the series is constant", "is its value, 100"],
        ),
        ("year,value\n", ["the series has a header and no rows"]),
        ("Year,Value\n2000,1\n2001,x\n2002,3\n2003,\n2004,5\n", ["empty or non-numeric values in rows 3, 5"]),
        ("year,value\n2000,1\n2001,inf\n2002,3\n2003,4\n", ["non-finite values (inf) in rows 3;"]),
    ],
    ids=["constant", "header only", "non-numeric cells", "inf"],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_series_gm11_cannot_model_is_one_line(tmp_path, capsys, text, needles, as_json):
    (tmp_path / "series.csv").write_text(text, encoding="utf-8")
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert cli("forecast", tmp_path / "series.csv", "--until", "2010", *(["--json"] if as_json else [])) == 1
    printed = capsys.readouterr()
    assert printed.out == ""  # no numbers at all, let alone Infinity
    assert printed.err.splitlines() == [printed.err.strip()]
    assert printed.err.startswith(f"error: {tmp_path / 'series.csv'}: ")
    assert all(needle in printed.err for needle in needles), printed.err
    assert snapshot(tmp_path) == before


def test_a_forecast_in_json_is_json_without_infinity(tmp_path, capsys):
    # A steep but finite series: every number printed must be one json.loads reads as a finite float.
    (tmp_path / "series.csv").write_text("year,value\n2000,1\n2001,100\n2002,10000\n2003,1000000\n")
    capsys.readouterr()
    assert cli("forecast", tmp_path / "series.csv", "--until", "2100", "--json") == 0
    out = capsys.readouterr().out
    assert "Infinity" not in out and "NaN" not in out
    report = json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert all(np.isfinite([report["a"], report["b"], report["C"], report["P"], *report["forecast"].values()]))
    assert list(report["forecast"]) == [str(y) for y in range(2004, 2101)]
    assert np.all(np.diff(list(report["forecast"].values())) > 0) and report["forecast"]["2100"] > 1e80
    assert cli("forecast", tmp_path / "series.csv", "--until", "2400", "--json") == 1  # beyond float64
    one_error_line(capsys, str(tmp_path / "series.csv"), "exceeds the largest float by 2363; forecast fewer years")


def test_a_zone_with_a_constant_net_emission_gets_a_note_not_infinite_c():
    import pandas as pd

    from pipeline.stages import trends

    classes = pd.DataFrame(
        {"zone_id": "z", "zone_name": "Z", "year": [2000, 2010, 2020, 2030], "class": 1, "area_ha": 50.0}
    )
    balance = pd.DataFrame(
        {
            "zone_id": "z",
            "year": [2000, 2010, 2020, 2030],
            "areas_from_epoch": [2000, 2010, 2020, 2030],
            "nearest_epoch": False,
            "statistics": True,
            "net_emission_tC_yr": 7.5,  # the same every year
        }
    )
    table = trends.trend_table(classes, balance)
    assert not table["indicator"].isin(["gm11_C", "gm11_P"]).any()
    forecast = table[table["indicator"] == "net_emission_forecast"]
    assert len(forecast) == 1 and np.isnan(forecast["value"].iloc[0])
    assert (
        forecast["note"]
        .iloc[0]
        .endswith(
            "the series is constant: GM(1,1) cannot be fitted (its development coefficient a is 0 and C = 0/0); "
            "a constant series needs no model: its forecast is its value, 7.5"
        )
    )


# ---- a full disk ------------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 200 KB tmpfs at tmp/disk (needs root and a mount namespace that allows it)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill: {mounted.stderr.decode().strip() or 'mount failed'}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_is_one_line_without_libtiff_noise(tmp_path, small_disk):
    # 300 x 300 px in 64-px blocks: ~350 KB of rasters, written block by block into 200 KB.
    rng = np.random.default_rng(4)
    codes = np.array([11, 21, 31, 41, 51, 52], np.uint8)
    write_raster(tmp_path / "a.tif", codes[rng.integers(0, 6, (300, 300))])
    write_raster(tmp_path / "b.tif", codes[rng.integers(0, 6, (300, 300))])
    out = small_disk / "out"
    out.mkdir()
    (out / "old.txt").write_text("from an earlier run")
    before = snapshot(out)
    (tmp_path / "d.csv").write_text(DENSITY_HEADER + GOOD_DENSITIES)
    (tmp_path / "r.csv").write_text("class,rate_tC_ha_yr\n" + "".join(f"{c},0.1\n" for c in (1, 2, 3, 4, 5, 6, 8)))
    carbon = {"densities": "d.csv", "rates": "r.csv"}
    cfg = write_config(tmp_path, epochs={2000: "a.tif", 2020: "b.tif"}, output=str(out), carbon=carbon)
    # A process of its own: libtiff writes to file descriptor 2 from C, which capsys would not see.
    process = subprocess.run(
        [sys.executable, "-m", "pipeline", "-q", "run", str(cfg)], capture_output=True, text=True, timeout=300
    )
    assert process.returncode == 1
    lines = process.stderr.splitlines()
    assert len(lines) == 1 and "_tiff" not in process.stderr, lines  # ~900 lines of libtiff before
    assert snapshot(out) == before
    assert lines == [f"error: {out}: cannot write the output: No space left on device"]


def test_the_manifest_lists_exactly_the_files_beside_it_with_their_checksums(finished):
    """A reader that finds a manifest finds the rest: every file it lists is there with its size and SHA-256,
    and nothing else is."""
    out = finished.parent / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    files = snapshot(out)
    listed = {o["path"]: o for o in manifest["outputs"]}
    assert set(files) == set(listed) | {"manifest.json"}
    for path, entry in listed.items():
        data = (out / path).read_bytes()
        assert entry["sha256"] == files[path] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)


def test_a_run_that_fails_just_before_the_swap_leaves_the_old_folder(finished, capsys, monkeypatch):
    """Everything written into the staging folder (manifest included), then the swap fails: the old output
    folder is byte for byte as it was, and no staging folder is left."""
    from pipeline.io import staging

    out = finished.parent / "out"
    before = snapshot(out)
    write_config(finished.parent, epochs={2000: "a.tif"})  # a different run: other files
    seen: list[str] = []

    def fail(self):
        seen.extend(self.files())
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(staging.Staging, "commit", fail)
    capsys.readouterr()
    assert cli("run", finished) == 1
    assert "manifest.json" in seen and "report.html" in seen  # it did fail after writing everything
    assert snapshot(out) == before
    assert not list(finished.parent.glob(".out.staging-*")) and not (finished.parent / "out.previous").exists()


def test_a_swap_that_fails_halfway_puts_the_old_folder_back(finished, capsys, monkeypatch):
    out = finished.parent / "out"
    before = snapshot(out)
    real = os.replace

    def replace(src, dst):
        if ".staging-" in str(src):  # the second rename: staging -> OUT
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    capsys.readouterr()
    assert cli("run", finished) == 1
    assert snapshot(out) == before
