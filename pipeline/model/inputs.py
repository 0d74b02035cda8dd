"""The typed inputs of a run, as the edge reads and checks them: raster sources, schemes, parameter
tables and zone layers. Stages take these, never file paths or the config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from pipeline.model.classes import RURAL
from pipeline.model.grid import Grid

#: InVEST's four carbon pools (t C/ha each).
POOLS = ("c_above", "c_below", "c_soil", "c_dead")
#: Statistics-based terms of county carbon accounting (Guizhou study, see the methods) -> their columns.
TERMS = {
    "agricultural_source": "source_agricultural_tC_yr",
    "construction_source": "source_construction_tC_yr",
    "cropland_sink": "sink_cropland_tC_yr",
}
#: E_C's inputs when total energy use (energy_tce) is not given directly.
ENERGY_PARTS = ("energy_intensity_tce_per_10k_yuan", "gdp_secondary_10k_yuan", "gdp_tertiary_10k_yuan")


@dataclass(frozen=True)
class RasterInfo:
    """What the header of one raster file says."""

    path: Path
    grid: Grid
    dtype: str
    nodata: float | None
    block: tuple[int, int]


@dataclass(frozen=True)
class EpochSource:
    """One epoch: its files, the dataset GDAL reads (a file or a VRT of the tiles) and its header."""

    year: int
    files: tuple[Path, ...]
    dataset: Path
    grid: Grid
    dtype: str
    nodata: float | None
    #: The scenario's name when this is a scenario map of ``year`` (``scenarios:``), else None.
    scenario: str | None = None

    @property
    def label(self) -> str:
        """How messages name it: ``epoch 2020`` or ``scenario natural 2030``."""
        return f"epoch {self.year}" if self.scenario is None else f"scenario {self.scenario} {self.year}"


@dataclass(frozen=True)
class Scheme:
    """A mapping from a product's codes to target classes (0 = nodata)."""

    name: str
    codes: np.ndarray  # int64, sorted
    targets: np.ndarray  # uint8, same order
    labels: tuple[str, ...]
    meta: dict[str, str]

    @property
    def native_split(self) -> bool:
        """True when the scheme itself tells rural settlements (6) from urban land."""
        return bool((self.targets == RURAL).any())

    def as_dict(self) -> dict[int, int]:
        return dict(zip(self.codes.tolist(), self.targets.tolist()))


@dataclass(frozen=True)
class ParameterTable:
    """A checked table: ``key`` says what ``frame.key`` holds (target ``class`` or product ``lucode``)."""

    path: Path
    key: str
    frame: pd.DataFrame  # columns: key, [zone], value columns, source

    def keys(self) -> set[int]:
        return set(self.frame["key"].tolist())

    def missing(self, present: set[int]) -> list[int]:
        """Codes or classes present in the rasters that have no row."""
        return sorted(present - self.keys())


@dataclass(frozen=True)
class ZoneLayer:
    """A polygon layer whose zone ``i`` (0-based) is burned as ``i + 1``; 0 is outside every zone."""

    name: str
    path: Path
    ids: list[str]
    labels: list[str]
    polygons: gpd.GeoDataFrame

    def index_of(self) -> dict[str, int]:
        return {z: i + 1 for i, z in enumerate(self.ids)}
