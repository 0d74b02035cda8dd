"""The red-line stage of a run: files, lock-in and lock-out, coverage arithmetic, chunk independence."""

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from pipeline.io.parts import PartFolder
from pipeline.io.tables import write_polygon_layer

from .conftest import read, write_config, write_raster
from .helpers import cli

X0, Y0, PX = 500000, 3400000, 30
# Totals (t C/ha): cropland 97, forest 185, grassland 85, the rest lower.
DENSITIES = (
    "class,c_above,c_below,c_soil,c_dead\n1,5,1,90,1\n2,40,10,130,5\n3,1,4,80,0\n4,0.5,0,30,0\n"
    "5,0.5,0.1,40,0\n6,2,0.5,60,0\n7,0.5,0.1,40,0\n8,0.5,0.1,20,0\n"
)


def box(r0, c0, r1, c1):
    """Polygon of pixel rows r0..r1-1 and columns c0..c1-1."""
    return shapely.box(X0 + c0 * PX, Y0 - r1 * PX, X0 + c1 * PX, Y0 - r0 * PX)


@pytest.fixture
def forest_region(tmp_path):
    """100 x 120 px: cropland with scattered grassland, two forest blocks (one crossing the 64-px chunk
    edges), two ecological zones (left, right half; the left a national key zone), a protected area and a
    lock-out area."""
    rng = np.random.default_rng(11)
    lc = np.where(rng.random((100, 120)) < 0.15, 31, 11).astype(np.uint8)  # grassland in cropland
    lc[50:80, 50:80] = 21  # forest across the chunk edges at row 64 and column 64
    lc[5:25, 5:25] = 21
    lc[8:12, 100:104] = 21  # a small forest: too small to be a candidate
    write_raster(tmp_path / "lc2000.tif", lc)
    later = lc.copy()
    later[60:64, 90:110] = 51
    write_raster(tmp_path / "lc2020.tif", later)
    (tmp_path / "d.csv").write_text(DENSITIES)
    zones = gpd.GeoDataFrame(
        {"code": ["W", "E"], "key": [True, False]},
        geometry=[box(0, 0, 100, 60), box(0, 60, 100, 120)],
        crs="EPSG:32650",
    )
    zones.to_file(tmp_path / "eco.gpkg")
    gpd.GeoDataFrame({"name": ["park"]}, geometry=[box(30, 0, 40, 20)], crs="EPSG:32650").to_file(
        tmp_path / "park.gpkg"
    )
    gpd.GeoDataFrame({"name": ["plan"]}, geometry=[box(5, 15, 25, 25)], crs="EPSG:32650").to_file(
        tmp_path / "plan.gpkg"
    )
    return tmp_path


def config(folder, **dask):
    return write_config(
        folder,
        area="planar",  # worked by hand in planar 30 m pixels of 0.09 ha
        epochs={2000: "lc2000.tif", 2020: "lc2020.tif"},
        carbon={"densities": "d.csv"},
        zones=[{"name": "eco", "path": "eco.gpkg", "id": "code"}],
        redline={
            "min_area_ha": 20,
            "radius_m": 90,
            "zone_layer": "eco",
            "key_field": "key",
            "protected_areas": "park.gpkg",
            "lock_out": "plan.gpkg",
        },
        dask=dask or {"chunks": 64},
    )


STOCK = {1: 97.0, 2: 185.0, 3: 85.0, 5: 40.6}  # t C/ha, the sums of DENSITIES' rows (cropland, forest, grass, urban)
DISC3 = np.array(  # pixel centres within 3 px (radius 90 m of 30 m pixels), written out
    [
        [0, 0, 0, 1, 0, 0, 0],
        [0, 1, 1, 1, 1, 1, 0],
        [0, 1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 1, 1],
        [0, 1, 1, 1, 1, 1, 0],
        [0, 1, 1, 1, 1, 1, 0],
        [0, 0, 0, 1, 0, 0, 0],
    ]
)


