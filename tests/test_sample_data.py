"""The committed sample region: reproducible from its seed, and rich enough to exercise every pathway."""

from __future__ import annotations

import itertools
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.features
import rasterio.transform
import yaml
from scipy import ndimage

from pipeline.model.pathways import pathway
from pipeline.samples.region import generate_sample

COMMITTED = Path(__file__).parents[1] / "sample_data"
YEARS = (2000, 2005, 2010, 2015, 2020)
PIXEL_M2 = 30.0 * 30.0
# CNLUCC -> DESIGN.md target class, written out here so the test does not trust the package's own table.
CNLUCC = {
    11: 1,
    12: 1,
    21: 2,
    22: 2,
    23: 2,
    24: 2,
    31: 3,
    32: 3,
    33: 3,
    41: 4,
    42: 4,
    43: 4,
    45: 4,
    46: 4,
    64: 4,
    51: 5,
    52: 6,
    53: 7,
    61: 8,
    62: 8,
    63: 8,
    65: 8,
    66: 8,
    67: 8,
}


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    files = generate_sample(out)
    assert all(f.exists() for f in files)
    return out


def mosaic(folder: Path, year: int) -> np.ndarray:
    """The 2 x 2 tiles of an epoch as one 1600 x 1600 array (placed by their transforms)."""
    out = np.full((1600, 1600), 256, np.uint16)  # 256 marks 'not written', which no tile may leave
    for path in sorted((folder / f"lc{year}").glob("*.tif")):
        with rasterio.open(path) as ds:
            r0, c0 = round((3400000 - ds.transform.f) / 30), round((ds.transform.c - 480000) / 30)
            out[r0 : r0 + ds.height, c0 : c0 + ds.width] = ds.read(1)
    assert (out < 256).all()
    return out.astype(np.uint8)


def classes(codes: np.ndarray) -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    for code, cls in CNLUCC.items():
        lut[code] = cls
    assert set(np.unique(codes)) <= set(CNLUCC) | {255}, "codes outside CNLUCC"
    return lut[codes]


