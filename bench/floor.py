"""The "numpy floor" of the benchmark: stock change between two CNLUCC epochs in one plain numpy + rasterio pass.

No Dask, no xarray, no tables: read both epochs window by window, map CNLUCC codes to total carbon density
(c_above + c_below + c_soil + c_dead, t C/ha) through a 256-entry lookup, write b - a. It is the least work
any implementation must do, so the pipeline's time is judged against it.

With ``--cog`` it writes what the pipeline's stock-only run writes: a Cloud-Optimised GeoTIFF with overviews
(DEFLATE level 1, 512 px blocks, averaged overviews), by hand: the same array into a scratch GeoTIFF (ZSTD
level 1), then GDAL's COG driver, which builds the overviews. The pipeline's overhead is judged against that.

    python bench/floor.py lc2000.tif lc2020.tif densities.csv stock_change.tif [--block 2048] [--cog]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import rasterio.shutil
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere in the checkout
from pipeline.io.parameters import load_scheme


def density_lut(densities_csv: Path, nodata: float | None = 255) -> np.ndarray:
    """float32[256]: total density (t C/ha) per CNLUCC code; NaN for nodata, sea (class 0) and unknown codes."""
    table = pd.read_csv(densities_csv)
    table.columns = [c.strip().lower() for c in table.columns]
    total = dict(zip(table["class"].astype(int), table[["c_above", "c_below", "c_soil", "c_dead"]].sum(axis=1)))
    scheme = load_scheme("cnlucc")
    lut = np.full(256, np.nan, np.float32)
    for code, cls in zip(scheme.codes.tolist(), scheme.targets.tolist()):
        if code < 256 and cls in total:
            lut[code] = total[cls]
    if nodata is not None and 0 <= nodata < 256:
        lut[int(nodata)] = np.nan
    return lut


def floor(
    epoch_a: Path, epoch_b: Path, densities_csv: Path, out: Path, block: int = 2048, options: dict | None = None
) -> None:
    """Write ``out``: float32 stock change density D(b) - D(a) in t C/ha, NaN where either epoch has no data.
    ``options``: GeoTIFF creation options over the defaults (DEFLATE, 512 px tiles)."""
    with rasterio.open(epoch_a) as a, rasterio.open(epoch_b) as b:
        if (a.width, a.height, a.transform, a.crs) != (b.width, b.height, b.transform, b.crs):
            raise ValueError(f"{epoch_b}: grid differs from {epoch_a}")
        lut_a, lut_b = density_lut(densities_csv, a.nodata), density_lut(densities_csv, b.nodata)
        profile = {
            "driver": "GTiff",
            "width": a.width,
            "height": a.height,
            "count": 1,
            "dtype": "float32",
            "crs": a.crs,
            "transform": a.transform,
            "nodata": np.nan,
            "tiled": True,
            "blockxsize": 512,
            "blockysize": 512,
            "compress": "DEFLATE",
            "BIGTIFF": "IF_SAFER",
            **(options or {}),
        }
        with rasterio.open(out, "w", **profile) as dst:
            for r in range(0, a.height, block):
                for c in range(0, a.width, block):
                    w = Window(c, r, min(block, a.width - c), min(block, a.height - r))
                    dst.write(lut_b[b.read(1, window=w)] - lut_a[a.read(1, window=w)], 1, window=w)


def cog_floor(epoch_a: Path, epoch_b: Path, densities_csv: Path, out: Path, block: int = 2048) -> None:
    """``floor`` into a scratch GeoTIFF, then a COG with overviews as the pipeline writes its stock change."""
    scratch = out.with_name(out.stem + ".scratch.tif")
    floor(epoch_a, epoch_b, densities_csv, scratch, block, options={"compress": "ZSTD", "zstd_level": 1})
    rasterio.shutil.copy(
        scratch,
        out,
        driver="COG",
        COMPRESS="DEFLATE",
        LEVEL=1,
        BLOCKSIZE=512,
        OVERVIEWS="AUTO",
        RESAMPLING="AVERAGE",
        NUM_THREADS="ALL_CPUS",
    )
    scratch.unlink()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("epoch_a", type=Path)
    p.add_argument("epoch_b", type=Path)
    p.add_argument("densities", type=Path, help="class,c_above,c_below,c_soil,c_dead (t C/ha)")
    p.add_argument("out", type=Path)
    p.add_argument("--block", type=int, default=2048, help="window side in pixels")
    p.add_argument("--cog", action="store_true", help="write a COG with overviews (GDAL's COG driver)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    (cog_floor if args.cog else floor)(args.epoch_a, args.epoch_b, args.densities, args.out, args.block)
    print(f"floor: {args.out} in {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
