"""Command line: ``carbon-pipeline`` (also ``python -m pipeline``). The only place errors become exit codes."""

from __future__ import annotations

import logging
import signal
import sys
import traceback
from pathlib import Path

import click
import numpy as np

from pipeline import __version__
from pipeline.errors import PipelineError
from pipeline.io import tables

_state = {"verbose": False}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="carbon-pipeline")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, and the full traceback on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only; no progress bar.")
def cli(verbose: bool, quiet: bool) -> None:
    """Land-use carbon accounting from land-cover rasters of several years."""
    _state["verbose"], _state["quiet"] = verbose, quiet
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if not verbose:
        for noisy in ("distributed", "rasterio", "fiona", "pyogrio", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


@cli.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Output folder (default: the config's `output`).")
@click.option(
    "--scheduler", help="threads (default), processes, synchronous, or a Dask scheduler address tcp://host:8786."
)
@click.option(
    "--stages",
    metavar="LIST",
    help="Comma-separated stages to run, of transitions, zonal, trends, redline, report (default: all; "
    "ingest, reclassify and carbon always run).",
)
def run(config: Path, output: Path | None, scheduler: str | None, stages: str | None) -> None:
    """Run the pipeline on CONFIG and write the output folder."""
    from pipeline.config import load_config
    from pipeline.runner.execution import native_stderr_aside
    from pipeline.runner.run import run_pipeline

    chosen = None if stages is None else [s.strip() for s in stages.split(",") if s.strip()]
    # A progress bar redirected to a log file is one endless line of carriage returns; the stage lines say enough.
    progress = not _state.get("quiet") and sys.stdout.isatty()
    with native_stderr_aside():  # libtiff's lines on a full disk, from the computes and the COG copies alike
        manifest = run_pipeline(load_config(config), output, scheduler, progress=progress, stages=chosen)
    click.echo(f"done: {manifest.parent} (manifest {manifest})")


@cli.command()
@click.argument("config", type=click.Path(path_type=Path))
def validate(config: Path) -> None:
    """Check every input of CONFIG (headers, grids, a sample of blocks, polygons) without computing."""
    from pipeline.config import load_config
    from pipeline.runner.validate import validate as check

    for line in check(load_config(config)):
        click.echo(line)


@cli.command("sample-data")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=2026, show_default=True, help="Random seed of the generator.")
def sample_data(directory: Path, seed: int) -> None:
    """Regenerate the synthetic sample region into DIRECTORY."""
    from pipeline.samples.region import generate_sample

    files = generate_sample(directory, seed=seed)
    click.echo(f"wrote {len(files)} files to {directory}")


@cli.command()
@click.argument("series", type=click.Path(path_type=Path))
@click.option("--until", type=int, required=True, help="Last year to forecast.")
@click.option("--json", "as_json", is_flag=True, help='Print {"a","b","C","P","grade","forecast":{year: value}}.')
def forecast(series: Path, until: int, as_json: bool) -> None:
    """GM(1,1) grey forecast of a year,value series (seed 002), with its C, P and precision grade."""
    import json

    from pipeline.errors import InputError
    from pipeline.stages import trends

    years, values = tables.read_series(series)
    model = trends.gm11(years, values, series)
    future = np.arange(years[-1] + model.step, until + 1, model.step)
    with np.errstate(over="ignore", invalid="ignore"):
        modelled = model.predict(future)
    if not np.isfinite(modelled).all():
        first = int(future[~np.isfinite(modelled)][0])
        raise InputError(
            f"the GM(1,1) forecast (a = {model.a:.6g}) exceeds the largest float by {first}; forecast fewer years",
            series,
        )
    ahead = dict(zip(future.tolist(), modelled.tolist()))
    if as_json:

        def number(v: float) -> float | None:
            return v if np.isfinite(v) else None  # JSON has no Infinity or NaN: a value that cannot be is null

        report = {"a": model.a, "b": model.b, "C": model.C, "P": model.P, "grade": model.grade}
        report = {k: number(v) if isinstance(v, float) else v for k, v in report.items()}
        report["forecast"] = {str(y): number(v) for y, v in ahead.items()}
        click.echo(json.dumps(report, indent=2, allow_nan=False))
        return
    click.echo(f"GM(1,1) on {len(years)} values {years[0]}-{years[-1]}: a = {model.a:.6g}, b = {model.b:.6g}")
    click.echo(f"posterior-error ratio C = {model.C:.4f}, small-error probability P = {model.P:.4f}: {model.grade}")
    click.echo("year  observed  modelled  residual")
    for y, v, m in zip(years, values, model.predict(years)):
        click.echo(f"{y}  {v:,.2f}  {m:,.2f}  {v - m:,.2f}")
    for y, v in ahead.items():
        click.echo(f"{y}  -  {v:,.2f}  -")


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (a plain ``kill``) is handled like Ctrl-C: the run's staging folder is removed."""
    _state["terminated"] = True
    raise KeyboardInterrupt


#: Options of the group that users also put after the command (``carbon-pipeline run -q CONFIG``).
_GLOBAL_FLAGS = ("-v", "--verbose", "-q", "--quiet")


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    args = sys.argv[1:]
    flags = [a for a in args if a in _GLOBAL_FLAGS]
    try:
        cli.main(args=flags + [a for a in args if a not in _GLOBAL_FLAGS], standalone_mode=False)
    except PipelineError as e:
        _fail(f"error: {e}")
    except (click.exceptions.Abort, KeyboardInterrupt):
        _fail(
            "terminated (SIGTERM); the output folder is as it was"
            if _state.get("terminated")
            else "interrupted; the output folder is as it was"
        )
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except Exception as e:
        _fail(
            f"unexpected error ({type(e).__name__}): {e}. Run again with --verbose for the traceback "
            "and report it with the config"
        )
    sys.exit(0)


def _fail(message: str) -> None:
    if _state["verbose"]:
        traceback.print_exc()
    click.echo(message, err=True)
    sys.exit(1)