def pathway_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels per DESIGN.md pathway code 0..6 between two target-class arrays (nodata pixels left out)."""
    return np.bincount(pathway(a, b)[(a > 0) & (b > 0)], minlength=7)


@pytest.fixture(scope="module")
def epochs() -> dict[int, np.ndarray]:
    return {y: mosaic(COMMITTED, y) for y in YEARS}


# --- (a) the committed folder is what the generator writes --------------------------------------------------


def test_same_file_list(regenerated: Path) -> None:
    def listing(d: Path) -> list[str]:
        return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())

    assert listing(regenerated) == listing(COMMITTED)
    assert len(listing(COMMITTED)) == 5 * 4 + 5 + 2 + 8
    assert sum(p.stat().st_size for p in COMMITTED.rglob("*") if p.is_file()) < 4_000_000


@pytest.mark.parametrize("year", YEARS)
def test_same_pixels_and_grid(regenerated: Path, year: int) -> None:
    tiles = sorted((COMMITTED / f"lc{year}").glob("*.tif"))
    assert [t.name for t in tiles] == [f"lc{year}_r{r}c{c}.tif" for r in (0, 1) for c in (0, 1)]
    for path in tiles:
        with rasterio.open(path) as old, rasterio.open(regenerated / f"lc{year}" / path.name) as new:
            assert np.array_equal(old.read(1), new.read(1))
            assert old.profile == new.profile and old.tags() == new.tags()
            assert old.crs.to_epsg() == 4547 and old.res == (30.0, 30.0) and (old.width, old.height) == (800, 800)
            assert old.dtypes[0] == "uint8" and old.nodata == 255 and old.block_shapes[0] == (256, 256)
            assert old.compression.name.lower() == "deflate" and old.tags()["SCHEME"] == "CNLUCC"
            assert "TIFFTAG_DATETIME" not in old.tags()
    with rasterio.open(COMMITTED / f"lc{year}" / f"lc{year}_r0c0.tif") as ds:
        assert (ds.transform.c, ds.transform.f) == (480000.0, 3400000.0)


@pytest.mark.parametrize("year", YEARS)
def test_same_ndvi(regenerated: Path, year: int) -> None:
    name = f"ndvi/ndvi{year}.tif"
    with rasterio.open(COMMITTED / name) as old, rasterio.open(regenerated / name) as new:
        assert np.array_equal(old.read(1), new.read(1)) and old.profile == new.profile
        assert old.res == (240.0, 240.0) and old.dtypes[0] == "int16" and old.nodata == -3000


def test_ndvi_follows_the_land_cover_and_greens_in_the_water_conservation_zone(epochs) -> None:
    # Class NDVI written out here: forest high, cropland medium, built land low.
    ndvi = {}
    for year in YEARS:
        with rasterio.open(COMMITTED / f"ndvi/ndvi{year}.tif") as ds:
            ndvi[year] = ds.read(1).astype(float) / 10000
    cls = classes(epochs[2000]).reshape(200, 8, 200, 8)
    forest, built = (cls == 2).all(axis=(1, 3)), (cls == 5).all(axis=(1, 3))
    crop = (cls == 1).all(axis=(1, 3))
    assert np.median(ndvi[2000][forest]) > 0.75 > np.median(ndvi[2000][crop]) > 0.45
    assert np.median(ndvi[2000][built]) < 0.2
    zones = gpd.read_file(COMMITTED / "ecozones.gpkg")
    at_30m = rasterio.transform.from_origin(480000, 3400000, 30, 30)
    ez1 = rasterio.features.rasterize(zones.geometry[zones.zone_id == "EZ1"], (1600, 1600), transform=at_30m) > 0
    ez1 = ez1.reshape(200, 8, 200, 8).all(axis=(1, 3))  # 240 m pixels wholly inside the zone
    always = np.logical_and.reduce([(classes(epochs[y]).reshape(200, 8, 200, 8) == 2).all(axis=(1, 3)) for y in YEARS])
    inner = ez1 & always
    assert inner.sum() > 100
    # 0.004 NDVI a year over 20 years, within the noise of +-0.004 at each end
    rise = ndvi[2020][inner] - ndvi[2000][inner]
    assert 0.08 - 0.0081 <= rise.min() and rise.max() <= 0.08 + 0.0081


@pytest.mark.parametrize("name", ["natural", "ecological"])
def test_same_scenario_pixels(regenerated: Path, name: str) -> None:
    path = f"scenarios/{name}_2030.tif"
    with rasterio.open(COMMITTED / path) as old, rasterio.open(regenerated / path) as new:
        assert np.array_equal(old.read(1), new.read(1))
        assert old.profile == new.profile and old.tags() == new.tags()
        assert (old.width, old.height) == (1600, 1600) and (old.transform.c, old.transform.f) == (480000.0, 3400000.0)


def test_scenarios_continue_or_protect(epochs: dict[int, np.ndarray]) -> None:
    base = classes(epochs[2020])
    scen = {}
    for name in ("natural", "ecological"):
        with rasterio.open(COMMITTED / f"scenarios/{name}_2030.tif") as ds:
            scen[name] = classes(ds.read(1))
        assert np.array_equal(scen[name] > 0, base > 0)  # the same region, no gaps
    natural, ecological = pathway_counts(base, scen["natural"]), pathway_counts(base, scen["ecological"])
    assert natural[1] > 2 * ecological[1] > 0 and natural[2] > 1000 and ecological[2] == 0  # displacement only in one
    assert ecological[5] > 10 * max(natural[5], 1)  # restoration
    assert (scen["ecological"] == 2).sum() > (base == 2).sum() > (scen["natural"] == 2).sum()


@pytest.mark.parametrize(
    "name,layer", [("counties", "counties"), ("ecozones", "ecozones"), ("protected_areas", "protected_areas")]
)
def test_same_vectors(regenerated: Path, name: str, layer: str) -> None:
    old = gpd.read_file(COMMITTED / f"{name}.gpkg", layer=layer)
    new = gpd.read_file(regenerated / f"{name}.gpkg", layer=layer)
    pd.testing.assert_frame_equal(old.drop(columns="geometry"), new.drop(columns="geometry"))
    assert old.geometry.geom_equals_exact(new.geometry, tolerance=1e-6).all()
    assert old.crs.to_epsg() == 4547


@pytest.mark.parametrize("name", ["densities.csv", "rates.csv", "statistics.csv", "config.yaml", "README.md"])
def test_same_text_bytes(regenerated: Path, name: str) -> None:
    assert (COMMITTED / name).read_bytes() == (regenerated / name).read_bytes()


# --- (b) properties that make the sample worth running ------------------------------------------------------


def test_region_shape(epochs: dict[int, np.ndarray]) -> None:
    valid = epochs[2000] != 255
    assert 0.75 <= valid.mean() <= 0.85
    for year in (2010, 2015, 2020):
        assert np.array_equal(epochs[year] != 255, valid)


def test_every_pathway_2000_2020(epochs: dict[int, np.ndarray]) -> None:
    counts = pathway_counts(classes(epochs[2000]), classes(epochs[2020]))
    for code in range(1, 7):
        assert counts[code] >= 200, f"pathway {code}: {counts[code]} pixels"
    assert counts[1:].sum() < 0.1 * counts.sum()  # change is a minority, as over 20 years in China


@pytest.mark.parametrize("y0,y1", list(itertools.pairwise(YEARS)))
def test_every_pathway_each_interval(epochs: dict[int, np.ndarray], y0: int, y1: int) -> None:
    counts = pathway_counts(classes(epochs[y0]), classes(epochs[y1]))
    assert (counts[1:] >= 100).all(), counts.tolist()


def test_plausible_change(epochs: dict[int, np.ndarray]) -> None:
    a, b = classes(epochs[2000]), classes(epochs[2020])
    urban0, urban1 = (a == 5).sum(), (b == 5).sum()
    assert 1.5 <= urban1 / urban0 <= 2.5
    crop0, crop1 = (a == 1).sum(), (b == 1).sum()
    assert 0.9 <= crop1 / crop0 < 1.0  # a few % of cropland lost, not most
    assert ndimage.label(a == 6)[1] > 300  # several hundred villages


def test_2005_gap(epochs: dict[int, np.ndarray]) -> None:
    valid = epochs[2000] != 255
    gap = (epochs[2005] == 255) & valid
    assert 0.003 <= gap.sum() / valid.sum() <= 0.01
    assert not ((epochs[2005] != 255) & ~valid).any()  # the gap is inside the region, nothing added outside


@pytest.mark.parametrize("name,n", [("counties", 12), ("ecozones", 4)])
def test_zones_tile_the_region(epochs: dict[int, np.ndarray], name: str, n: int) -> None:
    zones = gpd.read_file(COMMITTED / f"{name}.gpkg", layer=name)
    assert len(zones) == n and zones.geometry.is_valid.all()
    valid_m2 = (epochs[2000] != 255).sum() * PIXEL_M2
    assert abs(zones.union_all().area - valid_m2) <= 0.001 * valid_m2
    for a, b in itertools.combinations(zones.geometry, 2):
        assert a.intersection(b).area < 1.0


def test_zone_attributes() -> None:
    counties = gpd.read_file(COMMITTED / "counties.gpkg", layer="counties")
    assert counties["code"].tolist() == list(range(420101, 420113)) and counties["name"].is_unique
    assert counties["name"].str.endswith("县").all()
    eco = gpd.read_file(COMMITTED / "ecozones.gpkg", layer="ecozones")
    assert eco["zone_id"].tolist() == ["EZ1", "EZ2", "EZ3", "EZ4"] and eco["national_key"].sum() == 2
    assert set(eco["function"]) == {"水源涵养", "水土保持", "生物多样性维护", "农产品提供"}


def test_tables() -> None:
    dens = pd.read_csv(COMMITTED / "densities.csv")
    pools = ["c_above", "c_below", "c_soil", "c_dead"]
    assert dens.columns.tolist() == ["class", "name", *pools, *(f"{p}_sd" for p in pools), "source"]
    assert dens["class"].tolist() == list(range(1, 9))
    for pool in pools:  # illustrative spreads: 20 % of each pool, as InVEST's sample uncertainty table
        assert (dens[f"{pool}_sd"] == (dens[pool] * 0.2).round(3)).all()
    rates = pd.read_csv(COMMITTED / "rates.csv").set_index("class")["rate_tC_ha_yr"].to_dict()
    assert rates == {2: -0.644, 3: -0.021, 4: -0.218, 8: -0.005}
    stats = pd.read_csv(COMMITTED / "statistics.csv")
    assert len(stats) == 12 * 5 and set(stats["year"]) == set(YEARS)
    assert set(stats["zone_id"]) == set(range(420101, 420113))
    by_year = stats.groupby("year")
    assert by_year["energy_intensity_tce_per_10k_yuan"].mean().is_monotonic_decreasing
    gdp = by_year[["gdp_secondary_10k_yuan", "gdp_tertiary_10k_yuan"]].sum().sum(axis=1)
    assert 5 <= gdp[2020] / gdp[2000] <= 8  # ~10 %/yr for 20 years
    ratio = stats["fertiliser_t"] / stats["sown_area_hm2"]
    assert ratio[stats["sown_area_hm2"] > 0].between(0.3, 0.5).all()


def test_config() -> None:
    cfg = yaml.safe_load((COMMITTED / "config.yaml").read_text(encoding="utf-8"))
    assert cfg["epochs"] == {y: f"lc{y}/*.tif" for y in YEARS}
    assert cfg["scheme"] == "cnlucc" and cfg["urban_split"] == "native"
    assert cfg["uncertainty"] == {"draws": 1000, "seed": 1}
    assert cfg["valuation"] == {"price_per_tC": 43, "discount_rate_pct": 7, "price_change_pct": 0}
    assert [z["path"] for z in cfg["zones"]] == ["counties.gpkg", "ecozones.gpkg"]
    assert cfg["scenarios"] == {
        2030: {"natural": "scenarios/natural_2030.tif", "ecological": "scenarios/ecological_2030.tif"}
    }
    for rel in [*cfg["carbon"].values(), *(z["path"] for z in cfg["zones"])]:
        assert (COMMITTED / rel).is_file()
