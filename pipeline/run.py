"""Wiring: config -> lazy stages -> one Dask compute -> files. No numbers are made here."""

from __future__ import annotations

import json
import logging
import platform
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata, resources
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline import __version__, carbon, execution, ingest, reclassify, split
from pipeline.classes import CLASS_CODES, CLASS_COLOURS, CLASS_NAMES
from pipeline.config import Config, ExtentSplit, PatchSplit
from pipeline.errors import InputError, UnknownCodesError
from pipeline.grid import Grid
from pipeline.parameters import read_densities, read_rates
from pipeline.outputs import Staging, finish_cog, paletted_qml, sha256, tiled_geotiff_task, write_table
from pipeline.vector import read_polygons

log = logging.getLogger(__name__)



@dataclass
class LandCover:
    """The lazy land cover of every epoch on one grid, as stages 1-2 leave it."""

    grid: Grid
    sources: list[ingest.EpochSource]
    scheme: reclassify.Scheme
    codes: dict[int, xr.DataArray]
    mapped: dict[int, xr.DataArray]
    valid: xr.DataArray
    classes: dict[int, xr.DataArray]


def build_landcover(config: Config, workdir: Path, defer_patch_split: bool = False) -> LandCover:
    """Stages 1-2, lazily: mosaics, alignment, reclassification, common mask, urban/rural split.

    With ``defer_patch_split`` the patch rule is left for the caller (see ``run``): the classes come
    back unsplit.
    """
    scheme = reclassify.load_scheme(config.scheme)
    sources = ingest.open_sources(config.epochs, workdir)
    grid = ingest.check_alignment(sources, config.align)
    codes = {s.year: ingest.open_epoch(s, grid, config.dask.chunks) for s in sources}
    mapped = {y: reclassify.map_to_classes(c, scheme) for y, c in codes.items()}
    valid = reclassify.common_valid(list(mapped.values()))
    classes = {y: reclassify.apply_mask(m, valid) for y, m in mapped.items()}
    rule = config.urban_split
    if isinstance(rule, PatchSplit) and not defer_patch_split:
        classes = {y: split.split_by_patches(c, grid, rule.patch_min_ha) for y, c in classes.items()}
    elif isinstance(rule, ExtentSplit):
        polygons = read_polygons(rule.urban_extent, grid, rule.layer)
        inside = split.extent_mask(polygons.geometry.values, grid, valid)
        classes = {y: split.split_by_extent(c, inside) for y, c in classes.items()}
    elif rule == "native" and not scheme.native_split:
        log.warning(
            "scheme %s has no urban/rural split: all its construction is class 5 (urban); "
            "set urban_split: {patch_min_ha: N} or {urban_extent: FILE} to split it", scheme.name
        )
    return LandCover(grid, sources, scheme, codes, mapped, valid, classes)



