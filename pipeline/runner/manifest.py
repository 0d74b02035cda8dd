"""The run manifest (``manifest.json``, written last): config, grid, inputs with checksums, versions,
stages run with their timings, warnings and every output with its size and checksum."""

from __future__ import annotations

import hashlib
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from pipeline import __version__
from pipeline.config import Config, ExtentSplit
from pipeline.io import parameters
from pipeline.io.parameters import DEFAULT_RATES
from pipeline.io.staging import Staging
from pipeline.runner.execution import Timer

_PACKAGES = [
    "numpy",
    "pandas",
    "xarray",
    "dask",
    "distributed",
    "rasterio",
    "rioxarray",
    "pyproj",
    "geopandas",
    "pyogrio",
    "shapely",
    "scipy",
    "pydantic",
    "click",
]


def inputs(config: Config, rasters: list[Path]) -> list[dict]:
    """Every input of the run (rasters, tables, polygon files) with its SHA-256; computed once per run."""
    paths = sorted({str(f) for f in rasters} | {str(f) for f in parameter_files(config)})
    return [{"path": p, "sha256": sha256(Path(p))} for p in paths]


def build_manifest(
    config: Config,
    lc,
    checked_inputs: list[dict],
    stages: list[str],
    staging: Staging,
    timer: Timer,
    warnings: list[str],
    checksums: dict[str, str] | None = None,
) -> dict:
    """``lc``: the run's ``LandCover`` (grid and scheme); ``timer``: wall and CPU time and peak memory per
    stage. ``checksums`` (staged path -> SHA-256) is read and filled, so a second manifest of the same run
    hashes only the files written since the first."""
    checksums = {} if checksums is None else checksums
    for f in staging.files():
        if f not in checksums:
            checksums[f] = sha256(staging.root / f)
    import pyproj
    import rasterio
    import shapely

    return {
        "name": config.name,
        "pipeline_version": __version__,
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config.model_dump(mode="json"),
        "stages": stages,
        "grid": {
            "crs": lc.grid.crs.to_string(),
            "transform": list(lc.grid.transform)[:6],
            "width": lc.grid.width,
            "height": lc.grid.height,
        },
        "scheme": {"name": lc.scheme.name, **lc.scheme.meta},
        "inputs": checked_inputs,
        "versions": {
            "python": platform.python_version(),
            **{p: _version(p) for p in _PACKAGES},
            "GDAL": rasterio.__gdal_version__,
            "PROJ": pyproj.proj_version_str,
            "GEOS": shapely.geos_version_string,
        },
        "timings_s": timer.stages,
        # This process's CPU time and peak memory so far, per stage: on a cluster the client's, not the workers'.
        "cpu_s": timer.cpu,
        "peak_rss_mb": timer.peak_rss_mb,
        **(
            {"workers_cpu_s": timer.workers_cpu, "workers_peak_rss_mb": timer.workers_peak_rss_mb}
            if timer.workers_cpu
            else {}
        ),
        "warnings": warnings,
        "outputs": [
            {"path": f, "bytes": (staging.root / f).stat().st_size, "sha256": checksums[f]} for f in staging.files()
        ],
        "command": " ".join(sys.argv),
    }


def parameter_tables(config: Config) -> dict[str, Path]:
    """The small parameter tables the report shows whole, with their sources."""
    c = config.carbon
    tables = {"carbon densities (t C/ha)": c.densities, "annual rates (t C/ha/yr)": c.rates or DEFAULT_RATES}
    if c.statistics:
        tables["statistics coefficients"] = c.coefficients or parameters.default_coefficients()
    return {k: Path(v) for k, v in tables.items() if v is not None}


def parameter_files(config: Config) -> list[Path]:
    """Every non-raster input of a run: tables (the packaged defaults too, when used) and polygon files."""
    carbon_cfg = config.carbon
    files = [carbon_cfg.densities, carbon_cfg.rates or DEFAULT_RATES, carbon_cfg.statistics]
    if carbon_cfg.statistics:
        files.append(carbon_cfg.coefficients or parameters.default_coefficients())
    files += [Path(config.scheme) if config.scheme.endswith(".csv") else None]
    files += [z.path for z in config.zones]
    if config.boundary is not None:
        files.append(config.boundary.path)
    if isinstance(config.urban_split, ExtentSplit):
        files.append(config.urban_split.urban_extent)
    files += [f for series in config.indicators.values() for f in series.years.values()]
    return [Path(f) for f in files if f is not None]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def sha256(path: Path) -> str:
    """Checksum of a file, or of every file of a folder dataset (an ArcInfo grid) in name order."""
    h = hashlib.sha256()
    for member in sorted(p for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() else [path]:
        with open(member, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
