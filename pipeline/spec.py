"""The output specification: every file a run can write, declared once with its meaning and unit.

In the spirit of InVEST's ``MODEL_SPEC["outputs"]``. The writers take their file names, band
descriptions and units from here; maps and the report find the files through here (never by globbing
the output folder); the documentation's outputs reference is generated from here; and a test checks
that every file a run writes is declared and every declared file a run should write exists.

``COLUMNS`` is the glossary of table columns: each name means one thing, with one unit, in every
table it appears in.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field, replace

#: Placeholders of the path patterns and what they stand for.
FIELDS = {
    "year": "an epoch (or statistics year, in balance maps)",
    "y0": "first year of an interval",
    "y1": "second year of an interval",
    "layer": "a zone layer: `region` (the whole region, one zone) or a name under `zones`",
    "indicator": "an indicator series: a name under `indicators` (e.g. `ndvi`)",
    "scenario": "a scenario name under `scenarios` (a lowercase identifier); the interval is the base epoch "
    "(y0) -> the scenario year (y1)",
    "row": "a tiled raster's tile row, from 000 at the top (three digits or more)",
    "col": "a tiled raster's tile column, from 000 at the left (three digits or more)",
}
_FIELD_REGEX = {
    "year": r"\d{4}",
    "y0": r"\d{4}",
    "y1": r"\d{4}",
    "layer": r"[A-Za-z][A-Za-z0-9_]*",
    "indicator": r"[A-Za-z][A-Za-z0-9_]*",
    "scenario": r"[a-z][a-z0-9_]*",
    "row": r"\d{3,}",
    "col": r"\d{3,}",
}


@dataclass(frozen=True)
class RunContext:
    """What decides which outputs a run writes: its epochs, intervals, zone layers, stages and settings."""

    years: tuple[int, ...]
    intervals: tuple[tuple[int, int], ...]
    #: Zone layers reported (with the zonal stage), without ``region``.
    layers: tuple[str, ...]
    stages: frozenset[str]
    rasters: frozenset[str]
    #: Carbon densities given (stock is computed).
    stock: bool
    #: Epochs and statistics years: the years of the balance tables.
    balance_years: tuple[int, ...]
    redline_year: int | None = None
    #: ``redline.zone_layer`` given (coverage and gap fill).
    coverage: bool = False
    #: Names of the indicator series under ``indicators`` (with the trends stage).
    indicators: tuple[str, ...] = ()
    #: ``uncertainty:`` given (percentiles of the carbon figures).
    uncertainty: bool = False
    #: ``valuation:`` given (net present value of the stock change).
    valuation: bool = False
    #: Scenarios (with the transitions stage): (base epoch, scenario year, name), years ascending, names in
    #: the config's order.
    scenarios: tuple[tuple[int, int, str], ...] = ()
    #: (tile rows, tile columns) when the run's rasters are written as tiles with a VRT (``tiles:``); None:
    #: one COG per raster.
    tiles: tuple[int, int] | None = None

    @property
    def all_layers(self) -> tuple[str, ...]:
        return ("region", *self.layers)

    @property
    def consecutive(self) -> tuple[tuple[int, int], ...]:
        """The intervals between consecutive epochs (the Sankey and intensity analysis use these)."""
        return tuple(p for p in self.intervals if not any(p[0] < y < p[1] for y in self.years))


def _none(_: RunContext) -> list[dict]:
    return []


@dataclass(frozen=True)
class Output:
    """One kind of output file. ``pattern`` uses the placeholders of ``FIELDS``."""

    key: str
    pattern: str
    kind: str  # raster, table, vector, map, report, manifest
    description: str
    unit: str
    stage: str
    when: str
    dtype: str | None = None
    nodata: str | None = None
    #: Class-like rasters: the colour table and QGIS style (``<name>.qml`` beside the raster).
    style: str | None = None
    #: Overview resampling of a raster (GDAL's name).
    overviews: str | None = None
    #: Files written beside this one with the same stem: a Parquet copy of a table, a QGIS style.
    sidecars: tuple[str, ...] = ()
    #: Table columns, in order (names of ``COLUMNS``; ``{layer}``/``{year}`` stand for any).
    columns: tuple[str, ...] = ()
    #: The placeholder values of every file of this kind a run with this context writes.
    applies: Callable[[RunContext], list[dict]] = field(default=_none, compare=False, repr=False)

    def expected(self, context: RunContext) -> list[str]:
        """Every file of this kind (sidecars included) a run with ``context`` writes."""
        out = []
        for fields in self.applies(context):
            main = self.path(**fields)
            if self.kind == "raster" and context.tiles is not None:
                rows, cols = context.tiles
                tiles = [self.tile_path(i, j, **fields) for i in range(rows) for j in range(cols)]
                out += [self.mosaic_path(**fields), *tiles]
            else:
                out.append(main)
            out += [re.sub(r"\.\w+$", suffix, main) for suffix in self.sidecars]
        return out

    def path(self, **fields: object) -> str:
        """The file's path relative to the output folder (a raster's single COG)."""
        return self.pattern.format(**fields)

    @property
    def mosaic_pattern(self) -> str:
        """A tiled raster's VRT, which opens as one layer: the COG's name with ``.vrt``."""
        return re.sub(r"\.tif$", ".vrt", self.pattern)

    @property
    def tile_pattern(self) -> str:
        """A tiled raster's tiles: ``rasters/<name>/<name>_r<row>_c<col>.tif``, the raster's name in each so
        that a tile copied elsewhere still says what it is."""
        folder, name = self.pattern.removesuffix(".tif").rsplit("/", 1)
        return f"{folder}/{name}/{name}_r{{row}}_c{{col}}.tif"

    def mosaic_path(self, **fields: object) -> str:
        return self.mosaic_pattern.format(**fields)

    def tile_path(self, row: int, col: int, **fields: object) -> str:
        return self.tile_pattern.format(row=f"{row:03d}", col=f"{col:03d}", **fields)

    def raster_path(self, context: RunContext, **fields: object) -> str:
        """The file a GIS opens for this raster in a run with ``context``: the COG, or the tiles' VRT."""
        return self.mosaic_path(**fields) if context.tiles is not None else self.path(**fields)

    @property
    def placeholders(self) -> list[str]:
        return [name for _, name, _, _ in string.Formatter().parse(self.pattern) if name]

    def match(self, relative: str) -> dict[str, str] | None:
        """The placeholder values if ``relative`` is this output (one of its sidecars, or for a raster its VRT
        or one of its tiles), else None."""
        patterns = [self.pattern, *(re.sub(r"\.\w+$", suffix, self.pattern) for suffix in self.sidecars)]
        if self.kind == "raster":
            patterns += [self.mosaic_pattern, self.tile_pattern]
        for pattern in patterns:
            found = re.fullmatch(_regex(pattern), relative)
            if found:
                return found.groupdict()
        return None

    @property
    def band(self) -> tuple[str, str]:
        """(description, unit) written into a raster's band, as GIS software shows them."""
        return self.description.split(". ")[0], self.unit


