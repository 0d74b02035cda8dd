"""The run configuration: YAML read once, validated by pydantic, paths resolved against the file.

Everything past this module receives a ``Config`` and never re-checks its shape.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipeline.errors import ConfigError, did_you_mean
from pipeline.io.parameters import BUILTIN_SCHEMES


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base", Path.cwd())
    return (base / value.expanduser()).resolve() if not value.expanduser().is_absolute() else value


ResolvedPath = Annotated[Path, AfterValidator(_resolve)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PatchSplit(_Strict):
    """Connected construction patches of at least ``patch_min_ha`` hectares are urban (5), smaller rural (6)."""

    patch_min_ha: float = Field(
        gt=0,
        description="Smallest urban patch (ha): urban and rural pixels are pooled into 8-connected patches; "
        "patches of at least this area are urban (5), smaller ones rural (6). Other construction (7) stays.",
    )


class ExtentSplit(_Strict):
    """Construction pixels whose centre lies in these polygons are urban (5), the rest rural (6)."""

    urban_extent: ResolvedPath = Field(
        description="Polygon file of the urban extent (any format pyogrio reads, any CRS): construction pixels "
        "whose centre lies inside are urban (5), the rest rural (6)."
    )
    layer: str | None = Field(None, description="Layer of a multi-layer file (default: the first).")


class CarbonConfig(_Strict):
    """Carbon parameter tables: stock densities, annual rates, county statistics and their coefficients."""

    densities: ResolvedPath | None = Field(
        None,
        description="Stock density table (`c_above, c_below, c_soil, c_dead` in t C/ha, by `class` or `lucode`, "
        "optionally per `zone`; InVEST's carbon pool table works as it is). None: stock is not computed.",
    )
    rates: ResolvedPath | None = Field(
        None,
        description="Annual carbon rate table (`rate_tC_ha_yr`, t C/ha/yr, negative = uptake, by `class` or "
        "`lucode`, optionally per `zone`). None: the packaged defaults from Table 2 of the Guizhou land-use "
        "carbon emission study (2005-2019).",
    )
    statistics: ResolvedPath | None = Field(
        None,
        description="County statistics per `zone_id` and `year` (agricultural inputs, energy use and GDP, crop "
        "yields): they replace the per-hectare terms of cropland and construction land in that zone and year.",
    )
    coefficients: ResolvedPath | None = Field(
        None,
        description="Coefficients of the statistics-based terms (`term, column, t_C_per_unit, "
        "economic_coefficient`). None: Tables 1 and 3 of the Guizhou land-use carbon emission study.",
    )
    zone_layer: str | None = Field(
        None,
        description="The zone layer whose ids the `zone` columns of the parameter tables and the statistics' "
        "`zone_id` name (default: the first layer of `zones`).",
    )
    co2: bool = Field(False, description="Add t CO2 columns (C x 44/12) next to every t C column.")
    max_uncounted_share: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Largest share of a zone's land (a fraction 0-1) whose annual flux may be unknown (a class "
        "with neither a rate nor statistics) for its net emission to be given: above it, `net_emission_tC_yr` "
        "is empty and the maps and the report say 'not counted' instead of showing a partial sum. Sink and "
        "source stay the sums over the counted land, with `counted_area_ha` beside them.",
    )


class ZoneLayerConfig(_Strict):
    """A polygon layer of zones (counties, ecological function zones, ...): tables, maps and a GeoPackage each."""

    name: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
        description="Layer name used in output file names (`classes_<name>.csv`, `<name>.gpkg`): a letter, then "
        "letters, digits or `_`; not `region`, which is the built-in whole-region layer.",
    )
    path: ResolvedPath = Field(
        description="Polygon file: any format pyogrio reads, any CRS (reprojected to the grid's)."
    )
    id: str = Field(description="Field holding each zone's id, unique per feature.")
    label: str | None = Field(None, description="Field holding each zone's name, shown in tables and maps.")
    layer: str | None = Field(None, description="Layer of a multi-layer file (default: the first).")
    coordinates: Literal["crs", "gcj02"] = Field(
        "crs",
        description="`crs`: the coordinates are what the file's CRS says. `gcj02`: the file says WGS84 lon/lat but "
        "holds China's GCJ-02 offset coordinates (Amap, Aliyun DataV); they are moved to WGS84 before use.",
    )

    @field_validator("name")
    @classmethod
    def _not_region(cls, v: str) -> str:
        if v == "region":
            raise ValueError("'region' is the built-in whole-region layer; choose another name")
        return v


class BoundaryConfig(_Strict):
    """The study area: only pixels whose centre lies inside these polygons count."""

    path: ResolvedPath = Field(
        description="Polygon file of the study area (any format pyogrio reads, any CRS): only pixels whose centre "
        "lies inside count as valid, in every epoch, table, raster and map; the area outside is reported in "
        "`tables/epochs.csv` (`outside_boundary_pixels`, `outside_boundary_area_ha`)."
    )
    layer: str | None = Field(None, description="Layer of a multi-layer file (default: the first).")
    coordinates: Literal["crs", "gcj02"] = Field(
        "crs",
        description="`crs`: the coordinates are what the file's CRS says. `gcj02`: the file says WGS84 lon/lat but "
        "holds China's GCJ-02 offset coordinates (Amap, Aliyun DataV); they are moved to WGS84 before use.",
    )


class RedlineConfig(_Strict):
    """Ecological protection red-line candidates: Getis-Ord Gi* hotspots of carbon (Wang & Yue, territorial spatial
    pattern for carbon sinks, section 4.2) and their coverage of ecological function zones (73.84 % of national key
    zones: Zhou et al. 2024, China's ecological regions in the 15th Five-Year Plan, Table 3)."""

    min_area_ha: float = Field(
        gt=0, description="Smallest candidate patch (ha). Required: a planning choice, so no default."
    )
    value: Literal["stock", "sink"] = Field(
        "stock",
        description="The carbon whose hotspots are sought: stock density (t C/ha) or sink density (uptake, t C/ha/yr).",
    )
    year: int | None = Field(None, description="Epoch whose land is used (default: the last).")
    radius_m: float = Field(
        300.0,
        gt=0,
        description="Radius of the Gi* neighbourhood (m): pixel centres within it, the pixel itself included.",
    )
    z_threshold: float = Field(1.96, description="Pixels with Gi* z above this are hotspots (1.96: 5 % two-sided).")
    lock_out: ResolvedPath | None = Field(
        None,
        description="Polygons where no candidate may go (planned development, permanent basic farmland, ...).",
    )
    protected_areas: ResolvedPath | None = Field(
        None, description="Existing protected areas: counted as red line whatever their carbon."
    )
    zone_layer: str | None = Field(
        None,
        description="Zone layer of ecological function zones for the coverage table (default: none, no coverage).",
    )
    key_field: str | None = Field(
        None, description="Boolean field of that layer flagging national key ecological function zones."
    )
    key_target_share: float = Field(
        0.7384,
        gt=0,
        le=1,
        description="Target share of a key zone inside red lines (73.84 %: Zhou et al. 2024, Table 3).",
    )
    other_target_share: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Target share for the other zones (default: none, coverage reported without a target).",
    )


