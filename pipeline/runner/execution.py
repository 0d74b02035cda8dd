"""How a run executes: the Dask scheduler, one compute over many outputs, read errors, timings, warnings."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pyarrow as pa
from dask.delayed import Delayed
from dask.system import CPU_COUNT
from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError

from pipeline.errors import InputError, OutputError, PipelineError

log = logging.getLogger("pipeline.run")


@dataclass
class Timer:
    """Per stage: wall time, this process's CPU time (all its threads) and this process's peak resident memory
    so far (a stage that raised it shows a larger value than the stage before); on a cluster also the workers'
    CPU time summed over them, and the largest peak resident memory so far of any one worker."""

    stages: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    workers_cpu: dict[str, float] = field(default_factory=dict)
    workers_peak_rss_mb: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str):
        start, cpu = time.perf_counter(), time.process_time()
        before = _workers_usage()
        log.info("%s ...", name)
        yield
        self.stages[name] = round(time.perf_counter() - start, 3)
        self.cpu[name] = round(time.process_time() - cpu, 3)
        self.peak_rss_mb[name] = round(_usage()[1], 1)
        _release_freed_memory()
        after = _workers_usage()
        if after:
            # A worker started or restarted in the stage counts from zero; one lost in it is not counted.
            was = {w: c for w, (c, _) in before.items()}
            spent = [c - was[w] if c >= was.get(w, c + 1) else c for w, (c, _) in after.items()]
            self.workers_cpu[name] = round(sum(spent), 3)
            self.workers_peak_rss_mb[name] = round(max(m for _, m in after.values()), 1)
        log.info("%s done in %.1f s", name, self.stages[name])


def _release_freed_memory() -> None:
    """Hand the memory freed so far back to the system: glibc's heap (``malloc_trim``; nothing elsewhere) and
    Arrow's pool (mimalloc in pyarrow's wheels).

    glibc keeps what the threads freed (its mmap threshold rises to the size of a block), so a compute's peak
    stayed resident through the next, whose own peak came on top of it: the whole run's peak grew with the
    largest step's. Trimming after each compute and stage costs milliseconds, where ``MALLOC_TRIM_THRESHOLD_``
    trims on every free (about 30 % more CPU time). Dask's nanny sets that for a cluster's workers. Arrow's pool
    kept what writing the red-line GeoPackage had used (51 MiB at 24000 x 24000 px against nothing in use), and
    that grows with the largest candidate polygons."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    pa.default_memory_pool().release_unused()


#: mallopt's option for the most glibc heaps (arenas) a process has.
_M_ARENA_MAX = -8


