"""The run configuration: YAML read once, validated by pydantic, paths resolved against the file.

Everything past this module receives a ``Config`` and never re-checks its shape.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

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

from pipeline.errors import ConfigError
from pipeline.io.parameters import BUILTIN_SCHEMES


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base", Path.cwd())
    return (base / value.expanduser()).resolve() if not value.expanduser().is_absolute() else value


ResolvedPath = Annotated[Path, AfterValidator(_resolve)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PatchSplit(_Strict):
    """Connected construction patches of at least ``patch_min_ha`` hectares are urban (5), smaller rural (6)."""

    patch_min_ha: float = Field(gt=0)


class ExtentSplit(_Strict):
    """Construction pixels whose centre lies in these polygons are urban (5), the rest rural (6)."""

    urban_extent: ResolvedPath
    layer: str | None = None


class CarbonConfig(_Strict):
    densities: ResolvedPath | None = None
    rates: ResolvedPath | None = None
    statistics: ResolvedPath | None = None
    #: Seed 002's Table 1/3 coefficients unless given.
    coefficients: ResolvedPath | None = None
    #: The zone layer whose ids the `zone` columns and the statistics' zone_id name (default: the first).
    zone_layer: str | None = None
    #: Add t CO2 columns (C x 44/12) next to every t C column.
    co2: bool = False


class ZoneLayerConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    path: ResolvedPath
    id: str
    label: str | None = None
    layer: str | None = None
    #: ``gcj02``: the file says WGS84 lon/lat but holds China's GCJ-02 offset coordinates (Amap, DataV)
    coordinates: Literal["crs", "gcj02"] = "crs"

    @field_validator("name")
    @classmethod
    def _not_region(cls, v: str) -> str:
        if v == "region":
            raise ValueError("'region' is the built-in whole-region layer; choose another name")
        return v


class RedlineConfig(_Strict):
    """Ecological protection red-line candidates: Getis-Ord Gi* hotspots of carbon (seed 003 section 4.2)
    and their coverage of ecological function zones (seed 004's 73.84 % of national key zones)."""

    #: Smallest candidate patch (ha). Required: a planning choice, so no default.
    min_area_ha: float = Field(gt=0)
    #: The carbon whose hotspots are sought: stock density (t C/ha) or sink density (uptake, t C/ha/yr).
    value: Literal["stock", "sink"] = "stock"
    #: Epoch whose land is used (default: the last).
    year: int | None = None
    #: Radius of the Gi* neighbourhood (m): pixel centres within it, the pixel itself included.
    radius_m: float = Field(300.0, gt=0)
    #: Pixels with Gi* z above this are hotspots (1.96: 5 % two-sided).
    z_threshold: float = 1.96
    #: Polygons where no candidate may go (planned development, permanent basic farmland, ...).
    lock_out: ResolvedPath | None = None
    #: Existing protected areas: counted as red line whatever their carbon.
    protected_areas: ResolvedPath | None = None
    #: Zone layer of ecological function zones for the coverage table (default: none, no coverage).
    zone_layer: str | None = None
    #: Boolean field of that layer flagging national key ecological function zones.
    key_field: str | None = None
    #: Target share of a key zone inside red lines (seed 004, Table 3: 73.84 %).
    key_target_share: float = Field(0.7384, gt=0, le=1)
    #: Target share for the other zones (default: none, coverage reported without a target).
    other_target_share: float | None = Field(None, gt=0, le=1)


#: Rasters a run can write (rasters/<kind>_<year or interval>.tif).
RASTER_KINDS = ("landcover", "stock", "flux", "transition", "pathway", "stock_change", "flux_change")
RasterKind = Literal["landcover", "stock", "flux", "transition", "pathway", "stock_change", "flux_change"]


class DaskConfig(_Strict):
    chunks: int = Field(2048, ge=64, le=16384)
    scheduler: str = "threads"

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, v: str) -> str:
        if v in ("threads", "processes", "synchronous") or "://" in v:
            return v
        raise ValueError("use threads, processes, synchronous or a cluster address such as tcp://host:8786")


class Config(_Strict):
    name: str = Field(min_length=1)
    epochs: dict[int, list[str]] = Field(min_length=1)
    scheme: str
    align: Literal["exact", "nearest"] = "exact"
    unknown_codes: Literal["error", "nodata"] = "error"
    urban_split: Union[Literal["native"], PatchSplit, ExtentSplit] = "native"
    carbon: CarbonConfig = CarbonConfig()
    zones: list[ZoneLayerConfig] = []
    redline: RedlineConfig | None = None
    #: Which rasters to write (default all); tables and maps do not depend on them.
    rasters: list[RasterKind] = list(RASTER_KINDS)
    #: Overviews in each COG, so a GIS draws it at any zoom without reading every pixel. Off, the COGs
    #: have none and a large run writes them in about half the time (tables and maps are unchanged).
    overviews: bool = True
    output: ResolvedPath = Path("out")
    dask: DaskConfig = DaskConfig()
    #: Folder of the config file; relative paths were resolved against it.
    base: Path = Field(Path("."), exclude=True)

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

    @field_validator("scheme")
    @classmethod
    def _scheme(cls, v: str, info: ValidationInfo) -> str:
        if v.lower() in BUILTIN_SCHEMES:
            return v.lower()
        if v.lower().endswith(".csv"):
            return str(_resolve(Path(v), info))
        close = difflib.get_close_matches(v.lower(), BUILTIN_SCHEMES, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ValueError(f"unknown scheme '{v}'; {hint}built-in: {', '.join(BUILTIN_SCHEMES)}, or a CSV path")

    @field_validator("zones")
    @classmethod
    def _unique_layers(cls, v: list[ZoneLayerConfig]) -> list[ZoneLayerConfig]:
        names = [z.name for z in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"zone layer names must be unique: {dup}")
        return v

    @model_validator(mode="after")
    def _carbon_layer_exists(self) -> "Config":
        names = [z.name for z in self.zones]
        layer = self.carbon.zone_layer
        if layer is not None and layer not in names:
            close = difflib.get_close_matches(layer, names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ValueError(f"carbon.zone_layer '{layer}' is not a zone layer; {hint}layers: {names or 'none'}")
        if self.carbon.statistics is not None and not names:
            raise ValueError("carbon.statistics are per zone: add the zone layer they refer to under `zones`")
        if "flux_change" in self.rasters and "flux" not in self.rasters:
            raise ValueError("rasters: flux_change needs flux (statistics years are spread over the flux maps)")
        red = self.redline
        if red is not None:
            needed = [k for k in ("landcover", "stock", "flux") if k not in self.rasters]
            if needed:
                raise ValueError(f"redline reads the run's own rasters: add {needed} to `rasters`")
            if red.zone_layer is not None and red.zone_layer not in names:
                close = difflib.get_close_matches(red.zone_layer, names, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise ValueError(f"redline.zone_layer '{red.zone_layer}' is not a zone layer; {hint}layers: {names or 'none'}")
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


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate a YAML config; relative paths resolve against its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config: {e}", path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML: {e}", path) from None
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
            close = difflib.get_close_matches(key, options, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(options)}"
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
