"""Synthetic CNLUCC land cover of any size (up to 40000 x 40000 px), written block by block, for benchmarks.

Every pixel is a pure function of its (row, col), the seed and the epoch: procedural noise from a hashed lattice
(no global random array), point processes (cities, towns, villages, ponds, industry) from hashed cells, and
thresholds calibrated once on a sparse sample grid. So memory is bounded by the block, blocks join without seams
and the pixels do not depend on ``block``. Illustrative land cover, not a real region.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from rasterio.transform import from_origin
from rasterio.windows import Window

from pipeline.samples.densities import densities_frame

CRS, ORIGIN, NODATA, TILE = "EPSG:4547", (400000.0, 3500000.0), 255, 512  # CGCS2000 GK CM 114E, metres
STRIP = 256  # rows computed at once (memory bound)
#: Noise fields: (lattice spacing in m, weight, stream). Spacings are physical, so patch sizes per km2 do not
#: change with n; weights halve per octave (fractal land cover), the 240 m octave makes the small patches.
FIELDS = {
    "elev": ((15360, 1.0, 1), (3840, 0.5, 2), (960, 0.25, 3)),
    "detail": ((960, 1.0, 4), (240, 0.6, 5)),
    "river": ((7680, 1.0, 6), (1920, 0.2, 7)),
    "stream": ((1920, 1.0, 13), (480, 0.15, 14)),
    "lake": ((1920, 1.0, 8),),
    "road": ((7680, 1.0, 9),),
    "region": ((7680, 1.0, 10),),
    "mosaic": ((240, 1.0, 11), (120, 0.5, 12)),
}
#: Cities, towns: cell side (m), radius a + b * u**3 (m) for u uniform (many small, few large), mean radius growth
#: per 20 years (fraction); a cell holds one, likelier on the plains.
SETTLEMENTS = {"city": (19200, 1500.0, 3000.0, 0.2), "town": (4800, 150.0, 1300.0, 0.25)}
_M = (
    np.uint64(0x9E3779B97F4A7C15),
    np.uint64(0xD1B54A32D192ED03),
    np.uint64(0xBF58476D1CE4E5B9),
    np.uint64(0x94D049BB133111EB),
)


def _hash(seed: int, stream: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) float64 per integer point (i, j), broadcast: splitmix64, so any block can ask any point."""
    key = np.uint64((seed * 1_000_003 + stream * 7919) % 2**64)
    with np.errstate(over="ignore"):
        x = (
            (np.asarray(i, np.int64).astype(np.uint64) * _M[0])
            ^ (np.asarray(j, np.int64).astype(np.uint64) * _M[1])
            ^ key
        )
        x = (x ^ (x >> np.uint64(30))) * _M[2]
        x = (x ^ (x >> np.uint64(27))) * _M[3]
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _bspline(coord: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """First lattice index and the 4 cubic B-spline weights (float32) at pixel centres ``coord`` (px)."""
    x = (coord.astype(np.float64) + 0.5) / spacing
    i = np.floor(x).astype(np.int64)
    t = x - i
    u = 1.0 - t  # products, not `**`: pow may round differently in SIMD and scalar loops, breaking block-invariance
    w = np.stack([u * u * u, 3 * t * t * t - 6 * t * t + 4, -3 * t * t * t + 3 * t * t + 3 * t + 1, t * t * t], -1) / 6
    return i - 1, w.astype(np.float32)


def _octave(rows: np.ndarray, cols: np.ndarray, spacing: float, seed: int, stream: int) -> np.ndarray:
    """Smooth value noise (unitless, std ~1) on the grid rows x cols (px); separable, each pixel's sum in fixed
    order."""
    iy, wy = _bspline(rows, spacing)
    ix, wx = _bspline(cols, spacing)
    y0, x0 = iy.min(), ix.min()
    lat = _hash(seed, stream, np.arange(y0, iy.max() + 4)[:, None], np.arange(x0, ix.max() + 4)[None, :]) * 3.46 - 1.73
    lat = lat.astype(np.float32)
    tmp = lat[:, ix - x0] * wx[:, 0]  # along columns on the small lattice first: cheap
    for k in (1, 2, 3):
        tmp += lat[:, ix - x0 + k] * wx[:, k]
    out = tmp[iy - y0] * wy[:, :1]
    for k in (1, 2, 3):
        out += tmp[iy - y0 + k] * wy[:, k : k + 1]
    return out * np.float32(1.85)  # the B-spline smooths a unit-variance lattice to std ~0.54


def _field(name: str, rows: np.ndarray, cols: np.ndarray, seed: int, pixel_m: float) -> np.ndarray:
    out = None
    for spacing_m, weight, stream in FIELDS[name]:
        o = _octave(rows, cols, max(spacing_m / pixel_m, 2.0), seed, stream) * np.float32(weight)
        out = o if out is None else out + o
    if out is None:
        raise ValueError(f"field {name!r} has no octaves")
    return out


def _dots(rows: np.ndarray, cols: np.ndarray, cell: int, seed: int, stream: int) -> tuple[np.ndarray, ...]:
    """Small features, at most one per ``cell`` px square, centred in its middle half so it never leaves it:
    per pixel (distance2 to the cell's centre in px2, u_radius, u_presence, u_fate), all from the cell hash."""
    ci, cj = rows // cell, cols // cell
    ci0, cj0 = ci.min(), cj.min()
    gi, gj = np.arange(ci0, ci.max() + 1)[:, None], np.arange(cj0, cj.max() + 1)[None, :]
    cy = gi * cell + cell * (0.25 + 0.5 * _hash(seed, stream, gi, gj))
    cx = gj * cell + cell * (0.25 + 0.5 * _hash(seed, stream + 1, gi, gj))

    def pick(a):  # cell value -> pixels
        return a[ci - ci0][:, cj - cj0].astype(np.float32)

    dy = (rows.astype(np.float32) + np.float32(0.5))[:, None] - pick(cy)
    dx = (cols.astype(np.float32) + np.float32(0.5))[None, :] - pick(cx)
    return (dy * dy + dx * dx, *(pick(_hash(seed, stream + k, gi, gj)) for k in (2, 3, 4)))


def _settlements(kind: str, r0: int, r1: int, c0: int, c1: int, seed: int, pixel_m: float, lowland: float):
    """Cities or towns whose disk may touch rows r0:r1, cols c0:c1: list of (cy, cx, radius px, growth)."""
    cell_m, a_m, b_m, g = SETTLEMENTS[kind]
    cell, reach = cell_m / pixel_m, (a_m + b_m) * 1.35 * (1 + g) / pixel_m + 2
    gi = np.arange(int((r0 - reach) // cell), int((r1 + reach) // cell) + 1)[:, None]
    gj = np.arange(int((c0 - reach) // cell), int((c1 + reach) // cell) + 1)[None, :]
    s = 100 if kind == "city" else 110  # hash streams of their own: no correlation with the noise fields
    gi, gj = np.broadcast_arrays(gi, gj)
    cy, cx = (gi + _hash(seed, s, gi, gj)) * cell, (gj + _hash(seed, s + 1, gi, gj)) * cell
    u = _hash(seed, s + 2, gi, gj)
    elev = np.array(
        [
            _field("elev", np.array([a]), np.array([b]), seed, pixel_m)[0, 0]  # at the centre pixel
            for a, b in zip(np.floor(cy).ravel(), np.floor(cx).ravel())
        ]
    ).reshape(cy.shape)
    keep = _hash(seed, s + 3, gi, gj) < np.where(elev < lowland, 0.8, 0.15)  # settlements prefer the plains
    rad = (a_m + b_m * u * u * u) / pixel_m
    grow = g * (0.3 + 1.4 * _hash(seed, s + 4, gi, gj))
    return list(zip(cy[keep], cx[keep], rad[keep], grow[keep]))


def _landcover(
    f: dict[str, np.ndarray],
    rows: np.ndarray,
    cols: np.ndarray,
    t: float,
    q: dict[str, float],
    towns: list,
    seed: int,
    pixel_m: float,
) -> np.ndarray:
    """CNLUCC codes (uint8) of one block at ``t`` (fraction of 20 years since the first epoch)."""
    e, d, reg = f["eadj"], f["detail"], f["region"]
    # Cropland top moves up in reclaiming regions (displacement) and down in restoring ones (grain for green).
    top = q["crop"] + q["shift"] * t * (np.maximum(reg - 0.2, 0) - np.maximum(-reg - 0.4, 0))
    lc = np.where(e < q["paddy"], np.uint8(11), np.uint8(12))
    restored = (e >= top) & (e < q["crop"])
    hill = e >= np.maximum(top, q["crop"])
    lc[hill] = np.where(d[hill] > 0.7, 31, np.where(d[hill] < -0.7, 33, 32))
    forest = (e >= q["grass"]) | (hill & (d > 1.4)) | restored
    lc[forest] = np.where(d[forest] > 1.0, 22, np.where(d[forest] < -1.2, 23, 21))
    lc[forest & (e < q["grass"] + 0.08) & (d > 0.3)] = 24  # orchards on the lowest slopes
    lc[(e >= q["grass"]) & (d < -1.6)] = 31  # mountain meadows
    lc[e >= q["bare"]] = np.where(d[e >= q["bare"]] > 0, 65, 66)
    lc[(e < q["paddy"]) & (d < q["saline"])] = 63
    m = f["mosaic"]  # fine mosaic: woodlots and orchards among the fields, terraced clearings in the hills
    crop = np.isin(lc, (11, 12))
    lc[crop & (m > q["wood"])] = np.where(d[crop & (m > q["wood"])] > 0, 21, 24)
    lc[(lc < 30) & ~crop & (m < q["clear"]) & (e < q["crop"] + 0.8)] = 12
    crop = np.isin(lc, (11, 12))
    d2, ur, up, _ = _dots(rows, cols, max(int(1200 / pixel_m), 4), seed, 40)  # ponds
    lc[crop & (up < 0.25) & (d2 <= (1 + 2 * ur) ** 2 * (900 / pixel_m**2))] = 43
    d2, ur, up, fate = _dots(rows, cols, max(int(600 / pixel_m), 4), seed, 50)  # villages
    r = (50 + 85 * ur * ur) / pixel_m * (1 + np.float32(0.35 * t) * (fate > 0.9))
    gone = fate < 0.12 * t  # villages abandoned and reclaimed; a few become woodland
    vil = (up < 0.85) & (e < q["crop"] + 0.3) & ~forest & (d2 <= r * r)
    lc[vil & gone] = np.where(fate[vil & gone] < 0.02 * t, 21, 12)
    lc[vil & ~gone] = 52
    lc[(np.abs(f["road"]) < q["road"]) & (e < q["grass"])] = 53
    d2, ur, up, born = _dots(rows, cols, max(int(2400 / pixel_m), 4), seed, 60)  # industry and mining
    lc[(up < 0.6) & (born < 0.8 + 0.2 * t) & (e < q["grass"]) & (d2 <= ((60 + 300 * ur) / pixel_m) ** 2)] = 53
    riv, lake = np.abs(f["river"]), f["lake"]
    low = f["elev"] < q["lowlake"]
    lc[(riv < 1.6 * q["river"]) & (e < q["paddy"]) & (d > 0)] = 46
    lc[(riv < q["river"]) & (e < q["grass"])] = 41
    lc[(np.abs(f["stream"]) < q["stream"]) & (e < q["bare"])] = 41  # streams and canals, in the hills too
    lc[(lake > q["marsh"]) & low] = 64
    lc[(lake > q["lake"]) & low] = 42
    lc[(lake > q["lake"]) & (e > q["grass"]) & (e < q["bare"])] = 43  # hill reservoirs
    for cy, cx, rad, g in towns:  # cities and towns grow outward with ragged edges; rivers and lakes stay
        reach = rad * (1 + g * t) * 1.35 + 1
        a, b = np.searchsorted(rows, [cy - reach, cy + reach]), np.searchsorted(cols, [cx - reach, cx + reach])
        if a[0] == a[1] or b[0] == b[1]:
            continue
        sy, sx = slice(a[0], a[1]), slice(b[0], b[1])
        dy, dx = rows[sy, None] + 0.5 - cy, cols[None, sx] + 0.5 - cx
        d2, rag = dy * dy + dx * dx, 1 + 0.25 * np.clip(d[sy, sx], -2.0, 1.4)  # ragged edge, within ``reach``
        win = lc[sy, sx]
        inside = (d2 <= (rad * (1 + g * t) * rag) ** 2) & (win != 41) & (win != 42)
        new = d2 > (rad * rag) ** 2  # the growth ring spares hill forest: it stays as urban green
        win[inside & ~(new & (win >= 21) & (win <= 23))] = 51
    return lc


def _fields(rows: np.ndarray, cols: np.ndarray, seed: int, pixel_m: float) -> dict[str, np.ndarray]:
    f = {k: _field(k, rows, cols, seed, pixel_m) for k in FIELDS}
    f["eadj"] = f["elev"] + np.float32(0.5) * f["detail"]  # ragged boundaries between cropland, grass, forest
    return f


def _calibrate(n: int, seed: int, pixel_m: float) -> dict[str, float]:
    """Thresholds (unitless noise values) giving the target shares, from a <= 400 x 400 sample grid of the raster."""
    g = (np.arange(min(n, 400)) * n) // min(n, 400)
    f = _fields(g, g, seed, pixel_m)

    def qe(p):
        return float(np.quantile(f["eadj"], p))

    def ql(p):
        return float(np.quantile(f["lake"], p))

    return {
        "paddy": qe(0.25),
        "crop": qe(0.58),
        "grass": qe(0.68),
        "bare": qe(0.985),
        "shift": 0.15,
        "saline": float(np.quantile(f["detail"], 0.012)),
        "road": float(np.quantile(np.abs(f["road"]), 0.016)),
        "wood": float(np.quantile(f["mosaic"], 0.93)),
        "clear": float(np.quantile(f["mosaic"], 0.08)),
        "river": float(np.quantile(np.abs(f["river"]), 0.03)),
        "lowlake": float(np.quantile(f["elev"], 0.4)),
        "lake": ql(0.965),
        "marsh": ql(0.955),
        "stream": float(np.quantile(np.abs(f["stream"]), 0.01)),
    }


def _block(
    r0: int, r1: int, c0: int, c1: int, ts: list[float], q: dict[str, float], seed: int, pixel_m: float
) -> list[np.ndarray]:
    """All epochs of rows r0:r1, cols c0:c1, computed in strips of <= STRIP rows: the ~15 float32 temporaries per
    pixel then stay ~60 MB per worker whatever ``block`` is (pixels are the same either way)."""
    cols, parts = np.arange(c0, c1), []
    for s0 in range(r0, r1, STRIP):
        rows = np.arange(s0, min(s0 + STRIP, r1))
        f = _fields(rows, cols, seed, pixel_m)
        towns = [
            s for k in SETTLEMENTS for s in _settlements(k, rows[0], rows[-1] + 1, c0, c1, seed, pixel_m, q["lowlake"])
        ]
        parts.append([_landcover(f, rows, cols, t, q, towns, seed, pixel_m) for t in ts])
    return [np.concatenate(p) for p in zip(*parts)]


def counties_frame(n: int, counties: int, seed: int = 0, pixel_m: float = 30.0) -> gpd.GeoDataFrame:
    """``counties`` Voronoi cells (seeded points, two Lloyd steps for county-like evenness) tiling the raster."""
    x0, y1 = ORIGIN
    box = shapely.box(x0, y1 - n * pixel_m, x0 + n * pixel_m, y1)
    pts = np.random.default_rng([seed, 7]).uniform(0, n * pixel_m, (counties, 2)) + np.array([x0, y1 - n * pixel_m])
    for step in range(3):
        cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=box, ordered=True))
        cells = shapely.intersection(cells, box)
        if step < 2:
            pts = shapely.get_coordinates(shapely.centroid(cells))
    width = max(4, len(str(counties)))
    return gpd.GeoDataFrame(
        {
            "code": [f"C{i + 1:0{width}d}" for i in range(counties)],
            "name": [f"Synthetic county {i + 1}" for i in range(counties)],
        },
        geometry=list(cells),
        crs=CRS,
    )


def generate(
    out_dir: Path,
    n: int,
    epochs: tuple[int, ...] = (2000, 2020),
    counties: int = 100,
    seed: int = 0,
    pixel_m: float = 30.0,
    block: int = 2048,
) -> Path:
    """Write ``lc<year>.tif`` (uint8 CNLUCC, n x n px of ``pixel_m`` m), counties.gpkg, densities.csv (t C/ha),
    config.yaml and config_stock.yaml (no zones) into ``out_dir``; returns config.yaml. One block at a
    time: benchmark data is made once, and memory stays at a block's."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    q = _calibrate(n, seed, pixel_m)
    ts = [(y - epochs[0]) / 20.0 for y in epochs]
    profile = {
        "driver": "GTiff",
        "width": n,
        "height": n,
        "count": 1,
        "dtype": "uint8",
        "crs": CRS,
        "nodata": NODATA,
        "transform": from_origin(*ORIGIN, pixel_m, pixel_m),
        "tiled": True,
        "blockxsize": TILE,
        "blockysize": TILE,
        "compress": "DEFLATE",
        "BIGTIFF": "IF_SAFER",
    }
    wins = [(r, min(r + block, n), c, min(c + block, n)) for r in range(0, n, block) for c in range(0, n, block)]
    dsts = [rasterio.open(out_dir / f"lc{y}.tif", "w", **profile) for y in epochs]
    try:  # a small GDAL cache: finished tiles are compressed and leave memory instead of piling up
        with rasterio.Env(GDAL_CACHEMAX=128):
            for r0, r1, c0, c1 in wins:
                for dst, lc in zip(dsts, _block(r0, r1, c0, c1, ts, q, seed, pixel_m)):
                    dst.write(lc, 1, window=Window(c0, r0, c1 - c0, r1 - r0))
    finally:
        for dst in dsts:
            dst.close()
    path = out_dir / "counties.gpkg"
    path.unlink(missing_ok=True)
    counties_frame(n, counties, seed, pixel_m).to_file(path, layer="counties", driver="GPKG")
    # The sample region's carbon density table and sources (pipeline.samples.densities).
    densities_frame().to_csv(out_dir / "densities.csv", index=False, lineterminator="\n")
    head = (
        f"# Synthetic region written by pipeline.synthetic.generate (n={n}, seed={seed}); illustrative land cover.\n"
        f"name: synthetic-{n}\nepochs:\n"
        + "".join(f"  {y}: lc{y}.tif\n" for y in epochs)
        + "scheme: cnlucc\nalign: exact\nunknown_codes: error\nurban_split: native\n"
        + "carbon:\n  densities: densities.csv\n"
    )
    tail = "dask: {chunks: 2048, scheduler: threads}\n"
    zones = "zones:\n  - {name: county, path: counties.gpkg, id: code, label: name}\n"
    (out_dir / "config_stock.yaml").write_text(head + "output: out_stock\n" + tail, encoding="utf-8", newline="\n")
    (out_dir / "config.yaml").write_text(head + zones + "output: out\n" + tail, encoding="utf-8", newline="\n")
    return out_dir / "config.yaml"