class IndicatorConfig(_Strict):
    """A continuous raster series (NDVI, fractional vegetation cover, NPP, ...): yearly means per zone, the
    Theil-Sen slope with the Mann-Kendall test, and the land greening or browning significantly."""

    years: dict[int, ResolvedPath] = Field(
        min_length=3,
        description="`year: raster`, at least three years (a trend needs them); any GDAL format and grid: a raster "
        "not on the land cover's grid is resampled onto it bilinearly, with a warning. The years need not be "
        "epochs of the land cover. The years may also be given directly beside the other keys "
        "(`ndvi: {2000: a.tif, 2005: b.tif, ..., scale: 0.0001}`).",
    )
    scale: float = Field(1.0, gt=0, description="Value = stored value x scale + offset (MODIS NDVI: 0.0001).")
    offset: float = Field(0.0, description="Value = stored value x scale + offset.")
    nodata: float | None = Field(
        None,
        description="Stored value meaning 'no data' (MODIS NDVI: -3000). Default: the raster's own nodata.",
    )
    precision: float | None = Field(
        None,
        gt=0,
        description="Step (in the indicator's unit) values are rounded to before they are summed, so zone sums "
        "are exact integers whatever the chunking. Default: `scale` for integer rasters (their values exactly), "
        "`scale` x 0.0001 for floating-point ones.",
    )
    unit: str = Field("-", description="Unit of the values, written in the tables (e.g. `NDVI`, `gC/m2/yr`).")
    alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="Significance level of the Mann-Kendall test: a pixel greens (browns) where p < alpha and "
        "the series rises (falls).",
    )

    @model_validator(mode="before")
    @classmethod
    def _years_beside(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        loose = {k: f for k, f in v.items() if isinstance(k, int) or (isinstance(k, str) and k.isdigit())}
        if not loose:
            return v
        if "years" in v:
            raise ValueError("give the years either under `years:` or beside the other keys, not both")
        return {**{k: f for k, f in v.items() if k not in loose}, "years": loose}

    @field_validator("years")
    @classmethod
    def _plausible_years(cls, v: dict[int, Path]) -> dict[int, Path]:
        bad = [y for y in v if not 1000 <= y <= 3000]
        if bad:
            raise ValueError(f"keys must be years, got {bad}")
        return dict(sorted(v.items()))


class UncertaintyConfig(_Strict):
    """Monte Carlo draws of the parameter tables, applied to the run's pixel counts (no further pass over the
    pixels): percentiles of stock, sink, source, net emission and stock change per pathway."""

    draws: int = Field(
        1000,
        ge=20,
        le=1_000_000,
        description="Number of draws of the parameter tables. Each draw takes every spread value of every row at "
        "once; the 5th, 50th and 95th percentiles over the draws are reported. Cost: draws x groups of the counts "
        "(rows after grouping by zone and parameter row), a second or two per 1000 draws on a county.",
    )
    seed: int = Field(
        1,
        ge=0,
        description="Seed of the random numbers (NumPy's PCG64): the same seed gives the same draws, and the same "
        "tables byte for byte, on any chunk size or scheduler.",
    )


class ValuationConfig(_Strict):
    """InVEST's valuation of carbon: the net present value of the stock change of each interval, spread evenly
    over the interval's years, at a price per t C that changes by a rate per year, discounted at a rate per year."""

    price_per_tC: float = Field(  # noqa: N815 (t C as in every unit-bearing name of the project)
        ge=0,
        description="Price of a tonne of carbon (t C, not CO2) in the first year of each interval, in any currency "
        "(InVEST's `price_per_metric_ton_of_c`). The tables and the npv rasters are in that currency.",
    )
    discount_rate_pct: float = Field(
        gt=-100,
        description="Market discount rate, % per year (InVEST's `discount_rate`; 7 means 7 %). Required: a "
        "choice, so no default.",
    )
    price_change_pct: float = Field(
        0.0,
        gt=-100,
        description="Annual rate of change of the price of carbon, % per year (InVEST's `rate_change`), for the "
        "social cost of carbon rising over time.",
    )


#: A scenario name: a lowercase identifier (it goes into file names).
SCENARIO_NAME = re.compile(r"[a-z][a-z0-9_]*")

RasterKind = Literal["landcover", "stock", "flux", "transition", "pathway", "stock_change", "flux_change", "npv"]
#: Rasters a run can write (rasters/<kind>_<year or interval>.tif).
RASTER_KINDS: tuple[RasterKind, ...] = typing.get_args(RasterKind)


class DaskConfig(_Strict):
    """How the run is chunked and where it computes."""

    chunks: int = Field(
        2048,
        ge=64,
        le=16384,
        description="Pixels per side of a Dask chunk. Peak memory follows it (about 1 GB per thread at 2048).",
    )
    scheduler: str = Field(
        "threads",
        description="`threads`, `processes` (a local cluster of worker processes), `synchronous` (one thread, for "
        "debugging) or a cluster address such as `tcp://host:8786`.",
    )
    max_pixels: float = Field(
        2e10,
        gt=0,
        description="Largest grid (pixels per epoch) a run or `validate` accepts; larger grids are refused at once, "
        "before any work. The default fits a 30 m country (150,000 x 110,000 px = 1.65e10); raise it knowingly.",
    )
    no_worker_timeout_s: float = Field(
        120.0,
        gt=0,
        description="On a cluster, seconds the run waits while the scheduler has no worker (all killed or lost) "
        "before it stops with one error line, the output folder as it was.",
    )

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, v: str) -> str:
        if v in ("threads", "processes", "synchronous") or "://" in v:
            return v
        raise ValueError("use threads, processes, synchronous or a cluster address such as tcp://host:8786")