def _regex(pattern: str) -> str:
    """A path pattern as a regular expression: a placeholder's first occurrence captures its value, a
    repeated one (a tile's folder and name) must be the same."""
    regex, seen = re.escape(pattern), set()
    for _, name, _, _ in string.Formatter().parse(pattern):
        if not name:
            continue
        escaped = re.escape("{" + name + "}")
        regex = regex.replace(escaped, f"(?P={name})" if name in seen else f"(?P<{name}>{_FIELD_REGEX[name]})", 1)
        seen.add(name)
    return regex


#: The scenarios table's stock change per pathway: pathway code -> (column, pathway name).
PATHWAY_STOCK_COLUMNS: dict[int, tuple[str, str]] = {
    0: ("stock_change_unchanged_tC", "unchanged"),
    1: ("stock_change_direct_tC", "direct: urban expansion"),
    2: ("stock_change_indirect_tC", "indirect: cropland displacement"),
    3: ("stock_change_potential_tC", "potential: rural shrinkage"),
    4: ("stock_change_rural_expansion_tC", "rural expansion"),
    5: ("stock_change_restoration_tC", "ecological restoration"),
    6: ("stock_change_other_tC", "other change"),
}

#: Column glossary: name -> (unit, meaning). ``{year}`` and ``{layer}`` stand for any value.
COLUMNS: dict[str, tuple[str, str]] = {
    "zone_id": ("-", "zone id from the layer's `id` field (`1` for the region)"),
    "zone_name": ("-", "zone label from the layer's `label` field (the config's `name` for the region)"),
    "year": ("year", "epoch, or statistics year in balance tables"),
    "y0": ("year", "first year of the interval"),
    "y1": ("year", "second year of the interval"),
    "years": ("years", "length of the interval, y1 - y0"),
    "class": ("class code", "target land class 1-8"),
    "class_name": ("-", "name of the target land class"),
    "from_class": ("class code", "class at y0"),
    "from_class_name": ("-", "name of the class at y0"),
    "to_class": ("class code", "class at y1"),
    "to_class_name": ("-", "name of the class at y1"),
    "other_class": ("class code", "the other class of a transition (intensity analysis)"),
    "other_class_name": ("-", "name of the other class"),
    "pathway": ("pathway code", "pathway of change 0-6"),
    "pathway_name": ("-", "name of the pathway"),
    "pixels": ("pixels", "number of pixels"),
    "files": ("files", "raster files (tiles) of the epoch"),
    "source_dtype": ("-", "data type of the epoch's rasters"),
    "source_nodata": ("source code", "nodata value of the epoch's rasters"),
    "valid_pixels": ("pixels", "pixels valid in every epoch (the common mask)"),
    "valid_area_ha": ("ha", "area valid in every epoch"),
    "nodata_pixels": ("pixels", "pixels that are nodata in this epoch itself"),
    "nodata_area_ha": ("ha", "area that is nodata in this epoch itself"),
    "unknown_code_pixels": ("pixels", "pixels whose code the scheme does not map"),
    "unknown_code_area_ha": ("ha", "area whose code the scheme does not map"),
    "excluded_by_other_epochs_pixels": ("pixels", "pixels valid here but nodata in another epoch"),
    "excluded_by_other_epochs_area_ha": ("ha", "area valid here but nodata in another epoch"),
    "outside_boundary_pixels": (
        "pixels",
        "pixels whose centre lies outside the study area (`boundary:`); not counted anywhere; 0 without a boundary",
    ),
    "outside_boundary_area_ha": ("ha", "area outside the study area (`boundary:`); 0 without a boundary"),
    "unknown_codes": ("code:pixels", "unknown codes with their pixel counts"),
    "area_ha": ("ha", "area, on the ellipsoid (in the projection's plane with `area: planar`)"),
    "stock_tC": ("t C", "carbon stock, c_above + c_below + c_soil + c_dead times area"),
    "sink_tC_yr": (
        "t C/yr",
        "annual uptake as a positive number, summed over the counted land (see counted_area_ha); NaN where "
        "none is counted",
    ),
    "source_tC_yr": (
        "t C/yr",
        "annual emission, summed over the counted land (see counted_area_ha); NaN where none is counted",
    ),
    "net_emission_tC_yr": (
        "t C/yr",
        "source - sink; positive: a net source. Empty (not a partial sum) where more than "
        "carbon.max_uncounted_share of the land has no known flux",
    ),
    "counted_area_ha": ("ha", "land whose annual flux is counted (a rate or statistics)"),
    "uncounted_area_ha": ("ha", "land with neither a rate nor statistics, left out of sink and source"),
    "counted_share": ("fraction 0-1", "counted_area_ha / area_ha (empty where the zone has no land)"),
    "areas_from_epoch": ("year", "the epoch whose land the row uses"),
    "nearest_epoch": ("true/false", "a statistics year without an epoch: the nearest epoch's land stands in"),
    "statistics": ("true/false", "county statistics replace per-hectare terms in this zone and year"),
    "source_agricultural_tC_yr": ("t C/yr", "agricultural source E_f from the statistics"),
    "source_construction_tC_yr": ("t C/yr", "construction (energy) source E_C from the statistics"),
    "sink_cropland_tC_yr": ("t C/yr", "cropland sink C_f from crop yields in the statistics"),
    "stock_change_tC": ("t C", "stock change, (D_to - D_from) x area; negative: carbon released"),
    "stock_lost_tC": ("t C", "stock lost by the pixels that lost stock (positive)"),
    "stock_gained_tC": ("t C", "stock gained by the pixels that gained stock"),
    "share_of_stock_lost": ("fraction 0-1", "the pathway's share of the zone's stock lost"),
    "share_of_stock_gained": ("fraction 0-1", "the pathway's share of the zone's stock gained"),
    "flux_change_tC_yr": ("t C/yr", "change of annual net emission, (F_to - F_from) x area"),
    "flux_uncounted_area_ha": ("ha", "land whose flux is not counted in one of the two epochs"),
    "transitions": ("-", "the from -> to pairs inside the pathway with their areas, largest first"),
    "changed_area_ha": ("ha", "area whose class changed"),
    "displaced_to_cropland_ha": ("ha", "forest, grassland, water and unused land turned into cropland"),
    "cropland_to_construction_ha": ("ha", "cropland turned into urban, rural or other construction"),
    "displacement_ratio": ("ratio", "displaced_to_cropland_ha / cropland_to_construction_ha"),
    "cropland_y0_ha": ("ha", "cropland at y0"),
    "cropland_y1_ha": ("ha", "cropland at y1"),
    "new_cropland_ha": ("ha", "land that became cropland"),
    "new_cropland_share": ("fraction", "new_cropland_ha / cropland_y0_ha"),
    "new_cropland_check": ("pass/fail/n/a", "new cropland at least 5 % of the cropland at y0"),
    "construction_y0_ha": ("ha", "construction land (5+6+7) at y0"),
    "construction_y1_ha": ("ha", "construction land (5+6+7) at y1"),
    "construction_change_ha": ("ha", "construction land gained minus lost"),
    "construction_check": ("pass/fail", "construction land not increased"),
    "changed_pixels": ("pixels", "pixels valid in both epochs whose class changed"),
    "changed_with_earlier_class_nearby_pixels": (
        "pixels",
        "changed pixels whose new class occurs among their 8 neighbours at y0: change a shift of up to one "
        "pixel between the epochs can explain",
    ),
    "changed_amid_uniform_land_pixels": (
        "pixels",
        "changed pixels whose 8 neighbours at y0 all hold their class at y0 (nodata aside): change no shift "
        "of up to one pixel can make",
    ),
    "neighbour_share": (
        "fraction 0-1",
        "changed_with_earlier_class_nearby_pixels / changed_pixels; near 1 for misregistered epochs",
    ),
    "registration_check": (
        "suspect/pass/n/a",
        "suspect: neighbour_share >= 0.9, the change looks like misregistration (n/a under 100 changed pixels)",
    ),
    "resampling_changed_pixels": (
        "pixels (expected, 0.1 px)",
        "pixels whose class resampling alone is expected to change between the epochs (`align: nearest`: the "
        "land a resampled pixel shows is up to half a pixel off its centre; boundaries taken as uniform "
        "within pixels); 0 when neither epoch was resampled, or both from one grid",
    ),
    "resampling_changed_share": (
        "fraction 0-1",
        "resampling_changed_pixels / valid pixels of the zone; compare with changed_pixels / valid pixels",
    ),
    "annual_change_pct": ("% per year", "changed area over the extent per year (S_t)"),
    "uniform_pct": ("% per year", "the uniform intensity the observed one is compared with"),
    "speed": ("-", "fast, slow or uniform"),
    "area_y0_ha": ("ha", "area of the class at y0"),
    "area_y1_ha": ("ha", "area of the class at y1"),
    "gain_ha": ("ha", "gross gain of the class"),
    "loss_ha": ("ha", "gross loss of the class"),
    "gain_intensity_pct": ("% per year", "gain over the class's size at y1 per year (G_tj)"),
    "loss_intensity_pct": ("% per year", "loss over the class's size at y0 per year (L_ti)"),
    "gain": ("-", "active or dormant"),
    "loss": ("-", "active or dormant"),
    "kind": ("-", "gain or loss"),
    "intensity_pct": ("% per year", "transition intensity (R_tin or Q_tmj)"),
    "behaviour": ("-", "targets or avoids"),
    "indicator": ("-", "name of the trend indicator"),
    "value": ("see unit", "value of the indicator"),
    "unit": ("-", "unit of value"),
    "note": ("-", "why a value is missing, or the model's fit"),
    "polygon_area_ha": ("ha", "geodesic area of the zone's polygons"),
    "inside_rasters_ha": ("ha", "part of the polygons inside the rasters' extent, measured as pixels are"),
    "burned_area_ha": ("ha", "area of the pixels whose centre lies in the zone"),
    "boundary_difference_ha": ("ha", "burned_area_ha - inside_rasters_ha (negative: lost at the boundary)"),
    "overlap_ha": ("ha", "area shared with other zones of the layer"),
    "patch_id": ("-", "candidate id, = rank"),
    "rank": ("-", "1 = the candidate with the most stock"),
    "locked_in_ha": ("ha", "part already in protected areas"),
    "density_tC_ha": ("t C/ha", "mean stock density"),
    "first_row": ("pixel row", "row of the patch's first pixel"),
    "first_col": ("pixel column", "column of the patch's first pixel"),
    "{layer}_id": ("-", "id of the zone of that layer holding the largest share"),
    "{layer}_name": ("-", "label of that zone"),
    "{layer}_share": ("fraction 0-1", "share of the candidate in that zone"),
    "zone_area_ha": ("ha", "valid land of the zone"),
    "candidate_ha": ("ha", "land in candidates"),
    "covered_ha": ("ha", "land in candidates or protected areas, counted once"),
    "share": ("fraction 0-1", "covered_ha / zone_area_ha"),
    "key_zone": ("true/false", "a national key ecological function zone"),
    "target_share": ("fraction 0-1", "share of the zone the red lines should cover"),
    "shortfall_ha": ("ha", "land missing to reach the target"),
    "met": ("true/false", "target reached (empty without a target)"),
    "threshold_density_tC_ha": ("t C/ha", "lowest stock density the gap fill takes"),
    "added_ha": ("ha", "land the gap fill adds"),
    "added_stock_tC": ("t C", "stock of that land"),
    "covered_after_ha": ("ha", "covered land after the gap fill"),
    "share_after": ("fraction 0-1", "share covered after the gap fill"),
    "met_after": ("true/false", "target reached after the gap fill"),
    "remaining_shortfall_ha": ("ha", "land still missing after the gap fill"),
    "series": ("-", "name of the indicator series under `indicators` (e.g. ndvi)"),
    "series_unit": ("-", "unit of the series' values (`indicators.<name>.unit`)"),
    "indicator_area_ha": ("ha", "valid land with a value of the series in every year: the area the means cover"),
    "indicator_missing_ha": ("ha", "valid land lacking a value of the series in at least one year (left out)"),
    "mean_{year}": ("series unit", "area-weighted mean of the series in that year over indicator_area_ha"),
    "sen_slope_per_yr": ("series unit/yr", "Theil-Sen slope of the zone's yearly means"),
    "sen_slope_low_per_yr": ("series unit/yr", "lower end of the slope's 95 % confidence interval"),
    "sen_slope_high_per_yr": ("series unit/yr", "upper end of the slope's 95 % confidence interval"),
    "mk_tau": ("-", "Kendall's tau of the zone's yearly means with the year (empty for a constant series)"),
    "mk_p": ("p-value 0-1", "two-sided Mann-Kendall p of the zone's yearly means (normal approximation)"),
    "greening_ha": ("ha", "land whose pixel series rises significantly (Mann-Kendall p < alpha, S > 0)"),
    "browning_ha": ("ha", "land whose pixel series falls significantly (Mann-Kendall p < alpha, S < 0)"),
    "greening_share": ("fraction 0-1", "greening_ha / indicator_area_ha"),
    "browning_share": ("fraction 0-1", "browning_ha / indicator_area_ha"),
    "net_greening_share": ("fraction -1-1", "(greening_ha - browning_ha) / indicator_area_ha"),
    "valuation_constant": (
        "currency per t C",
        "InVEST's valuation constant of the interval: price_per_tC / years x sum over t = 0 .. years - 1 of "
        "1 / ((1 + discount_rate_pct/100)^t (1 + price_change_pct/100)^t)",
    ),
    "npv": (
        "currency",
        "net present value of the stock change, stock_change_tC x valuation_constant, in the currency of "
        "valuation.price_per_tC (negative: carbon released, a loss of value)",
    ),
    "scenario": ("-", "scenario name (a key under `scenarios:` in the config)"),
    "scenario_nodata_pixels": (
        "pixels",
        "pixels valid in every epoch but nodata (or an unknown code) in the scenario map: left out of that "
        "scenario's figures, base and scenario alike",
    ),
    "scenario_nodata_area_ha": ("ha", "area of scenario_nodata_pixels"),
    "stock_y0_tC": ("t C", "stock of the base epoch (y0) over the same land as the scenario's figures"),
    **{
        column: ("t C", f"stock change through pathway {code} ({name}) against the base epoch")
        for code, (column, name) in PATHWAY_STOCK_COLUMNS.items()
    },
    "stock_difference_tC": (
        "t C",
        "stock_tC minus that of the year's first scenario (the first under the year in the config) in the zone",
    ),
    "net_emission_difference_tC_yr": (
        "t C/yr",
        "net_emission_tC_yr minus that of the year's first scenario in the zone (empty where either is not given)",
    ),
    "stock_tC_{year}": ("t C", "stock in that year"),
    "sink_tC_yr_{year}": ("t C/yr", "sink in that year"),
    "source_tC_yr_{year}": ("t C/yr", "source in that year"),
    "net_emission_tC_yr_{year}": ("t C/yr", "net emission in that year (empty where not counted)"),
    "counted_share_{year}": ("fraction 0-1", "share of the land whose flux is counted in that year"),
}

