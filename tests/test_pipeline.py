"""End to end through the command line: values by hand, alignment, and every kind of bad input."""

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import pytest
import rasterio
from affine import Affine

from pipeline.model.pathways import PATHWAY

from .conftest import read, write_config, write_raster
from .helpers import CNLUCC, cli, expected_classes

# pyproj's areal scale factor of UTM 50N at the centre of the ``two_epochs`` grid (x 500000-503600,
# y 3397000-3400000): one cell of the 5 km pixel-area lattice covers it.
_CENTRE = pyproj.Transformer.from_crs(32650, 4326, always_xy=True).transform(501800, 3398500)
UTM_SCALE = float(pyproj.Proj("EPSG:32650").get_factors(*_CENTRE).areal_scale)


def test_run_by_hand(two_epochs, capsys):
    tmp = two_epochs.parent
    assert cli("run", two_epochs) == 0
    a, b = np.load(tmp / "a.npy"), np.load(tmp / "b.npy")
    valid = (a != 255) & (b != 255)
    for year, codes in ((2000, a), (2020, b)):
        got = read(tmp / f"out/rasters/landcover_{year}.tif")
        np.testing.assert_array_equal(got, np.where(valid, expected_classes(codes), 0))
    classes = pd.read_csv(tmp / "out/tables/classes_region.csv", encoding="utf-8-sig")
    first = classes[classes.year == 2000].set_index("class")
    truth = np.bincount(expected_classes(a)[valid], minlength=9)
    assert first.pixels.tolist() == truth[1:].tolist()
    # 30 m pixels are 0.09 ha in UTM's plane; on the ellipsoid (the default) 0.09 ha / the areal scale.
    np.testing.assert_allclose(first.area_ha, truth[1:] * 0.09 / UTM_SCALE, rtol=1e-9)
    epochs = pd.read_csv(tmp / "out/tables/epochs.csv", encoding="utf-8-sig").set_index("year")
    assert epochs.loc[2000, "nodata_pixels"] == 35 and epochs.loc[2000, "excluded_by_other_epochs_pixels"] == 50
    assert epochs.loc[2020, "nodata_pixels"] == 50 and epochs.loc[2020, "excluded_by_other_epochs_pixels"] == 35
    assert epochs.loc[2000, "valid_pixels"] == valid.sum() == 12000 - 85
    assert epochs.loc[2000, "files"] == 2
    manifest = json.loads((tmp / "out/manifest.json").read_text())
    assert {o["path"] for o in manifest["outputs"]} >= {
        "rasters/landcover_2000.tif",
        "rasters/landcover_2000.qml",
        "tables/classes_region.csv",
        "tables/epochs.csv",
    }
    assert len(manifest["inputs"]) == 4 and all(len(i["sha256"]) == 64 for i in manifest["inputs"])
    assert any(i["path"].endswith("data/default_rates.csv") for i in manifest["inputs"])  # the default used
    for output in manifest["outputs"]:  # the report is written after the outputs are first hashed
        data = (tmp / "out" / output["path"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (output["bytes"], output["sha256"]), output["path"]
    assert "report.html" in {o["path"] for o in manifest["outputs"]}
    assert manifest["versions"]["GDAL"]
    assert not list((tmp / "out").glob(".staging*"))
    with rasterio.open(tmp / "out/rasters/landcover_2020.tif") as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and ds.colormap(1)[5][:3] == (230, 0, 0)


FULL_DENSITIES = "class,c_above,c_below,c_soil,c_dead\n" + "".join(
    f"{k},{k * 1.7},{k / 3},{90 - k},{k % 2}\n" for k in range(1, 9)
)


def zones_and_statistics(tmp: Path) -> dict:
    """Config settings for an irregular three-zone layer over ``two_epochs`` and statistics for two of its
    zones (2000, and 2010 that has no epoch): zone edges cross the chunks at angles."""
    import geopandas as gpd
    import shapely

    x0, y0, w, h = 500000, 3400000, 120 * 30, 100 * 30
    shapes = [
        shapely.Polygon([(x0, y0), (x0 + w * 0.7, y0), (x0, y0 - h * 0.8)]),
        shapely.Polygon([(x0 + w * 0.7, y0), (x0 + w, y0), (x0 + w, y0 - h), (x0, y0 - h), (x0, y0 - h * 0.8)]),
    ]
    shapes.append(shapely.box(x0 + w * 0.4, y0 - h * 0.6, x0 + w * 0.9, y0 - h * 0.2))
    shapes[1] = shapes[1].difference(shapes[2])
    shapes[0] = shapes[0].difference(shapes[2])
    gpd.GeoDataFrame({"code": ["z1", "z2", "z3"]}, geometry=shapes, crs="EPSG:32650").to_file(tmp / "zones.gpkg")
    agri = "fertiliser_t,sown_area_hm2,machinery_kW,irrigated_area_hm2,plastic_film_kg"
    (tmp / "stats.csv").write_text(
        f"zone_id,year,energy_tce,{agri}\nz1,2000,1234.5,10,20,30,40,50\n"
        "z2,2000,99.9,1,2,3,4,5\nz2,2010,150,1,2,3,4,5\n"
    )
    (tmp / "d.csv").write_text(FULL_DENSITIES)
    (tmp / "r.csv").write_text("class,rate_tC_ha_yr\n1,0.3\n2,-0.644\n3,-0.021\n4,-0.218\n5,1.5\n6,0.7\n8,-0.005\n")
    return {
        "zones": [{"name": "zone", "path": "zones.gpkg", "id": "code"}],
        "carbon": {"densities": "d.csv", "rates": "r.csv", "statistics": "stats.csv"},
    }


def same_tables(a: Path, b: Path) -> list[str]:
    names = sorted(p.name for p in (a / "tables").glob("*.csv"))
    assert names == sorted(p.name for p in (b / "tables").glob("*.csv"))
    for name in names:
        assert (a / "tables" / name).read_bytes() == (b / "tables" / name).read_bytes(), name
    return names


def test_same_tables_on_any_chunking_and_scheduler(two_epochs, monkeypatch):
    """Pixel-area cells of 1 km (34 px) make a 4 x 3 lattice that neither chunking (64, 96) follows."""
    monkeypatch.setattr("pipeline.model.grid.AREA_CELL_M", 1000.0)
    tmp = two_epochs.parent
    settings = zones_and_statistics(tmp)
    write_config(tmp, epochs={2000: "lc2000/*.tif", 2020: "lc2020.tif"}, **settings)
    assert cli("run", two_epochs, "-o", tmp / "o1") == 0
    write_config(
        tmp,
        epochs={2000: "lc2000/*.tif", 2020: "lc2020.tif"},
        **settings,
        dask={"chunks": 96, "scheduler": "synchronous"},
    )
    assert cli("run", two_epochs, "-o", tmp / "o2") == 0
    assert len(same_tables(tmp / "o1", tmp / "o2")) == 17
    drawn = sorted(p.name for p in (tmp / "o1/maps").glob("*.png"))
    assert drawn == [
        "balance_zone_2000.png",
        "balance_zone_2010.png",
        "balance_zone_2020.png",
        "pathways_zone_2000_2020.png",
        "sankey.png",
        "stock_change_2000_2020.png",
    ]
    for name in drawn:  # the maps too are the same bytes
        assert (tmp / "o1/maps" / name).read_bytes() == (tmp / "o2/maps" / name).read_bytes(), name
    balance = pd.read_csv(tmp / "o1/tables/balance_zone.csv", encoding="utf-8-sig")
    assert balance.stock_tC.gt(0).all() and balance.statistics.any() and balance.nearest_epoch.any()
    np.testing.assert_array_equal(read(tmp / "o1/rasters/flux_2000.tif"), read(tmp / "o2/rasters/flux_2000.tif"))
    for kind in ("transition", "pathway", "stock_change", "flux_change"):
        np.testing.assert_array_equal(
            read(tmp / f"o1/rasters/{kind}_2000_2020.tif"), read(tmp / f"o2/rasters/{kind}_2000_2020.tif")
        )
    # The interval rasters against the epoch rasters they come from (2000 has statistics spread over it).
    lc = {y: read(tmp / f"o1/rasters/landcover_{y}.tif") for y in (2000, 2020)}
    valid = lc[2000] > 0
    with rasterio.open(tmp / "o1/rasters/pathway_2000_2020.tif") as ds:
        assert ds.nodata == 255 and ds.dtypes[0] == "uint8" and ds.colormap(1)[1][:3] == (215, 25, 28)
        np.testing.assert_array_equal(ds.read(1), np.where(valid, PATHWAY[lc[2000], lc[2020]], 255))
    np.testing.assert_array_equal(
        read(tmp / "o1/rasters/transition_2000_2020.tif"), np.where(valid, lc[2000] * 10 + lc[2020], 0)
    )
    for kind in ("stock", "flux"):
        before, after = (read(tmp / f"o1/rasters/{kind}_{y}.tif") for y in (2000, 2020))
        change = read(tmp / f"o1/rasters/{kind}_change_2000_2020.tif")
        np.testing.assert_allclose(change, after.astype(np.float64) - before, rtol=1e-6, atol=1e-4)
        assert np.isnan(change[~valid]).all() and not np.isnan(change[valid]).all()
    pathways = pd.read_csv(tmp / "o1/tables/pathways_zone_2000_2020.csv", encoding="utf-8-sig")
    stock = balance.set_index(["zone_id", "year"]).stock_tC.unstack("year")
    # The tables carry 10 significant digits: a difference of two stocks is known to 1e-9 of the larger.
    np.testing.assert_allclose(
        pathways.groupby("zone_id").stock_change_tC.sum(),
        stock[2020] - stock[2000],
        rtol=0,
        atol=1e-9 * float(stock.abs().to_numpy().max()),
    )


def test_zone_report_and_gcj02_on_a_projected_layer(two_epochs, capsys):
    tmp = two_epochs.parent
    settings = zones_and_statistics(tmp)
    write_config(tmp, epochs={2000: "lc2000/*.tif", 2020: "lc2020.tif"}, **settings)
    assert cli("run", two_epochs) == 0
    report = pd.read_csv(tmp / "out/tables/zones_zone.csv", encoding="utf-8-sig").set_index("zone_id")
    # z3 is a box on pixel edges: 60 x 40 pixels of 0.09 ha in the plane, burned exactly; the three zones tile
    # the raster. On the ellipsoid (the default) both are larger by UTM's areal scale there (pyproj, ~0.9992).
    ha = 0.09 / UTM_SCALE
    assert report.loc["z3", "burned_area_ha"] == pytest.approx(2400 * ha, rel=1e-9)
    assert report.loc["z3", "inside_rasters_ha"] == pytest.approx(2400 * ha, rel=1e-6)
    assert report.burned_area_ha.sum() == pytest.approx(120 * 100 * ha, rel=1e-9)
    assert report.boundary_difference_ha.abs().max() < 2 * 0.09 * 20  # triangle edges: a few pixels either way
    assert (report.overlap_ha == 0).all() and (report.valid_area_ha <= report.burned_area_ha).all()
    import geopandas as gpd

    layer = gpd.read_file(tmp / "out/zone.gpkg", layer="zone").set_index("zone_id")
    balance = pd.read_csv(tmp / "out/tables/balance_zone.csv", encoding="utf-8-sig").set_index(["zone_id", "year"])
    assert layer.crs.to_epsg() == 32650 and len(layer) == 3
    for year in (2000, 2010, 2020):
        np.testing.assert_allclose(
            layer[f"net_emission_tC_yr_{year}"], balance.xs(year, level="year").net_emission_tC_yr[layer.index]
        )
    page = (tmp / "out/report.html").read_text(encoding="utf-8")
    pngs = sorted((tmp / "out/maps").glob("*.png"))
    # Self-contained: every map embedded, nothing fetched.
    assert page.count('src="data:image/png;base64,') == len(pngs) == 6 and "http" not in page.replace("http-equiv", "")
    assert "<script" not in page and "default_rates" not in page  # the config's own rate table is shown
    for needle in ("Balance by zone, last year", "z3", "GM(1,1)", "annual rates (t C/ha/yr)", "stock_change_2000_2020"):
        assert needle in page, needle
    outputs = {o["path"] for o in json.loads((tmp / "out/manifest.json").read_text())["outputs"]}
    assert {"report.html", "maps/balance_zone_2010.png", "zone.gpkg"} <= outputs
    settings["zones"][0]["coordinates"] = "gcj02"
    write_config(tmp, epochs={2000: "lc2000/*.tif", 2020: "lc2020.tif"}, **settings)
    assert cli("run", two_epochs) == 1
    assert "coordinates: gcj02 needs longitude/latitude" in capsys.readouterr().err


def test_alignment_nearest_for_shift_resolution_and_crs(tmp_path):
    rng = np.random.default_rng(3)
    base = np.repeat(np.repeat(rng.choice([11, 21, 31, 51], (20, 20)).astype(np.uint8), 3, 0), 3, 1)  # 60 x 60
    write_raster(tmp_path / "a.tif", base)
    # Shifted 0.6 pixel east: each target centre falls in the source pixel to its left, the first column outside.
    write_raster(tmp_path / "shift.tif", base, transform=Affine(30, 0, 500018, 0, -30, 3400000))
    # 90 m pixels covering the same area (every 3 x 3 block has one code).
    write_raster(tmp_path / "coarse.tif", base[1::3, 1::3].copy(), transform=Affine(90, 0, 500000, 0, -90, 3400000))
    cfg = write_config(tmp_path, epochs={2000: "a.tif", 2010: "shift.tif", 2020: "coarse.tif"})
    assert cli("run", cfg) == 1
    cfg = write_config(tmp_path, epochs={2000: "a.tif", 2010: "shift.tif", 2020: "coarse.tif"}, align="nearest")
    assert cli("run", cfg) == 0
    a, s, c = (read(tmp_path / f"out/rasters/landcover_{y}.tif") for y in (2000, 2010, 2020))
    classes = expected_classes(base)
    np.testing.assert_array_equal(s[:, 1:], classes[:, :-1])
    assert (s[:, 0] == 0).all() and (a[:, 0] == 0).all()  # outside the shifted raster: excluded from every epoch
    np.testing.assert_array_equal(a[:, 1:], classes[:, 1:])
    np.testing.assert_array_equal(c[:, 1:], classes[:, 1:])


def test_other_crs_is_reprojected(tmp_path):
    data = np.full((40, 40), 21, np.uint8)
    data[:, 20:] = 11
    write_raster(tmp_path / "a.tif", data, crs="EPSG:32650")
    with rasterio.open(tmp_path / "a.tif") as src:
        from rasterio.warp import calculate_default_transform

        transform, w, h = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height, *src.bounds)
    from rasterio.warp import reproject

    out = np.full((h, w), 255, np.uint8)
    reproject(
        data,
        out,
        src_transform=Affine(30, 0, 500000, 0, -30, 3400000),
        src_crs="EPSG:32650",
        dst_transform=transform,
        dst_crs="EPSG:4326",
        dst_nodata=255,
    )
    write_raster(tmp_path / "b.tif", out, transform=transform, crs="EPSG:4326")
    cfg = write_config(tmp_path, epochs={2000: "a.tif", 2020: "b.tif"}, align="nearest")
    assert cli("run", cfg) == 0
    a, b = read(tmp_path / "out/rasters/landcover_2000.tif"), read(tmp_path / "out/rasters/landcover_2020.tif")
    agree = (a == b)[(a > 0) & (b > 0)]
    assert agree.mean() > 0.97 and (a > 0).sum() > 1400


def test_mixed_dtypes_across_epochs(tmp_path):
    a = np.array([[3, 4, 15], [6, 3, 4]], np.uint8)
    b = np.array([[3, 4, 4], [6, -128, 4]], np.int8)
    write_raster(tmp_path / "2003.tif", a, nodata=15)
    write_raster(tmp_path / "2005.tif", b, nodata=-128)
    (tmp_path / "s.csv").write_text("source_code,target_class\n3,1\n4,5\n6,4\n")
    cfg = write_config(tmp_path, epochs={2003: "2003.tif", 2005: "2005.tif"}, scheme="s.csv")
    assert cli("run", cfg) == 0
    np.testing.assert_array_equal(read(tmp_path / "out/rasters/landcover_2005.tif"), [[1, 5, 0], [4, 0, 5]])


# --- bad input: one clear error naming the file, exit 1, nothing left where a finished output would be ---


def _fails(cfg: Path, capsys, *needles: str, args=()) -> str:
    assert cli("run", cfg, *args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    message = err[-1]
    assert message.startswith("error: "), err
    for needle in needles:
        assert needle in message, message
    out = cfg.parent / "out"
    assert not (out / "manifest.json").exists() and not list(out.glob("rasters/*")) and not list(out.glob(".staging*"))
    return message


def test_truncated_geotiff(tmp_path, capsys):
    data = np.random.default_rng(1).choice([11, 21, 31], (256, 256)).astype(np.uint8)
    path = write_raster(tmp_path / "t.tif", data, tiled=True)
    write_raster(tmp_path / "ok.tif", data)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    cfg = write_config(tmp_path, epochs={2000: "ok.tif", 2020: "t.tif"})
    _fails(cfg, capsys, str(path))


def test_raster_without_crs(tmp_path, capsys):
    write_raster(tmp_path / "a.tif", np.full((4, 4), 11, np.uint8))
    write_raster(tmp_path / "b.tif", np.full((4, 4), 11, np.uint8), crs=None)
    _fails(write_config(tmp_path, epochs={2000: "a.tif", 2020: "b.tif"}), capsys, str(tmp_path / "b.tif"), "no CRS")


def test_epochs_that_do_not_overlap(tmp_path, capsys):
    write_raster(tmp_path / "a.tif", np.full((4, 4), 11, np.uint8))
    write_raster(tmp_path / "b.tif", np.full((4, 4), 11, np.uint8), transform=Affine(30, 0, 600000, 0, -30, 3400000))
    cfg = write_config(tmp_path, epochs={2000: "a.tif", 2020: "b.tif"}, align="nearest")
    _fails(cfg, capsys, str(tmp_path / "b.tif"), "does not overlap")


def test_mosaic_tile_off_the_pixel_lattice_is_refused(tmp_path, capsys):
    """Two tiles of one epoch: the east one starts 4 pixels + 9 m (0.3 px of 30 m) east of the west one's
    edge; a mosaic would shift it by 9 m, so it is refused (tolerance 1/1000 px). 0.0003 px is accepted."""
    write_raster(tmp_path / "b.tif", np.full((4, 8), 11, np.uint8))
    write_raster(tmp_path / "a" / "w.tif", np.full((4, 4), 11, np.uint8))
    east = write_raster(
        tmp_path / "a" / "e.tif", np.full((4, 4), 21, np.uint8), transform=Affine(30, 0, 500000 + 129, 0, -30, 3400000)
    )
    cfg = write_config(tmp_path, epochs={2000: "a/*.tif", 2020: "b.tif"})
    _fails(cfg, capsys, str(east), "not on the pixel lattice", "offset 4.300,")
    write_raster(east, np.full((4, 4), 21, np.uint8), transform=Affine(30, 0, 500000 + 120.009, 0, -30, 3400000))
    assert cli("run", cfg, "--stages", "carbon") == 0
    np.testing.assert_array_equal(read(tmp_path / "out/rasters/landcover_2000.tif")[:, 3:5], [[1, 2]] * 4)


def test_grids_that_differ_name_both_files(tmp_path, capsys):
    write_raster(tmp_path / "a.tif", np.full((4, 4), 11, np.uint8))
    write_raster(tmp_path / "b.tif", np.full((4, 4), 11, np.uint8), transform=Affine(30, 0, 500010, 0, -30, 3400000))
    _fails(
        write_config(tmp_path, epochs={2000: "a.tif", 2020: "b.tif"}),
        capsys,
        str(tmp_path / "b.tif"),
        str(tmp_path / "a.tif"),
        "origin",
        "align: nearest",
    )


def test_unknown_codes_error_lists_every_code_with_counts(tmp_path, capsys):
    write_raster(tmp_path / "a.tif", np.array([[11, 77, 77], [78, 21, 255]], np.uint8))
    write_raster(tmp_path / "b.tif", np.array([[11, 21, 21], [21, 21, 21]], np.uint8))
    cfg = write_config(tmp_path, epochs={2000: "a.tif", 2020: "b.tif"})
    _fails(cfg, capsys, str(tmp_path / "a.tif"), "code 77 (2 px)", "code 78 (1 px)", "unknown_codes: nodata")
    cfg = write_config(tmp_path, epochs={2000: "a.tif", 2020: "b.tif"}, unknown_codes="nodata")
    assert cli("run", cfg) == 0
    epochs = pd.read_csv(tmp_path / "out/tables/epochs.csv", encoding="utf-8-sig").set_index("year")
    assert epochs.loc[2000, "unknown_codes"] == "77:2 78:1" and epochs.loc[2000, "unknown_code_pixels"] == 3
    assert epochs.loc[2020, "excluded_by_other_epochs_pixels"] == 4


def test_unknown_config_key(tmp_path, capsys):
    cfg = write_config(tmp_path, epochs={2000: "a.tif"}, unknwon_codes="nodata")
    _fails(cfg, capsys, str(cfg), "unknown key 'unknwon_codes'; did you mean 'unknown_codes'?")


def test_missing_file(tmp_path, capsys):
    write_raster(tmp_path / "a.tif", np.full((4, 4), 11, np.uint8))
    _fails(
        write_config(tmp_path, epochs={2000: "a.tif", 2020: "gone.tif"}),
        capsys,
        str(tmp_path / "gone.tif"),
        "file not found",
    )
    _fails(write_config(tmp_path, epochs={2000: "a.tif", 2020: "none/*.tif"}), capsys, "matches no file")


def test_not_a_raster(tmp_path, capsys):
    write_raster(tmp_path / "a.tif", np.full((4, 4), 11, np.uint8))
    (tmp_path / "b.tif").write_text("hello")
    _fails(
        write_config(tmp_path, epochs={2000: "a.tif", 2020: "b.tif"}),
        capsys,
        str(tmp_path / "b.tif"),
        "not a readable raster",
    )


def test_unwritable_output_folder(tmp_path, capsys):
    write_raster(tmp_path / "a.tif", np.full((4, 4), 11, np.uint8))
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should be")
    cfg = write_config(tmp_path, epochs={2000: "a.tif"})
    assert cli("run", cfg, "-o", blocker / "out") == 1
    assert str(blocker / "out") in capsys.readouterr().err
    assert blocker.read_text().startswith("a file")


def test_a_raster_that_cannot_be_written_is_an_output_error(tmp_path, capsys, monkeypatch):
    """A failed write of a result raster (disk full, say) names the output raster, not an input file."""
    from rasterio.errors import RasterioError

    import pipeline.io.cog

    write_raster(tmp_path / "a.tif", np.full((4, 4), 11, np.uint8))
    cfg = write_config(tmp_path, epochs={2000: "a.tif"})
    real_open = pipeline.io.cog.rasterio.open

    def failing(path, mode="r", *args, **kwargs):
        if mode == "w":
            raise RasterioError("No space left on device")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(pipeline.io.cog.rasterio, "open", failing)
    message = _fails(cfg, capsys, "cannot write the raster: No space left on device")
    # Whichever result raster a thread wrote first, the message names it and not the input.
    assert re.search(r"/out/rasters/[a-z_]+_2000\.tif: ", message) and "a.tif" not in message, message


def test_failed_run_keeps_the_previous_results(tmp_path, capsys):
    write_raster(tmp_path / "a.tif", np.full((4, 4), 11, np.uint8))
    write_raster(tmp_path / "b.tif", np.full((4, 4), 21, np.uint8))
    cfg = write_config(tmp_path, epochs={2000: "a.tif", 2020: "b.tif"})
    assert cli("run", cfg) == 0
    before = (tmp_path / "out/manifest.json").read_bytes()
    write_raster(tmp_path / "b.tif", np.full((4, 4), 99 + 1, np.uint8))  # unknown code 100
    assert cli("run", cfg) == 1
    assert (tmp_path / "out/manifest.json").read_bytes() == before
    assert not list((tmp_path / "out").glob(".staging*"))


def test_validate_reports_without_computing(two_epochs, capsys):
    assert cli("validate", two_epochs) == 0
    out = capsys.readouterr().out
    assert "epoch 2000: 2 file(s), uint8, nodata 255.0, 120 x 100 px" in out and "OK" in out
    assert not (two_epochs.parent / "out").exists()


def test_patch_split_run_equals_whole_raster_labelling(tmp_path):
    from scipy import ndimage

    rng = np.random.default_rng(11)
    blobs = ndimage.gaussian_filter(rng.random((90, 110)), 2) > 0.52  # towns and villages of many sizes
    codes = np.where(blobs, 51, rng.choice([11, 21, 31], (90, 110))).astype(np.uint8)
    write_raster(tmp_path / "a.tif", codes)
    write_raster(tmp_path / "b.tif", codes)
    cfg = write_config(
        tmp_path, epochs={2000: "a.tif", 2020: "b.tif"}, urban_split={"patch_min_ha": 2.7}, dask={"chunks": 64}
    )
    assert cli("run", cfg) == 0
    labels, _ = ndimage.label(blobs, np.ones((3, 3)))
    size = np.bincount(labels.ravel())
    expected = np.where(blobs, np.where(size[labels] >= 30, 5, 6), expected_classes(codes))  # 2.7 ha = 30 px
    got = read(tmp_path / "out/rasters/landcover_2020.tif")
    np.testing.assert_array_equal(got, expected)
    assert 0 < (got == 5).sum() and 0 < (got == 6).sum()
    classes = pd.read_csv(tmp_path / "out/tables/classes_region.csv", encoding="utf-8-sig").set_index(["year", "class"])
    assert classes.loc[(2000, 6), "pixels"] == (expected == 6).sum()
    assert not (tmp_path / "out/work").exists()


def test_urban_extent_split_end_to_end(tmp_path):
    """`urban_split: {urban_extent: ...}`: construction (51, 52, 53) whose pixel centre lies inside the
    polygon is urban (5), outside rural (6); other land keeps its class. The polygon's east edge runs
    through column 5 at 5.4 px: column 5's centre (5.5) is outside, column 4's (4.5) inside."""
    import geopandas as gpd
    import shapely

    codes = np.full((6, 10), 11, np.uint8)
    codes[:, ::2] = 52  # rural settlement codes in the even columns ...
    codes[0, :] = 51  # ... urban codes on the top row ...
    codes[5, 1] = 21  # ... and one forest pixel inside the extent
    write_raster(tmp_path / "a.tif", codes)
    write_raster(tmp_path / "b.tif", codes)
    x0, y0 = 500000, 3400000
    extent = shapely.box(x0 - 100, y0 - 6 * 30, x0 + 5.4 * 30, y0 + 100)
    gpd.GeoDataFrame({"n": [1]}, geometry=[extent], crs="EPSG:32650").to_file(tmp_path / "urban.gpkg")
    cfg = write_config(tmp_path, epochs={2000: "a.tif", 2020: "b.tif"}, urban_split={"urban_extent": "urban.gpkg"})
    assert cli("run", cfg, "--stages", "carbon") == 0
    expected = np.full((6, 10), 1, np.uint8)  # cropland
    expected[:, ::2] = 6
    expected[0, :] = 6
    expected[:, :5][expected[:, :5] == 6] = 5  # columns 0-4: inside the extent
    expected[5, 1] = 2
    np.testing.assert_array_equal(read(tmp_path / "out/rasters/landcover_2020.tif"), expected)
    assert expected[0, 4] == 5 and expected[0, 5] == 6 and expected[1, 4] == 5 and expected[1, 6] == 6
    # The urban extent is not a study area: every pixel is valid, none "outside the boundary" (it once was).
    epochs = pd.read_csv(tmp_path / "out/tables/epochs.csv", encoding="utf-8-sig")
    assert epochs.valid_pixels.tolist() == [60, 60] and epochs.outside_boundary_pixels.tolist() == [0, 0]


def test_process_cluster_gives_byte_identical_tables(two_epochs):
    """The same graph on a local distributed cluster of worker processes (with the patch split's two passes), with
    the uncertainty draws (rates with a spread, statistics in two zones) and the valuation."""
    tmp = two_epochs.parent
    settings = zones_and_statistics(tmp)
    (tmp / "r.csv").write_text(
        "class,rate_tC_ha_yr,rate_sd\n1,0.3,0.05\n2,-0.644,0.1\n3,-0.021,0.01\n4,-0.218,0.05\n5,1.5,0.3\n"
        "6,0.7,0.1\n8,-0.005,0\n"
    )
    settings |= {
        "uncertainty": {"draws": 300, "seed": 5},
        "valuation": {"price_per_tC": 43, "discount_rate_pct": 7, "price_change_pct": 1},
    }
    for name, scheduler in (("threads", "threads"), ("procs", "processes")):
        write_config(
            tmp,
            epochs={2000: "lc2000/*.tif", 2020: "lc2020.tif"},
            urban_split={"patch_min_ha": 0.5},
            **settings,
            dask={"chunks": 64, "scheduler": scheduler},
        )
        assert cli("run", two_epochs, "-o", tmp / name) == 0
    # 17 tables, and uncertainty, stock change uncertainty and valuation of the region and the zone layer
    assert len(same_tables(tmp / "threads", tmp / "procs")) == 23
    # An existing cluster at its address (2 worker processes), with another chunk size.
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        write_config(
            tmp,
            epochs={2000: "lc2000/*.tif", 2020: "lc2020.tif"},
            urban_split={"patch_min_ha": 0.5},
            **settings,
            dask={"chunks": 96, "scheduler": cluster.scheduler_address},
        )
        assert cli("run", two_epochs, "-o", tmp / "cluster") == 0
    assert len(same_tables(tmp / "threads", tmp / "cluster")) == 23
    np.testing.assert_array_equal(
        read(tmp / "threads/rasters/flux_2000.tif"), read(tmp / "procs/rasters/flux_2000.tif")
    )
    np.testing.assert_array_equal(
        read(tmp / "threads/rasters/stock_change_2000_2020.tif"),
        read(tmp / "cluster/rasters/stock_change_2000_2020.tif"),
    )
    np.testing.assert_array_equal(
        read(tmp / "threads/rasters/landcover_2020.tif"), read(tmp / "procs/rasters/landcover_2020.tif")
    )
    np.testing.assert_array_equal(
        read(tmp / "threads/rasters/npv_2000_2020.tif"), read(tmp / "cluster/rasters/npv_2000_2020.tif")
    )


def test_unreachable_scheduler_is_one_clear_error(two_epochs, capsys):
    assert cli("run", two_epochs, "--scheduler", "tcp://127.0.0.1:9") == 1
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err


def test_user_vrt_input(tmp_path):
    """Any GDAL raster works as an epoch: here a VRT the user built over two tiles."""
    from pipeline.io.rasters import open_sources

    rng = np.random.default_rng(5)
    codes = rng.choice(np.array([11, 21, 31, 51], np.uint8), (20, 30))
    write_raster(tmp_path / "t/w.tif", codes[:, :15].copy())
    write_raster(tmp_path / "t/e.tif", codes[:, 15:].copy(), transform=Affine(30, 0, 500000 + 450, 0, -30, 3400000))
    (vrt_src,) = open_sources({2000: [str(tmp_path / "t/*.tif")]}, tmp_path / "work")
    (tmp_path / "user.vrt").write_text(vrt_src.dataset.read_text())
    write_raster(tmp_path / "b.tif", codes)
    assert cli("run", write_config(tmp_path, epochs={2000: "user.vrt", 2020: "b.tif"})) == 0
    np.testing.assert_array_equal(read(tmp_path / "out/rasters/landcover_2000.tif"), expected_classes(codes))


def test_each_input_block_is_read_once(two_epochs, monkeypatch):
    """All outputs (rasters, tables, unknown-code and missing-row checks) come from one pass over the inputs."""
    import collections

    import rasterio.io

    tmp = two_epochs.parent
    (tmp / "d.csv").write_text(FULL_DENSITIES)
    write_config(tmp, epochs={2000: "lc2000/*.tif", 2020: "lc2020.tif"}, carbon={"densities": "d.csv"})
    reads = collections.Counter()
    original = rasterio.io.DatasetReader.read

    def counting(self, *args, **kwargs):
        # Not our own outputs: work files, and the finished rasters whose overviews the maps read.
        if "/rasters/" not in self.name and ("/work/" not in self.name or "/work/mosaic_" in self.name):
            reads[(self.name, str(kwargs.get("window")))] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", counting)
    assert cli("run", two_epochs) == 0
    inputs = {name for name, _ in reads}
    assert len(inputs) == 2 and any(n.endswith(".vrt") for n in inputs)  # the 2000 mosaic and 2020
    assert len(reads) == 2 * 4  # 100 x 120 px in 64-px chunks: 4 windows per epoch
    assert max(reads.values()) == 1, reads


def test_rasters_setting_writes_only_those(two_epochs, capsys):
    tmp = two_epochs.parent
    (tmp / "d.csv").write_text(FULL_DENSITIES)
    write_config(
        tmp,
        epochs={2000: "lc2000/*.tif", 2020: "lc2020.tif"},
        carbon={"densities": "d.csv"},
        rasters=["stock", "stock_change"],
    )
    assert cli("run", two_epochs, "-o", tmp / "few") == 0
    assert sorted(p.name for p in (tmp / "few/rasters").iterdir()) == [
        "stock_2000.tif",
        "stock_2020.tif",
        "stock_change_2000_2020.tif",
    ]
    write_config(tmp, epochs={2000: "lc2000/*.tif", 2020: "lc2020.tif"}, carbon={"densities": "d.csv"})
    assert cli("run", two_epochs, "-o", tmp / "all") == 0
    assert len(same_tables(tmp / "few", tmp / "all")) == 10  # the tables do not depend on the rasters
    write_config(tmp, epochs={2000: "lc2000/*.tif"}, rasters=["flux_change"])
    assert cli("run", two_epochs) == 1 and "flux_change needs flux" in capsys.readouterr().err
    write_config(
        tmp, epochs={2000: "lc2000/*.tif"}, carbon={"densities": "d.csv"}, rasters=["stock"], redline={"min_area_ha": 1}
    )
    assert cli("run", two_epochs) == 1 and "add ['landcover', 'flux'] to `rasters`" in capsys.readouterr().err


def test_overviews_off_changes_only_the_overviews(tmp_path):
    """`overviews: false`: still COGs, same pixels and tables, maps drawn; no overview levels."""
    codes = np.array(sorted(CNLUCC))
    rng = np.random.default_rng(7)
    for year in (2000, 2020):  # 600 x 700 px: one overview level (factor 2) by default
        write_raster(tmp_path / f"lc{year}.tif", rng.choice(codes[codes < 255], (600, 700)).astype(np.uint8))
    (tmp_path / "d.csv").write_text(FULL_DENSITIES)
    settings = {
        "epochs": {2000: "lc2000.tif", 2020: "lc2020.tif"},
        "carbon": {"densities": "d.csv"},
        "dask": {"chunks": 256},
    }
    write_config(tmp_path, **settings)
    assert cli("run", tmp_path / "config.yaml", "-o", tmp_path / "with") == 0
    write_config(tmp_path, **settings, overviews=False)
    assert cli("run", tmp_path / "config.yaml", "-o", tmp_path / "without") == 0
    same_tables(tmp_path / "with", tmp_path / "without")
    rasters = sorted(p.name for p in (tmp_path / "with/rasters").glob("*.tif"))
    assert len(rasters) == 10 and rasters == sorted(p.name for p in (tmp_path / "without/rasters").glob("*.tif"))
    for name in rasters:
        with (
            rasterio.open(tmp_path / "with/rasters" / name) as a,
            rasterio.open(tmp_path / "without/rasters" / name) as b,
        ):
            assert a.overviews(1) == [2] and b.overviews(1) == [], name
            assert a.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == b.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            np.testing.assert_array_equal(a.read(1), b.read(1))
            assert (a.descriptions, a.units) == (b.descriptions, b.units)
    maps = sorted(p.name for p in (tmp_path / "without/maps").glob("stock_change_*.png"))
    assert maps == ["stock_change_2000_2020.png"]
    manifest = json.loads((tmp_path / "without/manifest.json").read_text())
    assert manifest["config"]["overviews"] is False


def test_landcover_overviews_hold_only_class_codes_of_the_raster(tmp_path):
    """A 600 x 700 checkerboard of cropland (11 -> 1) and forest (21 -> 2): every 2 x 2 block of the
    factor-2 overview holds two of each. Averaging would make a class the raster does not have (GDAL
    averages a paletted band's colours, (245, 222, 110) and (38, 115, 0), and takes the nearest palette
    entry, grassland's (163, 214, 92)); the most common value is 1 or 2."""
    i, j = np.indices((600, 700))
    codes = np.where((i + j) % 2 == 0, 11, 21).astype(np.uint8)
    write_raster(tmp_path / "a.tif", codes)
    write_raster(tmp_path / "b.tif", codes)
    write_config(tmp_path, epochs={2000: "a.tif", 2020: "b.tif"}, dask={"chunks": 256})
    assert cli("run", tmp_path / "config.yaml", "--stages", "carbon") == 0
    path = tmp_path / "out/rasters/landcover_2020.tif"
    with rasterio.open(path) as ds:
        assert ds.overviews(1) == [2]
    with rasterio.open(path, overview_level=0) as ds:
        overview = ds.read(1)
    assert overview.shape == (300, 350)
    assert set(np.unique(overview).tolist()) <= {0, 1, 2} and {1, 2} & set(np.unique(overview).tolist())


def test_stages_choose_what_is_written(two_epochs, capsys):
    """`--stages carbon` writes the core outputs only, `transitions,zonal` adds the interval and zone tables;
    what they write is byte for byte what the whole run writes."""
    tmp = two_epochs.parent
    write_config(tmp, epochs={2000: "lc2000/*.tif", 2020: "lc2020.tif"}, **zones_and_statistics(tmp))
    assert cli("run", two_epochs, "-o", tmp / "all") == 0
    assert cli("run", two_epochs, "-o", tmp / "core", "--stages", "carbon") == 0
    assert cli("run", two_epochs, "-o", tmp / "some", "--stages", "transitions, zonal") == 0
    everything = {p.relative_to(tmp / "all").as_posix() for p in (tmp / "all").rglob("*") if p.is_file()}
    core = {p.relative_to(tmp / "core").as_posix() for p in (tmp / "core").rglob("*") if p.is_file()}
    some = {p.relative_to(tmp / "some").as_posix() for p in (tmp / "some").rglob("*") if p.is_file()}
    assert core < some < everything
    assert sorted(f for f in core if f.startswith("tables/") and f.endswith(".csv")) == [
        "tables/balance_region.csv",
        "tables/classes_region.csv",
        "tables/epochs.csv",
    ]
    assert sorted(f for f in core if f.startswith("rasters/")) == [
        f"rasters/{k}_{y}.{e}"
        for k in ("flux", "landcover", "stock")
        for y in (2000, 2020)
        for e in (("qml", "tif") if k == "landcover" else ("tif",))
    ]
    assert "tables/transitions_zone_2000_2020.csv" in some and "zone.gpkg" in some
    assert not [f for f in some if f.startswith(("maps/", "report", "tables/trends_"))]
    assert "report.html" in everything and "tables/trends_zone.csv" in everything
    for folder, files in (("core", core), ("some", some)):
        for name in (f for f in files if f.endswith(".csv")):
            assert (tmp / folder / name).read_bytes() == (tmp / "all" / name).read_bytes(), (folder, name)
    manifest = json.loads((tmp / "some/manifest.json").read_text())
    assert manifest["stages"] == ["ingest", "reclassify", "carbon", "transitions", "zonal"]

    assert cli("run", two_epochs, "--stages", "carbon,maps") == 1
    assert "unknown stage(s) maps; stages: ingest, reclassify, carbon" in capsys.readouterr().err
    assert cli("run", two_epochs, "--stages", "redline") == 1
    assert "no `redline:` section" in capsys.readouterr().err


def _most_blocks_held(config: Path) -> int:
    """The most blocks (2-D arrays of 32 x 32 px or more) the threaded scheduler holds at once in a run of
    ``config`` on one thread (the order it runs the tasks in is then the same every time)."""
    import dask
    from dask.callbacks import Callback

    most = [0]

    class Held(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            # Blocks, not the 1 x 1 results of the writes.
            held = sum(isinstance(v, np.ndarray) and v.ndim == 2 and v.size >= 32 * 32 for v in state["cache"].values())
            most[0] = max(most[0], held)

    with dask.config.set(num_workers=1), Held():
        assert cli("run", config, "--stages", "transitions,zonal") == 0
    return most[0]


def test_the_run_holds_as_many_blocks_on_any_block_grid(tmp_path):
    """Memory is set by the block, not the raster: on 2 x 2 to 10 x 10 blocks of the same 640 x 640 px rasters,
    a run with zones holds a few blocks at once. It held an epoch's every block on some grids (its unknown-code
    count, a small reduction, read that epoch whole first: 34 blocks on 5 x 5) and every block's classes and
    parameter rows (a burned zone block, fed by no read, ran last: 156 blocks on 5 x 5)."""
    import geopandas as gpd
    import shapely

    rng = np.random.default_rng(11)
    codes = np.array([11, 12, 21, 22, 31, 41, 51, 52, 53, 64, 65], dtype=np.uint8)
    a = codes[rng.integers(0, len(codes), size=(640, 640))]
    b = np.where(rng.random(a.shape) < 0.1, codes[rng.integers(0, len(codes), size=a.shape)], a)
    write_raster(tmp_path / "lc2000.tif", a)
    write_raster(tmp_path / "lc2020.tif", b)
    x0, y0, side = 500000, 3400000, 640 * 30
    shapes = [shapely.box(x0, y0 - side * 0.6, x0 + side * 0.7, y0), shapely.box(x0, y0 - side, x0 + side, y0)]
    shapes[1] = shapes[1].difference(shapes[0])
    gpd.GeoDataFrame({"code": ["z1", "z2"]}, geometry=shapes, crs="EPSG:32650").to_file(tmp_path / "zones.gpkg")
    (tmp_path / "d.csv").write_text(FULL_DENSITIES)
    held = {}
    for chunks in (320, 160, 128, 64):
        config = write_config(
            tmp_path,
            epochs={2000: "lc2000.tif", 2020: "lc2020.tif"},
            zones=[{"name": "zone", "path": "zones.gpkg", "id": "code"}],
            carbon={"densities": "d.csv"},
            dask={"chunks": chunks},
        )
        held[chunks] = _most_blocks_held(config)
    assert max(held.values()) <= 16, held  # 12 or 13 at every grid; before, up to 34 and 156
