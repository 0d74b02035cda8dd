"""Plan: the config -> every input read and checked, the lazy land cover, and what the run will write.

Nothing here reads pixels beyond raster headers; every problem with an input surfaces here, before the
one pass over the pixels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import xarray as xr

from pipeline import spec
from pipeline.config import Config, ExtentSplit, PatchSplit
from pipeline.errors import ConfigError, InputError
from pipeline.io import parameters, rasters, vectors
from pipeline.io.indicators import IndicatorSeries, open_series
from pipeline.model.grid import Grid, PixelAreas, pixel_areas
from pipeline.model.inputs import EpochSource, ParameterTable, Scheme, ZoneLayer
from pipeline.model.tiles import tile_layout
from pipeline.runner import redlines, studyarea
from pipeline.stages import (
    balance,
    carbon,
    reclassify,
    split,
    statistics,
    transitions,
    uncertainty,
    zonal,
)

log = logging.getLogger(__name__)

#: The stages, in order. The first three make the counts every other stage is written from, so they
#: always run; ``--stages`` chooses among the others.
STAGES = ("ingest", "reclassify", "carbon", "transitions", "zonal", "trends", "redline", "report")
CORE_STAGES = STAGES[:3]


def resolve_stages(requested: list[str] | None, config: Config) -> list[str]:
    """The stages a run does, in order: all by default (red lines when configured), else those named
    plus the core ones."""
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
    """The lazy land cover of every epoch on one grid, as ingest and reclassify leave it."""

    grid: Grid
    #: How each pixel's area is measured (``area:`` in the config).
    areas: PixelAreas
    sources: list[EpochSource]
    scheme: Scheme
    codes: dict[int, xr.DataArray]
    mapped: dict[int, xr.DataArray]
    valid: xr.DataArray
    classes: dict[int, xr.DataArray]
    #: Where the pixel centre lies in the study area (``boundary:``); None without one. Part of ``valid``.
    inside: xr.DataArray | None = None
    #: The scenario maps (``scenarios:``), keyed by (year, name): sources, raw codes, mapped classes, and
    #: classes on the common valid mask (0 also where the scenario itself is nodata or an unknown code).
    scenario_sources: list[EpochSource] = field(default_factory=list)
    scenario_codes: dict[tuple[int, str], xr.DataArray] = field(default_factory=dict)
    scenario_mapped: dict[tuple[int, str], xr.DataArray] = field(default_factory=dict)
    scenario_classes: dict[tuple[int, str], xr.DataArray] = field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        return [f for src in [*self.sources, *self.scenario_sources] for f in src.files]


def build_landcover(config: Config, workdir: Path, defer_patch_split: bool = False) -> LandCover:
    """Ingest and reclassify, lazily: mosaics, alignment, reclassification, common mask, urban/rural split.

    With ``defer_patch_split`` the patch rule is left to the caller (``compute.split_by_patches``): the
    classes come back unsplit.
    """
    scheme = parameters.load_scheme(config.scheme)
    sources = rasters.open_sources(config.epochs, workdir)
    grid = rasters.check_alignment(sources, config.align)
    check_size(grid, sources, config.dask.chunks, config.dask.max_pixels)
    areas = measure_pixels(grid, config, sources)
    codes = {s.year: rasters.open_epoch(s, grid, config.dask.chunks) for s in sources}
    mapped = {y: reclassify.map_to_classes(c, scheme) for y, c in codes.items()}
    valid = reclassify.common_valid(list(mapped.values()))
    inside = None
    if config.boundary is not None:
        inside = studyarea.boundary_mask(config.boundary, grid, valid)
        valid = (valid & inside).rename("common_valid")
    classes = {y: reclassify.apply_mask(m, valid) for y, m in mapped.items()}
    scenarios = rasters.open_scenario_sources(config.scenarios, workdir)
    if scenarios:
        rasters.check_alignment(scenarios, config.align, first=sources[0])
    scenario_codes = {(s.year, str(s.scenario)): rasters.open_epoch(s, grid, config.dask.chunks) for s in scenarios}
    scenario_mapped = {k: reclassify.map_to_classes(c, scheme) for k, c in scenario_codes.items()}
    scenario_classes = {k: reclassify.apply_known(m, valid) for k, m in scenario_mapped.items()}
    rule = config.urban_split
    if isinstance(rule, PatchSplit) and not defer_patch_split:
        classes = {y: split.split_by_patches(c, areas, rule.patch_min_ha) for y, c in classes.items()}
        scenario_classes = {k: split.split_by_patches(c, areas, rule.patch_min_ha) for k, c in scenario_classes.items()}
    elif isinstance(rule, ExtentSplit):
        polygons = vectors.read_polygons(rule.urban_extent, grid, rule.layer)
        urban = split.extent_mask(polygons.geometry.values, grid, valid)
        classes = {y: split.split_by_extent(c, urban) for y, c in classes.items()}
        scenario_classes = {k: split.split_by_extent(c, urban) for k, c in scenario_classes.items()}
    elif rule == "native" and not scheme.native_split:
        log.warning(
            "scheme %s has no urban/rural split: all its construction is class 5 (urban); "
            "set urban_split: {patch_min_ha: N} or {urban_extent: FILE} to split it",
            scheme.name,
        )
    return LandCover(
        grid,
        areas,
        sources,
        scheme,
        codes,
        mapped,
        valid,
        classes,
        inside,
        scenarios,
        scenario_codes,
        scenario_mapped,
        scenario_classes,
    )


def check_size(grid: Grid, sources: list[EpochSource], chunks: int, limit: float) -> None:
    """Say the size of the work at once, and refuse a grid above ``limit`` pixels before any graph is built."""
    pixels = grid.width * grid.height
    blocks = -(-grid.width // chunks) * -(-grid.height // chunks)
    log.info(
        "grid %d x %d px (%.3g Mpx) x %d epochs, %d blocks of %d px per epoch",
        grid.width,
        grid.height,
        pixels / 1e6,
        len(sources),
        blocks,
        chunks,
    )
    if pixels > limit:
        raise ConfigError(
            f"the grid is {grid.width} x {grid.height} = {pixels:.3g} px per epoch, above the limit "
            f"dask.max_pixels = {limit:.3g}; check the rasters' extent and resolution, or raise "
            "dask.max_pixels in the config",
            sources[0].dataset,
        )


#: With ``area: planar``, warn when planar areas differ from the ellipsoid's, or vary, by more than this share.
PLANAR_SCALE_SPREAD = 0.005


def measure_pixels(grid: Grid, config: Config, sources: list[EpochSource]) -> PixelAreas:
    """The grid's pixel areas by ``area:``, said in the log; an impossible choice names the first raster."""
    try:
        areas = pixel_areas(grid, config.area)
    except ConfigError as err:
        raise ConfigError(str(err), sources[0].dataset) from None
    describe_areas(areas, grid)
    return areas