#: The block of the COGs (px): a tile's side is a whole number of blocks, so tiles share the block grid.
COG_BLOCK = 512


class TilesConfig(_Strict):
    """When a raster is written as tiles on a fixed grid (one COG each) with a VRT that opens as one layer."""

    above_px: int = Field(
        32768,
        ge=0,
        description="A raster with a side longer than this (px) is written as tiles: `rasters/<name>.vrt` (one "
        "layer in QGIS, with overviews) over `rasters/<name>/<name>_r<row>_c<col>.tif`; otherwise one COG "
        "`rasters/<name>.tif`. The default, 2^15, keeps a province at 30 m (up to about 980 km a side) in one file "
        "and tiles a large province or a country, whose single COGs would be tens of GB (float32 stock of China at "
        "30 m: 66 GB before compression); finished in parallel across tiles on the workers.",
    )
    size_px: int = Field(
        32768,
        ge=COG_BLOCK,
        description="Side of a tile (px), a multiple of 512 (the COG block): tiles on a fixed grid from the "
        "raster's top-left corner, the last row and column cut at the raster's edge. 32768 px (64 blocks, "
        "about 1e9 px, near ESA WorldCover's 36000 and GFW's 40000) is about 1 GB of uint8 before compression.",
    )

    @field_validator("size_px")
    @classmethod
    def _whole_blocks(cls, v: int) -> int:
        if v % COG_BLOCK:
            raise ValueError(
                f"must be a multiple of {COG_BLOCK} (the COG block), e.g. {max(1, round(v / COG_BLOCK)) * COG_BLOCK}"
            )
        return v