def reference_candidates(classes: np.ndarray, values: dict = STOCK, lock_out: bool = True) -> np.ndarray:
    """Independent of the package: Getis-Ord Gi* (binary disc weights, global mean and population std;
    Getis & Ord 1992) of the stock density by scipy, hot where z > 1.96 on forest, grassland, water or
    unused land outside the lock-out, 8-connected patches of at least 20 ha (223 px of 0.09 ha)."""
    from scipy import ndimage

    x = np.vectorize(values.get)(classes).astype(np.float64)
    n, mean, std = x.size, x.mean(), x.std()
    sx = ndimage.correlate(x, DISC3.astype(float), mode="constant", cval=0.0)
    w = ndimage.correlate(np.ones_like(x), DISC3.astype(float), mode="constant", cval=0.0)
    z = (sx - mean * w) / (std * np.sqrt((n * w - w**2) / (n - 1)))
    locked_out = np.zeros(classes.shape, bool)
    locked_out[5:25, 15:25] = lock_out
    hot = (z > 1.96) & np.isin(classes, [2, 3, 4, 8]) & ~locked_out
    labels, _ = ndimage.label(hot, np.ones((3, 3)))
    size = np.bincount(labels.ravel())
    return hot & (size[labels] >= 223)


def test_candidates_coverage_and_gap_fill(forest_region):
    assert cli("run", config(forest_region), "-o", forest_region / "o1") == 0
    out = forest_region / "o1"
    candidates = gpd.read_file(out / "redline/candidates.gpkg")
    # Two forests are hot; the lock-out takes columns 15-24 of the first (20 x 10 px = 18 ha left,
    # under 20 ha), so only the forest across the chunk edges remains: one polygon.
    assert len(candidates) == 1 and candidates.is_valid.all()
    (c,) = candidates.itertuples()
    assert c.geometry.area / 1e4 == pytest.approx(c.area_ha) and c.pixels * 0.09 == pytest.approx(c.area_ha)
    assert not c.geometry.intersects(box(5, 15, 25, 25).buffer(-1))  # nothing in the lock-out
    assert c.geometry.contains(box(52, 52, 78, 78)) and c.area_ha >= 30 * 30 * 0.09 * 0.8
    stock = read(out / "rasters/stock_2020.tif")
    assert c.density_tC_ha == pytest.approx(float(stock[50:80, 50:80].mean()), rel=0.05)
    assert c.rank == 1 and c.eco_id == "E" and c.eco_share == pytest.approx(20 / 30, abs=0.05)
    cover = pd.read_csv(out / "redline/coverage.csv", encoding="utf-8-sig").set_index("zone_id")
    valid = {"W": 100 * 60 * 0.09, "E": 100 * 60 * 0.09}
    park_ha = 10 * 20 * 0.09
    classes = np.vectorize({11: 1, 21: 2, 31: 3, 51: 5}.get)(read(forest_region / "lc2020.tif"))
    hand = reference_candidates(classes)
    assert hand.sum() == c.pixels and hand[50:80, 50:80].all()
    hand_ha = {"W": hand[:, :60].sum() * 0.09, "E": hand[:, 60:].sum() * 0.09}
    for z in ("W", "E"):
        row = cover.loc[z]
        assert row.zone_area_ha == pytest.approx(valid[z])
        inside = c.geometry.intersection(box(0, 0, 100, 60) if z == "W" else box(0, 60, 100, 120)).area / 1e4
        assert row.candidate_ha == pytest.approx(inside) == pytest.approx(hand_ha[z])
        assert row.locked_in_ha == pytest.approx(park_ha if z == "W" else 0)
        covered = hand_ha[z] + (park_ha if z == "W" else 0)  # the park (rows 30-39) is far from the forest
        assert row.covered_ha == pytest.approx(covered)
        assert row.share == pytest.approx(covered / 540)
    w = cover.loc["W"]
    assert w.key_zone and w.target_share == 0.7384 and not w.met
    shortfall = 0.7384 * 540 - (hand_ha["W"] + park_ha)
    assert w.shortfall_ha == pytest.approx(shortfall)
    # Gap fill takes the densest allowed land first: the forest left of the lock-out (185 t C/ha, rows 5-24,
    # columns 5-14: 200 px), then every grassland pixel (85) of W not covered; even all of it cannot close the gap.
    free_grass = (classes[:, :60] == 3) & ~hand[:, :60]
    free_grass[30:40, 0:20] = False  # in the park: covered already
    added = (200 + free_grass.sum()) * 0.09
    assert added < shortfall
    assert w.threshold_density_tC_ha == 85.0 and not w.met_after and w.remaining_shortfall_ha > 0
    assert w.added_ha == pytest.approx(added)
    assert w.remaining_shortfall_ha == pytest.approx(shortfall - added)
    assert w.added_stock_tC == pytest.approx(200 * 0.09 * 185 + free_grass.sum() * 0.09 * 85)
    assert np.isnan(cover.loc["E", "target_share"]) and pd.isna(cover.loc["E", "met"])
    gap = gpd.read_file(out / "redline/gap_fill.gpkg")
    assert list(gap.zone_id) == ["W"] and gap.is_valid.all()
    assert gap.geometry.iloc[0].area / 1e4 == pytest.approx(w.added_ha)
    assert not gap.geometry.iloc[0].intersects(box(30, 0, 40, 20).buffer(-1))  # the park is covered already
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Ecological protection red-line candidates" in page and (out / "maps/redline_2020.png").exists()
    assert (out / "rasters/gi_star_2020.tif").exists()