# Percentiles over the uncertainty draws (``uncertainty:``), one per figure and percentile.
for _figure, _unit in (
    ("stock_tC", "t C"),
    ("sink_tC_yr", "t C/yr"),
    ("source_tC_yr", "t C/yr"),
    ("net_emission_tC_yr", "t C/yr"),
    ("stock_change_tC", "t C"),
):
    _note = " (empty where the net emission is not given)" if _figure == "net_emission_tC_yr" else ""
    for _suffix, _what in (("p05", "5th percentile"), ("p50", "median"), ("p95", "95th percentile")):
        COLUMNS[f"{_figure}_{_suffix}"] = (_unit, f"{_what} over the uncertainty draws of {_figure}{_note}")


def column_unit(name: str) -> tuple[str, str] | None:
    """(unit, meaning) of a table column, including the t CO2 copies (``*_tCO2*`` = t C x 44/12) and
    the per-layer and per-year columns; None if the column is not declared."""
    if "_tCO2" in name:
        found = column_unit(name.replace("_tCO2", "_tC"))
        return None if found is None else (found[0].replace("t C", "t CO2"), found[1] + ", in CO2 (x 44/12)")
    if name in COLUMNS:
        return COLUMNS[name]
    for pattern, meaning in COLUMNS.items():
        if "{" in pattern:
            regex = re.escape(pattern).replace(r"\{layer\}", "[A-Za-z][A-Za-z0-9_]*").replace(r"\{year\}", r"\d{4}")
            if re.fullmatch(regex, name):
                return meaning
    return None


