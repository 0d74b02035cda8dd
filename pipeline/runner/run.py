"""A run: plan (read and check every input) -> compute (one pass over the pixels) -> write (tables,
COGs, red lines, maps, report, manifest) into a staging folder, committed only when all succeeded.
No numbers are made here."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from pathlib import Path

from pipeline import __version__, spec
from pipeline.config import Config
from pipeline.errors import OutputError
from pipeline.io.cog import finish_rasters
from pipeline.io.staging import Staging
from pipeline.runner import execution, manifest, redlines
from pipeline.runner.compute import single_pass
from pipeline.runner.plan import make_plan, resolve_stages
from pipeline.runner.write import write_tables

log = logging.getLogger(__name__)

#: Errors of writing that no input causes (errno names).
_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
#: Free bytes below which a failed write is taken for a full disk.
_FULL_BELOW = 1 << 20


def _in_output(path: str | None, staging: Staging, output: Path, tiled: bool = False) -> str | Path | None:
    """A path in the staging folder as the user will know it: the same file in the output folder (a raster's
    staged VRT is its COG, or with ``tiled`` rasters the VRT over its tiles)."""
    if path is None:
        return None
    try:
        relative = Path(path).relative_to(staging.root)
    except ValueError:
        return path
    return output / (relative.with_suffix(".tif") if relative.suffix == ".vrt" and not tiled else relative)


def run_pipeline(
    config: Config,
    output: Path | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    stages: list[str] | None = None,
) -> Path:
    """Run the stages (all by default, see ``plan.resolve_stages``) and write the output folder; returns
    the manifest path."""
    stages = resolve_stages(stages, config)
    output = Path(output or config.output)
    timer, warnings = execution.Timer(), execution.WarningCollector()
    logging.getLogger("pipeline").addHandler(warnings)
    staging = Staging(output)
    tiled = False
    try:
        with execution.scheduler_context(scheduler or config.dask.scheduler, progress, config.dask.no_worker_timeout_s):
            with timer.stage("plan: read and check the inputs"):
                plan = make_plan(config, stages, staging.folder("work"))
            tiled = plan.tiles is not None
            results = single_pass(plan, staging, timer)
            rasters, red = list(results.rasters), None
            if plan.redline_year is not None and plan.redline_inputs is not None and config.redline is not None:
                with timer.stage("red-line candidates"), execution.own_reading_errors(staging.root):
                    red = redlines.write_redlines(
                        config.redline,
                        plan.redline_inputs,
                        plan.redline_year,
                        plan.layers,
                        plan.grid,
                        plan.areas,
                        config.dask.chunks,
                        staging,
                    )
                rasters += red.rasters
            with timer.stage("write rasters (Cloud-Optimised GeoTIFFs)"):
                tile_size = config.tiles.size_px if plan.tiles is not None else None
                execution.compute(finish_rasters(staging, rasters, config.overviews, tile_size))
        with timer.stage("write tables"):
            tables = write_tables(plan, results, staging)
        shutil.rmtree(staging.folder("work"))
        context = plan.context()
        checked, checksums = manifest.inputs(config, plan.lc.files), dict[str, str]()
        if "report" in stages:
            with timer.stage("maps and report"):
                from pipeline.report import (  # matplotlib and mapclassify: 0.8 s to import, for this stage only
                    maps,
                    page,
                )

                source = (
                    f"carbon-pipeline {__version__} · run '{config.name}' · land cover "
                    f"{', '.join(map(str, config.years))} · {plan.grid.crs.to_string()}"
                )
                drawn = maps.draw_maps(
                    staging.root,
                    context,
                    {z.name: z for z in plan.reported},
                    tables.balance,
                    tables.pathways,
                    tables.flows,
                    config.name,
                    source,
                    red,
                    config.carbon.max_uncounted_share,
                    indicators=tables.indicators,
                    scenarios=tables.scenarios,
                )
                so_far = manifest.build_manifest(
                    config, plan.lc, checked, stages, staging, timer, warnings.messages, checksums
                )
                page.write_report(staging.root, context, so_far, drawn, manifest.parameter_tables(config))
        final = manifest.build_manifest(config, plan.lc, checked, stages, staging, timer, warnings.messages, checksums)
        staging.path(spec.path("manifest")).write_text(
            json.dumps(final, indent=2, ensure_ascii=False), encoding="utf-8"
        )
        staging.commit()
    except OSError as e:
        staging.discard()
        if e.errno not in _WRITE_ERRORS:
            raise
        # Disk full, quota, read-only file system: the output, not the inputs, is at fault.
        raise OutputError(f"cannot write the output: {e.strerror}", output) from None
    except OutputError as e:
        # GDAL reports a full disk as a failed write of one file; say what the user can act on, and name
        # the output, not the staging folder (which is gone).
        full = shutil.disk_usage(staging.root).free < _FULL_BELOW if staging.root.exists() else False
        staging.discard()
        if full:
            raise OutputError(f"cannot write the output: {os.strerror(errno.ENOSPC)}", output) from None
        raise OutputError(e.message, _in_output(e.path, staging, output, tiled)) from None
    except BaseException:
        staging.discard()
        raise
    finally:
        logging.getLogger("pipeline").removeHandler(warnings)
    return output / spec.path("manifest")
