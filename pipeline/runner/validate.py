"""``carbon-pipeline validate``: open every input, read headers and a sample of blocks, compute nothing."""

from __future__ import annotations

import tempfile
from pathlib import Path

import shapely

from pipeline.config import BoundaryConfig, Config, ExtentSplit
from pipeline.errors import InputError, UnknownCodesError
from pipeline.io import parameters, rasters, vectors
from pipeline.io.indicators import open_series
from pipeline.io.parameters import read_densities, read_rates
from pipeline.io.staging import check_writable
from pipeline.io.vectors import read_polygons
from pipeline.model import inputs
from pipeline.model.classes import RURAL, URBAN
from pipeline.model.grid import Grid
from pipeline.runner.plan import check_size, check_spread, measure_pixels
from pipeline.runner.studyarea import read_boundary
from pipeline.stages import balance, carbon, statistics, zonal


def validate(config: Config) -> list[str]:
    """Check every input named by ``config``; return report lines, raise on the first problem."""
    lines = [f"config: {config.name}, {len(config.epochs)} epochs {config.years}, scheme {config.scheme}"]
    scheme = parameters.load_scheme(config.scheme)
    with tempfile.TemporaryDirectory() as tmp:
        sources = rasters.open_sources(config.epochs, Path(tmp))
        grid = rasters.check_alignment(sources, config.align)
        check_size(grid, sources, config.dask.chunks, config.dask.max_pixels)
        scenarios = rasters.open_scenario_sources(config.scenarios, Path(tmp))
        if scenarios:
            rasters.check_alignment(scenarios, config.align, first=sources[0])
    crs = grid.crs.to_epsg() or grid.crs.to_string()[:40]
    areas = measure_pixels(grid, config, sources)
    lines.append(
        f"grid: {grid.width} x {grid.height} px, resolution {grid.res[0]:.6g} x {grid.res[1]:.6g}, CRS "
        f"{'EPSG:' + str(crs) if isinstance(crs, int) else crs}, {areas.total_m2() / 1e4:,.1f} ha in the grid "
        f"extent ({areas.method} pixel areas)"
    )
    known = set(scheme.codes.tolist())
    sampled: set[int] = set()
    for src in [*sources, *scenarios]:
        diffs = grid.differences(src.grid)
        unknown: dict[Path, dict[int, int]] = {}  # per tile: counts in its sampled blocks
        for path in src.files:
            for code, n in rasters.sample_codes(path).items():
                sampled.add(code)
                if code not in known:
                    unknown.setdefault(path, {})[code] = n
        note = f"; resampled onto the first epoch's grid ({'; '.join(diffs)})" if diffs else ""
        base = f" (from epoch {config.scenario_base})" if src.scenario else ""
        lines.append(
            f"{src.label}{base}: {len(src.files)} file(s), {src.dtype}, nodata {src.nodata}, "
            f"{src.grid.width} x {src.grid.height} px{note}"
        )
        if unknown:
            listing = "; ".join(
                f"{path.name}: " + ", ".join(f"{k} ({v} px)" for k, v in sorted(found.items()))
                for path, found in unknown.items()
            )
            if config.unknown_codes == "error":
                where = next(iter(unknown)) if len(unknown) == 1 else Path(src.files[0]).parent
                raise UnknownCodesError(
                    f"{src.label}: codes not in scheme '{scheme.name}' in the sampled blocks of {listing}. "
                    "Add them to a scheme CSV or set `unknown_codes: nodata`",
                    where,
                )
            lines.append(f"  codes not in the scheme (sampled blocks; will be nodata): {listing}")
    if isinstance(config.urban_split, ExtentSplit):
        gdf = read_polygons(config.urban_split.urban_extent, grid, config.urban_split.layer)
        lines.append(f"urban extent: {len(gdf)} polygons")
    if config.boundary is not None:
        lines.append(_boundary_line(config.boundary, grid))
    layers = []
    for z in config.zones:
        layers.append(vectors.read_zone_layer(z.name, z.path, z.id, z.label, grid, z.layer, z.coordinates == "gcj02"))
        shared = zonal.overlaps(layers[-1])
        overlap = f"; {len(shared)} pairs overlap, {shared.overlap_ha.sum():,.2f} ha shared" if len(shared) else ""
        lines.append(f"zones '{z.name}': {len(layers[-1].ids)} polygons ({z.path.name}){overlap}")
    carbon_layer = next((z for z in layers if z.name == config.carbon_layer), None)
    lines += _check_carbon_tables(config, scheme, sampled & known, carbon_layer)
    if config.carbon.statistics is not None and carbon_layer is not None:  # the config asks for a zone layer
        coefficients = parameters.read_coefficients(config.carbon.coefficients)
        stats = parameters.read_statistics(config.carbon.statistics, coefficients)
        by_year = balance.terms_by_year(statistics.terms(stats, coefficients), carbon_layer, config.carbon.statistics)
        away = sorted(set(by_year) - set(config.years))
        lines.append(
            f"carbon statistics: {len(stats)} rows for {stats.zone_id.nunique()} zones of '{carbon_layer.name}', "
            f"years {sorted(by_year)}" + (f" ({away} use the nearest epoch's land)" if away else "")
        )
    for name, series in config.indicators.items():
        opened = open_series(name, series, grid, config.dask.chunks)
        lines.append(
            f"indicator '{name}': years {opened.years}, value = stored x {series.scale:g} + {series.offset:g} "
            f"({series.unit}), summed in steps of {opened.precision:g}"
        )
    check_writable(config.output)
    lines.append(f"output: {config.output} (writable; a run replaces it as a whole)")
    lines.append("OK: every input opened; nothing was computed")
    return lines