def limit_heap_arenas(threads: int) -> None:
    """At most ``max(2, threads)`` glibc heaps (arenas) in this process, unless ``MALLOC_ARENA_MAX`` is set;
    nothing off glibc. Call it before the compute threads start.

    glibc gives threads heaps of their own, up to eight per core, and what one thread frees cannot serve
    another's heap: the threads' peaks added up, and the whole run's peak grew with the raster (full run with
    red lines, 2 threads: 803 MiB at 12000^2 px, 1,001 at 24000^2; with ``MALLOC_ARENA_MAX=2`` 752 and 866, in
    the same time)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, max(2, threads))


def _usage() -> tuple[float, float]:
    """(CPU s of this process, all its threads; its peak resident memory so far, MiB)."""
    return time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def _workers_usage() -> dict[str, tuple[float, float]]:
    """``_usage`` of every worker of the run's cluster by address; empty off a cluster. A figure, never a
    failure: a worker lost while asked is left out, and a cluster that cannot answer gives none (the run's
    own compute says what happened to it)."""
    client = _cluster.get("client")
    if client is None:
        return {}
    try:
        return client.run(_usage, on_error="ignore")
    except Exception:  # the scheduler gone between stages
        return {}


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
    with native_stderr_aside():
        values = _cluster_compute(leaves) if _cluster else dask.compute(*leaves)
    _release_freed_memory()  # the blocks' temporaries: not to stay resident under the next compute's

    def rebuild(shape):
        if isinstance(shape, dict):
            return {k: rebuild(v) for k, v in shape.items()}
        if isinstance(shape, list):
            return [rebuild(v) for v in shape]
        return values[shape][()] if shape in boxed else values[shape]

    return tuple(rebuild(shape) for shape in shapes)


_aside: dict[str, int] = {"depth": 0}
_aside_lock = threading.Lock()


@contextlib.contextmanager
def native_stderr_aside():
    """What C libraries write straight to file descriptor 2 goes to a temporary file, not the terminal,
    unless debug logging (``--verbose``) is on, in which case it shows as it comes.

    GDAL's GeoTIFF I/O reports a failed write of libtiff through ``TIFFErrorExt``, libtiff's global error
    handler, which GDAL (using libtiff's per-file handlers) leaves at libtiff's default: fprintf to stderr.
    So a full disk printed ``_tiffSeekProc: No space left on device.`` once per block written (~300 lines
    for the sample region) before the one error line, and no GDAL or rasterio setting (CPLSetErrorHandler,
    CPL_LOG, CPL_DEBUG) reaches it. Python's own stderr (logging, warnings, click) keeps writing to the
    terminal: the handlers and ``sys.stderr`` that write to fd 2 are pointed at a copy of it meanwhile.
    Worker processes of a Dask cluster keep their own stderr.
    """
    with _aside_lock:
        nested = _aside["depth"] > 0
        _aside["depth"] += 1
    try:
        if nested or log.isEnabledFor(logging.DEBUG):
            yield
            return
        with tempfile.TemporaryFile() as sink:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            terminal = _aside["terminal"] = os.dup(2)
            python = os.fdopen(os.dup(terminal), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
            swapped = _point_python_stderr_at(python)
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(terminal, 2)
                os.close(terminal)
                del _aside["terminal"]
                for undo in swapped:
                    undo()
                python.close()
            sink.seek(0)
            lines = sink.read().decode("utf-8", "replace").splitlines()
            if lines:
                log.info("%d line(s) from C libraries hidden (--verbose shows them), first: %s", len(lines), lines[0])
    finally:
        with _aside_lock:
            _aside["depth"] -= 1


@contextlib.contextmanager
def _terminal_stderr():
    """fd 2 is the terminal again meanwhile, inside a native_stderr_aside (for processes started here)."""
    if "terminal" not in _aside:
        yield
        return
    aside = os.dup(2)
    os.dup2(_aside["terminal"], 2)
    try:
        yield
    finally:
        os.dup2(aside, 2)
        os.close(aside)


def _point_python_stderr_at(stream) -> list[Callable[[], object]]:
    """Point ``sys.stderr`` and every logging StreamHandler that writes to fd 2 at ``stream``; return undos."""

    def on_fd_2(s) -> bool:
        try:
            return s.fileno() == 2
        except (AttributeError, OSError, ValueError):  # pytest's capture, a StringIO: not fd 2
            return False

    undo: list[Callable[[], object]] = []
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for handler in {h for lg in loggers for h in getattr(lg, "handlers", [])}:
        if isinstance(handler, logging.StreamHandler) and on_fd_2(handler.stream):
            undo.append(functools.partial(handler.setStream, handler.setStream(stream)))
    if on_fd_2(sys.stderr):
        undo.append(functools.partial(setattr, sys, "stderr", sys.stderr))
        sys.stderr = stream
    return undo


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
def own_reading_errors(folder: Path):
    """A raster the run staged that cannot be read back becomes an OutputError naming ``folder``: libtiff
    reports a failed write (a full disk) only on stderr, so the file it leaves is found broken when read."""
    try:
        yield
    except (RasterioError, CPLE_BaseError) as e:
        raise OutputError(f"cannot read back a raster the run wrote: {e}", folder) from None


#: The cluster a run computes on (client, scheduler address, no_worker_timeout_s); empty off a cluster.
_cluster: dict = {}


def _cluster_compute(leaves: list) -> tuple:
    from pipeline.runner import clusters

    return clusters.compute(leaves, **_cluster)


#: GDAL's block cache (MB) defaults to 5 % of RAM and filled up while the COGs of large rasters were copied, so
#: peak memory grew with the raster (3.2 GB at 20000^2 px). The run reads each block of its own files once
#: per compute, so a cache buys little: at 256 MB it still filled, the whole run's peak at 12000^2 px was
#: 1.52 GB against 1.10 GB at 64 MB, in the same time. GDAL keeps up to GDAL_MAX_DATASET_POOL_SIZE of a VRT's
#: source files open (100 by default), each holding memory of its own: building the overviews and the COG of
#: a float32 raster of 24000^2 px from its 144 parts peaked 175 and 133 MiB above the start with 100 open, 104
#: and 64 with 32, in the same time. 32 keeps a strip of parts open for two rasters at once up to the widest
#: raster written whole (16 parts of 2048 px at ``tiles.above_px``).
GDAL_SETTINGS = {"GDAL_CACHEMAX": "64", "GDAL_MAX_DATASET_POOL_SIZE": "32"}


@contextlib.contextmanager
def scheduler_context(name: str, progress: bool, no_worker_timeout_s: float = 120.0):
    """Threads (default), synchronous, a local process cluster, or an existing cluster at an address.

    Raster writes need no lock on any of them: each task writes its own file (``outputs.raster_parts_task``).
    """
    for key, value in GDAL_SETTINGS.items():
        os.environ.setdefault(key, value)
    limit_heap_arenas(dask.config.get("num_workers", None) or CPU_COUNT)
    if name in ("threads", "synchronous"):
        from dask.diagnostics import ProgressBar

        with dask.config.set(scheduler=name), ProgressBar(dt=0.1) if progress else contextlib.nullcontext():
            yield
        return
    from distributed import Client, LocalCluster

    from pipeline.runner import clusters

    # distributed sets its own log levels on import. Its client logs a lost connection as tracebacks, again
    # and again while it tries to reconnect; the run says what happened in one line (clusters.compute), so
    # the client's own records show only with --verbose.
    verbose = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    for logger in ["distributed", *(n for n in logging.Logger.manager.loggerDict if n.startswith("distributed."))]:
        logging.getLogger(logger).setLevel(logging.DEBUG if verbose else logging.CRITICAL)
    with _terminal_stderr():  # worker processes inherit fd 2: the terminal's, not a run's native_stderr_aside
        cluster = (
            LocalCluster(
                processes=True,
                threads_per_worker=1,
                dashboard_address=":0",
                silence_logs=False if verbose else logging.CRITICAL,  # a failed task: one line from the run
            )
            if name == "processes"
            else None
        )
    try:
        with Client(cluster or name, timeout="10s") as client:
            address = client.scheduler.address
            log.info("running on %s (dashboard: %s)", address, client.dashboard_link)
            client.register_plugin(clusters.GdalSettings(GDAL_SETTINGS))
            _cluster.update(client=client, address=address, no_worker_timeout_s=no_worker_timeout_s)
            try:
                yield
            finally:
                _cluster.clear()
    except OSError as e:
        raise PipelineError(f"cannot reach the Dask scheduler at {name}: {e}") from None
    finally:
        if cluster is not None:
            with contextlib.suppress(Exception):  # a cluster that is already gone
                cluster.close()


class WarningCollector(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
