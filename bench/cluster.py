"""A local Dask cluster for the benchmark: a real `dask scheduler` and single-thread `dask worker` processes on
127.0.0.1, started and stopped by the bench, each worker's CPU time and peak RSS read from the kernel when it
is stopped (os.wait4; with a nanny, the nanny's figures include the worker processes it started and reaped)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

#: What a worker under a memory limit logs (distributed.worker_memory), counted per run.
MEMORY_EVENTS = {
    "paused": re.compile(r"Pausing worker"),
    "unmanaged memory high": re.compile(r"Unmanaged memory use is high"),
    "restarted (memory)": re.compile(r"exceeded \d+% memory budget\. Restarting"),
}


class LocalCluster:
    """``with LocalCluster(folder, workers=2) as cluster:`` ... ``cluster.address``; after the block,
    ``cluster.stats`` holds the workers' CPU s, peak RSS MiB, MiB spilled to disk and memory events."""

    def __init__(self, folder: Path, workers: int = 2, memory_limit: str = "0", nanny: bool = False):
        self.folder, self.workers, self.memory_limit, self.nanny = folder, workers, memory_limit, nanny
        self.processes: list[subprocess.Popen] = []
        self.stats: dict = {}

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "w")  # noqa: SIM115 (closed with the process, in __exit__)
        process = subprocess.Popen(
            [sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        process.log = log  # type: ignore[attr-defined]
        return process

    def __enter__(self) -> LocalCluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        info = self.folder / "scheduler.json"
        info.unlink(missing_ok=True)
        self.scheduler = self._spawn(
            "scheduler",
            "distributed.cli.dask_scheduler",
            *("--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0", "--scheduler-file", str(info)),
        )
        deadline = time.monotonic() + 120
        while not info.exists():
            if self.scheduler.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the dask scheduler did not start; see {self.folder / 'scheduler.log'}")
            time.sleep(0.1)
        self.address = json.loads(info.read_text())["address"]
        worker = ["distributed.cli.dask_worker", "--scheduler-file", str(info), "--nthreads", "1"]
        worker += ["--dashboard-address", ":0", "--memory-limit", self.memory_limit]
        worker += [] if self.nanny else ["--no-nanny"]
        self.processes = [self._spawn(f"worker{i}", *worker) for i in range(self.workers)]
        from distributed import Client

        with Client(self.address, timeout="60s") as client:
            client.wait_for_workers(self.workers, timeout=120)
        return self

    def kill_worker(self, index: int = 0) -> None:
        """SIGKILL one worker (and, with a nanny, its worker process): it stays dead."""
        os.killpg(self.processes[index].pid, signal.SIGKILL)

    def _spilled_mb(self) -> float:
        """MiB the workers wrote to disk under their memory limit (0 without one; a restarted worker's are lost)."""
        if self.memory_limit == "0":
            return 0.0
        from distributed import Client

        def written(dask_worker) -> float:
            metrics = getattr(dask_worker.data, "cumulative_metrics", {})
            return metrics.get(("disk-write", "bytes"), 0.0)

        try:
            with Client(self.address, timeout="10s") as client:
                return round(sum(client.run(written).values()) / 2**20, 1)
        except OSError:
            return float("nan")

    def __exit__(self, *exc) -> None:
        spilled = self._spilled_mb()
        cpu, rss = [], []
        for process in self.processes:
            # SIGTERM: the worker (or nanny) closes and is reaped; SIGKILL after 30 s. No poll(): it would reap
            # a killed worker and its figures with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    os.killpg(process.pid, signal.SIGKILL)
                    _, status, usage = os.wait4(process.pid, 0)
                    break
                time.sleep(0.1)
            process.returncode = os.waitstatus_to_exitcode(status)
            process.log.close()
            cpu.append(usage.ru_utime + usage.ru_stime)
            rss.append(usage.ru_maxrss / 1024)  # Linux reports kB
        if self.scheduler.poll() is None:
            self.scheduler.terminate()
        self.scheduler.wait()
        self.scheduler.log.close()
        logs = "".join((self.folder / f"worker{i}.log").read_text() for i in range(self.workers))
        self.stats = {
            "workers": self.workers,
            "workers_cpu_s": round(sum(cpu), 2),
            "worker_peak_rss_mb": round(max(rss), 1),
            "spilled_mb": spilled,
            "memory_events": {k: n for k, p in MEMORY_EVENTS.items() if (n := len(p.findall(logs)))},
        }