def _check_carbon_tables(config: Config, scheme: inputs.Scheme, codes: set[int], layer) -> list[str]:
    """Density and rate tables open, hold numbers, and cover what the sampled blocks contain."""
    mapping = scheme.as_dict()
    classes = {mapping[c] for c in codes} - {0}
    if URBAN in classes and not isinstance(config.urban_split, str):
        classes.add(RURAL)  # the split turns some urban land into rural settlements
    reachable = set(scheme.targets.tolist()) - {0}
    lines = []
    densities = rates = None
    if config.carbon.densities is not None:
        table = densities = read_densities(config.carbon.densities)
        carbon.density_lookup(table, layer)  # zone ids must be ids of the layer
        present = classes if table.key == "class" else codes
        missing = table.missing(present)
        if missing:
            raise InputError(
                f"no carbon density for {table.key} {missing}, present in the rasters (sampled blocks); add rows",
                table.path,
            )
        lines.append(
            f"carbon densities: {len(table.frame)} rows keyed by {table.key}, t C/ha, covering every {table.key} "
            "in the sampled blocks"
        )
        if table.key == "class" and reachable - table.keys():
            lines.append(f"  note: no row for classes {sorted(reachable - table.keys())} (not in the sampled blocks)")
    if config.carbon.rates is not None:
        table = rates = read_rates(config.carbon.rates)
        carbon.rate_lookup(table, layer)
        lines.append(f"carbon rates: {len(table.frame)} rows keyed by {table.key}, t C/ha/yr (negative = uptake)")
    spread = check_spread(config, densities, rates)
    if config.uncertainty is not None:
        lines.append(
            f"uncertainty: {config.uncertainty.draws} draws (seed {config.uncertainty.seed}) of {', '.join(spread)}"
        )
    return lines


def _boundary_line(boundary: BoundaryConfig, grid: Grid) -> str:
    """The study area read and checked (polygons, overlapping the rasters), with its share of the grid extent."""
    gdf = read_boundary(boundary, grid)
    extent = shapely.box(*grid.bounds)
    share = shapely.intersection(shapely.union_all(gdf.geometry.values), extent).area / extent.area
    return (
        f"boundary: {len(gdf)} polygons ({boundary.path.name}), {share:.1%} of the grid extent inside; "
        "only pixels whose centre lies inside count"
    )