def describe_areas(areas: PixelAreas, grid: Grid) -> None:
    """Say how pixels are measured; warn when planar areas differ from the ellipsoid's by more than 0.5 %."""
    low, high = areas.areal_scale
    if areas.method == "planar":
        if high / low - 1 > PLANAR_SCALE_SPREAD or max(abs(high - 1), abs(low - 1)) > PLANAR_SCALE_SPREAD:
            log.warning(
                "area: planar: the areal scale factor of %s ranges %.4f-%.4f over the rasters, so planar areas "
                "differ from the ellipsoidal areas land surveys report by %+.2f %% to %+.2f %%; remove "
                "`area: planar` to measure on the ellipsoid",
                grid.crs.to_string(),
                low,
                high,
                100 * (low - 1),
                100 * (high - 1),
            )
        return
    if grid.crs.is_geographic:
        log.info("pixel areas on the WGS84 ellipsoid, exact per row")
    else:
        log.info(
            "pixel areas on the ellipsoid: planar area / areal scale factor (%.5f-%.5f) per cell of %d x %d px",
            low,
            high,
            *areas.cell_shape,
        )


@dataclass
class Plan:
    """Everything a run needs before its pass over the pixels, read and checked once."""

    config: Config
    stages: list[str]
    lc: LandCover
    layers: list[ZoneLayer]
    carbon_layer: ZoneLayer | None
    densities: carbon.Lookup | None
    rates: carbon.Lookup
    #: statistics year -> terms indexed by the carbon layer's zone numbers ({} without statistics)
    terms: dict[int, pd.DataFrame]
    redline_inputs: redlines.RedlineInputs | None
    #: The urban/rural patch rule, which needs a pass of its own (``compute.split_by_patches``).
    patch_rule: PatchSplit | None
    #: The pass's zone rasters, burned after the common valid mask (``zones_after``).
    zone_rasters: dict[str, xr.DataArray] = field(default_factory=dict)
    #: Continuous indicator series on the grid (``indicators:``), read with the trends stage.
    indicators: list[IndicatorSeries] = field(default_factory=list)

    @property
    def grid(self) -> Grid:
        return self.lc.grid

    @property
    def areas(self) -> PixelAreas:
        return self.lc.areas

    @property
    def reported(self) -> list[ZoneLayer]:
        """Zone layers with tables of their own (the zonal stage); the carbon layer is counted anyway."""
        return self.layers if "zonal" in self.stages else []

    def zones_after(self, like: xr.DataArray) -> dict[str, xr.DataArray]:
        """Each zone layer's raster of zone numbers, a block burned after ``like``'s: a raster the compute
        that counts by zone reads anyway (``zonal.rasterize_blocks`` says why)."""
        return {z.name: zonal.zone_index(z, self.grid, like) for z in self.layers}

    def column(self, layer: ZoneLayer) -> str:
        """The count column of a zone layer."""
        return "czone" if layer is self.carbon_layer else f"zone_{layer.name}"

    @property
    def intervals(self) -> list[tuple[int, int]]:
        return transitions.intervals(list(self.lc.classes)) if "transitions" in self.stages else []

    @property
    def scenarios(self) -> list[tuple[int, int, str]]:
        """(base epoch, scenario year, name) of every scenario, with the transitions stage (else none)."""
        if "transitions" not in self.stages:
            return []
        return [(self.config.scenario_base, year, name) for year, name in self.config.scenario_list]

    @property
    def spread_years(self) -> set[int]:
        """Epochs whose flux maps carry county statistics, shared out after the pass."""
        return set(self.terms) & set(self.lc.classes) if "flux" in self.config.rasters else set()

    @property
    def redline_year(self) -> int | None:
        red = self.config.redline
        return None if red is None or "redline" not in self.stages else (red.year or self.config.years[-1])

    def context(self) -> spec.RunContext:
        """What decides the run's outputs, for the output specification."""
        red = self.config.redline
        return spec.RunContext(
            years=tuple(self.config.years),
            intervals=tuple(self.intervals),
            layers=tuple(z.name for z in self.reported),
            stages=frozenset(self.stages),
            rasters=frozenset(self.config.rasters),
            stock=self.densities is not None,
            balance_years=tuple(sorted(set(self.config.years) | set(self.terms))),
            redline_year=self.redline_year,
            coverage=red is not None and red.zone_layer is not None,
            indicators=tuple(s.name for s in self.indicators),
            uncertainty=self.config.uncertainty is not None,
            valuation=self.config.valuation is not None,
            scenarios=tuple(self.scenarios),
            tiles=self.tiles,
        )

    @property
    def tiles(self) -> tuple[int, int] | None:
        """(tile rows, tile columns) of every raster of the run when they are tiled (``tiles:``), else None."""
        t = self.config.tiles
        return tile_layout(self.lc.grid.width, self.lc.grid.height, t.size_px, t.above_px)


