"""Report maps as PNG (stage 8): zone balance choropleths, stock-change rasters, pathway contributions.

Every map has a legend with its unit, class breaks from mapclassify (Fisher-Jenks, exact), a scale bar
(matplotlib-scalebar), a north arrow and a source note. Signed quantities use a diverging scale centred
on zero: negative and positive values are classified apart, so zero is always a class boundary and
blue always means less carbon in the air (sink, stock gained), red more. Maps are drawn from the
tables and from the rasters' overviews, a single COG's or a tiled raster's VRT's (with ``overviews:
false``, GDAL averages the full-resolution pixels block by block; memory stays that of the drawn image).
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import mapclassify
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import rasterio
import shapely
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.colors import BoundaryNorm, Colormap, ListedColormap
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Patch
from matplotlib.path import Path as MplPath
from matplotlib_scalebar.scalebar import ScaleBar
from rasterio.enums import Resampling

from pipeline import spec
from pipeline.model.inputs import ZoneLayer
from pipeline.model.pathways import PATHWAY_NAMES
from pipeline.model.results import RedlineResult
from pipeline.report.sankey import draw_sankey

log = logging.getLogger(__name__)

#: Classes per side of zero; fewer when there are fewer distinct values.
CLASSES_PER_SIDE = 4
#: Fisher-Jenks is quadratic in the number of values: above this, it runs on this many quantiles.
_JENKS_MAX = 200
#: A zone is labelled when it covers at least this share of the map's extent: about 1.2 x 0.5 cm on a map panel
#: of 15 x 12 cm, room for a 6.5 pt label; smaller zones stay unlabelled, however many zones there are.
LABEL_MIN_SHARE = 1 / 300
NO_DATA_COLOUR = (0.85, 0.85, 0.85, 1.0)
#: Exactly zero (no change, balanced): its own neutral class, never folded into the loss or sink class next to it.
ZERO_COLOUR = (1.0, 1.0, 1.0, 1.0)
#: Zones whose value is not given because too much of their land has no known flux: grey, hatched.
NOT_COUNTED_COLOUR = (0.62, 0.62, 0.62, 1.0)
NOT_COUNTED_HATCH = "////"
#: Red-line polygons are drawn simplified to this share of one map cell (a cell is under one PNG pixel at
#: ``max_cells`` 1000): the PNG looks the same, and the vertices drawn no longer grow with the raster.
REDLINE_TOLERANCE_CELLS = 0.25


@dataclass(frozen=True)
class ClassBreaks:
    """Class edges (ascending, zero among them when both signs occur) and one RGBA colour per class.

    ``zero``: some values are exactly zero; they are drawn in their own neutral class (``ZERO_COLOUR``).
    ``single``: per class, its one value when all its values are the same (labelled "exactly v"), else None.
    ``nonzero``: whether any value other than zero was classified (else the classes are a placeholder)."""

    edges: np.ndarray
    colours: list[tuple[float, float, float, float]]
    zero: bool = False
    single: tuple[float | None, ...] = ()
    nonzero: bool = True

    def labels(self) -> list[str]:
        out = []
        for i, (a, b) in enumerate(zip(self.edges[:-1], self.edges[1:])):
            one = self.single[i] if i < len(self.single) else None
            out.append(f"exactly {_fmt(one)}" if one is not None else _range_label(a, b))
        return out

    def index(self, values: np.ndarray) -> np.ndarray:
        """The class of each value (a value on an upper edge belongs to the class below, as mapclassify's
        bins are upper bounds)."""
        return np.clip(np.searchsorted(self.edges, values, side="left") - 1, 0, len(self.colours) - 1)

    def entries(self, zero_label: str = "0") -> list[tuple[tuple[float, float, float, float], str]]:
        """(colour, label) of the legend, ascending, with the zero class between the negative and positive
        classes when some value is exactly zero."""
        entries = list(zip(self.colours, self.labels())) if self.nonzero else []
        if self.zero:
            at = int(np.sum(self.edges[1:] <= 0)) if self.nonzero else 0
            entries.insert(at, (ZERO_COLOUR, zero_label))
        return entries

    def colormap(self) -> tuple[Colormap, BoundaryNorm]:
        """Colours and norm for rasters. A class holds its upper edge, (lower, upper] as mapclassify's bins
        and the legend say, while BoundaryNorm's classes are [lower, upper): its edges are moved up by one
        float step, so a value on an edge gets the colour of the class whose label ends with it."""
        cmap = ListedColormap(self.colours).with_extremes(over=self.colours[-1], under=self.colours[0])
        return cmap, BoundaryNorm(np.nextafter(self.edges, np.inf), len(self.colours))


def _side_bins(values: np.ndarray, k: int) -> np.ndarray:
    """Upper bounds of up to ``k`` Fisher-Jenks classes of ``values`` (all of one sign)."""
    unique = np.unique(values)
    if len(unique) <= k:
        return unique
    if len(values) > _JENKS_MAX:  # deterministic stand-in for a random sample
        values = np.quantile(values, np.linspace(0, 1, _JENKS_MAX))
    with warnings.catch_warnings():  # "Numba not installed": the pure-Python path is fast enough here
        warnings.simplefilter("ignore", UserWarning)
        return np.unique(mapclassify.FisherJenks(values, k=k).bins)


def diverging_classes(values: np.ndarray, k: int = CLASSES_PER_SIDE, positive: str = "emission") -> ClassBreaks:
    """Classes for a signed quantity: negatives and positives classified apart, coloured symmetrically by
    class rank (darkest at the extremes, lightest next to zero). Red is carbon to the air: positive
    values when ``positive`` is "emission" (net emission), negative ones when it is "gain" (stock change)."""
    values = np.asarray(values, dtype=float)
    zero = bool(np.any(values == 0))
    values = values[np.isfinite(values) & (values != 0)]
    cmap = colormaps["RdBu_r" if positive == "emission" else "RdBu"]
    if not len(values):
        return ClassBreaks(np.array([-1.0, 1.0]), [cmap(0.5)], zero=zero, nonzero=False)
    neg, pos = values[values < 0], values[values > 0]
    bounds: list[float] = []
    colours = []
    if len(neg):
        bins = _side_bins(neg, k)
        bounds = [neg.min(), *bins[:-1], 0.0]
        colours = [cmap(0.5 - 0.5 * (len(bins) - i) / len(bins)) for i in range(len(bins))]
    else:
        bounds = [0.0]
    if len(pos):
        bins = _side_bins(pos, k)
        bounds += list(bins)
        colours += [cmap(0.5 + 0.5 * (i + 1) / len(bins)) for i in range(len(bins))]
    edges = np.array(bounds, dtype=float)
    # A class of one value (min == first bin) would have no width for BoundaryNorm.
    edges[0] = min(edges[0], edges[1] - abs(edges[1]) * 1e-9 - 1e-12)
    classes = ClassBreaks(edges, colours, zero=zero)
    index = classes.index(values)
    single = tuple(float(v[0]) if len(v := np.unique(values[index == i])) == 1 else None for i in range(len(colours)))
    return ClassBreaks(edges, colours, zero=zero, single=single)


#: Fixed classes of a share of the land in [-1, 1] (greening minus browning): one scale on every map, so a
#: zone where 3 % of the land greens never looks like one where 98 % does.
SHARE_EDGES = np.array([-1.0, -0.5, -0.25, -0.1, 0.0, 0.1, 0.25, 0.5, 1.0])


def fixed_diverging_classes(values: np.ndarray, edges: np.ndarray, positive: str = "gain") -> ClassBreaks:
    """Classes with the given ``edges`` (ascending, 0 among them), coloured symmetrically by their distance
    from 0 in classes; blue for the positive side when ``positive`` is "gain". Exactly 0 is the neutral class."""
    cmap = colormaps["RdBu_r" if positive == "emission" else "RdBu"]
    below, above = int(np.sum(edges < 0)), int(np.sum(edges > 0))
    colours = [cmap(0.5 - 0.5 * (below - i) / below) for i in range(below)]
    colours += [cmap(0.5 + 0.5 * (i + 1) / above) for i in range(above)]
    return ClassBreaks(np.asarray(edges, float), colours, zero=bool(np.any(np.asarray(values, float) == 0)))


def _fmt(v: float, digits: int = 3) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100 and digits <= 3:
        return f"{v:,.0f}".replace("-", "−")
    return f"{v:,.{digits}g}".replace("-", "−")


def _range_label(a: float, b: float) -> str:
    """ "a to b", with as many digits as it takes for the two ends to differ."""
    for digits in range(3, 10):
        if _fmt(a, digits) != _fmt(b, digits):
            return f"{_fmt(a, digits)} to {_fmt(b, digits)}"
    return f"exactly {_fmt(b)}"


@functools.cache
def cjk_font() -> str | None:
    """File of an installed font with Chinese glyphs, or None (matplotlib's own fonts have none)."""
    from matplotlib import font_manager, ft2font

    for entry in sorted(font_manager.fontManager.ttflist, key=lambda e: e.name):
        if entry.name.startswith("Last Resort"):  # matplotlib's placeholder boxes for every character
            continue
        try:
            font = ft2font.FT2Font(entry.fname)
        except (OSError, RuntimeError):
            continue
        if all(font.get_char_index(ord(c)) for c in "县区中"):
            return entry.fname
    return None


#: CJK ideographs, radicals, punctuation, kana, Hangul and full-width forms: the characters that need a CJK font
#: (accented Latin, Greek or Cyrillic names draw with matplotlib's own DejaVu fonts).
_CJK = re.compile(
    "[\u2e80-\u2fdf\u3000-\u30ff\u3100-\u31ff\u3200-\u4dbf\u4e00-\u9fff\ua960-\ua97f"
    "\uac00-\ud7ff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0003134f]"
)


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds a character that needs a CJK font."""
    return _CJK.search(str(text)) is not None


def zone_labels(layers: dict) -> dict[str, list[str]]:
    """Labels to print per layer: the names when the system can draw them, else the ids (said once)."""
    font = cjk_font()
    out, fallback = {}, []
    for name, layer in layers.items():
        drawable = font is not None or not any(has_cjk(s) for s in layer.labels)
        out[name] = layer.labels if drawable else layer.ids
        if not drawable:
            fallback.append(name)
    if fallback:
        log.warning(
            "no font with Chinese characters on this system (install e.g. fonts-noto-cjk): maps of %s "
            "are labelled with zone ids instead of names",
            ", ".join(f"'{n}'" for n in fallback),
        )
    return out


def _text_font() -> dict:
    # By file, not family name: CJK fonts often lack the "normal" weight matplotlib asks a family for.
    font = cjk_font()
    return {"fontproperties": FontProperties(fname=font, size=6.5)} if font else {"fontsize": 6.5}


def _new_figure(size: tuple[float, float]) -> Figure:
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def _furniture(ax, crs: pyproj.CRS, scale_bar: bool = True) -> None:
    """North arrow (grid north), scale bar in metres, equal-distance aspect on geographic grids."""
    ax.annotate(
        "N",
        xy=(0.94, 0.97),
        xytext=(0.94, 0.86),
        xycoords="axes fraction",
        ha="center",
        va="center",
        fontsize=10,
        fontweight="bold",
        arrowprops={"facecolor": "black", "width": 3, "headwidth": 9, "headlength": 8},
    )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")
    if not scale_bar:
        return
    if crs.is_geographic:
        x0, x1 = ax.get_xlim()
        lat = float(np.mean(ax.get_ylim()))
        lon = (x0 + x1) / 2
        metres_per_degree = pyproj.Geod(ellps="WGS84").inv(lon - 0.5, lat, lon + 0.5, lat)[2]
        ax.set_aspect(1 / np.cos(np.radians(lat)))
        # Horizontal only: the metres per degree of longitude are taken at the map's mid-latitude, so the
        # unequal aspect is intended (the bar would otherwise warn about it on the terminal).
        bar = ScaleBar(
            metres_per_degree,
            "m",
            location="lower left",
            box_alpha=0.7,
            font_properties={"size": 7},
            rotation="horizontal-only",
        )
    else:
        bar = ScaleBar(
            crs.axis_info[0].unit_conversion_factor,
            "m",
            location="lower left",
            box_alpha=0.7,
            font_properties={"size": 7},
        )
        ax.set_aspect("equal")
    ax.add_artist(bar)


def _legend(
    ax, classes: ClassBreaks, title: str, no_data: bool, zero_label: str = "0", not_counted: str | None = None
) -> None:
    """Classes from the largest down, the zero class in its place, then "not counted" (hatched, with its
    reason) and "no data" when the map has such zones."""
    entries = list(reversed(classes.entries(zero_label)))
    handles = [Patch(facecolor=c, edgecolor="0.3", lw=0.4) for c, _ in entries]
    names = [label for _, label in entries]
    if not_counted:
        handles.append(Patch(facecolor=NOT_COUNTED_COLOUR, edgecolor="0.3", lw=0.4, hatch=NOT_COUNTED_HATCH))
        names.append(not_counted)
    if no_data:
        handles.append(Patch(facecolor=NO_DATA_COLOUR, edgecolor="0.3", lw=0.4))
        names.append("no data")
    ax.legend(
        handles,
        names,
        title=title,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=7,
        title_fontsize=8,
        frameon=False,
    )


def _choropleth(
    ax,
    polygons: gpd.GeoSeries,
    values: np.ndarray,
    classes: ClassBreaks,
    labels: list[str] | None,
    paths: list[MplPath] | None = None,
    not_counted: np.ndarray | None = None,
) -> None:
    """Zones coloured by class; exactly zero in the neutral zero colour; NaN as no data, or grey and hatched
    where ``not_counted`` (the value is withheld, not absent)."""
    values = np.asarray(values, dtype=float)
    index = classes.index(values)
    colours = [
        classes.colours[i] if np.isfinite(v) and v != 0 else ZERO_COLOUR if v == 0 else NO_DATA_COLOUR
        for i, v in zip(index, values)
    ]
    shapes = paths or zone_paths(polygons)
    ax.add_collection(PathCollection(shapes, facecolors=colours, edgecolors="0.25", linewidths=0.4))
    if not_counted is not None and not_counted.any():
        ax.add_collection(
            PathCollection(
                [p for p, hidden in zip(shapes, not_counted) if hidden],
                facecolors=NOT_COUNTED_COLOUR,
                edgecolors="0.25",
                linewidths=0.4,
                hatch=NOT_COUNTED_HATCH,
            )
        )
    ax.autoscale_view()
    if labels is not None:
        for point, text, large in zip(polygons.representative_point(), labels, _labelled(polygons)):
            if point.is_empty or not large:
                continue
            ax.annotate(
                text,
                (point.x, point.y),
                ha="center",
                va="center",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.6},
                **_text_font(),
            )


def _labelled(polygons: gpd.GeoSeries) -> np.ndarray:
    """Which zones are large enough on the map to carry a label (``LABEL_MIN_SHARE`` of the extent)."""
    left, bottom, right, top = polygons.total_bounds
    extent = max((right - left) * (top - bottom), 1e-12)
    # In map units, as drawn (degrees on a geographic grid: the share of the page is what matters here).
    return shapely.area(polygons.to_numpy()) / extent >= LABEL_MIN_SHARE


def zone_paths(polygons: gpd.GeoSeries, tolerance: float = 0.0) -> list[MplPath]:
    """One compound matplotlib path per zone (every ring of every part), from shapely's coordinate arrays
    in one go: geopandas' plot makes a Patch per polygon, which took most of a 3000-zone map's time. With a
    ``tolerance`` (map units), every ring is simplified to it first (``_simplified_rings``)."""
    return _batched_paths(polygons.to_numpy(), tolerance)


def _batched_paths(geometries: np.ndarray, tolerance: float) -> list[MplPath]:
    """``_paths`` in batches of about ``_BATCH`` vertices: a batch's arrays are several times its vertices."""
    count = shapely.get_num_coordinates(geometries)
    cuts = [*np.flatnonzero(np.diff((np.cumsum(count) - count) // _BATCH, prepend=-1)), len(geometries)]
    return [p for a, b in itertools.pairwise(cuts) for p in _paths(geometries[a:b], tolerance)]


def _paths(geometries: np.ndarray, tolerance: float) -> list[MplPath]:
    """``zone_paths`` of an array of (multi)polygons, None or empty for a zone with no path."""
    if not len(geometries):
        return []
    geometries = np.where(shapely.is_missing(geometries), shapely.Polygon(), geometries)  # to_ragged_array: a type
    # One coordinate array with ring offsets, where parts and rings taken as geometries would copy every
    # vertex twice more: a large red-line patch has hundreds of thousands.
    kind, coords, offsets = shapely.to_ragged_array(geometries, include_z=False)
    if kind not in (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON):
        raise ValueError(f"polygons expected for a map, got {kind.name}")
    ring_start = offsets[0].astype(np.int64)
    first_ring = offsets[1] if kind == shapely.GeometryType.POLYGON else offsets[1][offsets[2]]
    coord_ring = np.repeat(np.arange(len(ring_start) - 1), np.diff(ring_start))
    if tolerance > 0:
        coords, coord_ring = _simplified_rings(coords, coord_ring, tolerance)
    codes = np.full(len(coords), MplPath.LINETO, MplPath.code_type)
    new_ring = np.diff(coord_ring) != 0
    codes[np.r_[True, new_ring][: len(coords)]] = MplPath.MOVETO
    codes[np.r_[new_ring, True][: len(coords)]] = MplPath.CLOSEPOLY
    bounds = np.searchsorted(coord_ring, first_ring)
    return [MplPath(coords[a:b], codes[a:b]) for a, b in itertools.pairwise(bounds)]


#: Vertices per piece of a ring simplified by itself: Douglas-Peucker takes minutes on one ring of 400 000
#: vertices (a large red-line patch's pixel staircase), and well under a second on the same ring in pieces.
_PIECE = 1024
#: Vertices simplified at a time (``_simplified_rings``): a simplification's arrays are several times its
#: vertices' size, which for a large raster's red lines all at once was more memory than the rest of the map.
_BATCH = 1 << 16


def _simplified_rings(coords: np.ndarray, ring: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """The rings' vertices (``coords``, ring index ``ring`` ascending) simplified by Douglas-Peucker to
    ``tolerance`` (map units): each ring in pieces of ``_PIECE`` vertices whose ends are kept, so no point of
    a ring moves by more than the tolerance. Rings that shrink to fewer than 3 vertices keep what is left."""
    if not len(ring):
        return coords, ring
    start = np.searchsorted(ring, np.arange(ring[-1] + 2))
    n = np.diff(start)  # 0 for an empty ring
    pieces = np.where(n > 0, np.maximum(1, -(-(n - 1) // (_PIECE - 1))), 0)  # of _PIECE vertices, sharing ends
    piece_ring = np.repeat(np.arange(len(n)), pieces)
    first = start[piece_ring] + (np.arange(len(piece_ring)) - np.repeat(np.cumsum(pieces) - pieces, pieces)) * (
        _PIECE - 1
    )
    length = np.minimum(first + _PIECE, start[piece_ring + 1]) - first
    before = np.cumsum(length) - length
    cuts = [*np.flatnonzero(np.diff(before // _BATCH, prepend=-1)), len(length)]
    kept, kept_piece = [], []
    for a, b in itertools.pairwise(cuts):
        offsets = before[a:b] - before[a]
        take = np.repeat(first[a:b] - offsets, length[a:b]) + np.arange(length[a:b].sum())
        lines = shapely.linestrings(coords[take], indices=np.repeat(np.arange(b - a), length[a:b]))
        out, piece = shapely.get_coordinates(
            shapely.simplify(lines, tolerance, preserve_topology=False), return_index=True
        )
        kept.append(out)
        kept_piece.append(piece + a)
    out, piece = np.concatenate(kept), np.concatenate(kept_piece)
    # A piece's first vertex is the last of the piece before it on the same ring.
    repeated = np.r_[False, (piece[1:] != piece[:-1]) & (piece_ring[piece[1:]] == piece_ring[piece[:-1]])]
    return out[~repeated], piece_ring[piece[~repeated]]


def balance_maps(
    polygons: gpd.GeoSeries,
    zone_ids: list[str],
    labels: list[str],
    layer: str,
    balance: pd.DataFrame,
    root: Path,
    source: str,
    max_uncounted_share: float = 0.01,
) -> list[Path]:
    """maps/balance_<layer>_<year>.png: net emission per zone (t C/yr; + source, − sink), one map per
    balance year, on classes shared by all the years so the maps compare. Zones whose net emission is not
    given because more than ``max_uncounted_share`` of their land has no known flux are hatched grey,
    "not counted", never coloured by a partial sum; zones with no land are "no data"."""
    classes = diverging_classes(balance["net_emission_tC_yr"].to_numpy())
    reason = f"not counted: flux of > {max_uncounted_share:.0%} of the land unknown"
    paths, shapes = [], zone_paths(polygons)
    for year, rows in balance.groupby("year", sort=True):
        rows = rows.set_index("zone_id").reindex(zone_ids)
        values = rows["net_emission_tC_yr"].to_numpy(dtype=float)
        hidden = np.isnan(values) & (rows["area_ha"].to_numpy(dtype=float) > 0) if "area_ha" in rows else None
        if hidden is not None and "counted_share" in rows:
            hidden &= rows["counted_share"].to_numpy(dtype=float) < 1
        no_data = np.isnan(values) & ~hidden if hidden is not None else np.isnan(values)
        fig = _new_figure((8.5, 6.5))
        ax = fig.add_axes((0.03, 0.1, 0.68, 0.8))
        _choropleth(ax, polygons, values, classes, labels, shapes, hidden)
        _furniture(ax, polygons.crs)
        _legend(
            ax,
            classes,
            "net emission, t C/yr\n(+ source, − sink)",
            bool(no_data.any()),
            "0 (balanced)",
            reason if hidden is not None and hidden.any() else None,
        )
        ax.set_title(f"Carbon balance by {layer}, {year}", fontsize=12)
        fig.text(0.03, 0.03, source, fontsize=6.5, color="0.3")
        paths.append(_save(fig, root / spec.path("balance_map", layer=layer, year=year)))
    return paths


def indicator_maps(
    polygons: gpd.GeoSeries,
    zone_ids: list[str],
    labels: list[str],
    layer: str,
    table: pd.DataFrame,
    root: Path,
    source: str,
) -> list[Path]:
    """maps/indicators_<layer>_<series>.png: per zone the share of its land greening minus browning
    significantly (pixel Mann-Kendall), blue where more greens; each label gives the zone's Sen slope of
    the yearly means. Zones without values are 'no data'."""
    paths, shapes = [], zone_paths(polygons)
    for series, rows in table.groupby("series", sort=True):
        rows = rows.set_index("zone_id").reindex(zone_ids)
        values = rows["net_greening_share"].to_numpy(dtype=float)
        classes = fixed_diverging_classes(values, SHARE_EDGES)
        slopes = rows["sen_slope_per_yr"].to_numpy(dtype=float)
        unit = str(rows["series_unit"].dropna().iloc[0]) if rows["series_unit"].notna().any() else ""
        text = [f"{name}\n{_fmt(s)}/yr" if np.isfinite(s) else name for name, s in zip(labels, slopes)]
        fig = _new_figure((8.5, 6.5))
        ax = fig.add_axes((0.03, 0.1, 0.68, 0.8))
        _choropleth(ax, polygons, values, classes, text, shapes)
        _furniture(ax, polygons.crs)
        _legend(
            ax,
            classes,
            "share greening − browning\n(significant pixels)",
            bool(np.isnan(values).any()),
            "0 (as much as either)",
        )
        first, last = int(rows["y0"].dropna().iloc[0]), int(rows["y1"].dropna().iloc[0])
        ax.set_title(f"{series} ({unit}) change by {layer}, {first}-{last}", fontsize=12)
        fig.text(0.03, 0.03, source + " · labels: Sen slope of the zone's yearly means", fontsize=6.5, color="0.3")
        paths.append(_save(fig, root / spec.path("indicator_map", layer=layer, indicator=series)))
    return paths


def pathway_map(
    polygons: gpd.GeoSeries,
    zone_ids: list[str],
    labels: list[str],
    layer: str,
    pathways: pd.DataFrame,
    y0: int,
    y1: int,
    root: Path,
    source: str,
) -> Path:
    """maps/pathways_<layer>_<y0>_<y1>.png: each pathway's stock change per zone (t C), one panel per
    pathway that changes stock anywhere, on shared classes; a map that says so when none does."""
    wide = pathways.pivot(index="zone_id", columns="pathway", values="stock_change_tC").reindex(zone_ids)
    shown = [p for p in sorted(wide.columns) if np.nanmax(np.abs(wide[p].to_numpy(dtype=float)), initial=0) > 0]
    path = root / spec.path("pathways_map", layer=layer, y0=y0, y1=y1)
    if not shown:
        fig = _new_figure((8.5, 3.0))
        why = (
            "stock is not computed (no carbon.densities)"
            if wide.isna().all().all()
            else "no pathway changed the carbon stock of any zone"
        )
        fig.text(0.5, 0.55, f"Stock change by pathway and {layer}, {y0}–{y1}: {why}.", ha="center", fontsize=11)
        fig.text(0.01, 0.03, source, fontsize=6.5, color="0.3")
        return _save(fig, path)
    classes = diverging_classes(wide[shown].to_numpy(dtype=float).ravel(), positive="gain")
    ncols = min(3, len(shown))
    nrows = -(-len(shown) // ncols)
    fig = _new_figure((4.2 * ncols + 2.2, 3.9 * nrows + 0.8))
    width, height = 0.84 / ncols * (4.2 * ncols) / (4.2 * ncols + 2.2), 0.86 / nrows
    shapes = zone_paths(polygons)
    for k, p in enumerate(shown):
        r, c = divmod(k, ncols)
        ax = fig.add_axes((0.01 + c * width, 0.93 - (r + 1) * height, width * 0.97, height * 0.88))
        _choropleth(ax, polygons, wide[p].to_numpy(dtype=float), classes, labels if len(shown) <= 3 else None, shapes)
        _furniture(ax, polygons.crs, scale_bar=k == 0)
        ax.set_title(f"{p} {PATHWAY_NAMES[p]}", fontsize=9)
        if k == ncols - 1:
            _legend(ax, classes, "stock change, t C\n(− lost, + gained)", bool(wide[p].isna().any()), "0 (no change)")
    fig.suptitle(f"Stock change by pathway and {layer}, {y0}–{y1}", fontsize=12)
    fig.text(0.01, 0.01, source, fontsize=6.5, color="0.3")
    return _save(fig, path)


def scenarios_map(
    polygons: gpd.GeoSeries,
    zone_ids: list[str],
    labels: list[str],
    layer: str,
    scenarios: pd.DataFrame,
    year: int,
    root: Path,
    source: str,
) -> Path:
    """maps/scenarios_<layer>_<year>.png: the scenarios of ``year`` side by side, each one's stock change
    against the base epoch per zone (t C), one panel per scenario in the config's order, on classes and
    colours shared by all the panels so that they compare."""
    rows = scenarios[scenarios["y1"] == year]
    names = list(dict.fromkeys(rows["scenario"]))
    wide = rows.pivot(index="zone_id", columns="scenario", values="stock_change_tC").reindex(zone_ids)[names]
    base = int(rows["y0"].iloc[0])
    classes = diverging_classes(wide.to_numpy(dtype=float).ravel(), positive="gain")
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    fig = _new_figure((4.2 * ncols + 2.2, 3.9 * nrows + 0.8))
    width, height = 0.84 / ncols * (4.2 * ncols) / (4.2 * ncols + 2.2), 0.86 / nrows
    shapes = zone_paths(polygons)
    for k, name in enumerate(names):
        r, c = divmod(k, ncols)
        ax = fig.add_axes((0.01 + c * width, 0.93 - (r + 1) * height, width * 0.97, height * 0.88))
        values = wide[name].to_numpy(dtype=float)
        _choropleth(ax, polygons, values, classes, labels if len(names) <= 3 else None, shapes)
        _furniture(ax, polygons.crs, scale_bar=k == 0)
        total = np.nansum(values)
        ax.set_title(f"{name}: {_fmt(total)} t C", fontsize=9)
        if k == ncols - 1 or k == len(names) - 1:
            _legend(ax, classes, "stock change, t C\n(− lost, + gained)", bool(np.isnan(values).any()), "0 (no change)")
    fig.suptitle(f"Scenarios {year}: stock change by {layer} against {base}", fontsize=12)
    fig.text(0.01, 0.01, source, fontsize=6.5, color="0.3")
    return _save(fig, root / spec.path("scenarios_map", layer=layer, year=year))


def stock_change_map(
    raster: Path,
    outline: gpd.GeoSeries | None,
    y0: int,
    y1: int,
    root: Path,
    source: str,
    max_cells: int = 1000,
    scenario: str | None = None,
) -> Path:
    """maps/stock_change_<y0>_<y1>.png (of a scenario: ..._<scenario>.png) from the COG's overviews (each cell
    the mean of the pixels under it, t C/ha); unchanged land in grey, zone outlines on top."""
    data, (left, bottom, right, top), crs, step = _overview(raster, max_cells)
    extent = (left, right, bottom, top)
    changed = np.where(np.isfinite(data) & (data != 0), data, np.nan)
    classes = diverging_classes(changed[np.isfinite(changed)], positive="gain")
    cmap, norm = classes.colormap()
    fig = _new_figure((8.5, 6.5))
    ax = fig.add_axes((0.03, 0.1, 0.68, 0.8))
    ax.imshow(
        np.where(np.isfinite(data), 1.0, np.nan),
        extent=extent,
        cmap=ListedColormap([NO_DATA_COLOUR]),
        interpolation="nearest",
    )
    ax.imshow(changed, extent=extent, cmap=cmap, norm=norm, interpolation="nearest")
    if outline is not None:
        outline.boundary.plot(ax=ax, color="0.2", linewidth=0.4)
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    _furniture(ax, crs)
    _legend(ax, classes, "stock change, t C/ha\n(− lost, + gained)", False)
    ax.set_title(f"Carbon stock change {y0}–{y1}" + (f", scenario {scenario}" if scenario else ""), fontsize=12)
    note = (
        f"Grey: unchanged stock. Each cell is the mean of {step} × {step} pixels."
        if step > 1
        else "Grey: unchanged stock."
    )
    fig.text(0.03, 0.055, note, fontsize=7)
    fig.text(0.03, 0.03, source, fontsize=6.5, color="0.3")
    if scenario is None:
        return _save(fig, root / spec.path("stock_change_map", y0=y0, y1=y1))
    return _save(fig, root / spec.path("scenario_stock_change_map", y0=y0, y1=y1, scenario=scenario))


def redline_map(
    stock_raster: Path,
    candidates: Path,
    gap_fill: Path | None,
    protected: gpd.GeoSeries | None,
    zones: gpd.GeoSeries | None,
    title: str,
    path: Path,
    source: str,
    max_cells: int = 1000,
) -> Path:
    """maps/redline_<year>.png: candidates (red) and gap fill (orange; GeoPackages of polygons, read a polygon at
    a time) over the stock density (greens, t C/ha, from the COG's overviews), protected areas and zone
    outlines on top."""
    data, (left, bottom, right, top), crs, _ = _overview(stock_raster, max_cells)
    # Candidates and gap fill are pixel staircases, a vertex per pixel corner of their edges: drawn as they
    # are, their vertices (and the figure's memory) grow with the raster. Simplified to a fraction of the
    # map's cell, they are bounded by the map's size and look the same (a cell is less than a PNG pixel).
    tolerance = REDLINE_TOLERANCE_CELLS * max((right - left) / data.shape[1], (top - bottom) / data.shape[0])
    fig = _new_figure((8.5, 6.5))
    ax = fig.add_axes((0.03, 0.1, 0.68, 0.8))
    # Faded, so that red over dense forest still reads as red.
    image = ax.imshow(data, extent=(left, right, bottom, top), cmap="Greens", alpha=0.5, interpolation="nearest")
    red: dict[str, Any] = {"facecolor": (0.84, 0.1, 0.11, 0.3), "edgecolor": (0.75, 0.0, 0.0)}
    drawn, n = _layer_paths(candidates, tolerance)
    handles = [Patch(**red, label=f"candidate ({n})")]
    ax.add_collection(PathCollection(drawn, **red, linewidths=0.7))
    drawn, n = _layer_paths(gap_fill, tolerance) if gap_fill is not None else ([], 0)
    if n:
        ax.add_collection(PathCollection(drawn, facecolor=(1.0, 0.55, 0.0, 0.6), edgecolor="none"))
        handles.append(Patch(facecolor=(1.0, 0.55, 0.0, 0.6), label="gap fill (next best land)"))
    if protected is not None and len(protected):
        protected.boundary.plot(ax=ax, color="navy", linewidth=1.0)
        handles.append(Patch(facecolor="none", edgecolor="navy", label="protected area (locked in)"))
    if zones is not None:
        zones.boundary.plot(ax=ax, color="0.2", linewidth=0.5)
        handles.append(Patch(facecolor="none", edgecolor="0.2", label="ecological function zone"))
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    _furniture(ax, crs)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    bar = fig.colorbar(image, cax=fig.add_axes((0.74, 0.12, 0.02, 0.35)))
    bar.set_label("stock density, t C/ha", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    ax.set_title(title, fontsize=10)
    fig.text(0.03, 0.03, source, fontsize=6.5, color="0.3")
    return _save(fig, path)


#: Polygons of a GeoPackage read at once by the maps: few, as the largest patches come first and hold most
#: of the vertices (the first 100 of 5386 candidates at N = 24000 hold 6.1 of 8.9 million).
_FEATURES = 1


def _layer_paths(path: Path, tolerance: float) -> tuple[list[MplPath], int]:
    """(``zone_paths`` of the polygons of a GeoPackage's one layer, their number), read ``_FEATURES`` at a time."""
    drawn: list[MplPath] = []
    n = 0
    with pyogrio.open_arrow(path, batch_size=_FEATURES, use_pyarrow=True) as (meta, reader):
        for batch in reader:
            wkb = batch[meta["geometry_name"] or "wkb_geometry"].to_numpy(zero_copy_only=False)
            drawn += _batched_paths(shapely.from_wkb(wkb), tolerance)
            n += len(wkb)
    return drawn, n


def _overview(raster: Path, max_cells: int) -> tuple[np.ndarray, tuple, pyproj.CRS, int]:
    """(the raster averaged over step x step pixels so that neither side exceeds ``max_cells``, NaN for
    nodata; its bounds; its CRS; step), read from the overviews when it has them: of a COG, or of a tiled
    raster's VRT (each tile's own levels side by side)."""
    with rasterio.open(raster) as src:
        step = max(1, int(np.ceil(max(src.width, src.height) / max_cells)))
        shape = (max(1, src.height // step), max(1, src.width // step))
        level = _overview_level(src, shape)
        bounds, crs = tuple(src.bounds), pyproj.CRS.from_user_input(src.crs)
    # The level is opened by itself: through a VRT, GDAL serves an averaged read of the whole raster from the
    # full resolution (every tile read whole), never from its overviews. For a COG this is the level GDAL
    # would take itself, and the same pixels.
    with rasterio.open(raster, **({} if level is None else {"overview_level": level})) as src:
        data = src.read(1, out_shape=shape, resampling=Resampling.average, masked=True).filled(np.nan)
    return data, bounds, crs, step


def _overview_level(src, shape: tuple[int, int]) -> int | None:
    """The coarsest overview level no coarser than ``shape`` needs (GDAL's choice for an averaged read), or
    None for the full resolution."""
    wanted = min(src.width / shape[1], src.height / shape[0])
    best = None
    for level in range(len(src.overviews(1))):
        with rasterio.open(src.name, overview_level=level) as ovr:
            if min(src.width / ovr.width, src.height / ovr.height) <= wanted:
                best = level
    return best


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, metadata={"Software": None})  # no version stamp: same maps, same bytes
    return path


def _with_land(layer: ZoneLayer, balance: pd.DataFrame) -> ZoneLayer:
    """The zones of a layer that hold valid pixels: zones outside the rasters (a national file over a
    county's rasters) are left off the maps, which are then framed on the zones that matter."""
    area = balance.groupby("zone_id")["area_ha"].max()
    keep = [i for i, z in enumerate(layer.ids) if area.get(z, 0.0) > 0]
    if len(keep) == len(layer.ids):
        return layer
    return ZoneLayer(
        layer.name, layer.path, [layer.ids[i] for i in keep], [layer.labels[i] for i in keep], layer.polygons.iloc[keep]
    )


def draw_maps(
    root: Path,
    context: spec.RunContext,
    layers: dict[str, ZoneLayer],
    balances: dict[str, pd.DataFrame],
    pathways: dict[tuple[str, int, int], pd.DataFrame],
    flows: dict[tuple[int, int], pd.DataFrame],
    region: str,
    source: str,
    redlines: RedlineResult | None = None,
    max_uncounted_share: float = 0.01,
    indicators: dict[str, pd.DataFrame] | None = None,
    scenarios: dict[str, pd.DataFrame] | None = None,
) -> list[Path]:
    """Every map of a run (the output specification's maps for ``context``) into ``root``: balance per
    zone layer and year, pathway contributions per zone layer (first -> last epoch), stock change per
    interval (outlined by the first zone layer), the Sankey of the region's consecutive ``flows``, and
    the red-line map; with ``scenarios`` (the scenarios table per layer name) the scenarios side by side per
    zone layer and year, and the stock change of each scenario. ``layers`` maps names to the reported
    ZoneLayers."""
    drawn = []
    layers = {name: _with_land(layer, balances[name]) for name, layer in layers.items()}
    printed = zone_labels(layers)
    for name, layer in layers.items():
        polygons, labels = layer.polygons.geometry, printed[name]
        drawn += balance_maps(polygons, layer.ids, labels, name, balances[name], root, source, max_uncounted_share)
        if context.intervals:
            y0, y1 = context.years[0], context.years[-1]
            table = pathways[(name, y0, y1)].assign(zone_id=lambda f: f["zone_id"].astype(str))
            drawn.append(pathway_map(polygons, layer.ids, labels, name, table, y0, y1, root, source))
        if indicators and name in indicators:
            series = indicators[name].assign(zone_id=lambda f: f["zone_id"].astype(str))
            drawn += indicator_maps(polygons, layer.ids, labels, name, series, root, source)
        for fields in spec.BY_KEY["scenarios_map"].applies(context):
            if fields["layer"] == name and scenarios is not None:
                rows = scenarios[name].assign(zone_id=lambda f: f["zone_id"].astype(str))
                drawn.append(scenarios_map(polygons, layer.ids, labels, name, rows, fields["year"], root, source))
    outline = next(iter(layers.values())).polygons.geometry if layers else None
    for fields in spec.BY_KEY["stock_change_map"].applies(context):
        raster = root / spec.raster_path("stock_change", context, **fields)
        drawn.append(stock_change_map(raster, outline, fields["y0"], fields["y1"], root, source))
    for fields in spec.BY_KEY["scenario_stock_change_map"].applies(context):
        raster = root / spec.raster_path("scenario_stock_change", context, **fields)
        y0, y1, name = fields["y0"], fields["y1"], fields["scenario"]
        drawn.append(stock_change_map(raster, outline, y0, y1, root, source, scenario=name))
    if flows:
        table = pd.concat([m.assign(y0=y0, y1=y1) for (y0, y1), m in flows.items()], ignore_index=True)
        drawn.append(root / spec.path("sankey"))
        drawn[-1].parent.mkdir(parents=True, exist_ok=True)
        draw_sankey(
            table[["y0", "y1", "from_class", "to_class", "area_ha"]],
            drawn[-1],
            f"{region}: land-class flows {min(table['y0'])}-{max(table['y1'])}",
        )
    if redlines is not None:
        year = redlines.year
        drawn.append(
            redline_map(
                root / spec.raster_path("stock", context, year=year),
                redlines.candidates,
                redlines.gap_fill,
                redlines.protected,
                redlines.zones,
                redlines.title,
                root / spec.path("redline_map", year=year),
                source,
            )
        )
    return drawn
