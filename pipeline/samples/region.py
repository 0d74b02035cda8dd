"""Seeded generator of the synthetic sample region (CNLUCC land cover 2000-2020, counties, zones, tables).

The landscape is built from smoothed random fields so that patches, rivers and towns look like a land-use
map, and the changes between epochs are modelled processes, so that every pathway of DESIGN.md occurs.
Same seed -> identical pixels, attributes, geometries and CSV/YAML bytes.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.features
import shapely
import shapely.geometry
from rasterio.transform import from_origin
from scipy import ndimage

from pipeline.io.parameters import load_scheme
from pipeline.model.pathways import pathway
from pipeline.samples.densities import DENSITIES, densities_frame

# Carbon densities per class: the illustrative table in pipeline.samples.densities, shared with ``synthetic``.
RATES_SOURCE = "Guizhou land-use carbon emission study 2005-2019, Table 2, after Fang et al. 2007"
RATES = {2: ("forest", -0.644), 3: ("grassland", -0.021), 4: ("water and wetland", -0.218), 8: ("unused", -0.005)}

N, TILE, PIXEL = 1600, 800, 30.0  # pixels per side, tile side, metres
ORIGIN = (480000.0, 3400000.0)  # upper-left corner, EPSG:4547 metres
CRS = "EPSG:4547"
YEARS = (2000, 2005, 2010, 2015, 2020)
SCENARIO_YEAR = 2030
NODATA = 255
TRANSFORM = from_origin(*ORIGIN, PIXEL, PIXEL)
HA_PER_PIXEL = PIXEL * PIXEL / 10_000
TARGET = np.zeros(256, np.uint8)  # CNLUCC code -> DESIGN class, 0 = nodata (the shipped scheme table)
_cnlucc = load_scheme("cnlucc")
TARGET[_cnlucc.codes[_cnlucc.codes < 256]] = _cnlucc.targets[_cnlucc.codes < 256]
CROP, ECO = (11, 12), (21, 22, 23, 24, 31, 32, 33, 46, 64, 65, 66)
COUNTY_NAMES = [
    "青岚县",
    "柳湾县",
    "石桥县",
    "鹭洲县",
    "松岭县",
    "桂溪县",
    "枫林县",
    "梅岗县",
    "荷塘县",
    "杉坪县",
    "竹坞县",
    "兰陂县",
]
ZONES = [
    ("山地水源涵养区", "水源涵养", True),
    ("丘陵水土保持区", "水土保持", False),
    ("河湖湿地生物多样性维护区", "生物多样性维护", True),
    ("平原农产品提供区", "农产品提供", False),
]
CONFIG = """\
# Synthetic sample region written by pipeline.sample_data.generate_sample; see README.md.
name: sample-region
epochs:
  2000: lc2000/*.tif
  2005: lc2005/*.tif
  2010: lc2010/*.tif
  2015: lc2015/*.tif
  2020: lc2020/*.tif
scheme: cnlucc
align: exact
unknown_codes: error
urban_split: native
carbon:
  densities: densities.csv
  rates: rates.csv
  statistics: statistics.csv
zones:
  - {name: county, path: counties.gpkg, id: code, label: name}
  - {name: ecozone, path: ecozones.gpkg, id: zone_id, label: name}
redline: {min_area_ha: 100, zone_layer: ecozone, key_field: national_key, protected_areas: protected_areas.gpkg}
indicators:
  ndvi:
    years: {2000: ndvi/ndvi2000.tif, 2005: ndvi/ndvi2005.tif, 2010: ndvi/ndvi2010.tif, 2015: ndvi/ndvi2015.tif, 2020: ndvi/ndvi2020.tif}
    scale: 0.0001
    nodata: -3000
    unit: NDVI
uncertainty: {draws: 1000, seed: 1}  # percentiles from the *_sd columns of densities.csv
valuation: {price_per_tC: 43, discount_rate_pct: 7, price_change_pct: 0}  # InVEST's valuation of stock change
scenarios:  # simulated futures of 2030 from the last epoch, compared in tables/scenarios_<layer>.csv
  2030: {natural: scenarios/natural_2030.tif, ecological: scenarios/ecological_2030.tif}
output: ../out/sample
dask: {chunks: 512, scheduler: threads}
"""


def smooth(rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise (unitless, mean 0, std 1) with correlation length ~sigma pixels."""
    # Filtering a coarse grid and zooming up keeps large sigmas cheap (a 800 px kernel on 1600^2 is slow).
    k = max([f for f in (1, 2, 4, 8, 16, 32) if f <= sigma / 4] or [1])
    f = ndimage.gaussian_filter(rng.standard_normal((N // k, N // k)), sigma / k, mode="wrap")
    f = ndimage.zoom(f, k, order=1, mode="grid-wrap")[:N, :N] if k > 1 else f
    return (f - f.mean()) / f.std()


def disk(shape: tuple[int, int], cy: float, cx: float, radius: np.ndarray | float) -> np.ndarray:
    """Boolean mask of pixels within ``radius`` (pixels; may be a per-pixel array) of (cy, cx)."""
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return np.hypot(yy - cy, xx - cx) <= radius


def pick(rng: np.random.Generator, mask: np.ndarray, n: int, min_dist: float) -> list[tuple[int, int]]:
    """``n`` random (row, col) pixels of ``mask`` at least ``min_dist`` pixels apart (fewer if they do not fit)."""
    out: list[tuple[int, int]] = []
    for p in (divmod(int(i), N) for i in rng.permutation(np.flatnonzero(mask))):
        if len(out) == n:
            break
        if all(np.hypot(p[0] - q[0], p[1] - q[1]) >= min_dist for q in out):
            out.append(p)
    return out


def stamp(lc: np.ndarray, cy: int, cx: int, r: float, code: int, onto: tuple[int, ...]) -> int:
    """Set ``code`` in a disk of radius ``r`` px where ``lc`` is one of ``onto``; returns cropland pixels taken."""
    ri = int(np.ceil(r))
    y0, y1, x0, x1 = max(cy - ri, 0), min(cy + ri + 1, N), max(cx - ri, 0), min(cx + ri + 1, N)
    win = lc[y0:y1, x0:x1]
    m = disk(win.shape, cy - y0, cx - x0, r) & np.isin(win, onto)
    taken = int(np.isin(win[m], CROP).sum())
    win[m] = code
    return taken


def line(lc: np.ndarray, pts: list[tuple[float, float]], code: int, skip: tuple[int, ...]) -> int:
    """Draw a 2 px wide polyline (a road) through ``pts``; returns cropland pixels taken."""
    m = np.zeros_like(lc, bool)
    for (ya, xa), (yb, xb) in pairwise(pts):
        t = np.linspace(0, 1, int(np.hypot(yb - ya, xb - xa) * 2) + 2)
        yy, xx = (
            np.clip(np.round(ya + t * (yb - ya)).astype(int), 0, N - 2),
            np.clip(np.round(xa + t * (xb - xa)).astype(int), 0, N - 2),
        )
        m[yy, xx] = m[yy + 1, xx] = True  # two pixels across: a road is 30-60 m wide
    m &= ~np.isin(lc, skip)
    taken = int(np.isin(lc[m], CROP).sum())
    lc[m] = code
    return taken


def landscape(
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Valid mask, the five CNLUCC epochs (uint8, 255 outside the region), the 2005 cloud mask, elevation, and
    the 2030 scenarios (name -> CNLUCC map), made from the fields of the epochs without further random draws."""
    yy, xx = np.mgrid[:N, :N].astype(float)
    # Region: a smoothed random blob; the quantile fixes its share of the square at 80 %.
    blob = -np.hypot(yy - N / 2, xx - N / 2) / N + 0.12 * smooth(rng, 120)
    valid = blob > np.quantile(blob, 0.20)
    lab, _ = ndimage.label(valid)
    valid = ndimage.binary_fill_holes(lab == np.argmax(np.bincount(lab[lab > 0])))  # one piece, no holes
    # A meandering river west -> east; the valley around it is the lowland.
    wander = np.cumsum(rng.standard_normal(N)) * 3
    ry = 820 + 140 * np.sin(xx[0] / 260 + rng.uniform(0, 6)) + ndimage.gaussian_filter1d(wander - wander.mean(), 40)
    river_line = np.zeros((N, N), bool)
    river_line[np.clip(ry.round().astype(int), 0, N - 1), np.arange(N)] = True
    d_river = ndimage.distance_transform_edt(~ndimage.binary_dilation(river_line, iterations=3))
    elev = (
        0.55 * smooth(rng, 200)
        + 0.35 * smooth(rng, 50)
        + 0.10 * smooth(rng, 12)
        + 2.2 * (1 - np.exp(-((d_river / 260) ** 2)))
    )

    def q(p):  # thresholds as shares of the region
        return np.quantile(elev[valid], p)

    lc = np.full((N, N), 12, np.uint8)
    n1, n2, n3 = smooth(rng, 6), smooth(rng, 10), smooth(rng, 25)
    crop_top, grass_top = q(0.50), q(0.58)
    paddy = ((elev < q(0.22) + 0.15 * n3) | (d_river < 120 + 50 * n3)) & (n1 > -1.3)  # dry plots on low rises
    lc[paddy] = 11
    lc[elev >= crop_top] = np.where(n1[elev >= crop_top] > 0.5, 31, np.where(n1[elev >= crop_top] < -0.6, 33, 32))
    forest = elev >= grass_top + 0.05 * n2
    lc[forest] = np.select([n2[forest] > 1.0, n1[forest] < -1.4], [22, 23], 21)
    lc[forest & (n3 > 1.6) & (n1 > 0.8)] = 31  # mountain meadows
    lc[(elev >= crop_top) & (elev < crop_top + 0.06) & (n2 > 0.7)] = 24  # orchards on the lowest hill slopes
    lc[(elev > q(0.985)) & (n1 > -0.2)] = 65
    lc[elev > q(0.996)] = 66
    # Water: river with floodplain, two lakes with marsh edges, a hill reservoir, paddy-side ponds.
    lc[(d_river < 7 + 4 * n1) & (elev < crop_top)] = 46
    lc[d_river <= 1] = 41
    ncity = smooth(rng, 25)
    lake_at = pick(rng, valid & (d_river > 60) & (d_river < 160), 2, 400)
    for (cy, cx), lake_r in zip(lake_at, (62, 40)):
        rr = lake_r * (1 + 0.25 * ncity)
        lc[disk((N, N), cy, cx, rr + 6 + 2 * n1) & (lc != 41)] = 64
        lc[disk((N, N), cy, cx, rr)] = 42
    ((cy, cx),) = pick(rng, valid & (elev > q(0.8)) & (elev < q(0.9)), 1, 1)
    lc[disk((N, N), cy, cx, 20 * (1 + 0.3 * n2))] = 43
    for cy, cx in pick(rng, valid & (lc == 11), 200, 20):  # fish ponds, common among Hubei paddies
        stamp(lc, cy, cx, rng.uniform(1.5, 4.5), 43, CROP)
    # City straddling the river, a town downstream; both grow over the epochs by a noisy radius.
    city = (int(ry[640]), 640)
    town = (int(ry[1180]) + 30, 1180)
    radius = [(city, 78, 0.14), (town, 30, 0.14)]  # (centre, radius px in 2000, growth per epoch)
    d_centre = [np.hypot(yy - c[0], xx - c[1]) for c, _, _ in radius]

    def urban_at(k):
        return np.logical_or(
            *[d < r * (1 + g * k) * np.clip(1 + 0.3 * ncity, 0.6, 1.4) for d, (_, r, g) in zip(d_centre, radius)]
        )

    ring = (d_centre[0] > 95) & (d_centre[0] < 125)
    # Sites (row, col) and their radii in px; the radii change over the epochs.
    industry = pick(rng, valid & ring & (d_river > 15), 4, 60)
    industry_r = [rng.uniform(8, 12) for _ in industry]
    settle = pick(rng, valid & np.isin(lc, CROP) & (d_centre[0] > 125), 650, 12)
    settle_r = [rng.uniform(1.0, 3.6) for _ in settle]
    swallowed = pick(rng, valid & np.isin(lc, CROP) & ring, 25, 10)  # will be swallowed
    settle += swallowed
    settle_r += [rng.uniform(2.0, 3.6) for _ in swallowed]
    fate = rng.uniform(size=len(settle))  # < 0.25 shrink and vanish, > 0.88 grow
    to_eco = rng.uniform(size=len(settle)) < 0.2
    lc[urban_at(0) & (lc != 41)] = 51
    for (cy, cx), r in zip(industry, industry_r):
        stamp(lc, cy, cx, r, 53, CROP + ECO + (43,))
    line(lc, [city, (city[0] - 320, city[1] + 250), (town[0] - 40, town[1] + 300)], 53, (41, 42, 51))
    line(lc, [(city[0] + 20, 0), (city[0] + 60, city[1]), (town[0] + 40, town[1]), (town[0] + 10, N - 1)], 53, (41, 42))
    for (cy, cx), r in zip(settle, settle_r):
        stamp(lc, cy, cx, r, 52, CROP)
    # Scores that decide where later changes happen: fixed fields so that the changes grow as patches.
    crop0 = np.isin(lc, CROP) & valid
    steep = elev + 0.25 * n2  # grain-for-green takes the highest, steepest cropland first
    reclaim = n3 + 0.5 * n1  # fixed, so reclaimed land forms patches that grow from epoch to epoch
    g4g_thr = [np.quantile(steep[crop0], 1 - 0.01 * k) for k in range(len(YEARS))]
    epochs, lost = [lc.copy()], 0
    for k in range(1, len(YEARS)):
        lc = lc.copy()
        grow = urban_at(k) & ~urban_at(k - 1) & ~np.isin(lc, (41, 42, 51, 53))  # cities fill ponds, not lakes
        lost = int(np.isin(lc[grow], CROP).sum())
        lc[grow] = 51  # swallows rural settlements too: 6 -> 5 is "other change"
        for i, (cy, cx) in enumerate(industry):
            industry_r[i] += 2.5
            lost += stamp(lc, cy, cx, industry_r[i], 53, CROP + ECO + (52, 43))
        if YEARS[k] == 2010:  # an expressway to the north-east
            lost += line(lc, [(city[0] - 60, city[1] + 40), (180, 1450)], 53, (41, 42, 51))
        for i, ((cy, cx), r) in enumerate(zip(settle, settle_r)):
            if fate[i] < 0.25 and k > 4 * fate[i] / 0.25 - 1:  # shrinking villages, staggered over epochs
                new_r = r - 1.2 if r > 2.2 and fate[i] > 0.12 else 0
                back = (21 if i % 2 else 32) if to_eco[i] else (11 if paddy[cy, cx] else 12)
                ri = int(np.ceil(r))
                y0, x0 = max(cy - ri, 0), max(cx - ri, 0)
                win = lc[y0 : cy + ri + 1, x0 : cx + ri + 1]
                gone = disk(win.shape, cy - y0, cx - x0, r) & ~disk(win.shape, cy - y0, cx - x0, new_r) & (win == 52)
                win[gone] = back
                settle_r[i] = new_r
            elif fate[i] > 0.88:
                settle_r[i] = r + 0.7
                lost += stamp(lc, cy, cx, r + 0.7, 52, CROP)
        crop = np.isin(lc, CROP)
        g4g = crop & (steep > g4g_thr[k])
        lc[g4g] = np.where(n1[g4g] > 0.3, 31, np.where(n1[g4g] < -0.8, 24, 21))
        near_crop = ndimage.binary_dilation(crop, iterations=2)
        cand = np.flatnonzero(
            near_crop & np.isin(lc, ECO) & valid & (np.minimum(*d_centre) > 150) & (steep < g4g_thr[-1])
        )
        take = cand[np.argsort(-reclaim.ravel()[cand], kind="stable")[: int(0.8 * lost)]]
        lc.ravel()[take] = np.where(paddy.ravel()[take], 11, 12)
        succ = np.isin(lc, (31, 32, 33)) & (n2 + 0.3 * n1 > 2.3 - 0.2 * k)  # grassland growing into forest
        lc[succ] = 21
        epochs.append(lc)
    # Scenarios of 2030, two 5-year steps on from 2020. Natural development: the cities, industry and growing
    # villages go on as before, and the cropland they take is made up from ecological land near cropland.
    natural = epochs[-1].copy()
    grow = urban_at(6) & ~urban_at(4) & ~np.isin(natural, (41, 42, 51, 53))
    lost = int(np.isin(natural[grow], CROP).sum())
    natural[grow] = 51
    for (cy, cx), r in zip(industry, industry_r):
        lost += stamp(natural, cy, cx, r + 5.0, 53, CROP + ECO + (52, 43))
    for i, ((cy, cx), r) in enumerate(zip(settle, settle_r)):
        if fate[i] > 0.88:
            lost += stamp(natural, cy, cx, r + 1.4, 52, CROP)
    near_crop = ndimage.binary_dilation(np.isin(natural, CROP), iterations=2)
    cand = np.flatnonzero(
        near_crop & np.isin(natural, ECO) & valid & (np.minimum(*d_centre) > 150) & (steep < g4g_thr[-1])
    )
    take = cand[np.argsort(-reclaim.ravel()[cand], kind="stable")[: int(0.8 * lost)]]
    natural.ravel()[take] = np.where(paddy.ravel()[take], 11, 12)
    # Ecological protection: the cities grow half as far and only over cropland and villages, no ecological land
    # is reclaimed, the steepest 8 % of the 2000 cropland returns to forest and meadows grow into forest.
    ecological = epochs[-1].copy()
    ecological[urban_at(5) & ~urban_at(4) & np.isin(ecological, (*CROP, 52))] = 51
    g4g = np.isin(ecological, CROP) & (steep > np.quantile(steep[crop0], 0.92))
    ecological[g4g] = np.where(n1[g4g] > 0.3, 31, 21)
    ecological[np.isin(ecological, (31, 32, 33)) & (n2 + 0.3 * n1 > 1.3)] = 21
    scenarios = {"natural": natural, "ecological": ecological}
    for e in [*epochs, *scenarios.values()]:
        e[~valid] = NODATA
    ((cy, cx),) = pick(rng, ndimage.binary_erosion(valid, iterations=120) & (np.minimum(*d_centre) > 300), 1, 1)
    cloud = valid & (disk((N, N), cy, cx, 48 * (1 + 0.3 * n1)) | disk((N, N), cy + 50, cx + 70, 30 * (1 + 0.3 * n1)))
    return valid, epochs, cloud, elev, scenarios


def pathways(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """DESIGN.md pathway codes 0..6 between two CNLUCC arrays; 255 where either is nodata."""
    return pathway(TARGET[a], TARGET[b])


def zone_polygons(rng: np.random.Generator, valid: np.ndarray, n: int, min_dist: float) -> list:
    """``n`` Voronoi cells of seeded points inside the region, clipped to the vectorised valid mask."""
    region = shapely.union_all(
        [
            shapely.geometry.shape(g)
            for g, v in rasterio.features.shapes(valid.astype(np.uint8), mask=valid, transform=TRANSFORM)
            if v == 1
        ]
    )
    inner = ndimage.binary_erosion(valid, iterations=60)
    pts = [rasterio.transform.xy(TRANSFORM, r, c) for r, c in pick(rng, inner, n, min_dist)]  # pixel centres
    voronoi = shapely.get_parts(shapely.voronoi_polygons(shapely.MultiPoint(pts), extend_to=region, ordered=True))
    cells = [shapely.intersection(c, region) for c in voronoi]
    for i in range(n):  # a cell cut in two by a notch of the region gives its exclave to the longest neighbour
        parts = sorted(shapely.get_parts(cells[i]), key=lambda g: -g.area)
        cells[i] = parts[0]
        for part in parts[1:]:
            j = max((j for j in range(n) if j != i), key=lambda j: part.boundary.intersection(cells[j].boundary).length)
            cells[j] = shapely.union(cells[j], part)
    return [shapely.normalize(c) for c in cells]


def statistics(
    rng: np.random.Generator, epochs: list[np.ndarray], county_id: np.ndarray, codes: list[int]
) -> pd.DataFrame:
    """The statistics-based method's county inputs (t, hm2, kW, kg, tce per 10k yuan, 10k yuan, t) scaled by mapped areas."""
    nc = len(codes)
    fac = rng.uniform(0.9, 1.1, size=(nc, 6))  # county-specific intensities, stable over the years
    sown_mult, fert = rng.uniform(1.3, 1.6, nc), rng.uniform(0.34, 0.41, nc)  # x trend stays in 0.34-0.45 t/ha
    irrig_dry = rng.uniform(0.2, 0.4, nc)  # paddy is irrigated by definition; part of the dry land is
    fert_trend = (1.0, 1.04, 1.08, 1.10, 1.02)  # rising until the 2015 zero-growth action on fertiliser
    # Per-year national-like trends (2000..2020): machinery kW/hm2 sown, film kg/hm2 sown, yields t/ha.
    machinery, film = (3.4, 4.2, 5.6, 6.7, 6.3), (6.5, 8.5, 11.0, 13.0, 12.0)
    intensity = (1.6, 1.3, 1.0, 0.8, 0.6)
    crops = {  # name: (area share of paddy, share of dry land, yield t/ha in 2000, yield in 2020)
        "rice": (1.1, 0.0, 7.2, 8.0),
        "wheat": (0.0, 0.35, 3.0, 4.0),
        "maize": (0.0, 0.3, 4.5, 5.8),
        "soybean": (0.0, 0.05, 2.0, 2.4),
        "tubers": (0.0, 0.06, 3.5, 4.0),
        "rapeseed": (0.25, 0.25, 1.8, 2.4),
        "peanut": (0.0, 0.05, 3.0, 3.8),
        "sugarcane": (0.0, 0.003, 55.0, 60.0),
        "tobacco": (0.0, 0.005, 2.0, 2.3),
    }
    rows, gdp0 = [], None
    for k, (year, lc) in enumerate(zip(YEARS, epochs)):
        pixels = np.bincount(county_id.ravel().astype(np.int64) * 256 + lc.ravel(), minlength=(nc + 1) * 256)
        h = pixels.reshape(nc + 1, 256)[1:] * HA_PER_PIXEL  # ha per county and code
        built = h[:, 51] + h[:, 53] + 0.3 * h[:, 52]
        gdp0 = (built * 150.0 + (h[:, 11] + h[:, 12]) * 3.0) * fac[:, 0] if gdp0 is None else gdp0  # 10k yuan in 2000
        gdp = gdp0 * 1.10 ** (year - 2000)
        s2, s3 = 0.48 - 0.004 * (year - 2000), 0.36 + 0.008 * (year - 2000)
        for i, code in enumerate(codes):
            sown = (h[i, 11] + h[i, 12]) * sown_mult[i]
            row = {
                "zone_id": code,
                "year": year,
                "fertiliser_t": sown * fert[i] * fert_trend[k],
                "sown_area_hm2": sown,
                "machinery_kW": sown * machinery[k] * fac[i, 1],
                "irrigated_area_hm2": h[i, 11] * 0.95 + h[i, 12] * irrig_dry[i],
                "plastic_film_kg": sown * film[k] * fac[i, 2],
                "energy_intensity_tce_per_10k_yuan": intensity[k] * fac[i, 3],
                "gdp_secondary_10k_yuan": gdp[i] * s2,
                "gdp_tertiary_10k_yuan": gdp[i] * s3,
            }
            for j, (name, (sp, sd, y0, y1)) in enumerate(crops.items()):
                row[f"yield_{name}_t"] = (h[i, 11] * sp + h[i, 12] * sd) * (y0 + (y1 - y0) * k / 4) * fac[i, 4 + j % 2]
            rows.append(row)
    return pd.DataFrame(rows).round(2)


#: NDVI of each target class in the synthetic series (illustrative, not measured), and its grid.
CLASS_NDVI = np.array([0.0, 0.50, 0.78, 0.60, 0.08, 0.15, 0.25, 0.12, 0.10])
NDVI_FACTOR = 8  # 240 m pixels, as a MODIS-like product: the pipeline resamples them bilinearly to 30 m
NDVI_NODATA = -3000
#: Greening of the highest ecological function zone (water conservation): NDVI per year.
NDVI_GREENING = 0.004


def ndvi_series(epochs: list[np.ndarray], zone: np.ndarray, seed: int) -> list[np.ndarray]:
    """Synthetic NDVI per epoch at 240 m (int16, NDVI x 10000, ``NDVI_NODATA`` outside the region): the mean of
    the classes' NDVI over each 8 x 8 block of land cover, greening by ``NDVI_GREENING`` a year where ``zone``
    holds, and a little noise (its own generator, so the other files do not change)."""
    rng = np.random.default_rng(seed + 4)
    f, n = NDVI_FACTOR, N // NDVI_FACTOR
    out = []
    for year, lc in zip(YEARS, epochs):
        cls = TARGET[lc]
        value = CLASS_NDVI[cls] + np.where(zone & (cls > 0), NDVI_GREENING * (year - YEARS[0]), 0.0)
        land = (cls > 0).reshape(n, f, n, f).sum(axis=(1, 3))
        total = np.where(cls > 0, value, 0.0).reshape(n, f, n, f).sum(axis=(1, 3))
        mean = total / np.maximum(land, 1) + rng.uniform(-0.004, 0.004, (n, n))
        out.append(np.where(land > 0, np.rint(np.clip(mean, -0.2, 1.0) * 10000), NDVI_NODATA).astype(np.int16))
    return out


def write_ndvi(out_dir: Path, year: int, ndvi: np.ndarray, seed: int) -> Path:
    """One NDVI year as a GeoTIFF of 240 m pixels (int16, scale 0.0001, nodata -3000, DEFLATE)."""
    path = out_dir / "ndvi" / f"ndvi{year}.tif"
    path.parent.mkdir(parents=True, exist_ok=True)
    pixel = PIXEL * NDVI_FACTOR
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=ndvi.shape[1],
        height=ndvi.shape[0],
        count=1,
        dtype="int16",
        crs=CRS,
        transform=from_origin(*ORIGIN, pixel, pixel),
        nodata=NDVI_NODATA,
        compress="deflate",
        zlevel=9,
    ) as dst:
        dst.write(ndvi, 1)
        dst.update_tags(SOURCE=f"synthetic NDVI, pipeline.sample_data seed {seed}; not real data", SCALE="0.0001")
    return path


def _write_codes(path: Path, codes: np.ndarray, transform, source: str) -> Path:
    """A GeoTIFF of CNLUCC codes (uint8, nodata 255, 256 px blocks, DEFLATE) as land-cover products ship."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = codes.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=1,
        dtype="uint8",
        crs=CRS,
        transform=transform,
        nodata=NODATA,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
        zlevel=9,
    ) as dst:
        dst.write(codes, 1)
        dst.update_tags(SOURCE=source, SCHEME="CNLUCC")
    return path


def write_tiles(out_dir: Path, year: int, lc: np.ndarray, seed: int) -> list[Path]:
    """The epoch as 2 x 2 GeoTIFF tiles."""
    source = f"synthetic sample region, pipeline.sample_data seed {seed}; not real data"
    return [
        _write_codes(
            out_dir / f"lc{year}" / f"lc{year}_r{r}c{c}.tif",
            lc[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE],
            from_origin(ORIGIN[0] + c * TILE * PIXEL, ORIGIN[1] - r * TILE * PIXEL, PIXEL, PIXEL),
            source,
        )
        for r in range(N // TILE)
        for c in range(N // TILE)
    ]


def write_scenario(out_dir: Path, name: str, lc: np.ndarray, seed: int) -> Path:
    """A 2030 scenario as one GeoTIFF ``scenarios/<name>_2030.tif``, as a PLUS or FLUS run would write it."""
    source = f"synthetic {name} scenario {SCENARIO_YEAR}, pipeline.sample_data seed {seed}; not real data"
    return _write_codes(out_dir / "scenarios" / f"{name}_{SCENARIO_YEAR}.tif", lc, TRANSFORM, source)


def readme(epochs: list[np.ndarray], seed: int, scenarios: dict[str, np.ndarray] | None = None) -> str:
    """README.md text with class areas per epoch (ha) and pathway areas 2000 -> 2020 (ha) of this output."""
    names = {c: v[0] for c, v in DENSITIES.items()}
    area = {y: np.bincount(TARGET[e].ravel(), minlength=9) * HA_PER_PIXEL for y, e in zip(YEARS, epochs)}
    lines = ["| class | " + " | ".join(map(str, YEARS)) + " |", "|---" * (len(YEARS) + 1) + "|"]
    lines += [f"| {c} {names[c]} | " + " | ".join(f"{area[y][c]:,.0f}" for y in YEARS) + " |" for c in range(1, 9)]
    lines.append(
        "| nodata (in the region, 2005 cloud) | "
        + " | ".join(
            f"{(epochs[i] == NODATA).sum() * HA_PER_PIXEL - (epochs[0] == NODATA).sum() * HA_PER_PIXEL:,.0f}"
            for i in range(len(YEARS))
        )
        + " |"
    )
    p = np.bincount(pathways(epochs[0], epochs[-1]).ravel(), minlength=256)
    pnames = [
        "unchanged",
        "direct: urban expansion",
        "indirect: cropland displacement",
        "potential: rural shrinkage",
        "rural expansion",
        "ecological restoration",
        "other change",
    ]
    ptab = ["| pathway | pixels | area (ha) |", "|---|---|---|"]
    ptab += [f"| {i} {pnames[i]} | {p[i]:,} | {p[i] * HA_PER_PIXEL:,.1f} |" for i in range(7)]
    scenarios = scenarios or {}
    stab = ["| class | 2020 | " + " | ".join(f"{n} {SCENARIO_YEAR}" for n in scenarios) + " |"]
    stab.append("|---" * (len(scenarios) + 2) + "|")
    last = np.bincount(TARGET[epochs[-1]].ravel(), minlength=9) * HA_PER_PIXEL
    own = {n: np.bincount(TARGET[s].ravel(), minlength=9) * HA_PER_PIXEL for n, s in scenarios.items()}
    stab += [
        f"| {c} {names[c]} | {last[c]:,.0f} | " + " | ".join(f"{own[n][c]:,.0f}" for n in scenarios) + " |"
        for c in range(1, 9)
    ]
    return f"""# Sample region (synthetic)

A small synthetic region for trying and testing the pipeline. **It is not real data**: the land cover,
boundaries and statistics are drawn from seeded random fields by `pipeline.sample_data.generate_sample`
(seed {seed}); regenerate it with `carbon-pipeline sample-data DIR` (same seed -> identical pixels,
attributes, geometries and CSV/YAML bytes). Run it with `carbon-pipeline run sample_data/config.yaml`.

Grid: EPSG:4547 (CGCS2000 / 3-degree Gauss-Kruger CM 114E), 30 m pixels (0.09 ha), 1600 x 1600 pixels,
upper-left corner x=480000, y=3400000 m. About 80 % of the square is the region; the rest is nodata.

## Files

| file | content | units |
|---|---|---|
| `lc<year>/lc<year>_r<row>c<col>.tif` | CNLUCC land use 2000, 2005, 2010, 2015, 2020, 2 x 2 tiles of 800 x 800 px; 2005 has a cloud gap | uint8 codes, nodata 255 |
| `ndvi/ndvi<year>.tif` | synthetic NDVI 2000-2020 at 240 m (a MODIS-like product; the pipeline resamples it bilinearly to 30 m): each class's NDVI (cropland 0.50, forest 0.78, grassland 0.60, water 0.08, urban 0.15, rural 0.25, other construction 0.12, unused 0.10) averaged over the land cover, greening by 0.004 a year in EZ1, noise of ±0.004 | int16 NDVI x 10000, nodata -3000 |
| `counties.gpkg` (layer `counties`) | 12 counties tiling the region: `code`, `name` | EPSG:4547 metres |
| `ecozones.gpkg` (layer `ecozones`) | 4 ecological function zones: `zone_id`, `name`, `function`, `national_key` | EPSG:4547 metres |
| `protected_areas.gpkg` (layer `protected_areas`) | 2 existing protected areas (a wetland park around the largest lake, a forest park inside the largest forest): `name`, `type`; locked into the red lines | EPSG:4547 metres |
| `densities.csv` | carbon density per target class: `c_above`, `c_below`, `c_soil`, `c_dead`, `source`: grassland from Sci. Rep. 6:21378 (2016); **the other rows are illustrative, not published figures**; `c_above_sd` ... `c_dead_sd`: an illustrative standard deviation of 20 % of each pool (as InVEST's sample uncertainty table), for the `uncertainty:` draws | t C/ha |
| `rates.csv` | annual carbon rate per class, negative = uptake (Guizhou land-use carbon emission study 2005-2019, Table 2) | t C/ha/yr |
| `statistics.csv` | county inputs of the statistics-based method per year (`zone_id` = county `code`), synthetic | t, hm2, kW, kg, tce per 10k yuan, 10k yuan |
| `scenarios/<name>_2030.tif` | two simulated futures of 2030 from 2020 (`scenarios:` in the config): `natural` (the trends go on) and `ecological` (cities grow half as far and only over cropland and villages, steep cropland back to forest); one file each, as PLUS or FLUS writes them | uint8 codes, nodata 255 |
| `config.yaml` | pipeline config for this folder | - |

A river with floodplain, lakes with marsh edges, ponds; paddy near water, dry land, grassland and orchards
on the foothills, forest above, bare peaks; a city, a town, industry, roads and several hundred villages.
Between epochs the towns and industry grow (and a road is built in 2010), lost cropland is made up by
reclaiming land elsewhere, villages shrink or grow, steep cropland returns to forest or grassland.

## Class areas (ha)

Areas of each file as generated. The pipeline counts a pixel only where every epoch has data, so its
`tables/classes_region.csv` leaves the 2005 cloud out of every year and is smaller by that area.

{chr(10).join(lines)}

## Pathways 2000 -> 2020

{chr(10).join(ptab)}

## Scenarios {SCENARIO_YEAR} (ha)

{chr(10).join(stab)}
"""


def protected_areas(lc: np.ndarray) -> gpd.GeoDataFrame:
    """Two existing protected areas, drawn from the first epoch without the random generator (so the
    other files do not change): a wetland park around the largest lake and a forest park in the largest
    forest."""
    scheme = load_scheme("cnlucc")
    target = np.zeros(256, np.uint8)
    target[scheme.codes] = scheme.targets
    classes = target[lc]
    parks = []
    for cls, name, kind, buffer_m in (
        (4, "镜湖湿地公园", "wetland park", 300.0),
        (2, "青峰森林公园", "forest park", -600.0),
    ):
        patches, n = ndimage.label(classes == cls)
        largest = 1 + int(np.argmax(np.bincount(patches.ravel(), minlength=n + 1)[1:]))
        shapes = rasterio.features.shapes(np.uint8(patches == largest), mask=patches == largest, transform=TRANSFORM)
        area = shapely.union_all([shapely.geometry.shape(g) for g, _ in shapes])
        # Wetland parks take in the shore; a forest park is the core of the forest, not its edge.
        parks.append((name, kind, shapely.simplify(area.buffer(buffer_m), PIXEL)))
    return gpd.GeoDataFrame(
        {"name": [p[0] for p in parks], "type": [p[1] for p in parks]}, geometry=[p[2] for p in parks], crs=CRS
    )


def generate_sample(out_dir: Path, seed: int = 2026) -> list[Path]:
    """Write the sample region (rasters, zones, tables, config, README) into ``out_dir``; returns the files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    valid, epochs, cloud, elev, scenarios = landscape(rng)
    outputs = [e.copy() if y == 2005 else e for y, e in zip(YEARS, epochs)]
    outputs[1][cloud] = NODATA  # a gap in the 2005 product only: statistics still see the land under it
    files = [f for year, lc in zip(YEARS, outputs) for f in write_tiles(out_dir, year, lc, seed)]
    files += [write_scenario(out_dir, name, lc, seed) for name, lc in scenarios.items()]
    codes = list(range(420101, 420101 + len(COUNTY_NAMES)))
    counties = gpd.GeoDataFrame(
        {"code": codes, "name": COUNTY_NAMES}, geometry=zone_polygons(rng, valid, len(codes), 260), crs=CRS
    )
    cells = zone_polygons(rng, valid, len(ZONES), 550)
    # The highest zone conserves water, the lowest feeds people: functions follow mean elevation.
    zone_of = rasterio.features.rasterize(((g, i + 1) for i, g in enumerate(cells)), (N, N), transform=TRANSFORM)
    order = np.argsort(-ndimage.mean(elev, zone_of, index=np.arange(1, len(cells) + 1)), kind="stable")
    zones = gpd.GeoDataFrame(
        dict(zip(("name", "function", "national_key"), zip(*ZONES))), crs=CRS, geometry=[cells[i] for i in order]
    )
    zones.insert(0, "zone_id", [f"EZ{i + 1}" for i in range(len(zones))])
    for gdf, name in ((counties, "counties"), (zones, "ecozones"), (protected_areas(epochs[0]), "protected_areas")):
        path = out_dir / f"{name}.gpkg"
        path.unlink(missing_ok=True)
        gdf.to_file(path, layer=name, driver="GPKG")
        files.append(path)
    greening = zone_of == order[0] + 1  # EZ1, the highest zone: water conservation, a national key zone
    ndvi = ndvi_series(epochs, greening, seed)
    files += [write_ndvi(out_dir, year, v, seed) for year, v in zip(YEARS, ndvi)]
    county_id = rasterio.features.rasterize(
        ((g, i + 1) for i, g in enumerate(counties.geometry)), (N, N), transform=TRANSFORM
    )
    tables = {
        "densities.csv": densities_frame(),
        "rates.csv": pd.DataFrame(
            [(c, *v, RATES_SOURCE) for c, v in RATES.items()], columns=["class", "name", "rate_tC_ha_yr", "source"]
        ),
        "statistics.csv": statistics(rng, epochs, county_id, codes),
    }
    for name, df in tables.items():
        df.to_csv(
            out_dir / name, index=False, lineterminator="\n", float_format="%.2f" if name == "statistics.csv" else None
        )
        files.append(out_dir / name)
    for name, text in (("config.yaml", CONFIG), ("README.md", readme(outputs, seed, scenarios))):
        (out_dir / name).write_text(text, encoding="utf-8", newline="\n")
        files.append(out_dir / name)
    return files