def run(config: Config, output: Path | None = None, scheduler: str | None = None, progress: bool = True) -> Path:
    """Run every stage and write the output folder; returns the manifest path."""
    output = Path(output or config.output)
    timer, warnings = execution.Timer(), execution.WarningCollector()
    logging.getLogger("pipeline").addHandler(warnings)
    staging = Staging(output)
    try:
        with execution.scheduler_context(scheduler or config.dask.scheduler, progress) as lock:
            with timer.stage("ingest and reclassify (graph)"):
                patch_rule = config.urban_split if isinstance(config.urban_split, PatchSplit) else None
                lc = build_landcover(config, staging.folder("work"), defer_patch_split=patch_rule is not None)
                files = [f for src in lc.sources for f in src.files]
                per_row = not lc.grid.constant_pixel_area
                status = {y: reclassify.row_histogram(reclassify.pixel_status(m, lc.valid), 4, per_row) for y, m in lc.mapped.items()}
                unknown = {y: reclassify.unknown_codes(lc.codes[y], lc.mapped[y]) for y in lc.codes}
                densities, rates = _carbon_tables(config)
            if patch_rule:
                # Patch sizes need the whole raster before any block can be split: write the unsplit
                # classes and the patch flags in the one pass over the inputs, then split what we read back.
                unsplit = {y: staging.path(f"work/unsplit_{y}.tif") for y in lc.classes}
                writes = [tiled_geotiff_task(c, unsplit[y], lc.grid, 0, lock) for y, c in lc.classes.items()]
                flags = {y: split.patch_flags(c, lc.grid, patch_rule.patch_min_ha) for y, c in lc.classes.items()}
                with timer.stage("compute (one pass over the input pixels)"), execution.reading_errors(files):
                    _, status, unknown, flags = execution.compute(writes, status, unknown, flags)
                _check_unknown(unknown, lc, config.unknown_codes)
                lc.classes = {
                    y: split.apply_patch_flags(_reopen(unsplit[y], y, lc.grid, config.dask.chunks), flags[y])
                    for y in lc.classes
                }
            with timer.stage("carbon (graph)"):
                tasks = _output_tasks(lc, densities, rates, staging, lock, per_row)
            stage = "compute (urban/rural split and carbon)" if patch_rule else "compute (one pass over the input pixels)"
            with timer.stage(stage), execution.reading_errors(files):
                if patch_rule:
                    (results,) = execution.compute(tasks)
                else:
                    results, status, unknown = execution.compute(tasks, status, unknown)
        if not patch_rule:  # with the patch rule they were checked after the first pass
            _check_unknown(unknown, lc, config.unknown_codes)
        _check_carbon_keys(results, densities, rates)
        with timer.stage("write outputs"):
            _finish_rasters(staging)
            row_area = lc.grid.row_area_m2()
            write_table(epoch_table(lc, status, unknown, row_area), staging.path("tables/epochs.csv"))
            write_table(class_table(config.name, results, densities, rates, row_area),
                        staging.path("tables/classes_region.csv"))
        shutil.rmtree(staging.folder("work"))
        manifest = build_manifest(config, lc, staging, timer.stages, warnings.messages)
        staging.path("manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        staging.commit()
    except BaseException:
        staging.discard()
        raise
    finally:
        logging.getLogger("pipeline").removeHandler(warnings)
    return output / "manifest.json"


def _carbon_tables(config: Config) -> tuple[carbon.Lookup | None, carbon.Lookup]:
    """The density table (if any) and the rate table (the config's, else seed 002's Table 2)."""
    densities = carbon.density_lookup(read_densities(config.carbon.densities)) if config.carbon.densities else None
    if densities is None:
        log.warning("no carbon.densities in the config: stock is not computed")
    rates_path = config.carbon.rates or Path(str(resources.files("pipeline.defaults").joinpath("rates_seed002.csv")))
    return densities, carbon.rate_lookup(read_rates(rates_path))


def _output_tasks(lc: LandCover, densities, rates, staging: Staging, lock, per_row: bool) -> dict:
    """Lazy writes and reductions of stages 2-3 for every epoch, to be computed together."""
    tasks: dict = {"writes": [], "classes": {}, "stock": {}, "flux": {}, "missing_density": {}, "missing_rate": {}}
    for year, cls in lc.classes.items():
        tasks["writes"].append(tiled_geotiff_task(cls, staging.path(f"rasters/landcover_{year}.tiled.tif"), lc.grid, 0, lock))
        tasks["classes"][year] = reclassify.row_histogram(cls, carbon.NBINS_CLASS, per_row)
        for name, lookup in (("stock", densities), ("flux", rates)):
            if lookup is None:
                continue
            index = carbon.row_index(lookup, cls, lc.codes[year])
            raster = carbon.per_pixel(lookup, index)
            tasks["writes"].append(tiled_geotiff_task(raster, staging.path(f"rasters/{name}_{year}.tiled.tif"),
                                                      lc.grid, np.nan, lock))
            tasks[name][year] = carbon.counts(lookup, index, cls, per_row)
            key = "missing_density" if name == "stock" else "missing_rate"
            tasks[key][year] = carbon.missing_keys(lookup, index, cls, lc.codes[year])
    return tasks


def _check_carbon_keys(results: dict, densities, rates) -> None:
    """A density is needed for every class or code present; a missing rate is reported, not fatal."""
    def merged(per_year: dict) -> dict[int, int]:
        total: dict[int, int] = {}
        for found in per_year.values():
            for k, v in found.items():
                total[k] = total.get(k, 0) + v
        return dict(sorted(total.items()))

    missing = merged(results["missing_density"])
    if densities is not None and missing:
        listing = ", ".join(f"{k} ({v} px)" for k, v in missing.items())
        raise InputError(f"no carbon density for {densities.table.key} {listing} present in the rasters; add rows",
                         densities.table.path)
    missing = merged(results["missing_rate"])
    if missing:
        what = ", ".join(f"{k} {CLASS_NAMES.get(k, '') if rates.table.key == 'class' else ''}".strip() for k in missing)
        log.warning("no annual rate for %s %s in %s: their flux is not counted (NaN in flux rasters); give a rate "
                    "or county statistics", rates.table.key, what, rates.table.path.name)


#: Band description and unit written into each raster, so QGIS and gdalinfo show what the numbers are.
_RASTER_MEANING = {
    "landcover": ("land class, DESIGN.md codes 1-8 (0 = nodata)", "class code"),
    "stock": ("carbon stock density c_above + c_below + c_soil + c_dead", "t C/ha"),
    "flux": ("annual carbon rate (+ emission, - uptake)", "t C/ha/yr"),
}


def _finish_rasters(staging: Staging) -> None:
    labels = {k: f"{k} {CLASS_NAMES[k]}" for k in CLASS_CODES}
    for tiled in sorted(staging.root.glob("rasters/*.tiled.tif")):
        final = tiled.with_name(tiled.name.replace(".tiled", ""))
        meaning = _RASTER_MEANING[final.name.split("_")[0]]
        if final.name.startswith("landcover_"):
            finish_cog(tiled, final, meaning, CLASS_COLOURS, labels, overview_resampling="MODE")
            paletted_qml(final.with_suffix(".qml"), CLASS_COLOURS, labels)
        else:
            finish_cog(tiled, final, meaning, overview_resampling="AVERAGE")


def _check_unknown(unknown: dict[int, dict[int, int]], lc: LandCover, policy: str) -> None:
    found = {y: u for y, u in unknown.items() if u}
    if not found:
        return
    by_year = "; ".join(f"{y}: " + ", ".join(f"code {k} ({v} px)" for k, v in u.items()) for y, u in found.items())
    if policy == "error":
        files = next(s for s in lc.sources if s.year == next(iter(found)))
        raise UnknownCodesError(
            f"codes not in scheme '{lc.scheme.name}': {by_year}. Add them to a scheme CSV, "
            "or set `unknown_codes: nodata` to treat them as nodata",
            files.files[0] if len(files.files) == 1 else files.files[0].parent,
        )
    log.warning("codes not in scheme '%s' treated as nodata: %s", lc.scheme.name, by_year)


def epoch_table(lc: LandCover, status: dict, unknown: dict, row_area_m2: np.ndarray) -> pd.DataFrame:
    """Per epoch: valid, own-nodata, unknown-code and excluded-by-another-epoch pixels and hectares."""
    rows = []
    for src in lc.sources:
        px = status[src.year].sum(axis=0)
        ha = reclassify.areas_ha(status[src.year], row_area_m2)
        rows.append({
            "year": src.year,
            "files": len(src.files),
            "source_dtype": src.dtype,
            "source_nodata": src.nodata,
            "valid_pixels": int(px[reclassify.VALID]),
            "valid_area_ha": ha[reclassify.VALID],
            "nodata_pixels": int(px[reclassify.OWN_NODATA]),
            "nodata_area_ha": ha[reclassify.OWN_NODATA],
            "unknown_code_pixels": int(px[reclassify.UNKNOWN_CODE]),
            "unknown_code_area_ha": ha[reclassify.UNKNOWN_CODE],
            "excluded_by_other_epochs_pixels": int(px[reclassify.EXCLUDED_BY_OTHER]),
            "excluded_by_other_epochs_area_ha": ha[reclassify.EXCLUDED_BY_OTHER],
            "unknown_codes": " ".join(f"{k}:{v}" for k, v in unknown[src.year].items()),
        })
    return pd.DataFrame(rows)


def class_table(name: str, results: dict, densities, rates, row_area_m2: np.ndarray) -> pd.DataFrame:
    """Per epoch and class over the common valid mask (region layer, one zone): area (ha), stock (t C),
    sink and source (t C/yr; sink as a positive uptake, from negative rates)."""
    rows = []
    for year, per_row in results["classes"].items():
        area_ha = reclassify.areas_ha(per_row, row_area_m2)
        stock = carbon.class_totals(densities, results["stock"][year], row_area_m2) if densities else None
        flux = carbon.class_totals(rates, results["flux"][year], row_area_m2)
        for k in CLASS_CODES:
            rows.append({
                "zone_id": 1, "zone_name": name, "year": year, "class": k, "class_name": CLASS_NAMES[k],
                "pixels": int(per_row[:, k].sum()), "area_ha": area_ha[k],
                "stock_tC": stock["positive"][k] if stock else np.nan,
                # No rate row for this class's land: not counted, so not a zero.
                "sink_tC_yr": flux["negative"][k] if flux["area_ha"][k] or not area_ha[k] else np.nan,
                "source_tC_yr": flux["positive"][k] if flux["area_ha"][k] or not area_ha[k] else np.nan,
            })
    return pd.DataFrame(rows)


def _reopen(path: Path, year: int, grid: Grid, chunks: int) -> xr.DataArray:
    """Our own uint8 intermediate, read lazily on the run's grid and chunks."""
    src = ingest.EpochSource(year, (path,), path, grid, "uint8", 0)
    return ingest.open_epoch(src, grid, chunks)


def build_manifest(config: Config, lc: LandCover, staging: Staging, timings: dict, warnings: list[str]) -> dict:
    import pyproj
    import rasterio
    import shapely

    inputs = sorted({str(f) for s in lc.sources for f in s.files})
    packages = ["numpy", "pandas", "xarray", "dask", "distributed", "rasterio", "rioxarray", "pyproj", "geopandas",
                "pyogrio", "shapely", "flox", "scipy", "pydantic", "click"]
    return {
        "name": config.name,
        "pipeline_version": __version__,
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config.model_dump(mode="json"),
        "grid": {"crs": lc.grid.crs.to_string(), "transform": list(lc.grid.transform)[:6],
                 "width": lc.grid.width, "height": lc.grid.height},
        "scheme": {"name": lc.scheme.name, **lc.scheme.meta},
        "inputs": [{"path": p, "sha256": sha256(Path(p))} for p in inputs],
        "versions": {
            "python": platform.python_version(),
            **{p: _version(p) for p in packages},
            "GDAL": rasterio.__gdal_version__,
            "PROJ": pyproj.proj_version_str,
            "GEOS": shapely.geos_version_string,
        },
        "timings_s": timings,
        "warnings": warnings,
        "outputs": [{"path": f, "bytes": (staging.root / f).stat().st_size, "sha256": sha256(staging.root / f)}
                    for f in staging.files()],
        "command": " ".join(sys.argv),
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
