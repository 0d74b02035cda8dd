"""Compute: the one pass over the input pixels that writes the rasters' parts and makes every count the
tables need, then what must follow it (county statistics spread over the flux maps)."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import xarray as xr
from dask.delayed import Delayed

from pipeline import spec
from pipeline.errors import InputError, UnknownCodesError
from pipeline.io import cog
from pipeline.io.parameters import DEFAULT_RATES
from pipeline.io.staging import Staging
from pipeline.model.grid import PixelAreas
from pipeline.model.pathways import PATHWAY_NODATA
from pipeline.runner import execution, studyarea
from pipeline.runner.plan import LandCover, Plan
from pipeline.stages import (
    balance,
    carbon,
    indicators,
    reclassify,
    registration,
    resampling,
    split,
    transitions,
    valuation,
    zonal,
)
from pipeline.stages.counts import (
    count_area_ha,
    fold_cells,
    group_counts,
    group_sums,
    merge_counts,
    with_looked_up,
)

log = logging.getLogger(__name__)

#: Resampling that alone is expected to make at least this share of an interval's changed pixels is warned
#: about even when the misregistration check passes.
RESAMPLING_WARN_SHARE = 0.1


@dataclass
class PassTasks:
    """The lazy writes and reductions of one pass, computed together."""

    writes: list = field(default_factory=list)
    #: Relative paths (``rasters/*.tif``) of the rasters the writes stage.
    rasters: list[str] = field(default_factory=list)
    #: Per epoch, for a single-epoch run (else the epochs are sums of the interval counts).
    counts: dict = field(default_factory=dict)
    interval_counts: dict = field(default_factory=dict)
    missing_density: dict = field(default_factory=dict)
    #: Per epoch of an interval, its classes as staged by the pass (a parts VRT), read back by
    #: ``neighbourhood_counts``.
    classes: dict[int, Path] = field(default_factory=dict)
    #: Per indicator series, pixels and area-weighted value sums per zone and trend class (``group_sums``,
    #: ``fold_cells``).
    indicators: dict = field(default_factory=dict)
    #: Per scenario (base epoch, year, name), the counts of its interval, as ``interval_counts``.
    scenario_counts: dict = field(default_factory=dict)


@dataclass
class PassResults:
    """What the pass computed: per epoch the pixels and hectares per ``reclassify`` status and the unknown
    codes, per epoch and interval the pixels and hectares per combination of keys (``fold_cells``: no row
    per pixel-area cell, so the frames do not grow with the raster's area), the staged rasters."""

    status: dict[int, pd.DataFrame]
    unknown: dict[int, dict[int, int]]
    counts: dict[int, pd.DataFrame]
    interval_counts: dict[tuple[int, int], pd.DataFrame]
    rasters: list[str]
    parameters: balance.CarbonParameters
    #: Per interval, {zone column (None: the region): changed pixels per zone number and kind}.
    registration: dict[tuple[int, int], dict] = field(default_factory=dict)
    #: Per indicator series, its folded ``group_sums`` frame (keys: zone columns and ``trend``).
    indicators: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: Per interval with an epoch resampled, {zone column: (valid pixels, expected change) per zone number}.
    resampling: dict[tuple[int, int], dict] = field(default_factory=dict)
    #: Per scenario (base epoch, year, name), the counts of its interval (to_class 0: nodata in the scenario).
    scenario_counts: dict[tuple[int, int, str], pd.DataFrame] = field(default_factory=dict)


def single_pass(plan: Plan, staging: Staging, timer: execution.Timer) -> PassResults:
    """Every raster part and count of ingest, reclassify, carbon and transitions in one pass over the
    inputs (two with the urban/rural patch rule); then the flux maps of statistics years."""
    lc = plan.lc
    lazy_status = {
        y: dask.delayed(fold_cells)(reclassify.status_counts(m, lc.valid, lc.inside, lc.areas), lc.areas)
        for y, m in lc.mapped.items()
    }
    lazy_unknown = {y: reclassify.unknown_codes(lc.codes[y], lc.mapped[y], lc.inside, lc.valid) for y in lc.codes}
    # A scenario's unknown codes matter only where its pixels are counted: inside the common valid mask.
    lazy_scenario_unknown = {
        k: reclassify.unknown_codes(lc.scenario_codes[k], m, lc.valid) for k, m in lc.scenario_mapped.items()
    }
    status: dict[int, pd.DataFrame] = {}
    unknown: dict[int, dict[int, int]] = {}
    if plan.patch_rule is not None:
        with timer.stage("compute (one pass over the input pixels)"), execution.reading_errors(lc.files):
            status, unknown = split_by_patches(plan, staging, lazy_status, lazy_unknown)
        _check_unknown(unknown, lc, plan.config.unknown_codes)
    tasks = _pass_tasks(plan, staging)
    name = "compute (urban/rural split and carbon)" if plan.patch_rule else "compute (one pass over the input pixels)"
    lazy = {
        "writes": tasks.writes,
        "counts": tasks.counts,
        "interval_counts": tasks.interval_counts,
        "missing_density": tasks.missing_density,
        "edges": {y: reclassify.edge_histogram(c) for y, c in lc.classes.items()} if lc.inside is None else {},
        "indicators": tasks.indicators,
        "scenario_counts": tasks.scenario_counts,
        "scenario_unknown": lazy_scenario_unknown,
    }
    files = lc.files + [f for s in plan.indicators for f in s.files.values()]
    with timer.stage(name), execution.reading_errors(files):
        if plan.patch_rule is not None:
            (done,) = execution.compute(lazy)
        else:
            done, status, unknown = execution.compute(lazy, lazy_status, lazy_unknown)
            _check_unknown(unknown, lc, plan.config.unknown_codes)
    _check_scenario_codes(done["scenario_unknown"], lc, plan.config.unknown_codes)
    _check_carbon_keys(done["missing_density"], plan.densities)
    registered: dict[tuple[int, int], dict] = {}
    resampled: dict[tuple[int, int], dict] = {}
    if tasks.classes:
        stage = "compute (3 x 3 neighbourhoods: misregistration and resampling checks)"
        with timer.stage(stage), execution.own_reading_errors(staging.root):
            registered, resampled = neighbourhood_counts(plan, tasks.classes)
    _warn_misregistration(plan, registered, resampled)
    counts = _epoch_counts(done["counts"], done["interval_counts"])
    if lc.inside is None:
        studyarea.warn_open_water(counts, done["edges"], lc.areas)
    params = balance.CarbonParameters(plan.densities, plan.rates, lc.areas, plan.carbon_layer, plan.terms)
    if plan.terms and plan.carbon_layer is not None:
        _warn_partial_zones(plan, counts)
    if plan.spread_years:
        with timer.stage("spread statistics over the flux maps"), execution.own_reading_errors(staging.root):
            tasks.rasters += spread_flux(plan, params, counts, list(done["interval_counts"]), staging)
    rasters = sorted(set(tasks.rasters))
    return PassResults(
        status,
        unknown,
        counts,
        done["interval_counts"],
        rasters,
        params,
        registered,
        indicators=done["indicators"],
        resampling=resampled,
        scenario_counts=done["scenario_counts"],
    )


def split_by_patches(plan: Plan, staging: Staging, lazy_status: dict, lazy_unknown: dict) -> tuple[dict, dict]:
    """The urban/rural patch rule: patch sizes need the whole raster before any block can be split, so
    the unsplit classes and the patch flags are made in a first pass (with the status and unknown-code
    counts), and the classes read back are split block by block. Replaces ``plan.lc.classes``."""
    lc, rule = plan.lc, plan.patch_rule
    assert rule is not None
    every = {str(y): c for y, c in lc.classes.items()}
    every |= {f"{y}_{n}": c for (y, n), c in lc.scenario_classes.items()}
    unsplit = {k: staging.path(f"work/unsplit_{k}.vrt") for k in every}
    writes = [cog.raster_parts_task(c, unsplit[k], lc.grid, 0) for k, c in every.items()]
    flags = {k: split.patch_flags(c, lc.areas, rule.patch_min_ha) for k, c in every.items()}
    _, status, unknown, flags = execution.compute(writes, lazy_status, lazy_unknown, flags)

    def split_again(k: str) -> xr.DataArray:
        return split.apply_patch_flags(cog.open_own(unsplit[k], lc.grid, plan.config.dask.chunks), flags[k])

    lc.classes = {y: split_again(str(y)) for y in lc.classes}
    lc.scenario_classes = {(y, n): split_again(f"{y}_{n}") for y, n in lc.scenario_classes}
    return status, unknown


def _pass_tasks(plan: Plan, staging: Staging) -> PassTasks:
    """Lazy writes and reductions of reclassify, carbon and transitions, to be computed together.

    Pixels are counted per interval (from class, to class, parameter rows of both epochs, zones); each
    epoch's counts are sums of those, so one reduction per interval serves every table. Flux maps of
    statistics years go to work/ first: the statistics are shared out over them later. Only the raster
    kinds the config asks for are written; without the transitions stage each epoch is counted on its
    own and nothing of the intervals is made.
    """
    lc, densities, rates = plan.lc, plan.densities, plan.rates
    tasks = PassTasks()
    want, spread = set(plan.config.rasters), plan.spread_years

    def write(arr: xr.DataArray, key: str, nodata: float, work: str | None = None, **fields: int | str) -> Path | None:
        if key.removeprefix("scenario_") not in want:
            return None
        relative = spec.path(key, **fields)
        if work is None:
            tasks.rasters.append(relative)
        target = staging.path(work or relative).with_suffix(".vrt")
        tasks.writes.append(cog.raster_parts_task(arr, target, lc.grid, nodata))
        return target

    czone = plan.zone_rasters.get(plan.carbon_layer.name) if plan.carbon_layer is not None else None
    zones = _zone_keys(plan)
    lookups = {"density": densities, "rate": rates} if densities is not None else {"rate": rates}
    index: dict[int, dict] = {}
    in_interval = {y for pair in plan.intervals for y in pair}
    for year, cls in lc.classes.items():
        staged = write(cls, "landcover", 0, year=year)
        if year in in_interval:
            # The neighbourhood checks read each epoch of an interval back, a block and its halo at a time.
            if staged is None:
                staged = staging.path(f"work/landcover_{year}.vrt")
                tasks.writes.append(cog.raster_parts_task(cls, staged, lc.grid, 0))
            tasks.classes[year] = staged
        index[year] = {name: carbon.row_index(lookup, cls, lc.codes[year], czone) for name, lookup in lookups.items()}
        if densities is not None:
            write(carbon.per_pixel(densities, index[year]["density"]), "stock", np.nan, year=year)
            tasks.missing_density[year] = carbon.missing_keys(densities, index[year]["density"], cls, lc.codes[year])
        write(
            carbon.per_pixel(rates, index[year]["rate"]),
            "flux",
            np.nan,
            work=f"work/flux_{year}.tif" if year in spread else None,
            year=year,
        )
    pairs = plan.intervals
    # Tables whose row index rasters the pass makes anyway: densities for the missing-density check, rates for a
    # flux raster.
    made = [densities] if densities is not None else []
    made += [rates] if want & {"flux", "flux_change"} else []
    for year, cls in lc.classes.items() if not pairs else []:
        rows = {name: ("class", index[year][name], lookup) for name, lookup in lookups.items()}
        tasks.counts[year] = _counts({"class": (cls, carbon.NBINS_CLASS), **zones}, rows, plan.areas, made)
    for y0, y1 in pairs:
        before, after = lc.classes[y0], lc.classes[y1]
        keys = {"from_class": (before, carbon.NBINS_CLASS), "to_class": (after, carbon.NBINS_CLASS), **zones}
        rows = {}
        for name, lookup in lookups.items():
            rows |= {
                f"{name}0": ("from_class", index[y0][name], lookup),
                f"{name}1": ("to_class", index[y1][name], lookup),
            }
        tasks.interval_counts[(y0, y1)] = _counts(keys, rows, plan.areas, made)
        write(transitions.transition_raster(before, after), "transition", 0, y0=y0, y1=y1)
        write(transitions.pathway_raster(before, after), "pathway", PATHWAY_NODATA, y0=y0, y1=y1)
        if densities is not None:
            write(
                transitions.value_change(densities, index[y0]["density"], index[y1]["density"]),
                "stock_change",
                np.nan,
                y0=y0,
                y1=y1,
            )
        value = plan.config.valuation
        if densities is not None and value is not None:
            constant = valuation.valuation_constant(
                y0, y1, value.discount_rate_pct, value.price_change_pct, value.price_per_tC
            )
            write(
                transitions.value_change(densities, index[y0]["density"], index[y1]["density"], constant),
                "npv",
                np.nan,
                y0=y0,
                y1=y1,
            )
        if not {y0, y1} & spread:  # otherwise written once the statistics are spread
            write(
                transitions.value_change(rates, index[y0]["rate"], index[y1]["rate"]),
                "flux_change",
                np.nan,
                y0=y0,
                y1=y1,
            )
    for y0, y1, name in plan.scenarios:
        # A scenario is an interval from the base epoch to its map, counted in this same pass. Its flux is the
        # per-hectare rates on both sides (a simulated map has no county statistics).
        before, after, key = lc.classes[y0], lc.scenario_classes[(y1, name)], (y1, name)
        own = {n: carbon.row_index(lookup, after, lc.scenario_codes[key], czone) for n, lookup in lookups.items()}
        write(after, "scenario_landcover", 0, year=y1, scenario=name)
        if densities is not None:
            write(carbon.per_pixel(densities, own["density"]), "scenario_stock", np.nan, year=y1, scenario=name)
            tasks.missing_density[key] = carbon.missing_keys(densities, own["density"], after, lc.scenario_codes[key])
        write(carbon.per_pixel(rates, own["rate"]), "scenario_flux", np.nan, year=y1, scenario=name)
        keys = {"from_class": (before, carbon.NBINS_CLASS), "to_class": (after, carbon.NBINS_CLASS), **zones}
        rows = {}
        for n, lookup in lookups.items():
            rows |= {f"{n}0": ("from_class", index[y0][n], lookup), f"{n}1": ("to_class", own[n], lookup)}
        tasks.scenario_counts[(y0, y1, name)] = _counts(keys, rows, plan.areas, made)
        write(transitions.transition_raster(before, after), "scenario_transition", 0, y0=y0, y1=y1, scenario=name)
        paths = transitions.pathway_raster(before, after)
        write(paths, "scenario_pathway", PATHWAY_NODATA, y0=y0, y1=y1, scenario=name)
        if densities is not None:
            change = transitions.value_change(densities, index[y0]["density"], own["density"])
            write(change, "scenario_stock_change", np.nan, y0=y0, y1=y1, scenario=name)
        flux = transitions.value_change(rates, index[y0]["rate"], own["rate"])
        write(flux, "scenario_flux_change", np.nan, y0=y0, y1=y1, scenario=name)
    _indicator_tasks(plan, staging, zones, tasks)
    return tasks


def _counts(
    keys: dict,
    rows: dict[str, tuple[str, xr.DataArray, carbon.Lookup]],
    areas: PixelAreas,
    made: list[carbon.Lookup],
) -> Delayed:
    """``group_counts`` of ``keys`` and the parameter row columns ``rows`` ({column: (class column, row index
    raster, table)}), in that order, with the cells folded (``fold_cells``). A row set by the class alone
    (``carbon.class_rows``) is looked up in the counts, not counted per pixel.

    A block's count still waits for the row index blocks of the tables in ``made`` (those the pass makes anyway,
    for a raster): Dask then runs a block's classes, rows and counts together, as when the rows were counted.
    Without them it made every block's classes first and held them for the writes (the full run's pass peaked
    at 0.82 GB against 0.57 GB at 12000 x 12000 px)."""
    looked_up, counted, along = {}, dict(keys), []
    for column, (cls, index, lookup) in rows.items():
        by_class = carbon.class_rows(lookup)
        if by_class is None:
            counted[column] = (index, lookup.size)
            continue
        looked_up[column] = (cls, by_class)
        if any(lookup is m for m in made):
            along.append(index)
    counts = with_looked_up(group_counts(counted, areas, along), looked_up, [*keys, *rows])
    return dask.delayed(fold_cells)(counts, areas)


def _zone_keys(plan: Plan, zone_rasters: dict[str, xr.DataArray] | None = None) -> dict[str, tuple[xr.DataArray, int]]:
    """The zone rasters every count is made per: {column: (zone numbers, 1 + number of zones)}, of
    ``zone_rasters`` (default: the pass's)."""
    rasters = plan.zone_rasters if zone_rasters is None else zone_rasters
    return {
        plan.column(z): (rasters[z.name], len(z.ids) + 1)
        for z in plan.layers
        if z in plan.reported or z is plan.carbon_layer
    }


def neighbourhood_counts(plan: Plan, classes: dict[int, Path]) -> tuple[dict, dict]:
    """Per interval, the changed pixels by kind of 3 x 3 neighbourhood (``registration.kind_counts``) and,
    where an epoch was resampled, the valid pixels and expected change (``resampling.change_counts``).

    Made after the pass from the classes it staged: each block reads the earlier epoch with its own halo, so
    no block of the pass waits on its neighbours (in the pass, Dask held a strip of blocks of every raster the
    classes fed, and memory grew with the raster)."""
    lc, chunks = plan.lc, plan.config.dask.chunks
    own_grid = {s.year: s.grid for s in lc.sources}
    registered: dict[tuple[int, int], Delayed] = {}
    resampled: dict[tuple[int, int], Delayed] = {}
    for y0, y1 in plan.intervals:
        earlier = functools.partial(cog.read_window, classes[y0], fill=0)
        before, after = (cog.open_own(classes[y], lc.grid, chunks) for y in (y0, y1))
        zones = _zone_keys(plan, plan.zones_after(after))
        registered[(y0, y1)] = registration.kind_counts(registration.change_kind(earlier, after), zones)
        moved = resampling.interval_displacement(lc.grid, (own_grid[y0], own_grid[y1]), before)
        if moved is not None:
            expected = resampling.expected_change(earlier, *moved)
            resampled[(y0, y1)] = resampling.change_counts(expected, before, zones)
    return execution.compute(registered, resampled)


def _indicator_tasks(plan: Plan, staging: Staging, zones: dict, tasks: PassTasks) -> None:
    """Per indicator series: the per-pixel Sen slope and Mann-Kendall p rasters, and the integer sums of
    its quantised values per zone, trend class and pixel-area cell."""
    valid = plan.lc.valid
    for series in plan.indicators:
        quantised = {
            y: indicators.quantise(a, series.config.scale, series.config.offset, series.precision, series.nodata[y])
            for y, a in series.stored.items()
        }
        trends = indicators.pixel_trends(list(quantised.values()), series.years, series.precision)
        cls = indicators.trend_class(trends, valid, series.config.alpha)
        for key, band in (("indicator_slope", 0), ("indicator_p", 1)):
            relative = spec.path(key, indicator=series.name)
            pixels = xr.where(valid, trends[band], np.nan).astype(np.float32)
            tasks.writes.append(
                cog.raster_parts_task(pixels, staging.path(relative).with_suffix(".vrt"), plan.grid, np.nan)
            )
            tasks.rasters.append(relative)
        values = {f"sum_{y}": indicators.summed(q, cls) for y, q in quantised.items()}
        sums = group_sums({**zones, "trend": (cls, indicators.NCLASSES)}, values, plan.areas)
        tasks.indicators[series.name] = dask.delayed(fold_cells)(sums, plan.areas, list(values))


def _epoch_counts(
    direct: dict[int, pd.DataFrame], intervals: dict[tuple[int, int], pd.DataFrame]
) -> dict[int, pd.DataFrame]:
    """Per epoch counts: computed directly for a single epoch, else summed from an interval it ends."""
    counts = dict(direct)
    for (y0, y1), frame in intervals.items():
        for side, year in ((0, y0), (1, y1)):
            if year not in counts:
                counts[year] = transitions.epoch_counts(frame, side)
    return dict(sorted(counts.items()))


def spread_flux(
    plan: Plan,
    params: balance.CarbonParameters,
    counts: dict[int, pd.DataFrame],
    pairs: list[tuple[int, int]],
    staging: Staging,
) -> list[str]:
    """Rewrite the flux maps of statistics years: each zone's statistical terms spread over its pixels
    of cropland and construction, per-hectare rates elsewhere; then the flux change of the intervals
    that touch those years (reads the run's own staged rasters). Returns the rasters staged."""
    grid, chunks, years = plan.grid, plan.config.dask.chunks, plan.spread_years
    assert plan.carbon_layer is not None
    layer = plan.carbon_layer

    def staged(key: str, **fields: int) -> str:
        return spec.path(key, **fields)

    def own(relative: str, dtype: str = "uint8", nodata: float = 0) -> xr.DataArray:
        return cog.open_own(staging.path(relative).with_suffix(".vrt"), grid, chunks, dtype, nodata)

    flux: dict[int | tuple[int, int], xr.DataArray] = {}
    writes, written = [], []
    for year in sorted(years):
        lut = balance.flux_spread(params, counts[year], year)
        rated = own(f"work/flux_{year}.tif", "float32", np.nan)
        cls = own(staged("landcover", year=year))
        czone = zonal.zone_index(layer, grid, cls)
        spread = cls.copy(data=czone.data.map_blocks(lambda z, c, lut=lut: lut[z, c], cls.data, dtype=np.float32))
        flux[year] = xr.where(np.isnan(spread), rated, spread).astype(np.float32)
        written.append(staged("flux", year=year))
    for y0, y1 in pairs:
        if {y0, y1} & years and "flux_change" in plan.config.rasters:
            ends = [flux[y] if y in flux else own(staged("flux", year=y), "float32", np.nan) for y in (y0, y1)]
            flux[(y0, y1)] = (ends[1].astype(np.float64) - ends[0]).astype(np.float32)
            written.append(staged("flux_change", y0=y0, y1=y1))
    for key, relative in zip(flux, written):
        target = staging.path(relative).with_suffix(".vrt")
        writes.append(cog.raster_parts_task(flux[key], target, grid, np.nan))
    execution.compute(writes)
    return written


def _warn_misregistration(plan: Plan, kinds: dict[tuple[int, int], dict], moved: dict[tuple[int, int], dict]) -> None:
    """Change that a one-pixel shift of the epochs explains, or that resampling alone makes: say so, with the
    numbers, per interval."""
    for (y0, y1), counts in kinds.items():
        row = registration.registration_columns(counts[None], np.array([1])).iloc[0]
        changed, nearby = int(row["changed_pixels"]), int(row["changed_with_earlier_class_nearby_pixels"])
        resampled = [s.year for s in plan.lc.sources if s.year in (y0, y1) and plan.grid.differences(s.grid)]
        alone, expected = "", 0.0
        if (y0, y1) in moved:
            valid = int(moved[(y0, y1)][None][1, 0])
            cols = resampling.resampling_columns(moved[(y0, y1)][None], np.array([1])).iloc[0]
            expected = float(cols["resampling_changed_pixels"])
            alone = (
                f"; resampling alone is expected to change {100 * cols['resampling_changed_share']:.2f} % of the "
                f"valid pixels ({expected:,.1f} of {valid:,} px), against {100 * changed / max(valid, 1):.2f} % "
                f"({changed:,} px) changed between the epochs"
            )
        if row["registration_check"] != "suspect":
            if alone and changed and expected >= RESAMPLING_WARN_SHARE * changed:
                log.warning(
                    "interval %d-%d: epoch %s was resampled with nearest neighbour onto the first epoch's grid%s: "
                    "that much of the change is not land-use change; co-register the epochs, or compare "
                    "products on one grid. See resampling_changed_share in %s",
                    y0,
                    y1,
                    ", ".join(map(str, resampled)),
                    alone,
                    spec.path("intervals", layer="region"),
                )
            continue
        how = (
            f"; epoch {', '.join(map(str, resampled))} was resampled with nearest neighbour onto the first "
            f"epoch's grid, which alone shifts class boundaries by up to a pixel{alone}"
            if resampled
            else ""
        )
        log.warning(
            "interval %d-%d: %.1f %% of the changed pixels (%s of %s) took a class found among their 3 x 3 "
            "neighbours in %d and only %s changed amid uniform land: the change is mostly what a shift of "
            "up to one pixel between the epochs makes (misregistration), not land-use change%s. Its "
            "changed area, transitions, pathways and displacement ratio are not to be trusted: co-register "
            "the epochs, or compare products on one grid. Two versions of one product (e.g. ESA WorldCover "
            "v100 and v200) whose change only redraws class boundaries look the same: compare one version. "
            "See neighbour_share in %s",
            y0,
            y1,
            100 * row["neighbour_share"],
            f"{nearby:,}",
            f"{changed:,}",
            y0,
            f"{int(row['changed_amid_uniform_land_pixels']):,}",
            how,
            spec.path("intervals", layer="region"),
        )


def _warn_partial_zones(plan: Plan, counts: dict[int, pd.DataFrame]) -> None:
    """Statistics are totals for whole zones: a zone partly outside the rasters gets them all on its part."""
    layer = plan.carbon_layer
    assert layer is not None
    frame = next(iter(counts.values()))
    inside = pd.Series(count_area_ha(frame, plan.areas)).groupby(frame["czone"].to_numpy()).sum()
    share = inside.reindex(range(1, len(layer.ids) + 1), fill_value=0).to_numpy() / zonal.polygon_area_ha(layer)
    with_stats = sorted(set().union(*(t.index for t in plan.terms.values())))
    partial = [f"{layer.ids[z - 1]} ({share[z - 1]:.0%})" for z in with_stats if share[z - 1] < 0.98]
    if partial:
        log.warning(
            "zones of '%s' with statistics lie partly outside the rasters (share inside): %s; their "
            "statistical terms are spread over the part inside",
            layer.name,
            ", ".join(partial),
        )


def _check_carbon_keys(missing_density: dict[int, dict[int, int]], densities: carbon.Lookup | None) -> None:
    """A density is needed for every class or code present (a missing rate is reported, not fatal)."""
    missing = merge_counts(list(missing_density.values()))
    if densities is not None and missing:
        listing = ", ".join(f"{k} ({v} px)" for k, v in missing.items())
        raise InputError(
            f"no carbon density for {densities.table.key} {listing} present in the rasters; add rows",
            densities.table.path,
        )


def warn_uncounted(classes: pd.DataFrame, rates: carbon.Lookup) -> None:
    """Land with neither a rate nor statistics is left out of the flux: say which, and how much."""
    lost = classes[classes["uncounted_area_ha"] > 0].groupby(["class", "class_name"])["uncounted_area_ha"].max()
    if len(lost):
        what = ", ".join(f"{c} {n} (up to {a:,.2f} ha in an epoch)" for (c, n), a in lost.items())
        where = (
            "give a carbon.rates table" if rates.table.path == DEFAULT_RATES else f"add rows to {rates.table.path.name}"
        )
        log.warning(
            "no annual rate or statistics for class %s: not counted in the flux (NaN in the flux maps, "
            "uncounted_area_ha in the tables); %s or county statistics",
            what,
            where,
        )


def _check_scenario_codes(unknown: dict[tuple[int, str], dict[int, int]], lc: LandCover, policy: str) -> None:
    """Codes of a scenario map the scheme does not know (inside the common valid mask): an error naming the
    map, or with ``unknown_codes: nodata`` left out of the scenario like its nodata (reported)."""
    for src in lc.scenario_sources:
        found = unknown.get((src.year, str(src.scenario))) or {}
        if not found:
            continue
        listing = ", ".join(f"code {k} ({v} px)" for k, v in found.items())
        if policy == "error":
            raise UnknownCodesError(
                f"{src.label}: codes not in scheme '{lc.scheme.name}': {listing}. Add them to a scheme CSV, "
                "or set `unknown_codes: nodata` to treat them as nodata",
                src.files[0] if len(src.files) == 1 else src.files[0].parent,
            )
        log.warning("%s: codes not in scheme '%s' treated as nodata: %s", src.label, lc.scheme.name, listing)


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