def test_red_lines_of_sink_density(forest_region):
    """`value: sink`: hotspots of uptake (minus the rate where it is negative, 0 for sources). Forest takes up
    0.644 t C/ha/yr, grassland 0.021; cropland (a source, 0.3) and urban land (2.5) take up nothing. Both forest
    blocks are hot (no lock-out here); the small one (16 px) is under 20 ha."""
    (forest_region / "r.csv").write_text("class,rate_tC_ha_yr\n1,0.3\n2,-0.644\n3,-0.021\n5,2.5\n")
    write_config(
        forest_region,
        epochs={2000: "lc2000.tif", 2020: "lc2020.tif"},
        carbon={"densities": "d.csv", "rates": "r.csv"},
        redline={"min_area_ha": 20, "radius_m": 90, "value": "sink"},
        area="planar",
    )
    assert cli("run", forest_region / "config.yaml") == 0
    table = pd.read_csv(forest_region / "out/redline/candidates.csv", encoding="utf-8-sig")
    classes = np.vectorize({11: 1, 21: 2, 31: 3, 51: 5}.get)(read(forest_region / "lc2020.tif"))
    hand = reference_candidates(classes, {1: 0.0, 2: 0.644, 3: 0.021, 5: 0.0}, lock_out=False)
    from scipy import ndimage

    labels, n = ndimage.label(hand, np.ones((3, 3)))
    assert n == len(table) == 2
    assert hand[5:25, 5:25].all() and hand[50:80, 50:80].all() and not hand[8:12, 100:104].any()
    # Each patch: its pixels, and uptake = 0.09 ha x (0.644 per forest pixel + 0.021 per grassland pixel).
    hand_rows = sorted(
        (
            int((labels == k).sum()),
            0.09 * (0.644 * ((labels == k) & (classes == 2)).sum() + 0.021 * ((labels == k) & (classes == 3)).sum()),
        )
        for k in range(1, n + 1)
    )
    got = sorted(zip(table["pixels"], table["sink_tC_yr"]))
    assert [p for p, _ in got] == [p for p, _ in hand_rows]
    assert [s for _, s in got] == pytest.approx([s for _, s in hand_rows])
    assert (table["sink_tC_yr"] > 0).all()


def test_red_lines_do_not_depend_on_the_chunking(forest_region):
    assert cli("run", config(forest_region), "-o", forest_region / "o1") == 0
    assert cli("run", config(forest_region, chunks=80, scheduler="synchronous"), "-o", forest_region / "o2") == 0
    for name in ("candidates.csv", "coverage.csv"):
        assert (forest_region / "o1/redline" / name).read_bytes() == (forest_region / "o2/redline" / name).read_bytes()
    for name in ("candidates", "gap_fill"):
        a, b = (gpd.read_file(forest_region / o / f"redline/{name}.gpkg") for o in ("o1", "o2"))
        assert a.geometry.geom_equals_exact(b.geometry, 0).all()
    np.testing.assert_array_equal(
        read(forest_region / "o1/rasters/gi_star_2020.tif"), read(forest_region / "o2/rasters/gi_star_2020.tif")
    )


