"""Faults of a real Dask cluster (`dask scheduler` and `dask worker` processes on 127.0.0.1): a lost worker is
survived with the same tables, no worker at all or a lost scheduler is one error line, output as it was."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

from .conftest import write_config, write_raster
from .helpers import snapshot


def _spawn(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )


def _start_cluster(folder: Path, nanny: bool = False, memory_limit: str = "0", env: dict | None = None) -> dict:
    """A scheduler and two single-thread workers; the scheduler's address and the processes (``dask worker``'s,
    with a nanny: the nanny's, which starts the worker process and starts it again when it dies)."""
    info = folder / "scheduler.json"
    scheduler = _spawn(
        "distributed.cli.dask_scheduler",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--dashboard-address",
        ":0",
        "--scheduler-file",
        str(info),
    )
    deadline = time.monotonic() + 60
    while not info.exists():
        assert scheduler.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    worker = ["distributed.cli.dask_worker", "--scheduler-file", str(info), "--nthreads", "1"]
    worker += ["--dashboard-address", ":0", "--memory-limit", memory_limit, *([] if nanny else ["--no-nanny"])]
    workers = [_spawn(*worker, env=env) for _ in range(2)]
    from distributed import Client

    with Client(scheduler_file=str(info), timeout="30s") as client:
        client.wait_for_workers(2, timeout=60)
    return {"address": json.loads(info.read_text())["address"], "scheduler": scheduler, "workers": workers}