_CLASS_CODES = "1 cropland ... 8 unused, 0 nodata"
_TABLE = (".parquet",)
#: Columns shared by two outputs: a zone layer's areas (zones_<layer>.csv and <layer>.gpkg) and the gap fill
#: (redline/gap_fill.gpkg, and after the coverage in redline/coverage.csv).
_ZONE_AREAS = (
    "zone_id",
    "zone_name",
    "polygon_area_ha",
    "inside_rasters_ha",
    "burned_area_ha",
    "valid_area_ha",
    "boundary_difference_ha",
    "overlap_ha",
)
_GAP_FILL = (
    "zone_id",
    "zone_name",
    "shortfall_ha",
    "threshold_density_tC_ha",
    "added_ha",
    "added_stock_tC",
    "covered_after_ha",
    "share_after",
    "met_after",
    "remaining_shortfall_ha",
)

OUTPUTS: tuple[Output, ...] = (
    Output(
        "manifest",
        "manifest.json",
        "manifest",
        "Inputs with SHA-256, the resolved config, grid, scheme, versions, stages with timings, warnings, and "
        "every output with its size and SHA-256. Written last.",
        "-",
        "report",
        "always",
    ),
    Output(
        "report",
        "report.html",
        "report",
        "One self-contained page: the region's balance, maps, balances by zone, pathways, checks, red lines, "
        "trends, parameter tables with their sources, warnings and the manifest.",
        "-",
        "report",
        "with the report stage",
    ),
    # ---- rasters: Cloud-Optimised GeoTIFFs on the first epoch's grid
    Output(
        "landcover",
        "rasters/landcover_{year}.tif",
        "raster",
        "land class, target codes 1-8 (0 = nodata). On the common grid and valid mask; colour table, class "
        "names and a QGIS style.",
        "class code",
        "reclassify",
        "every epoch; `rasters` has landcover",
        dtype="uint8",
        nodata="0",
        style="landcover",
        overviews="MODE",
        sidecars=(".qml",),
    ),
    Output(
        "stock",
        "rasters/stock_{year}.tif",
        "raster",
        "carbon stock density c_above + c_below + c_soil + c_dead",
        "t C/ha",
        "carbon",
        "every epoch; carbon.densities given; `rasters` has stock",
        dtype="float32",
        nodata="NaN",
        overviews="AVERAGE",
    ),
    Output(
        "flux",
        "rasters/flux_{year}.tif",
        "raster",
        "annual carbon rate (+ emission, - uptake). NaN where the class has neither a rate nor statistics; "
        "where a zone has statistics for the year, its cropland and construction pixels carry the zone's "
        "total over their area.",
        "t C/ha/yr",
        "carbon",
        "every epoch; `rasters` has flux",
        dtype="float32",
        nodata="NaN",
        overviews="AVERAGE",
    ),
    Output(
        "transition",
        "rasters/transition_{y0}_{y1}.tif",
        "raster",
        "land-class transition, from class x 10 + to class (0 = nodata). A change in the colour of the class "
        "it became, persistence grey; a QGIS style names each pair.",
        "transition code",
        "transitions",
        "every interval; `rasters` has transition",
        dtype="uint8",
        nodata="0",
        style="transition",
        overviews="MODE",
        sidecars=(".qml",),
    ),
    Output(
        "pathway",
        "rasters/pathway_{y0}_{y1}.tif",
        "raster",
        "pathway of change, codes 0-6 (255 = nodata). Colour table and QGIS style.",
        "pathway code",
        "transitions",
        "every interval; `rasters` has pathway",
        dtype="uint8",
        nodata="255",
        style="pathway",
        overviews="MODE",
        sidecars=(".qml",),
    ),
    Output(
        "stock_change",
        "rasters/stock_change_{y0}_{y1}.tif",
        "raster",
        "stock change, stock-difference method D_to - D_from. A real change of -1 stays -1 (unlike "
        "InVEST's -1 nodata).",
        "t C/ha",
        "transitions",
        "every interval; carbon.densities given; `rasters` has stock_change",
        dtype="float32",
        nodata="NaN",
        overviews="AVERAGE",
    ),
    Output(
        "flux_change",
        "rasters/flux_change_{y0}_{y1}.tif",
        "raster",
        "change of annual carbon F_to - F_from (+ more emission or less uptake). NaN where either year's flux "
        "is not counted.",
        "t C/ha/yr",
        "transitions",
        "every interval; `rasters` has flux_change",
        dtype="float32",
        nodata="NaN",
        overviews="AVERAGE",
    ),
    Output(
        "npv",
        "rasters/npv_{y0}_{y1}.tif",
        "raster",
        "net present value of the stock change, stock change x the interval's valuation constant (InVEST's "
        "valuation). In the currency of valuation.price_per_tC.",
        "currency/ha",
        "transitions",
        "every interval; carbon.densities and `valuation:` given; `rasters` has npv",
        dtype="float32",
        nodata="NaN",
        overviews="AVERAGE",
    ),
    Output(
        "gi_star",
        "rasters/gi_star_{year}.tif",
        "raster",
        "Getis-Ord Gi* z-score of the red-line carbon value (stock or sink density)",
        "z-score",
        "redline",
        "the red-line year, with `redline:`",
        dtype="float32",
        nodata="NaN",
        overviews="AVERAGE",
    ),
    Output(
        "indicator_slope",
        "rasters/{indicator}_sen_slope.tif",
        "raster",
        "Sen slope of the indicator series per pixel over its years. NaN outside the valid land and where a "
        "year has no value.",
        "series unit/yr",
        "trends",
        "every series under `indicators`, with the trends stage",
        dtype="float32",
        nodata="NaN",
        overviews="AVERAGE",
    ),
    Output(
        "indicator_p",
        "rasters/{indicator}_mk_p.tif",
        "raster",
        "Mann-Kendall two-sided p-value of the indicator series per pixel (normal approximation, ties "
        "corrected); below `alpha` the trend is significant. NaN where the slope is.",
        "p-value 0-1",
        "trends",
        "every series under `indicators`, with the trends stage",
        dtype="float32",
        nodata="NaN",
        overviews="AVERAGE",
    ),
    # ---- tables: CSV (UTF-8 with BOM) with a Parquet copy
    Output(
        "epochs",
        "tables/epochs.csv",
        "table",
        "Per epoch: valid pixels and area, the epoch's own nodata, unknown codes, pixels excluded because "
        "another epoch is nodata there, and pixels outside the study area (`boundary:`).",
        "pixels, ha",
        "ingest",
        "always",
        sidecars=_TABLE,
        columns=(
            "year",
            "files",
            "source_dtype",
            "source_nodata",
            "valid_pixels",
            "valid_area_ha",
            "nodata_pixels",
            "nodata_area_ha",
            "unknown_code_pixels",
            "unknown_code_area_ha",
            "excluded_by_other_epochs_pixels",
            "excluded_by_other_epochs_area_ha",
            "outside_boundary_pixels",
            "outside_boundary_area_ha",
            "unknown_codes",
        ),
    ),
    Output(
        "classes",
        "tables/classes_{layer}.csv",
        "table",
        "Per zone, epoch and class: area, stock, sink and source over the common valid mask.",
        "pixels, ha, t C, t C/yr",
        "zonal",
        "the region always; each zone layer with the zonal stage",
        sidecars=_TABLE,
        columns=(
            "zone_id",
            "zone_name",
            "year",
            "class",
            "class_name",
            "pixels",
            "area_ha",
            "stock_tC",
            "sink_tC_yr",
            "source_tC_yr",
            "uncounted_area_ha",
        ),
    ),
    Output(
        "balance",
        "tables/balance_{layer}.csv",
        "table",
        "Per zone and year (every epoch and statistics year): stock, sink, source and net emission, with the "
        "area whose flux is counted and not; on the statistics' layer also the three statistical terms. Net "
        "emission is empty where more than carbon.max_uncounted_share of the land has no rate or statistics.",
        "ha, t C, t C/yr",
        "zonal",
        "the region always; each zone layer with the zonal stage",
        sidecars=_TABLE,
        columns=(
            "zone_id",
            "zone_name",
            "year",
            "areas_from_epoch",
            "nearest_epoch",
            "statistics",
            "area_ha",
            "counted_area_ha",
            "uncounted_area_ha",
            "counted_share",
            "stock_tC",
            "sink_tC_yr",
            "source_tC_yr",
            "net_emission_tC_yr",
        ),
    ),
    Output(
        "uncertainty",
        "tables/uncertainty_{layer}.csv",
        "table",
        "Per zone and year of the balance table: the 5th, 50th and 95th percentiles of stock, sink, source and net "
        "emission over the draws of the parameter tables (normal truncated at 0 from `_sd` columns, triangular "
        "from `_low`/`_high`; see the methods). Net emission is empty where the balance does not give it.",
        "t C, t C/yr",
        "zonal",
        "the region and (with zonal) each zone layer, with `uncertainty:`",
        sidecars=_TABLE,
        columns=(
            "zone_id",
            "zone_name",
            "year",
            "stock_tC_p05",
            "stock_tC_p50",
            "stock_tC_p95",
            "sink_tC_yr_p05",
            "sink_tC_yr_p50",
            "sink_tC_yr_p95",
            "source_tC_yr_p05",
            "source_tC_yr_p50",
            "source_tC_yr_p95",
            "net_emission_tC_yr_p05",
            "net_emission_tC_yr_p50",
            "net_emission_tC_yr_p95",
        ),
    ),
    Output(
        "stock_change_uncertainty",
        "tables/stock_change_uncertainty_{layer}.csv",
        "table",
        "Per zone, interval and pathway (all seven): the 5th, 50th and 95th percentiles of the stock change over the "
        "draws of the density table.",
        "t C",
        "transitions",
        "the region and (with zonal) each zone layer, with `uncertainty:` and the transitions stage",
        sidecars=_TABLE,
        columns=(
            "zone_id",
            "zone_name",
            "y0",
            "y1",
            "pathway",
            "pathway_name",
            "stock_change_tC_p05",
            "stock_change_tC_p50",
            "stock_change_tC_p95",
        ),
    ),
    Output(
        "valuation",
        "tables/valuation_{layer}.csv",
        "table",
        "Per zone and interval: stock change, InVEST's valuation constant of the interval and the net present value "
        "of the stock change (currency of valuation.price_per_tC).",
        "t C, currency per t C, currency",
        "transitions",
        "the region and (with zonal) each zone layer, with `valuation:` and the transitions stage",
        sidecars=_TABLE,
        columns=("zone_id", "zone_name", "y0", "y1", "years", "stock_change_tC", "valuation_constant", "npv"),
    ),
    Output(
        "trends",
        "tables/trends_{layer}.csv",
        "table",
        "Per zone, long form: Gibbs-Martin diversity, dynamic degree, grey relational grade and a GM(1,1) "
        "forecast of net emission with C and P.",
        "as in `unit`",
        "trends",
        "the region and (with zonal) each zone layer, with the trends stage",
        sidecars=_TABLE,
        columns=("zone_id", "zone_name", "indicator", "class", "class_name", "y0", "y1", "value", "unit", "note"),
    ),
    Output(
        "indicators",
        "tables/indicators_{layer}.csv",
        "table",
        "Per zone and indicator series: the valid land with values every year, the area-weighted mean of every "
        "year, the Theil-Sen slope of the yearly means with its 95 % interval and the Mann-Kendall test, and the "
        "land greening and browning significantly pixel by pixel.",
        "ha, series unit, series unit/yr, fraction",
        "trends",
        "the region and (with zonal) each zone layer, with `indicators:` and the trends stage",
        sidecars=_TABLE,
        columns=(
            "zone_id",
            "zone_name",
            "series",
            "series_unit",
            "y0",
            "y1",
            "area_ha",
            "indicator_area_ha",
            "indicator_missing_ha",
            "mean_{year}",
            "sen_slope_per_yr",
            "sen_slope_low_per_yr",
            "sen_slope_high_per_yr",
            "mk_tau",
            "mk_p",
            "greening_ha",
            "browning_ha",
            "greening_share",
            "browning_share",
            "net_greening_share",
        ),
    ),
    Output(
        "zones",
        "tables/zones_{layer}.csv",
        "table",
        "Per zone: geodesic polygon area, the part inside the rasters, burned and valid area, boundary loss and "
        "overlaps.",
        "ha",
        "zonal",
        "each zone layer, with the zonal stage",
        sidecars=_TABLE,
        columns=_ZONE_AREAS,
    ),
    Output(
        "transitions",
        "tables/transitions_{layer}_{y0}_{y1}.csv",
        "table",
        "Transition matrix in long form per zone (pairs present), with stock and flux change.",
        "pixels, ha, t C, t C/yr",
        "transitions",
        "every interval and layer, with the transitions stage",
        sidecars=_TABLE,
        columns=(
            "zone_id",
            "zone_name",
            "from_class",
            "from_class_name",
            "to_class",
            "to_class_name",
            "pathway",
            "pixels",
            "area_ha",
            "stock_change_tC",
            "flux_change_tC_yr",
            "flux_uncounted_area_ha",
        ),
    ),
    Output(
        "pathways",
        "tables/pathways_{layer}_{y0}_{y1}.csv",
        "table",
        "Per zone and pathway (all seven): area, stock change and its lost and gained sides with their "
        "shares, flux change, and the from -> to pairs inside the pathway.",
        "ha, t C, t C/yr, fraction",
        "transitions",
        "every interval and layer, with the transitions stage",
        sidecars=_TABLE,
        columns=(
            "zone_id",
            "zone_name",
            "pathway",
            "pathway_name",
            "area_ha",
            "stock_change_tC",
            "stock_lost_tC",
            "stock_gained_tC",
            "share_of_stock_lost",
            "share_of_stock_gained",
            "flux_change_tC_yr",
            "flux_uncounted_area_ha",
            "transitions",
        ),
    ),
    Output(
        "intervals",
        "tables/intervals_{layer}.csv",
        "table",
        "Per zone and interval: changed area, carbon change, the displacement ratio, the two consolidation checks, "
        "the misregistration check and the change that resampling alone makes.",
        "ha, t C, t C/yr",
        "transitions",
        "each layer, with the transitions stage and two epochs",
        sidecars=_TABLE,
        columns=(
            "zone_id",
            "zone_name",
            "y0",
            "y1",
            "years",
            "area_ha",
            "changed_area_ha",
            "stock_change_tC",
            "flux_change_tC_yr",
            "displaced_to_cropland_ha",
            "cropland_to_construction_ha",
            "displacement_ratio",
            "cropland_y0_ha",
            "cropland_y1_ha",
            "new_cropland_ha",
            "new_cropland_share",
            "new_cropland_check",
            "construction_y0_ha",
            "construction_y1_ha",
            "construction_change_ha",
            "construction_check",
            "changed_pixels",
            "changed_with_earlier_class_nearby_pixels",
            "changed_amid_uniform_land_pixels",
            "neighbour_share",
            "registration_check",
            "resampling_changed_pixels",
            "resampling_changed_share",
        ),
    ),
    Output(
        "intensity_interval",
        "tables/intensity_interval.csv",
        "table",
        "Intensity Analysis of the region, interval level.",
        "ha, % per year",
        "transitions",
        "with the transitions stage and two epochs",
        sidecars=_TABLE,
        columns=("y0", "y1", "years", "area_ha", "changed_area_ha", "annual_change_pct", "uniform_pct", "speed"),
    ),
    Output(
        "intensity_category",
        "tables/intensity_category.csv",
        "table",
        "Intensity Analysis of the region, category level.",
        "ha, % per year",
        "transitions",
        "with the transitions stage and two epochs",
        sidecars=_TABLE,
        columns=(
            "y0",
            "y1",
            "years",
            "class",
            "class_name",
            "area_y0_ha",
            "area_y1_ha",
            "gain_ha",
            "loss_ha",
            "gain_intensity_pct",
            "loss_intensity_pct",
            "uniform_pct",
            "gain",
            "loss",
        ),
    ),
    Output(
        "intensity_transition",
        "tables/intensity_transition.csv",
        "table",
        "Intensity Analysis of the region, transition level, every class and pair.",
        "ha, % per year",
        "transitions",
        "with the transitions stage and two epochs",
        sidecars=_TABLE,
        columns=(
            "y0",
            "y1",
            "years",
            "kind",
            "class",
            "class_name",
            "other_class",
            "other_class_name",
            "area_ha",
            "intensity_pct",
            "uniform_pct",
            "behaviour",
        ),
    ),
    Output(
        "scenarios",
        "tables/scenarios_{layer}.csv",
        "table",
        "Per zone and scenario: the scenario's stock, sink, source and net emission (empty where more than "
        "carbon.max_uncounted_share of the land has no known flux), its stock and flux change against the base "
        "epoch, the stock change by pathway, and the difference in stock and net emission to the year's first "
        "scenario. Over the land valid in every epoch and in the scenario map (the rest is scenario_nodata).",
        "pixels, ha, t C, t C/yr, fraction",
        "transitions",
        "the region and (with zonal) each zone layer, with `scenarios:` and the transitions stage",
        sidecars=_TABLE,
        columns=(
            "zone_id",
            "zone_name",
            "scenario",
            "y0",
            "y1",
            "years",
            "area_ha",
            "scenario_nodata_pixels",
            "scenario_nodata_area_ha",
            "counted_area_ha",
            "uncounted_area_ha",
            "counted_share",
            "stock_y0_tC",
            "stock_tC",
            "sink_tC_yr",
            "source_tC_yr",
            "net_emission_tC_yr",
            "stock_change_tC",
            "flux_change_tC_yr",
            *(column for column, _ in PATHWAY_STOCK_COLUMNS.values()),
            "stock_difference_tC",
            "net_emission_difference_tC_yr",
        ),
    ),
    # ---- GeoPackages
    Output(
        "zone_layer",
        "{layer}.gpkg",
        "vector",
        "The zones in the grid's CRS with the columns of zones_<layer> and, per balance year, stock, sink, "
        "source, net emission and the share of land counted (opens in QGIS).",
        "ha, t C, t C/yr",
        "zonal",
        "each zone layer, with the zonal stage",
        columns=(
            *_ZONE_AREAS,
            "stock_tC_{year}",
            "sink_tC_yr_{year}",
            "source_tC_yr_{year}",
            "net_emission_tC_yr_{year}",
            "counted_share_{year}",
        ),
    ),
    Output(
        "candidates",
        "redline/candidates.csv",
        "table",
        "Red-line candidates, best first, with their stock, sink, protected part and zones.",
        "pixels, ha, t C, t C/ha, t C/yr",
        "redline",
        "with `redline:`",
        sidecars=_TABLE,
        columns=(
            "patch_id",
            "rank",
            "pixels",
            "area_ha",
            "stock_tC",
            "sink_tC_yr",
            "locked_in_ha",
            "density_tC_ha",
            "first_row",
            "first_col",
            "{layer}_id",
            "{layer}_name",
            "{layer}_share",
        ),
    ),
    Output(
        "candidates_gpkg",
        "redline/candidates.gpkg",
        "vector",
        "The red-line candidates as MultiPolygons, feature id = patch_id (columns of redline/candidates.csv).",
        "ha, t C, t C/ha, t C/yr",
        "redline",
        "with `redline:`",
    ),
    Output(
        "coverage",
        "redline/coverage.csv",
        "table",
        "Per ecological function zone: land covered by candidates and protected areas, the target and "
        "shortfall, and the gap fill.",
        "ha, t C, t C/ha, fraction",
        "redline",
        "with `redline:` and `redline.zone_layer`",
        sidecars=_TABLE,
        columns=(
            "zone_id",
            "zone_name",
            "zone_area_ha",
            "candidate_ha",
            "locked_in_ha",
            "covered_ha",
            "share",
            "key_zone",
            "target_share",
            "shortfall_ha",
            "met",
            *_GAP_FILL[3:],
        ),
    ),
    Output(
        "gap_fill",
        "redline/gap_fill.gpkg",
        "vector",
        "Per short zone, the next best land that would close the gap (a MultiPolygon per zone).",
        "ha, t C, t C/ha",
        "redline",
        "with `redline:` and `redline.zone_layer`",
        columns=_GAP_FILL,
    ),
    # ---- maps (PNG, 150 dpi)
    Output(
        "balance_map",
        "maps/balance_{layer}_{year}.png",
        "map",
        "Net emission per zone, one map per balance year, on classes shared by the years of the layer.",
        "t C/yr",
        "report",
        "each zone layer and balance year, with the report stage",
    ),
    Output(
        "pathways_map",
        "maps/pathways_{layer}_{y0}_{y1}.png",
        "map",
        "Stock change of each pathway per zone, first -> last epoch, one panel per pathway that changes stock.",
        "t C",
        "report",
        "each zone layer, with the transitions and report stages",
    ),
    Output(
        "indicator_map",
        "maps/indicators_{layer}_{indicator}.png",
        "map",
        "Per zone the share of land greening minus browning significantly (pixel Mann-Kendall), with the zone's "
        "Sen slope of the yearly means in the label.",
        "fraction -1-1",
        "report",
        "each zone layer and indicator series, with the trends and report stages",
    ),
    Output(
        "scenarios_map",
        "maps/scenarios_{layer}_{year}.png",
        "map",
        "The scenarios of a year side by side: stock change against the base epoch per zone, one panel per "
        "scenario, on shared classes and colours.",
        "t C",
        "report",
        "each zone layer and scenario year, with `scenarios:`, carbon.densities and the transitions and report stages",
    ),
    Output(
        "stock_change_map",
        "maps/stock_change_{y0}_{y1}.png",
        "map",
        "The stock-change raster of the interval (from the COG's overviews), unchanged land grey.",
        "t C/ha",
        "report",
        "every interval with a stock_change raster, with the report stage",
    ),
    Output(
        "sankey",
        "maps/sankey.png",
        "map",
        "Class flows between consecutive epochs, band width proportional to area.",
        "ha",
        "report",
        "two epochs or more, with the transitions and report stages",
    ),
    Output(
        "redline_map",
        "maps/redline_{year}.png",
        "map",
        "Candidates, gap fill, protected areas and zones over the stock density.",
        "t C/ha",
        "report",
        "with `redline:` and the report stage",
    ),
)


