"""Tables at the edge: reading CSV parameter files as text, writing the run's tables (CSV + Parquet) and
GeoPackages."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyogrio
import pyproj
import shapely

from pipeline.errors import InputError, OutputError

#: InVEST 2 / early 3.x tables call the code column LULC.
ALIASES = {"lulc": "lucode"}


def read_text(path: Path) -> str:
    """A table file's text: UTF-8 (with or without BOM), else Latin-1 (as older InVEST tables are)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError("table not found", path) from None
    except OSError as e:
        raise InputError(f"cannot read table: {e.strerror}", path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_table(path: Path) -> pd.DataFrame:
    """A CSV as text (callers convert numbers, so zone ids keep leading zeros), with lower-case,
    stripped column names (``LULC`` read as ``lucode``)."""
    text = read_text(path)
    try:
        frame = pd.read_csv(io.StringIO(text), comment="#", skipinitialspace=True, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise InputError(f"not a readable CSV: {e}", path) from None
    frame.columns = [ALIASES.get(str(c).strip().lower(), str(c).strip().lower()) for c in frame.columns]
    return frame


def spreadsheet_rows(frame: pd.DataFrame) -> str:
    """The rows of ``frame`` (a selection of a table read by read_table) as a spreadsheet numbers them,
    "3, 5" (at most 10, then "...")."""
    # +2: the header line and 1-based numbering.
    return ", ".join(str(i + 2) for i in frame.index[:10]) + (" ..." if len(frame) > 10 else "")


def zone_id_text(values: pd.Series) -> list[str]:
    """Zone ids as text, so that 420101, 420101.0 and '420101' name the same county ('' when blank)."""

    def one(v) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        text = str(v).strip()
        return text[: text.index(".")] if re.fullmatch(r"-?\d+\.0+", text) else text

    return [one(v) for v in values]


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """CSV (UTF-8 with BOM, so Excel shows Chinese names) and a Parquet copy beside it."""
    try:
        frame.to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\n", float_format="%.10g")
        frame.to_parquet(path.with_suffix(".parquet"), index=False)
    except OSError as e:  # disk full, folder gone
        raise OutputError(f"cannot write the table: {e.strerror or e}", path) from None


def read_series(path) -> tuple[np.ndarray, np.ndarray]:
    """A ``year,value`` CSV (any letter case; ``#`` comments) as sorted years and values."""
    import pandas as pd

    frame = read_table(path)
    if not {"year", "value"} <= set(frame.columns):
        raise InputError(f"a series needs columns year,value; found {list(frame.columns)}", path)
    if frame.empty:
        raise InputError(
            "the series has a header and no rows; give one year,value row per year (GM(1,1) needs at least 4)", path
        )
    numbers = frame[["year", "value"]].apply(pd.to_numeric, errors="coerce")
    bad = numbers.isna().any(axis=1) | (numbers["year"] % 1 != 0)
    if bad.any():
        raise InputError(f"empty or non-numeric values in rows {spreadsheet_rows(frame[bad])}", path)
    infinite = ~np.isfinite(numbers["value"])
    if infinite.any():
        raise InputError(
            f"non-finite values (inf) in rows {spreadsheet_rows(frame[infinite])}; give finite numbers", path
        )
    if numbers["year"].duplicated().any():
        raise InputError(
            f"years given twice: {sorted(set(numbers['year'][numbers['year'].duplicated()].astype(int)))}", path
        )
    numbers = numbers.sort_values("year")
    return numbers["year"].to_numpy(np.int64), numbers["value"].to_numpy(np.float64)


# ---- the trends table of a zone layer -------------------------------------------------------------------


def write_geopackage(frame: gpd.GeoDataFrame, path: Path, layer: str) -> None:
    """One layer of a GeoPackage (opens in QGIS); a failure is an OutputError naming the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        frame.to_file(path, driver="GPKG", layer=layer, engine="pyogrio")
    except Exception as e:
        raise OutputError(f"cannot write the GeoPackage: {e}", path) from None


def write_polygon_layer(
    batches: Iterable[tuple[np.ndarray, np.ndarray]], attributes: pd.DataFrame, crs, path: Path, layer: str
) -> None:
    """One MultiPolygon layer of a GeoPackage, written a batch of features at a time (a country's red lines do
    not fit in memory at once). ``attributes``: one row per feature, indexed by label, in the layer's order
    (feature ids 1..n: the layer reads back in that order); ``batches``: (labels, shapely geometries) in any
    order, each label once. A failure is an OutputError naming the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = attributes.reset_index(drop=True)
    fields = pa.Schema.from_pandas(table, preserve_index=False).remove_metadata()
    # An empty text column has no type to infer: text, as a GeoDataFrame's writer makes it.
    fields = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in fields])
    schema = fields.append(pa.field("fid", pa.int64())).append(pa.field("geometry", pa.binary()))

    def records():
        for labels, geoms in batches:
            at = attributes.index.get_indexer(labels)
            batch = pa.RecordBatch.from_pandas(table.iloc[at], schema=fields, preserve_index=False)
            yield pa.RecordBatch.from_arrays(
                [*batch.columns, pa.array(at + 1, pa.int64()), pa.array(shapely.to_wkb(_multipolygons(geoms)))],
                schema=schema,
            )

    try:
        pyogrio.write_arrow(
            pa.RecordBatchReader.from_batches(schema, records()),
            path,
            layer=layer,
            driver="GPKG",
            geometry_name="geometry",
            geometry_type="MultiPolygon",
            crs=pyproj.CRS.from_user_input(crs).to_wkt(),
            layer_options={"FID": "fid"},
        )
    except OutputError:
        raise
    except Exception as e:
        raise OutputError(f"cannot write the GeoPackage: {e}", path) from None


def _multipolygons(geoms: np.ndarray) -> np.ndarray:
    """Polygons as one-part MultiPolygons, empty geometries as an empty MultiPolygon (one type per layer)."""
    out = np.asarray(geoms, object).copy()
    kind = shapely.get_type_id(out)
    single = kind == shapely.GeometryType.POLYGON
    out[single] = shapely.multipolygons(out[single].reshape(-1, 1)) if single.any() else out[single]
    out[shapely.is_empty(out)] = shapely.from_wkt("MULTIPOLYGON EMPTY")
    return out