def test_bad_red_line_settings(forest_region, capsys):
    write_config(
        forest_region,
        epochs={2000: "lc2000.tif"},
        carbon={"densities": "d.csv"},
        zones=[{"name": "eco", "path": "eco.gpkg", "id": "code"}],
        redline={"min_area_ha": 20, "zone_layer": "ecozone"},
    )
    assert cli("run", forest_region / "config.yaml") == 1
    assert "redline.zone_layer 'ecozone' is not a zone layer; did you mean 'eco'?" in capsys.readouterr().err
    write_config(
        forest_region,
        epochs={2000: "lc2000.tif"},
        carbon={"densities": "d.csv"},
        zones=[{"name": "eco", "path": "eco.gpkg", "id": "code"}],
        redline={"min_area_ha": 20, "zone_layer": "eco", "key_field": "national_key"},
    )
    assert cli("run", forest_region / "config.yaml") == 1
    err = capsys.readouterr().err
    assert "eco.gpkg" in err and "redline.key_field 'national_key' is not a field" in err and "key" in err
    write_config(forest_region, epochs={2000: "lc2000.tif"}, redline={"radius_m": 90})
    assert cli("run", forest_region / "config.yaml") == 1
    assert "min_area_ha" in capsys.readouterr().err
    assert not list(forest_region.glob("out/*"))  # nothing half-written


def test_a_polygon_layer_written_in_batches_reads_back_in_its_own_order(tmp_path):
    attributes = pd.DataFrame(
        {"patch_id": [1, 2, 3], "zone_name": ["林地", "", "c"], "area_ha": [3.0, 2.0, 1.0], "met": [True, False, True]},
        index=[30, 10, 20],  # by label, in the layer's order
    )
    two = shapely.MultiPolygon([shapely.box(2, 0, 3, 1), shapely.box(4, 0, 5, 1)])
    batches = [
        (np.array([20, 10]), np.array([shapely.Polygon(), two], object)),
        (np.array([30]), np.array([box(0, 0, 1, 1)])),
    ]
    path = tmp_path / "c.gpkg"
    write_polygon_layer(iter(batches), attributes, "EPSG:32650", path, "candidates")
    info = pyogrio.read_info(path)
    assert info["geometry_type"] == "MultiPolygon" and info["features"] == 3 and info["crs"] == "EPSG:32650"
    got = gpd.read_file(path)  # as QGIS and an analyst's script see it: in feature-id order
    pd.testing.assert_frame_equal(pd.DataFrame(got.drop(columns="geometry")), attributes.reset_index(drop=True))
    assert got.geometry.iloc[0].equals(shapely.MultiPolygon([box(0, 0, 1, 1)]))
    assert got.geometry.iloc[1].equals(two) and got.geometry.iloc[2].is_empty
    empty = tmp_path / "none.gpkg"
    write_polygon_layer(iter([]), attributes.iloc[:0], "EPSG:32650", empty, "candidates")
    assert pyogrio.read_info(empty)["features"] == 0 and list(gpd.read_file(empty).columns) == [*attributes, "geometry"]


def test_a_part_written_twice_is_one_whole_part(tmp_path):
    parts = PartFolder(tmp_path / "parts")
    assert parts.put("block_0_1", [(1, shapely.box(0, 0, 1, 1))]) == "block_0_1"
    parts.put("block_0_1", [(2, shapely.box(0, 0, 2, 2))])  # a task rerun after its worker was lost
    assert [p.name for p in (tmp_path / "parts").iterdir()] == ["block_0_1"]
    ((label, geom),) = parts.get("block_0_1")
    assert label == 2 and geom.equals(shapely.box(0, 0, 2, 2))
