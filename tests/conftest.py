"""Shared fixtures: tiny hand-made rasters and configs, and the real data beside the checkout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine

REAL = Path(__file__).resolve().parents[2] / "shared" / "real_data"
UTM50 = "EPSG:32650"


def write_raster(
    path: Path,
    data: np.ndarray,
    transform: Affine | None = None,
    crs: str | None = UTM50,
    nodata: float | None = 255,
    tiled: bool = False,
) -> Path:
    """A single-band GeoTIFF of ``data`` (30 m UTM by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    transform = transform or Affine(30, 0, 500000, 0, -30, 3400000)
    profile = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "transform": transform,
        "nodata": nodata,
    }
    if crs:
        profile["crs"] = crs
    if tiled:
        profile.update(tiled=True, blockxsize=16, blockysize=16)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data, 1)
    return path


def array_window(a: np.ndarray, fill: float):
    """A ``window(r0, r1, c0, c1)`` reader of ``a``, ``fill`` past its edges, as ``cog.read_window`` reads a
    staged raster."""

    def window(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        out = np.full((r1 - r0, c1 - c0), fill, a.dtype)
        a0, a1, b0, b1 = max(r0, 0), min(r1, a.shape[0]), max(c0, 0), min(c1, a.shape[1])
        if a0 < a1 and b0 < b1:
            out[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = a[a0:a1, b0:b1]
        return out

    return window


def write_config(folder: Path, **settings) -> Path:
    """A config.yaml in ``folder`` with defaults for a CNLUCC run; ``settings`` override."""
    data = {"name": "test-region", "scheme": "cnlucc", "output": "out", "dask": {"chunks": 64}}
    data.update(settings)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


@pytest.fixture
def real_data() -> Path:
    if not REAL.exists():
        pytest.skip("../shared/real_data is not beside this checkout")
    return REAL


@pytest.fixture
def two_epochs(tmp_path: Path) -> Path:
    """Two 100 x 120 CNLUCC epochs, non-constant, with nodata in different places, as 2 and 1 files."""
    rng = np.random.default_rng(7)
    codes = np.array([11, 12, 21, 22, 31, 41, 51, 52, 53, 64, 65], dtype=np.uint8)
    a = codes[rng.integers(0, len(codes), size=(100, 120))]
    b = a.copy()
    b[40:60, 40:80] = 51
    a[:5, :7] = 255
    b[95:, 110:] = 255
    write_raster(tmp_path / "lc2000" / "w.tif", a[:, :60])
    write_raster(tmp_path / "lc2000" / "e.tif", a[:, 60:], transform=Affine(30, 0, 500000 + 60 * 30, 0, -30, 3400000))
    write_raster(tmp_path / "lc2020.tif", b)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    return write_config(tmp_path, epochs={2000: "lc2000/*.tif", 2020: "lc2020.tif"})
