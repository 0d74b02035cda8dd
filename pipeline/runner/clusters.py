"""A run on a Dask cluster: its compute watched for lost workers and a lost scheduler, GDAL settings on the
workers. Imported only when a run uses a cluster (distributed is a heavy import)."""

from __future__ import annotations

import os
import time

from distributed import KilledWorker, wait
from distributed.client import FutureCancelledError, FuturesCancelledError
from distributed.comm import CommClosedError
from distributed.diagnostics.plugin import WorkerPlugin

from pipeline.errors import PipelineError


def compute(leaves: list, client, address: str, no_worker_timeout_s: float) -> tuple:
    """``dask.compute`` on the cluster, watched: the run stops with one line when the scheduler is lost or has
    had no worker for ``no_worker_timeout_s`` (distributed would otherwise wait for workers forever)."""
    patience = no_worker_timeout_s
    lost = f"lost the Dask scheduler at {address}; the output folder is as it was: restart the cluster and run again"
    try:
        futures = client.compute(leaves)
        alone_since = None
        while True:
            try:
                wait(futures, timeout=2)
                break
            except TimeoutError:
                pass
            if client.status in ("closed", "closing") or client.scheduler_comm is None:
                raise PipelineError(lost)
            if client.scheduler_info(n_workers=-1)["workers"]:
                alone_since = None
            elif alone_since is None:
                alone_since = time.monotonic()
            elif time.monotonic() - alone_since > patience:
                client.cancel(futures)
                raise PipelineError(
                    f"the Dask scheduler at {address} has had no worker for {patience:.0f} s (dask."
                    "no_worker_timeout_s); the output folder is as it was: start workers and run again"
                )
        results = tuple(client.gather(futures))
        _forget(client, futures)
        # A worker without a nanny keeps what its tasks freed, as the client does (execution.compute), and its
        # peaks add up over the run's computes: every worker hands it back too.
        client.run(_release_freed_memory, on_error="ignore")
        return results
    except KilledWorker as e:
        raise PipelineError(
            f"a task ended the worker running it several times on the cluster at {address} ({e.task}): out of "
            "memory? Give the workers more memory or lower dask.chunks; the output folder is as it was"
        ) from None
    except (CommClosedError, FutureCancelledError, FuturesCancelledError, OSError) as e:
        if isinstance(e, OSError) and not isinstance(e, (ConnectionError, TimeoutError)):
            raise  # a file of the run, not the cluster
        raise PipelineError(lost) from None


def _forget(client, futures: list, patience_s: float = 10.0) -> None:
    """Release a compute's results and wait until the scheduler has forgotten them, and with them the tasks
    they came from.

    The run's computes share keys (a raster opened once and read by several), and Dask optimises each graph
    apart: a key may be an alias in one graph and a task in the next. When the next graph came before the
    scheduler had forgotten the last one's tasks, it kept the old task for that key (it logs "Detected
    different `run_spec`", Dask issue 9888), and the workers held what the old graph's order had made them
    compute: once in nine runs at 24000 x 24000 px, a worker held 110 blocks of the red-line counts' inputs
    (1,151 MiB against 661). A dependency is forgotten with the last task that needs it, so waiting for the
    results' keys is enough; another client that wants the same keys bounds the wait to ``patience_s``."""
    keys = [f.key for f in futures]
    for future in futures:
        future.release()
    deadline = time.monotonic() + patience_s
    while client.run_on_scheduler(_known, keys) and time.monotonic() < deadline:
        time.sleep(0.005)


def _known(keys: list, dask_scheduler=None) -> int:
    """How many of ``keys`` the scheduler still has a task for (run on the scheduler)."""
    return sum(key in dask_scheduler.tasks for key in keys)


class GdalSettings(WorkerPlugin):
    """The run's GDAL settings, heap limit (``execution.limit_heap_arenas``) and COG threads (``cog.gdal_threads``)
    in every worker process, those that join later too."""

    name = "carbon-pipeline-gdal"

    def __init__(self, settings: dict[str, str]):
        super().__init__()
        self.settings = settings

    def setup(self, worker) -> None:
        from pipeline.runner.execution import limit_heap_arenas  # it imports this module

        for key, value in self.settings.items():
            os.environ.setdefault(key, value)
        from pipeline.io import cog

        # A worker's share of the machine is its threads: with every core each, the workers of a machine
        # compressed with (workers x cores) threads, and one single-thread worker used two cores.
        cog.worker_threads = worker.state.nthreads
        picklable_gdal_errors()
        limit_heap_arenas(worker.state.nthreads)


def picklable_gdal_errors() -> None:
    """Let GDAL's errors (rasterio's ``CPLE_*`` exceptions) reach the client whole, with the message naming the
    file. distributed pickles a failed task's exception with its causes (tblib); rasterio's classes have their own
    ``__init__`` and a read-only ``args``, which tblib cannot restore (a known clash, e.g. mapchete pull 755), so the
    client got a bare ``Exception`` naming no file: a truncated input was "unexpected error", not one line naming
    it. Given a ``__reduce__``, they are rebuilt from their own arguments."""
    from rasterio._err import CPLE_BaseError

    CPLE_BaseError.__reduce__ = _reduce_gdal_error


def _reduce_gdal_error(error) -> tuple:
    return type(error), (error.error, error.errno, error.errmsg)


def _release_freed_memory() -> None:
    from pipeline.runner.execution import _release_freed_memory  # it imports this module

    _release_freed_memory()