def _stop(cluster: dict) -> None:
    for process in (*cluster["workers"], cluster["scheduler"]):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # a nanny's worker process too (same session)
        process.wait()


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two single-thread workers without nannies (a killed worker stays dead)."""
    started = _start_cluster(tmp_path)
    yield started
    _stop(started)


def _config(folder: Path, size: int = 800, **dask) -> Path:
    """A run of several seconds on the cluster: ``size`` x ``size`` px in chunks of 64."""
    rng = np.random.default_rng(5)
    codes = np.array([11, 21, 31, 41, 51, 52], np.uint8)
    for name in ("a", "b"):
        write_raster(folder / f"{name}.tif", codes[rng.integers(0, 6, (size, size))])
    return write_config(folder, epochs={2000: "a.tif", 2020: "b.tif"}, dask={"chunks": 64, **dask})


def _start_run(cfg: Path, address: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-q", "run", str(cfg), "--scheduler", address],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(cfg.parent.glob(".out.staging-*/work")):  # planned: the pass is under way
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.05)
    time.sleep(1.0)
    assert process.poll() is None  # still computing when the fault comes
    return process


def _finished_before(cfg: Path) -> dict[str, str]:
    """A finished run (threads) in the output folder, as a user's earlier run would be; its snapshot."""
    result = subprocess.run([sys.executable, "-m", "pipeline", "-q", "run", str(cfg)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return snapshot(cfg.parent / "out")


def _tables(out: Path) -> dict[str, str]:
    return {k: v for k, v in snapshot(out).items() if k.startswith("tables/")}


def test_a_killed_worker_is_survived_with_the_same_tables(cluster, tmp_path):
    cfg = _config(tmp_path)
    _finished_before(cfg)
    expected = _tables(tmp_path / "out")
    run = _start_run(cfg, cluster["address"])
    cluster["workers"][0].send_signal(signal.SIGKILL)
    assert run.wait(timeout=300) == 0, run.stderr.read()
    assert _tables(tmp_path / "out") == expected
    # Per stage, the workers' CPU time and memory beside the client's: the pass ran on the workers.
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert set(manifest["workers_cpu_s"]) == set(manifest["workers_peak_rss_mb"]) < set(manifest["timings_s"])
    assert manifest["workers_cpu_s"]["compute (one pass over the input pixels)"] > 0.5
    assert min(manifest["workers_peak_rss_mb"].values()) > 50  # MiB: a Python process with numpy and GDAL


def test_no_worker_left_is_one_line_and_the_output_stays(cluster, tmp_path):
    cfg = _config(tmp_path, no_worker_timeout_s=3)
    before = _finished_before(cfg)
    run = _start_run(cfg, cluster["address"])
    for worker in cluster["workers"]:
        worker.send_signal(signal.SIGKILL)
    assert run.wait(timeout=120) == 1
    lines = [line for line in run.stderr.read().splitlines() if line.strip()]
    assert not any("Traceback" in line or "distributed." in line for line in lines), lines
    (line,) = [line for line in lines if line.startswith("error: ")]  # the run's warnings aside
    assert f"the Dask scheduler at {cluster['address']} has had no worker for 3 s" in line
    assert "start workers and run again" in line
    assert snapshot(tmp_path / "out") == before
    assert not list(tmp_path.glob(".out.staging-*"))


def test_a_lost_scheduler_is_one_line_naming_it_and_the_output_stays(cluster, tmp_path):
    cfg = _config(tmp_path)
    before = _finished_before(cfg)
    run = _start_run(cfg, cluster["address"])
    cluster["scheduler"].send_signal(signal.SIGKILL)
    assert run.wait(timeout=120) == 1
    lines = [line for line in run.stderr.read().splitlines() if line.strip()]
    assert not any("Traceback" in line or "distributed." in line for line in lines), lines
    (line,) = [line for line in lines if line.startswith("error: ")]  # the run's warnings aside
    assert f"lost the Dask scheduler at {cluster['address']}" in line
    assert snapshot(tmp_path / "out") == before
    assert not list(tmp_path.glob(".out.staging-*"))


def test_a_truncated_input_on_the_cluster_is_one_line_naming_it_and_the_output_stays(cluster, tmp_path):
    """A worker's read error reaches the client with GDAL's message naming the file (distributed could not
    rebuild rasterio's exceptions: the run said "unexpected error (Exception)" and named no file)."""
    cfg = _config(tmp_path, size=256)
    before = _finished_before(cfg)
    truncated = tmp_path / "b.tif"
    codes = np.random.default_rng(8).choice(np.array([11, 21, 31], np.uint8), (256, 256))
    write_raster(truncated, codes, tiled=True)  # tiles of 16 px, of which the file keeps about half
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    run = subprocess.run(
        [sys.executable, "-m", "pipeline", "-q", "run", str(cfg), "--scheduler", cluster["address"]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert not any("Traceback" in line or "distributed." in line for line in lines), lines
    (line,) = [line for line in lines if line.startswith("error: ")]  # the run's warnings aside
    assert line.startswith(f"error: {truncated}: cannot read raster pixels (corrupt or truncated file?)"), line
    assert snapshot(tmp_path / "out") == before
    assert not list(tmp_path.glob(".out.staging-*"))


def test_workers_under_a_memory_limit_spill_survive_a_restart_and_give_the_same_tables(tmp_path):
    """Two single-thread workers with nannies (so the memory limit can pause, spill and restart, as in
    production) and a 1 GB limit whose managed-memory threshold (``distributed.worker.memory.target``, 60 %
    by default) is lowered to 0.2 %: 2 MB, one float64 block of 512 x 512 px, so the few blocks a worker holds
    exceed it and go to disk and back. A worker process here stays near 0.3 GB, below the limit's pause
    (80 %) and restart (95 %) thresholds; the restart a limit causes is made by hand instead: SIGTERM to one
    worker process mid-run, which is what its nanny's memory monitor sends, and the nanny starts it again.
    The benchmark runs the real thing: 1.5 GB at ``chunks: 2048`` at N = 10000 (``bench/run.py``)."""
    cfg = _config(tmp_path, size=1024, chunks=512)
    _finished_before(cfg)
    expected = _tables(tmp_path / "out")
    cluster = _start_cluster(
        tmp_path, nanny=True, memory_limit="1GB", env={"DASK_DISTRIBUTED__WORKER__MEMORY__TARGET": "0.002"}
    )
    try:
        from distributed import Client

        with Client(cluster["address"], timeout="30s") as client:
            pids = client.run(os.getpid)
            run = _start_run(cfg, cluster["address"])
            os.kill(next(iter(pids.values())), signal.SIGTERM)
            assert run.wait(timeout=300) == 0, run.stderr.read()
            client.wait_for_workers(2, timeout=60)
            restarted = client.run(os.getpid)
            spilled = client.run(lambda dask_worker: dask_worker.data.cumulative_metrics[("disk-write", "count")])
    finally:
        _stop(cluster)
    assert len(set(restarted.values()) - set(pids.values())) == 1  # one worker process is new
    assert sum(spilled.values()) > 0
    assert _tables(tmp_path / "out") == expected


_HEAPS = """
import ctypes, os, sys, tempfile, threading
from pipeline.runner import execution
if sys.argv[1] == "limited":
    execution.limit_heap_arenas(2)
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = libc.fopen.restype = ctypes.c_void_p
together = threading.Barrier(8)
def allocate():
    together.wait()  # every thread alive and allocating at once: glibc would give each a heap of its own
    libc.malloc(1000)
    together.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
report = tempfile.NamedTemporaryFile(suffix=".xml", delete=False).name
f = ctypes.c_void_p(libc.fopen(report.encode(), b"w"))
libc.malloc_info(0, f)
libc.fclose(f)
print(open(report).read().count("<heap nr="))
os.unlink(report)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_limit_heap_arenas_keeps_eight_threads_to_two_glibc_heaps():
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    heaps = {
        how: int(
            subprocess.run(
                [sys.executable, "-c", _HEAPS, how], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
        for how in ("default", "limited")
    }
    assert heaps["limited"] <= 2 < heaps["default"], heaps


_ARROW = """
import numpy as np, psutil, pyarrow as pa
from pipeline.runner import execution
rss = lambda: psutil.Process().memory_info().rss / 2**20
ones = pa.array(np.ones(8192))
start = rss()
made = [ones.cast(pa.float32()) for _ in range(6400)]  # 200 MiB from Arrow's pool, 32 KiB at a time
del made
kept = rss() - start
execution._release_freed_memory()
print(kept, rss() - start)
"""


def test_release_freed_memory_hands_back_what_arrow_kept():
    """Arrow's pool (mimalloc) keeps what it freed: the red-line GeoPackage's batches left 51 MiB resident at
    24000 x 24000 px under the COG stage."""
    kept, after = map(
        float, subprocess.run([sys.executable, "-c", _ARROW], capture_output=True, text=True, check=True).stdout.split()
    )
    assert kept > 150 and after < 30, (kept, after)


def test_a_compute_leaves_the_scheduler_nothing_of_its_graph():
    """The next compute's graph may reuse a key as another task (Dask issue 9888): a worker then followed
    the old graph's order and held 1,151 MiB against 661. So a compute returns only once the scheduler has
    forgotten every task of its graph, dependencies included."""
    import dask.array as da
    from distributed import Client, LocalCluster

    from pipeline.runner import clusters

    blocks = da.arange(64, chunks=8).reshape(8, 8).rechunk(4)
    leaves = [blocks.sum(), (blocks * 2).max(axis=0)]
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0")
    with cluster, Client(cluster) as client:
        total, largest = clusters.compute(leaves, client, cluster.scheduler_address, 60)
        left = client.run_on_scheduler(lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks])
    assert total == sum(range(64)) and largest.tolist() == [112 + 2 * c for c in range(8)]
    assert left == []


def test_a_worker_gives_gdal_its_own_threads_and_a_users_setting_wins(monkeypatch, tmp_path):
    """A worker's share of the machine is its Dask threads: with every core each, a machine's workers compressed
    their COGs with workers x cores threads (one single-thread worker of the benchmark used both cores). Not
    through the environment, where GDAL would read every GeoTIFF with them and lose a truncated file's name."""
    import dask
    import rasterio
    import rasterio.shutil
    import xarray as xr
    from affine import Affine
    from rasterio._err import CPLE_BaseError
    from rasterio.crs import CRS

    from pipeline.io import cog
    from pipeline.model.grid import Grid
    from pipeline.runner import clusters

    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")  # keeps the plugin off this process's glibc heaps
    monkeypatch.delenv("GDAL_NUM_THREADS", raising=False)
    monkeypatch.setattr(cog, "worker_threads", None)  # restored after the test
    monkeypatch.setattr(CPLE_BaseError, "__reduce__", CPLE_BaseError.__reduce__)  # the plugin sets it too
    assert cog.gdal_threads() == "ALL_CPUS"  # a run's own process (threads): every core
    grid = Grid(CRS.from_epsg(32650), Affine(30, 0, 500000, 0, -30, 3400000), 700, 600)
    pixels = np.random.default_rng(1).normal(100, 30, grid.shape).astype(np.float32)
    parts = tmp_path / "stock.vrt"
    dask.compute(cog.raster_parts_task(xr.DataArray(pixels, dims=("y", "x")).chunk(256), parts, grid, np.nan))
    copy, threads = rasterio.shutil.copy, []
    monkeypatch.setattr(rasterio.shutil, "copy", lambda *a, **k: (threads.append(k["NUM_THREADS"]), copy(*a, **k)))

    clusters.GdalSettings({}).setup(types.SimpleNamespace(state=types.SimpleNamespace(nthreads=3)))
    cog.finish_cog(parts, tmp_path / "stock.tif", ("stock", "t C"), overview_resampling="AVERAGE")

    assert threads == ["3"] and "GDAL_NUM_THREADS" not in os.environ
    with rasterio.open(tmp_path / "stock.tif") as ds:
        np.testing.assert_array_equal(ds.read(1), pixels)
        assert ds.overviews(1) == [2]
    monkeypatch.setenv("GDAL_NUM_THREADS", "1")  # the user's, in the worker's environment
    assert cog.gdal_threads() == "1"