class Config(_Strict):
    """A run: the region's land-cover epochs, how to read them, the carbon parameters, zones and outputs."""

    name: str = Field(min_length=1, description="Region name, written in tables, maps and the manifest.")
    epochs: dict[int, list[str]] = Field(
        min_length=1,
        description="`year: raster`, `year: glob` (`lc2000/*.tif`) or `year: [tile, tile, ...]`, any GDAL format; "
        "an ArcInfo grid is its folder. The first epoch's grid is the grid of the run.",
    )
    scheme: str = Field(
        description="Built-in scheme name (`cnlucc`, `clcd`, `esa_worldcover`, `globeland30`, `modis_igbp`, "
        "`nlcd`, `corine`) or a CSV `source_code,target_class[,name]`."
    )
    align: Literal["exact", "nearest"] = Field(
        "exact",
        description="`exact`: all epochs must be on one grid (tolerance 1e-6 pixel). `nearest`: later epochs are "
        "resampled onto the first epoch's grid with nearest neighbour (other origin, resolution or CRS).",
    )
    area: Literal["ellipsoidal", "planar"] = Field(
        "ellipsoidal",
        description="How a pixel's area is measured. `ellipsoidal`: on the ellipsoid, as land surveys report "
        "area (a projected grid's planar area divided by the projection's areal scale factor, per cell of about "
        "5 km; a geographic grid's exact area per row). `planar`: a projected grid's area in its own plane "
        "(pixel width x height, e.g. 900 m² for 30 m), as most GIS report it.",
    )
    unknown_codes: Literal["error", "nodata"] = Field(
        "error",
        description="`error`: codes not in the scheme stop the run, each listed with its pixel count. `nodata`: "
        "they become nodata and are reported.",
    )
    urban_split: Literal["native"] | PatchSplit | ExtentSplit = Field(
        "native",
        description="`native` (the scheme has the urban/rural split), `{patch_min_ha: N}` (patch-size rule) or "
        "`{urban_extent: polygons.gpkg, layer: optional}` (urban-extent polygons).",
    )
    carbon: CarbonConfig = Field(CarbonConfig(), description="Carbon parameter tables.")
    zones: list[ZoneLayerConfig] = Field(
        [], description="Polygon layers of zones; each gets its own tables, maps and GeoPackage."
    )
    boundary: BoundaryConfig | None = Field(
        None,
        description="Optional study area: `boundary: province.gpkg` or `{path: province.gpkg, layer: name, "
        "coordinates: gcj02}`. Only pixels whose centre lies inside count (the common valid mask of every "
        "epoch); without it the whole raster counts, open sea included.",
    )
    redline: RedlineConfig | None = Field(
        None, description="Red-line candidates; the red-line stage runs when this section is present."
    )
    indicators: dict[str, IndicatorConfig] = Field(
        {},
        description="Continuous raster series by name (`ndvi: {years: {2000: ndvi2000.tif, ...}, scale: 0.0001, "
        "nodata: -3000, unit: NDVI}`): per zone and year the area-weighted mean over the valid land, the Theil-Sen "
        "slope with the Mann-Kendall test, the share greening and browning significantly, and a per-pixel trend "
        "raster. The name (a letter, then letters, digits or `_`) is used in file names.",
    )
    uncertainty: UncertaintyConfig | None = Field(
        None,
        description="Percentiles of the carbon figures from draws of the parameter tables: `{draws: 1000, seed: "
        "1}`. Needs spread columns in `carbon.densities` (`c_above_sd`, ... or `c_above_low`/`c_above_high`, ...) "
        "or `carbon.rates` (`rate_sd` or `rate_low`/`rate_high`).",
    )
    valuation: ValuationConfig | None = Field(
        None,
        description="Net present value of the stock change, as InVEST values carbon: `{price_per_tC: 43, "
        "discount_rate_pct: 7, price_change_pct: 0}`. Needs `carbon.densities`.",
    )
    scenarios: dict[int, dict[str, list[str]]] = Field(
        {},
        description="Simulated futures (PLUS, FLUS, CA-Markov outputs): `year: {name: raster, ...}`, each raster a "
        "file, a glob or a list of tiles as for an epoch. Names are lowercase identifiers (`natural`, "
        "`ecological`; a letter, then letters, digits or `_`). Each scenario is an interval from the base epoch "
        "(`scenarios_from`) to its year, on the run's grid (or resampled with `align: nearest`) and the epochs' "
        "common valid mask, with the interval outputs of an observed interval (named `..._<y0>_<y1>_<name>`) "
        "and `tables/scenarios_<layer>.csv`. Base pixels that are nodata in a scenario are left out of that "
        "scenario only, and reported (`uncovered_area_ha`, a warning).",
    )
    scenarios_from: int | None = Field(
        None,
        description="The epoch the scenarios start from (default: the last epoch). Every scenario year must be "
        "after it.",
    )
    rasters: list[RasterKind] = Field(
        list(RASTER_KINDS),
        description="Which rasters to write, from `landcover`, `stock`, `flux`, `transition`, `pathway`, "
        "`stock_change`, `flux_change`, `npv` (`flux_change` needs `flux`; `npv` is written with `valuation:`; "
        "`redline` needs `landcover`, `stock` and `flux`). Tables and maps do not depend on it.",
    )
    overviews: bool = Field(
        True,
        description="Overviews in each COG, so a GIS draws it at any zoom without reading every pixel. Off, the "
        "COGs have none and a large run writes them in about half the time (pixels, tables and maps are unchanged).",
    )
    tiles: TilesConfig = Field(
        TilesConfig(),
        description="Rasters larger than `above_px` on a side are written as COG tiles of `size_px` with a VRT "
        "over them; smaller ones as one COG.",
    )
    output: ResolvedPath = Field(Path("out"), description="Output folder (`--output` on the command line wins).")
    dask: DaskConfig = Field(DaskConfig(), description="Chunk size and scheduler.")
    base: Path = Field(
        Path("."), exclude=True, description="Folder of the config file; relative paths were resolved against it."
    )

    @field_validator("epochs", mode="before")
    @classmethod
    def _epoch_lists(cls, v: Any, info: ValidationInfo) -> Any:
        if not isinstance(v, dict):
            return v
        base = (info.context or {}).get("base", Path.cwd())
        out = {}
        for year, spec in v.items():
            items = [spec] if isinstance(spec, (str, Path)) else spec
            if not isinstance(items, list) or not items or not all(isinstance(i, (str, Path)) for i in items):
                raise ValueError(f"epoch {year}: give a raster path, a glob, or a list of them")
            out[year] = [str(Path(base, Path(i).expanduser())) for i in items]
        return dict(sorted(out.items(), key=lambda kv: int(kv[0])))

    @field_validator("epochs")
    @classmethod
    def _plausible_years(cls, v: dict[int, list[str]]) -> dict[int, list[str]]:
        bad = [y for y in v if not 1000 <= y <= 3000]
        if bad:
            raise ValueError(f"epoch keys must be years, got {bad}")
        return v

    @field_validator("scenarios", mode="before")
    @classmethod
    def _scenario_lists(cls, v: Any, info: ValidationInfo) -> Any:
        if not isinstance(v, dict):
            return v
        base = (info.context or {}).get("base", Path.cwd())
        out = {}
        for year, named in v.items():
            if not isinstance(named, dict) or not named:
                raise ValueError(f"scenarios {year}: give `name: raster` pairs, e.g. {{natural: nd{year}.tif}}")
            maps = {}
            for name, spec in named.items():
                if not isinstance(name, str) or not SCENARIO_NAME.fullmatch(name):
                    raise ValueError(
                        f"scenarios {year}: name {name!r} is not a lowercase identifier (a letter, then lowercase "
                        "letters, digits or _), e.g. natural, ecological, cropland_protection"
                    )
                items = [spec] if isinstance(spec, (str, Path)) else spec
                if not isinstance(items, list) or not items or not all(isinstance(i, (str, Path)) for i in items):
                    raise ValueError(f"scenarios {year} {name}: give a raster path, a glob, or a list of them")
                maps[name] = [str(Path(base, Path(i).expanduser())) for i in items]
            out[year] = maps
        return dict(sorted(out.items(), key=lambda kv: int(kv[0])))

    @field_validator("boundary", mode="before")
    @classmethod
    def _boundary_path(cls, v: Any) -> Any:
        return {"path": v} if isinstance(v, (str, Path)) else v

    @field_validator("scheme")
    @classmethod
    def _scheme(cls, v: str, info: ValidationInfo) -> str:
        if v.lower() in BUILTIN_SCHEMES:
            return v.lower()
        if v.lower().endswith(".csv"):
            return str(_resolve(Path(v), info))
        hint = did_you_mean(v.lower(), BUILTIN_SCHEMES)
        raise ValueError(f"unknown scheme '{v}'; {hint}built-in: {', '.join(BUILTIN_SCHEMES)}, or a CSV path")

    @field_validator("indicators")
    @classmethod
    def _indicator_names(cls, v: dict[str, IndicatorConfig]) -> dict[str, IndicatorConfig]:
        bad = [n for n in v if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", n)]
        if bad:
            raise ValueError(f"indicator names are used in file names: a letter, then letters, digits or _; got {bad}")
        return v

    @field_validator("zones")
    @classmethod
    def _unique_layers(cls, v: list[ZoneLayerConfig]) -> list[ZoneLayerConfig]:
        names = [z.name for z in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"zone layer names must be unique: {dup}")
        return v

    @model_validator(mode="after")
    def _scenarios_after_base(self) -> Config:
        if self.scenarios_from is not None and self.scenarios_from not in self.epochs:
            raise ValueError(f"scenarios_from {self.scenarios_from} is not an epoch; epochs: {list(self.epochs)}")
        if not self.scenarios:
            return self
        odd = [y for y in self.scenarios if not 1000 <= y <= 3000]
        if odd:
            raise ValueError(f"scenario keys must be years, got {odd}")
        base = self.scenario_base
        early = [y for y in self.scenarios if y <= base]
        if early:
            raise ValueError(
                f"scenario years {early} are not after the base epoch {base}: a scenario is a future of the base "
                "(set scenarios_from to an earlier epoch, or correct the year)"
            )
        return self

    @model_validator(mode="after")
    def _carbon_layer_exists(self) -> Config:
        names = [z.name for z in self.zones]
        layer = self.carbon.zone_layer
        if layer is not None and layer not in names:
            hint = did_you_mean(layer, names)
            raise ValueError(f"carbon.zone_layer '{layer}' is not a zone layer; {hint}layers: {names or 'none'}")
        if self.carbon.statistics is not None and not names:
            raise ValueError("carbon.statistics are per zone: add the zone layer they refer to under `zones`")
        if "flux_change" in self.rasters and "flux" not in self.rasters:
            raise ValueError("rasters: flux_change needs flux (statistics years are spread over the flux maps)")
        if self.valuation is not None and self.carbon.densities is None:
            raise ValueError("valuation needs carbon.densities: it values the stock change; add the density table")
        red = self.redline
        if red is not None:
            needed = [k for k in ("landcover", "stock", "flux") if k not in self.rasters]
            if needed:
                raise ValueError(f"redline reads the run's own rasters: add {needed} to `rasters`")
            if red.zone_layer is not None and red.zone_layer not in names:
                hint = did_you_mean(red.zone_layer, names)
                raise ValueError(
                    f"redline.zone_layer '{red.zone_layer}' is not a zone layer; {hint}layers: {names or 'none'}"
                )
            if red.key_field is not None and red.zone_layer is None:
                raise ValueError("redline.key_field needs redline.zone_layer (the layer that has the field)")
            if red.year is not None and red.year not in self.epochs:
                raise ValueError(f"redline.year {red.year} is not an epoch; epochs: {list(self.epochs)}")
            if self.carbon.densities is None:
                raise ValueError("redline needs carbon.densities: candidates are ranked by their stock")
        return self

    @property
    def carbon_layer(self) -> str | None:
        """Name of the zone layer that zone-specific parameters and statistics refer to."""
        return self.carbon.zone_layer or (self.zones[0].name if self.zones else None)

    @property
    def years(self) -> list[int]:
        return list(self.epochs)

    @property
    def scenario_base(self) -> int:
        """The epoch the scenarios start from: ``scenarios_from``, else the last epoch."""
        return self.scenarios_from if self.scenarios_from is not None else self.years[-1]

    @property
    def scenario_list(self) -> list[tuple[int, str]]:
        """(year, name) of every scenario, years ascending, names in the config's order."""
        return [(year, name) for year, named in self.scenarios.items() for name in named]


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' given twice (first on line {seen[key] + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _yaml_error(path: Path, e: yaml.YAMLError) -> ConfigError:
    """``FILE:LINE:COL: what is wrong``, as compilers and linters say it (1-based line and column)."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    if mark is None:
        return ConfigError(f"not valid YAML: {problem}", path)
    return ConfigError(f"not valid YAML: {problem}", f"{path}:{mark.line + 1}:{mark.column + 1}")


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate a YAML config; relative paths resolve against its folder."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError("is a folder; give the config file (e.g. region.yaml)", path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config: {e}", path) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        raise _yaml_error(path, e) from None
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of settings (name, epochs, scheme, ...)", path)
    data = {**data, **(overrides or {})}
    base = path.resolve().parent
    try:
        return Config.model_validate({**data, "base": base}, context={"base": base})
    except ValidationError as e:
        raise ConfigError(_explain(e), path) from None


def _explain(err: ValidationError) -> str:
    lines = []
    for item in err.errors():
        loc = ".".join(str(p) for p in item["loc"] if not str(p).startswith(("function-", "literal[")))
        if item["type"] == "extra_forbidden":
            key = str(item["loc"][-1])
            options = _keys_at(item["loc"][:-1])
            close = did_you_mean(key, options, cutoff=0.5).rstrip()
            hint = f"; {close}" if close else f"; valid keys: {', '.join(options)}"
            lines.append(f"unknown key '{loc}'{hint}")
        else:
            msg = item["msg"].removeprefix("Value error, ")
            lines.append(f"{loc or 'config'}: {msg}")
    # Union members each report; keep the first of identical locations to stay readable.
    seen, unique = set(), []
    for line in lines:
        head = line.split(":")[0]
        if head not in seen:
            seen.add(head)
            unique.append(line)
    return "; ".join(unique)


def _keys_at(loc: tuple) -> list[str]:
    """Field names of the model found by walking ``loc`` from Config (for 'did you mean')."""
    models: list[type[BaseModel]] = [Config]
    for part in loc:
        nxt: list[type[BaseModel]] = []
        for m in models:
            if isinstance(part, str) and part in m.model_fields:
                nxt.extend(_models_in(m.model_fields[part].annotation))
        models = nxt or models  # list indices (zones.0) keep the current model
    return sorted({k for m in models for k in m.model_fields if k != "base"})


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models_in(a)]
