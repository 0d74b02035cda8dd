"""How a run executes: the Dask scheduler, one compute over many outputs, read errors, timings, warnings."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import dask
import dask.array as da
import numpy as np
from dask.delayed import Delayed
from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError

from pipeline.errors import InputError, PipelineError

log = logging.getLogger("pipeline.run")


@dataclass
class Timer:
    stages: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        log.info("%s ...", name)
        yield
        self.stages[name] = round(time.perf_counter() - start, 3)
        log.info("%s done in %.1f s", name, self.stages[name])


def compute(*structures):
    """``dask.compute`` over nested dicts/lists of Dask collections, in one graph, reads shared.

    dask 2026.8 returned results in the wrong places when single-chunk Arrays and Delayed objects
    were computed together (a status histogram came back where a Delayed dict belonged). Wrapping
    Arrays in Delayed avoids that but reads input blocks more than once, so instead every Delayed
    leaf becomes a 0-d object Array and only Arrays are computed.
    """
    leaves: list = []
    boxed: set[int] = set()

    def collect(node):
        if isinstance(node, dict):
            return {k: collect(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [collect(v) for v in node]
        if isinstance(node, Delayed):
            boxed.add(len(leaves))
            node = da.from_delayed(dask.delayed(_box)(node), shape=(), dtype=object)
        leaves.append(node)
        return len(leaves) - 1

    shapes = [collect(s) for s in structures]
    values = dask.compute(*leaves)

    def rebuild(shape):
        if isinstance(shape, dict):
            return {k: rebuild(v) for k, v in shape.items()}
        if isinstance(shape, list):
            return [rebuild(v) for v in shape]
        return values[shape][()] if shape in boxed else values[shape]

    return tuple(rebuild(shape) for shape in shapes)


def _box(value) -> np.ndarray:
    """A 0-d object array holding ``value`` (dask would try to concatenate a bare list)."""
    box = np.empty((), dtype=object)
    box[()] = value
    return box


@contextlib.contextmanager
def reading_errors(files: list[Path]):
    """A raster that fails mid-read (truncated, corrupt block) becomes one InputError naming it.

    The failure surfaces inside whichever Dask task read the block; GDAL's message, further down the
    exception chain, names the file by its base name, which we match to the run's inputs.
    """
    try:
        yield
    except (RasterioError, CPLE_BaseError) as e:
        chain: list[str] = []
        cause: BaseException | None = e
        while cause is not None and len(chain) < 10:
            chain.append(str(cause))
            cause = cause.__cause__ or cause.__context__
        detail = next((m for m in chain[1:] if "failed" in m.lower()), chain[-1])
        text = " ".join(chain)
        path = next((f for f in files if f.name in text), None)
        raise InputError(f"cannot read raster pixels (corrupt or truncated file?): {detail}", path) from None


@contextlib.contextmanager
def scheduler_context(name: str, progress: bool):
    """Threads (default), synchronous, a local process cluster, or an existing cluster at an address.

    Raster writes need no lock on any of them: each task writes its own file (``outputs.raster_parts_task``).
    """
    if name in ("threads", "synchronous"):
        from dask.diagnostics import ProgressBar

        with dask.config.set(scheduler=name), ProgressBar(dt=0.1) if progress else contextlib.nullcontext():
            yield
        return
    from distributed import Client, LocalCluster

    # distributed sets its own log levels on import; keep its chatter below ours.
    logging.getLogger("distributed").setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))
    cluster = (
        LocalCluster(processes=True, threads_per_worker=1, dashboard_address=None) if name == "processes" else None
    )
    try:
        with Client(cluster or name, timeout="10s") as client:
            log.info("running on %s (dashboard: %s)", client.scheduler.address, client.dashboard_link)
            yield
    except OSError as e:
        raise PipelineError(f"cannot reach the Dask scheduler at {name}: {e}") from None
    finally:
        if cluster is not None:
            cluster.close()


class WarningCollector(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