def make_plan(config: Config, stages: list[str], workdir: Path) -> Plan:
    """Read and check every input of ``config``; the land cover stays lazy."""
    patch_rule = config.urban_split if isinstance(config.urban_split, PatchSplit) else None
    lc = build_landcover(config, workdir, defer_patch_split=patch_rule is not None)
    layers = [
        vectors.read_zone_layer(z.name, z.path, z.id, z.label, lc.grid, z.layer, z.coordinates == "gcj02")
        for z in config.zones
    ]
    carbon_layer = next((z for z in layers if z.name == config.carbon_layer), None)
    densities, rates = _carbon_tables(config, carbon_layer)
    if config.carbon.rates is None:
        warn_default_rates_abroad(lc.grid)
    red = config.redline if "redline" in stages else None
    red_inputs = None if red is None else redlines.read_inputs(red, layers, lc.grid)
    terms = _statistics_terms(config, carbon_layer)
    plan = Plan(config, stages, lc, layers, carbon_layer, densities, rates, terms, red_inputs, patch_rule)
    plan.zone_rasters = plan.zones_after(lc.valid)
    if "trends" in stages:
        plan.indicators = [open_series(n, s, lc.grid, config.dask.chunks) for n, s in config.indicators.items()]
    return plan


def _carbon_tables(config: Config, layer: ZoneLayer | None) -> tuple[carbon.Lookup | None, carbon.Lookup]:
    """The density table (if any) and the rate table (the config's, else the packaged national rates)."""
    densities = None
    if config.carbon.densities:
        densities = carbon.density_lookup(parameters.read_densities(config.carbon.densities), layer)
    else:
        log.warning("no carbon.densities in the config: stock is not computed")
    rates = carbon.rate_lookup(parameters.read_rates(config.carbon.rates or parameters.DEFAULT_RATES), layer)
    check_spread(config, None if densities is None else densities.table, rates.table)
    return densities, rates