#: Outputs of an observed epoch or interval that every scenario also has, named with the scenario at the end.
SCENARIO_KINDS = (
    "landcover",
    "stock",
    "flux",
    "transition",
    "pathway",
    "stock_change",
    "flux_change",
    "transitions",
    "pathways",
    "stock_change_map",
)


def _of_scenario(o: Output) -> Output:
    """The scenario's copy of an output: ``_{scenario}`` before the extension, the year the scenario's."""
    kind = "the scenario's map" if "{year}" in o.pattern else "the interval base epoch -> scenario year"
    return replace(
        o,
        key=f"scenario_{o.key}",
        pattern=re.sub(r"(\.\w+)$", r"_{scenario}\1", o.pattern),
        description=f"{o.description} Of a scenario ({kind}; `scenarios:`).",
        when=f"every scenario, with the transitions stage; {o.when}",
    )


OUTPUTS = OUTPUTS + tuple(_of_scenario(o) for o in OUTPUTS if o.key in SCENARIO_KINDS)


def _years(c: RunContext) -> list[dict]:
    return [{"year": y} for y in c.years]


def _pairs(c: RunContext) -> list[dict]:
    return [{"y0": a, "y1": b} for a, b in c.intervals]


def _scenario_years(c: RunContext) -> list[dict]:
    return [{"year": y1, "scenario": name} for _, y1, name in c.scenarios]


