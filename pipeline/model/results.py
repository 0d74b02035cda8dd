"""Typed results passed from the stages that make them to the maps and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd


@dataclass
class RedlineResult:
    """What the red-line map and the report show."""

    year: int
    title: str
    #: The GeoPackages of the candidates and of the gap fill, staged: the map reads them a polygon at a time.
    candidates: Path
    gap_fill: Path | None = None
    coverage: pd.DataFrame | None = None
    #: Ecological function zones of the coverage, and the protected areas (outlines on the map).
    zones: gpd.GeoSeries | None = None
    protected: gpd.GeoSeries | None = None
    #: The rasters staged (relative paths of the output specification).
    rasters: list[str] = field(default_factory=list)