def check_spread(config: Config, densities: ParameterTable | None, rates: ParameterTable | None) -> list[str]:
    """With ``uncertainty:``, the spread columns the draws use (one clear error when there are none)."""
    if config.uncertainty is None:
        return []
    found = uncertainty.spread_columns(densities) + uncertainty.spread_columns(rates)
    if not found:
        raise InputError(
            "`uncertainty:` needs spread columns, and neither parameter table has any: add c_above_sd, c_below_sd, "
            "c_soil_sd, c_dead_sd (or <pool>_low and <pool>_high) to the density table, or rate_sd (or rate_low "
            "and rate_high) to the rate table; or remove `uncertainty:`",
            config.carbon.densities or (rates.path if rates is not None else None),
        )
    return found


#: China's bounding box in lon/lat (west, south, east, north): where the packaged national rates apply.
CHINA_LONLAT = (73.0, 3.0, 136.0, 54.0)


def in_china(grid: Grid) -> bool | None:
    """Whether the grid's centre lies in China's bounding box (lon 73-136 E, lat 3-54 N); None if the grid's
    bounds cannot be brought to lon/lat."""
    from rasterio.warp import transform_bounds

    try:
        west, south, east, north = transform_bounds(grid.crs, "EPSG:4326", *grid.bounds, densify_pts=21)
    except Exception:  # an exotic or local CRS: nothing to say
        return None
    lon, lat = (west + east) / 2, (south + north) / 2
    x0, y0, x1, y1 = CHINA_LONLAT
    return x0 <= lon <= x1 and y0 <= lat <= y1


def warn_default_rates_abroad(grid: Grid) -> None:
    """The packaged rates are Chinese national averages: say so when the grid lies outside China."""
    if in_china(grid) is False:
        log.warning(
            "the grid lies outside China, but no carbon.rates table is given: the packaged default rates are "
            "Chinese national averages (seed 002, Table 2); give carbon.rates with rates for your region"
        )


def _statistics_terms(config: Config, layer: ZoneLayer | None) -> dict[int, pd.DataFrame]:
    """The statistics-based terms per year, indexed by the carbon layer's zone numbers ({} without statistics)."""
    if config.carbon.statistics is None:
        return {}
    if layer is None:  # the config refuses statistics without a zone layer
        raise ConfigError("carbon.statistics are per zone: add the zone layer they refer to under `zones`")
    coefficients = parameters.read_coefficients(config.carbon.coefficients)
    stats = parameters.read_statistics(config.carbon.statistics, coefficients)
    terms = statistics.terms(stats, coefficients)
    by_year = balance.terms_by_year(terms, layer, config.carbon.statistics)
    away = sorted(set(by_year) - set(config.years))
    if away:
        log.warning(
            "statistics years %s have no land-cover epoch: their balance uses the nearest epoch's land "
            "(flagged nearest_epoch in tables/balance_*.csv)",
            away,
        )
    return by_year