def _scenario_pairs(c: RunContext) -> list[dict]:
    return [{"y0": y0, "y1": y1, "scenario": name} for y0, y1, name in c.scenarios]


def _raster(
    kind: str, per: Callable[[RunContext], list[dict]], stock: bool = False, stage: str | None = None
) -> Callable[[RunContext], list[dict]]:
    def applies(c: RunContext) -> list[dict]:
        wanted = kind in c.rasters and (c.stock or not stock) and (stage is None or stage in c.stages)
        return per(c) if wanted else []

    return applies


def _if(
    condition: Callable[[RunContext], bool], per: Callable[[RunContext], list[dict]] = lambda c: [{}]
) -> Callable[[RunContext], list[dict]]:
    return lambda c: per(c) if condition(c) else []


def _layers(c: RunContext, with_region: bool = True) -> list[dict]:
    return [{"layer": name} for name in (c.all_layers if with_region else c.layers)]


def _report(c: RunContext) -> bool:
    return "report" in c.stages


def _indicators(c: RunContext) -> bool:
    return "trends" in c.stages and bool(c.indicators)


def _redline(c: RunContext) -> bool:
    return "redline" in c.stages


#: When each output is written (the ``when`` of each entry, as code).
_APPLIES: dict[str, Callable[[RunContext], list[dict]]] = {
    "manifest": lambda c: [{}],
    "report": _if(_report),
    "landcover": _raster("landcover", _years),
    "stock": _raster("stock", _years, stock=True),
    "flux": _raster("flux", _years),
    "transition": _raster("transition", _pairs, stage="transitions"),
    "pathway": _raster("pathway", _pairs, stage="transitions"),
    "stock_change": _raster("stock_change", _pairs, stock=True, stage="transitions"),
    "flux_change": _raster("flux_change", _pairs, stage="transitions"),
    "npv": _if(lambda c: c.valuation, _raster("npv", _pairs, stock=True, stage="transitions")),
    "gi_star": _if(_redline, lambda c: [{"year": c.redline_year}]),
    "epochs": lambda c: [{}],
    "classes": _layers,
    "balance": _layers,
    "trends": _if(lambda c: "trends" in c.stages, _layers),
    "indicator_slope": _if(_indicators, lambda c: [{"indicator": n} for n in c.indicators]),
    "indicator_p": _if(_indicators, lambda c: [{"indicator": n} for n in c.indicators]),
    "indicators": _if(_indicators, _layers),
    "indicator_map": _if(
        lambda c: _report(c) and _indicators(c),
        lambda c: [{"layer": n, "indicator": i} for n in c.layers for i in c.indicators],
    ),
    "uncertainty": _if(lambda c: c.uncertainty, _layers),
    "stock_change_uncertainty": _if(lambda c: c.uncertainty and bool(c.intervals), _layers),
    "valuation": _if(lambda c: c.valuation and bool(c.intervals), _layers),
    "zones": lambda c: _layers(c, with_region=False),
    "zone_layer": lambda c: _layers(c, with_region=False),
    "transitions": lambda c: [{**layer, **pair} for layer in _layers(c) for pair in _pairs(c)],
    "pathways": lambda c: [{**layer, **pair} for layer in _layers(c) for pair in _pairs(c)],
    "intervals": _if(lambda c: bool(c.intervals), _layers),
    "intensity_interval": _if(lambda c: bool(c.consecutive)),
    "intensity_category": _if(lambda c: bool(c.consecutive)),
    "intensity_transition": _if(lambda c: bool(c.consecutive)),
    "candidates": _if(_redline),
    "candidates_gpkg": _if(_redline),
    "coverage": _if(lambda c: _redline(c) and c.coverage),
    "gap_fill": _if(lambda c: _redline(c) and c.coverage),
    "balance_map": _if(_report, lambda c: [{"layer": n, "year": y} for n in c.layers for y in c.balance_years]),
    "pathways_map": _if(
        lambda c: _report(c) and bool(c.intervals),
        lambda c: [{"layer": n, "y0": c.years[0], "y1": c.years[-1]} for n in c.layers],
    ),
    "stock_change_map": _if(_report, _raster("stock_change", _pairs, stock=True, stage="transitions")),
    "scenarios": _if(lambda c: bool(c.scenarios), _layers),
    "scenarios_map": _if(
        lambda c: _report(c) and c.stock and bool(c.scenarios),
        lambda c: [{"layer": n, "year": y} for n in c.layers for y in sorted({y1 for _, y1, _ in c.scenarios})],
    ),
    "scenario_landcover": _raster("landcover", _scenario_years),
    "scenario_stock": _raster("stock", _scenario_years, stock=True),
    "scenario_flux": _raster("flux", _scenario_years),
    "scenario_transition": _raster("transition", _scenario_pairs, stage="transitions"),
    "scenario_pathway": _raster("pathway", _scenario_pairs, stage="transitions"),
    "scenario_stock_change": _raster("stock_change", _scenario_pairs, stock=True, stage="transitions"),
    "scenario_flux_change": _raster("flux_change", _scenario_pairs, stage="transitions"),
    "scenario_transitions": lambda c: [{**layer, **pair} for layer in _layers(c) for pair in _scenario_pairs(c)],
    "scenario_pathways": lambda c: [{**layer, **pair} for layer in _layers(c) for pair in _scenario_pairs(c)],
    "scenario_stock_change_map": _if(
        _report, _raster("stock_change", _scenario_pairs, stock=True, stage="transitions")
    ),
    "sankey": _if(lambda c: _report(c) and bool(c.consecutive)),
    "redline_map": _if(lambda c: _report(c) and _redline(c), lambda c: [{"year": c.redline_year}]),
}
OUTPUTS = tuple(replace(o, applies=_APPLIES[o.key]) for o in OUTPUTS)
BY_KEY: dict[str, Output] = {o.key: o for o in OUTPUTS}


def expected(context: RunContext) -> list[str]:
    """Every file a run with ``context`` writes, sorted."""
    return sorted(f for o in OUTPUTS for f in o.expected(context))


def path(key: str, **fields: object) -> str:
    """Relative path of output ``key`` (e.g. ``path("stock", year=2000)``)."""
    return BY_KEY[key].path(**fields)


def raster_path(key: str, context: RunContext, **fields: object) -> str:
    """Relative path of raster ``key`` as a GIS opens it in a run with ``context``: its COG, or when the run's
    rasters are tiled the VRT over its tiles."""
    return BY_KEY[key].raster_path(context, **fields)


def find(relative: str) -> tuple[Output, dict[str, str]] | None:
    """The declared output a file of the output folder is, with its placeholder values (None: undeclared)."""
    for output in OUTPUTS:
        fields = output.match(relative)
        if fields is not None:
            return output, fields
    return None
