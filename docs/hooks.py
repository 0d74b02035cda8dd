"""MkDocs hooks: the reference pages generated from the package, and the quickstart notebook.

* ``<!-- config-reference -->`` in a page becomes the configuration reference, built by walking
  ``pipeline.config.Config.model_fields`` recursively (key, type, default, description).
* ``<!-- outputs-reference -->`` becomes the table of every output file of ``pipeline.spec.OUTPUTS``,
  ``<!-- output-columns -->`` the columns of each table and ``<!-- columns-reference -->`` the column
  glossary ``pipeline.spec.COLUMNS``; ``<!-- fields-reference -->`` the placeholders of the file names.
* ``notebooks/quickstart.ipynb`` is added to the site as ``quickstart.ipynb`` so that mkdocs-jupyter
  renders it (executed) without a copy in ``docs/``.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import annotated_types
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from pipeline import config as config_module
from pipeline import spec

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"


# ---- the quickstart notebook


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns notebooks into pages
def on_files(files: Files, config: Any) -> Files:
    files.append(File(NOTEBOOK.name, str(NOTEBOOK.parent), config["site_dir"], config["use_directory_urls"]))
    return files


# ---- markdown helpers


def _cell(text: str) -> str:
    """Text for a table cell: `<`, `>` escaped outside code spans, `|` escaped, on one line."""
    parts = re.split(r"(`[^`]*`)", " ".join(str(text).split()))
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(part.replace("|", r"\|"))
        else:
            out.append(part.replace("<", "&lt;").replace(">", "&gt;").replace("|", r"\|"))
    return "".join(out)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pattern(pattern: str) -> str:
    """`rasters/stock_{year}.tif` -> `rasters/stock_<year>.tif` (as the docs write placeholders)."""
    return re.sub(r"\{(\w+)\}", r"<\1>", pattern)


# ---- configuration reference


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models_in(a)]


def _type(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return "none"
    if origin is typing.Annotated:
        return _type(args[0])
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(dict.fromkeys(_type(a) for a in args))
    if origin in (list, tuple, set):
        return f"list of {_type(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {_type(args[0])} to {_type(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping (below)"
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "path"
    names = {str: "text", int: "integer", float: "number", bool: "`true` or `false`"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _constraints(field: FieldInfo) -> str:
    words = []
    for item in field.metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(item, attr, None)
            if value is not None:
                words.append(f"{sign} {value}")
        if isinstance(item, annotated_types.MinLen):
            words.append(f"at least {item.min_length} item(s)" if item.min_length > 1 else "not empty")
        pattern = getattr(item, "pattern", None)
        if pattern:
            words.append(f"matches `{pattern}`")
    return ", ".join(words)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, BaseModel):
        shown = {k: v for k, v in value.model_dump().items() if v is not None}
        return "`{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in shown.items()) + "}`" if shown else "(below)"
    if value == [] or value == {}:
        return "none"
    return f"`{_yaml(value)}`"


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    return str(value)


def _config_sections(model: type[BaseModel], prefix: str, title: str, out: list[str]) -> None:
    rows, nested = [], []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        key = f"{prefix}{name}"
        kind = _type(field.annotation)
        limits = _constraints(field)
        if limits:
            kind += f" ({limits})"
        rows.append([f"`{key}`", kind, _default(field), field.description or ""])
        subs = _models_in(field.annotation)
        for sub in subs:
            is_list = typing.get_origin(field.annotation) is list
            title = key + ("[]" if is_list else "")
            if len(subs) > 1:  # a union of mappings: name each by its keys
                title += ": {" + ", ".join(sub.model_fields) + "}"
            nested.append((sub, f"{key}[]." if is_list else f"{key}.", title))
    out.append(f"### `{title}`" if prefix else "### Top level")
    doc = (model.__doc__ or "").strip()
    if doc:
        out.append(" ".join(doc.replace("``", "`").split()))
    out.append(_table(["key", "type", "default", "description"], rows))
    for sub, sub_prefix, sub_title in nested:
        _config_sections(sub, sub_prefix, sub_title, out)


def config_reference() -> str:
    out: list[str] = []
    _config_sections(config_module.Config, "", "Config", out)
    return "\n\n".join(out)


# ---- outputs reference


def _dtype(output: spec.Output) -> str:
    if output.dtype is None:
        return ""
    return f"{output.dtype}, nodata {output.nodata}" if output.nodata is not None else output.dtype


def _file(output: spec.Output) -> str:
    text = f"`{_pattern(output.pattern)}`"
    for suffix in output.sidecars:
        text += f" (+ `{suffix}`)" if suffix != ".parquet" else " (+ Parquet copy)"
    if output.kind == "raster":
        text += f"; tiled: `{_pattern(output.mosaic_pattern)}` over `{_pattern(output.tile_pattern)}`"
    return text


def outputs_reference() -> str:
    rows = [
        [_file(o), o.description[:1].upper() + o.description[1:], o.unit, _dtype(o), o.when, o.stage]
        for o in spec.OUTPUTS
    ]
    return _table(["file", "what it is", "unit", "dtype, nodata", "written", "stage"], rows)


def output_columns() -> str:
    rows = []
    for o in spec.OUTPUTS:
        if o.columns:
            cols = ", ".join(f"`{_pattern(c)}`" for c in o.columns)
            rows.append([f"`{_pattern(o.pattern)}`", cols])
    return _table(["file", "columns, in order"], rows)


def columns_reference() -> str:
    rows = [[f"`{_pattern(name)}`", unit, meaning] for name, (unit, meaning) in spec.COLUMNS.items()]
    return _table(["column", "unit", "meaning"], rows)


def fields_reference() -> str:
    return _table(["placeholder", "stands for"], [[f"`<{k}>`", v] for k, v in spec.FIELDS.items()])


MARKERS = {
    "<!-- config-reference -->": config_reference,
    "<!-- outputs-reference -->": outputs_reference,
    "<!-- output-columns -->": output_columns,
    "<!-- columns-reference -->": columns_reference,
    "<!-- fields-reference -->": fields_reference,
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    for marker, build in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, build())
    return markdown
