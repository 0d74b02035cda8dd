"""Faults of a real Dask cluster (`dask scheduler` and `dask worker` processes on 127.0.0.1): a lost worker is
survived with the same tables, no worker at all or a lost scheduler is one error line, output as it was."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import write_config, write_raster
from .helpers import snapshot


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two single-thread workers without nannies (a killed worker stays dead)."""
    info = tmp_path / "scheduler.json"
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
    workers = [
        _spawn(
            "distributed.cli.dask_worker",
            "--scheduler-file",
            str(info),
            "--nthreads",
            "1",
            "--no-nanny",
            "--dashboard-address",
            ":0",
            "--memory-limit",
            "0",
        )
        for _ in range(2)
    ]
    from distributed import Client

    with Client(scheduler_file=str(info), timeout="30s") as client:
        client.wait_for_workers(2, timeout=60)
    yield {"address": json.loads(info.read_text())["address"], "scheduler": scheduler, "workers": workers}
    for process in (scheduler, *workers):
        if process.poll() is None:
            process.kill()
        process.wait()


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
