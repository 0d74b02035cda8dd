"""Wiring: config -> lazy stages -> one Dask compute -> files. No numbers are made here."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline import __version__
from pipeline.config import Config, ExtentSplit, PatchSplit
from pipeline.errors import ConfigError, InputError, UnknownCodesError
from pipeline.io import cog, parameters, rasters, vectors
from pipeline.io.cog import finish_rasters, raster_parts_task
from pipeline.io.parameters import DEFAULT_RATES, read_densities, read_rates
from pipeline.io.staging import Staging
from pipeline.io.tables import write_table
from pipeline.io.vectors import read_polygons
from pipeline.model import inputs, pathways
from pipeline.model.grid import Grid
from pipeline.runner import execution, manifest, redlines, tables
from pipeline.stages import (
    balance,
    carbon,
    reclassify,
    split,
    statistics,
    transitions,
    zonal,
)
from pipeline.stages.counts import group_counts, row_histogram

log = logging.getLogger(__name__)

#: DESIGN.md's stages, in order. The first three make the counts every other stage is written from, so
#: they always run; ``--stages`` chooses among the others.
STAGES = ("ingest", "reclassify", "carbon", "transitions", "zonal", "trends", "redline", "report")
CORE_STAGES = STAGES[:3]


def resolve_stages(requested: list[str] | None, config: Config) -> list[str]:
    """The stages a run does, in DESIGN.md's order: all by default (red lines when configured), else
    those named plus the core ones."""
    if requested is None:
        return [s for s in STAGES if s != "redline" or config.redline is not None]
    unknown = sorted(set(requested) - set(STAGES))
    if unknown:
        raise ConfigError(f"unknown stage(s) {', '.join(unknown)}; stages: {', '.join(STAGES)}")
    if "redline" in requested and config.redline is None:
        raise ConfigError("--stages names redline but the config has no `redline:` section")
    return [s for s in STAGES if s in requested or s in CORE_STAGES]


@dataclass
class LandCover:
    """The lazy land cover of every epoch on one grid, as stages 1-2 leave it."""

    grid: Grid
    sources: list[inputs.EpochSource]
    scheme: inputs.Scheme
    codes: dict[int, xr.DataArray]
    mapped: dict[int, xr.DataArray]
    valid: xr.DataArray
    classes: dict[int, xr.DataArray]


def build_landcover(config: Config, workdir: Path, defer_patch_split: bool = False) -> LandCover:
    """Stages 1-2, lazily: mosaics, alignment, reclassification, common mask, urban/rural split.

    With ``defer_patch_split`` the patch rule is left for the caller (see ``run``): the classes come
    back unsplit.
    """
    scheme = parameters.load_scheme(config.scheme)
    sources = rasters.open_sources(config.epochs, workdir)
    grid = rasters.check_alignment(sources, config.align)
    codes = {s.year: rasters.open_epoch(s, grid, config.dask.chunks) for s in sources}
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



def run(config: Config, output: Path | None = None, scheduler: str | None = None, progress: bool = True,
        stages: list[str] | None = None) -> Path:
    """Run the stages (all by default, see ``resolve_stages``) and write the output folder; returns the
    manifest path."""
    # GDAL's block cache defaults to 5 % of RAM and filled up while the COGs of large rasters were
    # copied, so peak memory grew with the raster (3.2 GB at 20000^2 px, 1.5 GB with this bound).
    os.environ.setdefault("GDAL_CACHEMAX", "256")
    stages = resolve_stages(stages, config)
    output = Path(output or config.output)
    timer, warnings = execution.Timer(), execution.WarningCollector()
    logging.getLogger("pipeline").addHandler(warnings)
    staging = Staging(output)
    try:
        with execution.scheduler_context(scheduler or config.dask.scheduler, progress):
            with timer.stage("ingest and reclassify (graph)"):
                patch_rule = config.urban_split if isinstance(config.urban_split, PatchSplit) else None
                lc = build_landcover(config, staging.folder("work"), defer_patch_split=patch_rule is not None)
                files = [f for src in lc.sources for f in src.files]
                per_row = not lc.grid.constant_pixel_area
                status = {y: row_histogram(reclassify.pixel_status(m, lc.valid), 4, per_row) for y, m in lc.mapped.items()}
                unknown = {y: reclassify.unknown_codes(lc.codes[y], lc.mapped[y]) for y in lc.codes}
                layers = [vectors.read_zone_layer(z.name, z.path, z.id, z.label, lc.grid, z.layer, z.coordinates == "gcj02")
                          for z in config.zones]
                carbon_layer = next((z for z in layers if z.name == config.carbon_layer), None)
                densities, rates = _carbon_tables(config, carbon_layer)
                red_inputs = "redline" in stages and redlines.read_inputs(config.redline, layers, lc.grid)
                terms = _statistics_terms(config, carbon_layer)
            if patch_rule:
                # Patch sizes need the whole raster before any block can be split: write the unsplit
                # classes and the patch flags in the one pass over the inputs, then split what we read back.
                unsplit = {y: staging.path(f"work/unsplit_{y}.vrt") for y in lc.classes}
                writes = [raster_parts_task(c, unsplit[y], lc.grid, 0) for y, c in lc.classes.items()]
                flags = {y: split.patch_flags(c, lc.grid, patch_rule.patch_min_ha) for y, c in lc.classes.items()}
                with timer.stage("compute (one pass over the input pixels)"), execution.reading_errors(files):
                    _, status, unknown, flags = execution.compute(writes, status, unknown, flags)
                _check_unknown(unknown, lc, config.unknown_codes)
                lc.classes = {
                    y: split.apply_patch_flags(cog.open_own(unsplit[y], lc.grid, config.dask.chunks), flags[y])
                    for y in lc.classes
                }
            with timer.stage("carbon (graph)"):
                zone_rasters = {z.name: zonal.zone_index(z, lc.grid, next(iter(lc.classes.values()))) for z in layers}
                columns = {z.name: ("czone" if z is carbon_layer else f"zone_{z.name}") for z in layers}
                # Without the zonal stage only the carbon layer is counted (its zones choose the parameters).
                reported = layers if "zonal" in stages else []
                keyed = {columns[z.name]: (zone_rasters[z.name], len(z.ids) + 1) for z in layers
                         if z in reported or z is carbon_layer}
                czone = zone_rasters.get(config.carbon_layer)
                spread_years = set(terms) & set(lc.classes) if "flux" in config.rasters else set()
                tasks = _output_tasks(lc, densities, rates, keyed, czone, spread_years, staging, per_row,
                                      set(config.rasters), intervals="transitions" in stages)
            stage = "compute (urban/rural split and carbon)" if patch_rule else "compute (one pass over the input pixels)"
            with timer.stage(stage), execution.reading_errors(files):
                if patch_rule:
                    (results,) = execution.compute(tasks)
                else:
                    results, status, unknown = execution.compute(tasks, status, unknown)
            if not patch_rule:  # with the patch rule they were checked after the first pass
                _check_unknown(unknown, lc, config.unknown_codes)
            _check_carbon_keys(results, densities)
            counts = _epoch_counts(results)
            row_area = lc.grid.row_area_m2()
            acc = balance.CarbonParameters(densities, rates, row_area, carbon_layer, terms)
            if terms:
                _warn_partial_zones(carbon_layer, counts, row_area, terms)
            if spread_years:
                with timer.stage("spread statistics over the flux maps"):
                    _spread_flux(acc, counts, spread_years, list(results["interval_counts"]), czone, staging,
                                 lc.grid, config.dask.chunks)
            red = None
            if "redline" in stages:
                with timer.stage("red-line candidates"):
                    red = redlines.write_redlines(config.redline, red_inputs,
                                                            config.redline.year or config.years[-1], layers,
                                                            zone_rasters, lc.grid, config.dask.chunks, staging)
        with timer.stage("write outputs"):
            finish_rasters(staging, config.overviews)
            write_table(tables.epoch_table(lc.sources, status, unknown, row_area), staging.path("tables/epochs.csv"))
            named = {"region": (None, None), **{z.name: (z, columns[z.name]) for z in reported}}
            written = tables.epoch_tables(acc, counts, named, config.name, config.carbon.co2, staging,
                                          with_trends="trends" in stages)
            _warn_uncounted(written["region"][0], rates)
            tables.zone_tables(named, counts, {n: b for n, (_, b) in written.items()}, row_area, lc.grid, staging)
            pathways = tables.interval_tables(acc, results["interval_counts"], named, config.name,
                                              config.carbon.co2, staging, with_sankey="report" in stages)
        shutil.rmtree(staging.folder("work"))
        checked, checksums = manifest.inputs(config, files), {}
        if "report" in stages:
            with timer.stage("maps and report"):
                from pipeline.report import maps, page

                source = (f"carbon-pipeline {__version__} · run '{config.name}' · land cover "
                          f"{', '.join(map(str, config.years))} · {lc.grid.crs.to_string()}")
                drawn = maps.draw_maps(staging.root, {z.name: z for z in reported},
                                       {n: b for n, (_, b) in written.items()}, pathways, source, red)
                so_far = manifest.build_manifest(config, lc, checked, stages, staging, timer.stages, warnings.messages,
                                                 checksums)
                page.write_report(staging.path("report.html"), staging.root, so_far, drawn,
                                    manifest.parameter_tables(config))
        final = manifest.build_manifest(config, lc, checked, stages, staging, timer.stages, warnings.messages,
                                        checksums)
        staging.path("manifest.json").write_text(json.dumps(final, indent=2, ensure_ascii=False), encoding="utf-8")
        staging.commit()
    except BaseException:
        staging.discard()
        raise
    finally:
        logging.getLogger("pipeline").removeHandler(warnings)
    return output / "manifest.json"


def _carbon_tables(config: Config, layer: inputs.ZoneLayer | None) -> tuple[carbon.Lookup | None, carbon.Lookup]:
    """The density table (if any) and the rate table (the config's, else seed 002's Table 2)."""
    densities = None
    if config.carbon.densities:
        densities = carbon.density_lookup(read_densities(config.carbon.densities), layer)
    else:
        log.warning("no carbon.densities in the config: stock is not computed")
    return densities, carbon.rate_lookup(read_rates(config.carbon.rates or DEFAULT_RATES), layer)


def _statistics_terms(config: Config, layer: inputs.ZoneLayer | None) -> dict[int, pd.DataFrame]:
    """Seed 002's terms per statistics year, indexed by the carbon layer's zone numbers ({} without statistics)."""
    if config.carbon.statistics is None:
        return {}
    coefficients = parameters.read_coefficients(config.carbon.coefficients)
    stats = parameters.read_statistics(config.carbon.statistics, coefficients)
    terms = statistics.terms(stats, coefficients)
    by_year = balance.terms_by_year(terms, layer, config.carbon.statistics)
    away = sorted(set(by_year) - set(config.years))
    if away:
        log.warning("statistics years %s have no land-cover epoch: their balance uses the nearest epoch's land "
                    "(flagged nearest_epoch in tables/balance_*.csv)", away)
    return by_year


def _output_tasks(lc: LandCover, densities, rates, zones: dict, czone, spread_years: set[int], staging: Staging,
                  per_row: bool, want: set[str], intervals: bool = True) -> dict:
    """Lazy writes and reductions of stages 2-4, to be computed together in one pass.

    ``zones`` maps a count column to (zone raster, number of zones + 1); ``czone`` is the carbon layer's
    raster. Pixels are counted per interval (from class, to class, parameter rows of both epochs,
    zones); each epoch's counts are sums of those, so one reduction per interval serves every table.
    Flux maps of ``spread_years`` go to work/ first: statistics are shared out over them later. Only the
    raster kinds in ``want`` are written; without ``intervals`` (the transitions stage) each epoch is
    counted on its own and nothing of the intervals is made.
    """
    tasks: dict = {"writes": [], "counts": {}, "interval_counts": {}, "missing_density": {}}

    def write(arr, stem: str, nodata: float) -> None:
        if re.sub(r"(_\d+)+$", "", Path(stem).name) in want:
            tasks["writes"].append(_parts(arr, staging, stem, lc.grid, nodata))

    lookups = {"density": densities, "rate": rates} if densities is not None else {"rate": rates}
    index: dict[int, dict] = {}
    for year, cls in lc.classes.items():
        write(cls, f"rasters/landcover_{year}", 0)
        index[year] = {name: carbon.row_index(lookup, cls, lc.codes[year], czone) for name, lookup in lookups.items()}
        for name, lookup in lookups.items():
            kind = "stock" if name == "density" else "flux"
            folder = "work" if kind == "flux" and year in spread_years else "rasters"
            write(carbon.per_pixel(lookup, index[year][name]), f"{folder}/{kind}_{year}", np.nan)
        if densities is not None:
            tasks["missing_density"][year] = carbon.missing_keys(densities, index[year]["density"], cls, lc.codes[year])
    pairs = transitions.intervals(list(lc.classes)) if intervals else []
    for year, cls in lc.classes.items() if not pairs else []:
        keys = {"class": (cls, carbon.NBINS_CLASS), **zones}
        keys |= {name: (index[year][name], lookup.size) for name, lookup in lookups.items()}
        tasks["counts"][year] = group_counts(keys, per_row)
    for y0, y1 in pairs:
        before, after, tag = lc.classes[y0], lc.classes[y1], f"{y0}_{y1}"
        keys = {"from_class": (before, carbon.NBINS_CLASS), "to_class": (after, carbon.NBINS_CLASS), **zones}
        for name, lookup in lookups.items():
            keys |= {f"{name}0": (index[y0][name], lookup.size), f"{name}1": (index[y1][name], lookup.size)}
        tasks["interval_counts"][(y0, y1)] = group_counts(keys, per_row)
        writes = [(transitions.transition_raster(before, after), "transition", 0),
                  (transitions.pathway_raster(before, after), "pathway", pathways.PATHWAY_NODATA)]
        if densities is not None:
            writes.append((transitions.value_change(densities, index[y0]["density"], index[y1]["density"]),
                           "stock_change", np.nan))
        if not {y0, y1} & spread_years:  # otherwise written once the statistics are spread
            writes.append((transitions.value_change(rates, index[y0]["rate"], index[y1]["rate"]), "flux_change", np.nan))
        for arr, kind, nodata in writes:
            write(arr, f"rasters/{kind}_{tag}", nodata)
    return tasks


def _parts(arr: xr.DataArray, staging: Staging, stem: str, grid: Grid, nodata: float):
    return raster_parts_task(arr, staging.path(f"{stem}.vrt"), grid, nodata)


def _epoch_counts(results: dict) -> dict[int, pd.DataFrame]:
    """Per epoch counts: computed directly for a single epoch, else summed from an interval it ends."""
    counts = dict(results["counts"])
    for (y0, y1), frame in results["interval_counts"].items():
        for side, year in ((0, y0), (1, y1)):
            if year not in counts:
                counts[year] = transitions.epoch_counts(frame, side)
    return dict(sorted(counts.items()))


def _spread_flux(acc: balance.CarbonParameters, counts: dict, years: set[int], pairs: list[tuple[int, int]], czone,
                 staging: Staging, grid: Grid, chunks: int) -> None:
    """Rewrite the flux maps of statistics years: each zone's statistical terms spread over its pixels
    of cropland and construction, per-hectare rates elsewhere; then the flux change of the intervals
    that touch those years (reads our own intermediate rasters)."""
    flux, writes = {}, []
    for year in sorted(years):
        lut = balance.flux_spread(acc, counts[year], year)
        rated = cog.open_own(staging.path(f"work/flux_{year}.vrt"), grid, chunks, "float32", np.nan)
        cls = cog.open_own(staging.path(f"rasters/landcover_{year}.vrt"), grid, chunks)
        spread = cls.copy(data=czone.data.map_blocks(lambda z, c, lut=lut: lut[z, c], cls.data, dtype=np.float32))
        flux[year] = xr.where(np.isnan(spread), rated, spread).astype(np.float32)
        writes.append(_parts(flux[year], staging, f"rasters/flux_{year}", grid, np.nan))
    for y0, y1 in pairs:
        if {y0, y1} & years:
            ends = [flux[y] if y in flux else
                    cog.open_own(staging.path(f"rasters/flux_{y}.vrt"), grid, chunks, "float32", np.nan)
                    for y in (y0, y1)]
            change = (ends[1].astype(np.float64) - ends[0]).astype(np.float32)
            writes.append(_parts(change, staging, f"rasters/flux_change_{y0}_{y1}", grid, np.nan))
    execution.compute(writes)


def _warn_partial_zones(layer: inputs.ZoneLayer, counts: dict, row_area_m2: np.ndarray, terms: dict) -> None:
    """Statistics are totals for whole zones: a zone partly outside the rasters gets them all on its part."""
    frame = next(iter(counts.values()))
    inside = (frame["pixels"] * row_area_m2[frame["row"]] / 1e4).groupby(frame["czone"]).sum()
    share = inside.reindex(range(1, len(layer.ids) + 1), fill_value=0).to_numpy() / zonal.polygon_area_ha(layer)
    with_stats = sorted(set().union(*(t.index for t in terms.values())))
    partial = [f"{layer.ids[z - 1]} ({share[z - 1]:.0%})" for z in with_stats if share[z - 1] < 0.98]
    if partial:
        log.warning("zones of '%s' with statistics lie partly outside the rasters (share inside): %s; their "
                    "statistical terms are spread over the part inside", layer.name, ", ".join(partial))


def _check_carbon_keys(results: dict, densities) -> None:
    """A density is needed for every class or code present (a missing rate is reported, not fatal)."""
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


def _warn_uncounted(classes: pd.DataFrame, rates: carbon.Lookup) -> None:
    """Land with neither a rate nor statistics is left out of the flux: say which, and how much."""
    lost = classes[classes["uncounted_area_ha"] > 0].groupby(["class", "class_name"])["uncounted_area_ha"].max()
    if len(lost):
        what = ", ".join(f"{c} {n} (up to {a:,.2f} ha in an epoch)" for (c, n), a in lost.items())
        where = ("give a carbon.rates table" if rates.table.path.parent.name == "defaults"
                 else f"add rows to {rates.table.path.name}")
        log.warning("no annual rate or statistics for class %s: not counted in the flux (NaN in the flux maps, "
                    "uncounted_area_ha in the tables); %s or county statistics", what, where)


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


